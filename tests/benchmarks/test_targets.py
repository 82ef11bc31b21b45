"""Targets table (benchmarks/targets.py): each issue's floors read right from the result files."""

from __future__ import annotations

import json

import pytest

from benchmarks.targets import RESULTS, denoiser_targets, main, recognition_targets

GROUPS = ("all (test voices)", "real recordings")


def denoise_payload(default: tuple, dtln: tuple, light: tuple, light_mmac: float = 39.0) -> dict:
    """A denoise.json with the same gains on both groups for each system."""
    systems = {"R-CED default (rced)": (default, 524.8), "DTLN peer (1M params)": (dtln, 123.0),
               "bced preset (bced w0.5)": (light, light_mmac)}  # fmt: skip
    rows = [{"group": g, "system": s, "d_pesq": v[0], "d_stoi": v[1], "d_si_sdr": v[2]}
            for g in GROUPS for s, (v, _) in systems.items()]  # fmt: skip
    return {"rows": rows, "compute": {s: {"mmac_per_second": m} for s, (_, m) in systems.items()},
            "stapes_models": {"R-CED default (rced)": "/x/rced/default_model",
                              "bced preset (bced w0.5)": "/x/rced/presets/bced"}}  # fmt: skip


PRESETS = {"rows": [{"folder": "rced/presets/bced", "int8_flash_bytes": 23_200, "tflm_arena_bytes": 7_552}]}
EXPORT_LIGHT = {"denoiser": {"int8_minus_float": {"pesq": {"mean": -0.002, "worst": -0.15}}}}


@pytest.mark.parametrize("default, dtln, met", [
    ((0.17, 0.01, 3.2), (0.15, 0.00, 2.9), (True, True)),  # every floor, ahead of DTLN
    ((0.17, 0.01, 3.2), (0.18, -0.02, 1.0), (False, False)),  # DTLN ahead on PESQ: not ahead on all three
    ((0.155, 0.01, 2.5), (0.10, -0.03, 1.0), (True, False)),  # ahead, but short of the real-speech floors
    ((0.17, -0.001, 3.2), (0.10, -0.03, 1.0), (False, False)),  # a STOI loss
])  # fmt: skip
def test_default_meets_floors_and_beats_dtln_on_all_three(default, dtln, met):
    out = denoiser_targets(denoise_payload(default, dtln, (0.13, 0.0, 2.0)), PRESETS, EXPORT_LIGHT)
    assert tuple(t.met for t in out[:2]) == met


def test_light_preset_only_within_its_compute():
    out = denoiser_targets(denoise_payload((0.2, 0.01, 3.5), (0.1, 0.0, 1.0), (0.13, 0.0, 2.0)), PRESETS, EXPORT_LIGHT)
    assert [t.met for t in out[2:]] == [True, False, True, True]  # real speech asks +0.14 PESQ
    heavy = denoise_payload((0.2, 0.01, 3.5), (0.1, 0.0, 1.0), (0.13, 0.0, 2.0), light_mmac=60.0)
    out = denoiser_targets(heavy, PRESETS, EXPORT_LIGHT)
    assert len(out) == 3 and not out[2].met and out[2].measured == "none"


def spotting_payload(found: int, misclassified: int, per_hour: float) -> dict:
    row = {"found": found, "misclassified": misclassified, "n_commands": 95, "false_alarms_per_hour": per_hour}
    return {"rows": {"stapes float, `grammar listen`: 2-s windows": row, "stapes int8, `grammar listen`: 2-s windows": row,
                     "stapes float, 2-s windows (before)": {**row, "found": 95}}}  # fmt: skip


@pytest.mark.parametrize("found, misclassified, per_hour, met", [
    (67, 9, 20.0, True),  # 70.5 % found, 9.5 % misclassified allowed, 20 an hour allowed
    (66, 9, 3.7, False),  # 69.5 % found
    (70, 10, 3.7, False),  # 10 of 95 misclassified: more than 2 in 20
    (70, 5, 20.5, False),
])  # fmt: skip
def test_listening_rule(found, misclassified, per_hour, met):
    chain = {"all": {"accuracy": 0.81, "far": 0.05}}
    recognition = {"natural_and_peer": {"TTS voices": {"denoiser + AM": chain}, "natural voice": {"denoiser + AM": chain}}}
    real = {"results": {"shipped AM: denoiser + AM": {"calibrated": {"all": {"accuracy": 0.85, "false_alarms": 0,
                                                                               "non_commands": 32}}}}}  # fmt: skip
    bundle = {"models": [{"name": "am", "flash_bytes": 262_144, "arena_bytes": 98_305}]}
    export = {"chain": {"float": {"accuracy": 0.70}, "int8": {"accuracy": 0.68}}}
    out = recognition_targets(recognition, real, spotting_payload(found, misclassified, per_hour), export, bundle)
    assert [t.met for t in out[:3]] == [True, True, True]  # at the floors: met
    assert [t.met for t in out[3:5]] == [met, met]
    assert [t.met for t in out[5:]] == [False, True]  # the arena one byte over 96 KB; 2.0 points apart


def test_the_shipped_results(tmp_path):
    assert main(["--out", str(tmp_path / "targets")]) == 0
    rows = json.loads((tmp_path / "targets.json").read_text())["targets"]
    assert len(rows) == 13 and {r["issue"] for r in rows} == {17, 18}
    assert all((RESULTS / f"{r['source']}.md").exists() for r in rows)
    am = next(r for r in rows if r["what"] == "int8 AM on the device")
    flash = (RESULTS.parent.parent / "grammar" / "default_am" / "model_int8.tflite").stat().st_size  # the shipped file
    assert am["measured"].startswith(f"{flash:,} B flash")
    assert (tmp_path / "targets.md").read_text().count("\n| 1") == 13


def test_a_missing_result_names_its_file(tmp_path):
    with pytest.raises(SystemExit, match=r"denoise\.json: no such result; make it first: python benchmarks/denoise\.py"):
        main(["--results", str(tmp_path), "--out", str(tmp_path / "t")])
