"""Denoising benchmark: the shipped model and every shipped preset (rced/presets/*) against noisy
input, spectral subtraction, the oracle ideal ratio mask and the DTLN and GTCRN peers, on TEST-ONLY
voices, two real recordings (their mean and each apart), the natural TEST-ONLY voice and the eight
real phrases of ALSA's speaker test (groups of their own) in babble; with each system's compute in
MMAC per second of audio (benchmarks/quality_compute.py).

Writes benchmarks/results/denoise.{json,md} and benchmarks/results/quality_vs_compute.png.
Run: python benchmarks/denoise.py [--model DIR] [--real-draws N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from importlib import resources
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_compute import Compute, compact_table, plot_quality_vs_compute, stapes_compute, tflite_compute  # noqa: E402

from rced.corpus import eval_set  # noqa: E402
from rced.denoiser import Denoiser, preset_model_path  # noqa: E402
from rced.evaluate import System, run_systems, shown_path, standard_systems, summarize, write_results  # noqa: E402
from rced.runtime import FLOAT_MODEL_NAME  # noqa: E402

ROOT = Path(__file__).resolve().parent
PEERS = ROOT.parent.parent / "shared" / "peers"
DTLN_DIR, GTCRN_DIR = PEERS / "dtln", PEERS / "gtcrn"
DTLN_NAME, GTCRN_NAME = "DTLN peer (1M params)", "GTCRN peer (48K params)"  # rced.evaluate.standard_systems
# GTCRN's count as its authors give it (../shared/peers/gtcrn/README.md): per second, ERB filterbank included
GTCRN_COMPUTE = Compute(48_245, 33_000_000, 1.0, "33.0 MMAC/s as its authors give it, ERB filterbank included")
PLOT = ROOT / "results" / "quality_vs_compute.png"


def update_card(card: Path, table: str) -> None:
    """Replace the metrics block of a model card (between the two markers) with ``table``."""
    from rced.audio import atomic_write_text

    start, end = "<!-- metrics:start -->", "<!-- metrics:end -->"
    text = card.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{card}: no metrics markers to fill")
    head, rest = text.split(start, 1)
    atomic_write_text(card, head + start + "\n" + table + rest[rest.index(end) :])


def shipped_presets() -> list[Path]:
    """Every shipped preset folder (rced/presets/<name>) that holds config.json and the float model."""
    names = sorted(p.name for p in Path(str(resources.files("rced") / "presets")).iterdir())
    folders = [preset_model_path(n) for n in names]
    return [f for f in folders if (f / "config.json").is_file() and (f / FLOAT_MODEL_NAME).is_file()]


def stapes_models(model: str | None) -> dict[str, Denoiser]:
    """Row name -> denoiser (float backend): the model of ``--model`` (default: the shipped one), then the presets."""
    den = Denoiser.load(model, backend="float")
    models = {f"R-CED {'default' if model is None else Path(model).name} ({den.config.arch})": den}
    for folder in shipped_presets():
        p = Denoiser.load(folder, backend="float")
        models[f"{folder.name} preset ({p.config.arch} w{p.config.width_mult:g})"] = p
    return models


def build_systems(models: dict[str, Denoiser], dtln: Path | None, gtcrn: Path | None) -> dict[str, System]:
    """rced.evaluate.standard_systems with its one model row replaced by a row per stapes model."""

    def model_row(den: Denoiser) -> System:
        return next(fn for name, fn in standard_systems(den).items() if name.startswith("R-CED"))

    out: dict[str, System] = {}
    for name, fn in standard_systems(next(iter(models.values())), dtln, gtcrn).items():
        out.update({label: model_row(d) for label, d in models.items()} if name.startswith("R-CED") else {name: fn})
    return out


def system_compute(models: dict[str, Denoiser], dtln: Path | None, gtcrn: Path | None) -> dict[str, Compute]:
    """Compute of every system that has a network: the stapes models, DTLN (counted from its
    graphs, one call of each stage per block shift) and GTCRN (its authors' count)."""
    from rced.baselines import DTLN

    out = {label: stapes_compute(d.config) for label, d in models.items()}
    if dtln is not None:
        shift_ms = 1000 * DTLN.block_shift / DTLN.sample_rate
        per = f"{shift_ms:g} ms block shift ({DTLN.block_len}-sample frame, {DTLN.block_shift}-sample shift at {DTLN.sample_rate} Hz)"
        out[DTLN_NAME] = tflite_compute([dtln / "model_1.tflite", dtln / "model_2.tflite"],
                                        DTLN.sample_rate / DTLN.block_shift, per)  # fmt: skip
    if gtcrn is not None:
        out[GTCRN_NAME] = GTCRN_COMPUTE
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None, help="model folder (default: shipped)")
    ap.add_argument("--n-per-voice", type=int, default=12)
    ap.add_argument("--real-draws", type=int, default=4,
                    help="babble draws per SNR for each of the two real recordings (one draw: 8 mixtures)")
    ap.add_argument("--out", default=str(ROOT / "results" / "denoise"))
    ap.add_argument("--plot", default=str(PLOT), help="quality-against-compute PNG")
    ap.add_argument("--card", action="store_true", help="copy the table into the model folder's MODEL_CARD.md")
    args = ap.parse_args(argv)

    models = stapes_models(args.model)
    den = next(iter(models.values()))
    dtln = DTLN_DIR if DTLN_DIR.exists() else None
    gtcrn = GTCRN_DIR if GTCRN_DIR.exists() else None
    compute = system_compute(models, dtln, gtcrn)
    main_compute = compute[next(iter(models))]
    items = eval_set(n_per_voice=args.n_per_voice, include_natural=True, include_alsa=True, real_draws=args.real_draws)
    t0 = time.time()
    results = run_systems(items, build_systems(models, dtln, gtcrn))
    rows = summarize(results, per_recording=True)
    allrow = {r["system"]: r for r in rows if r["group"] == "all (test voices)"}
    oracle = allrow["oracle IRM"]
    share = {s: {m: allrow[s][f"d_{m}"] / oracle[f"d_{m}"] for m in ("pesq", "stoi", "si_sdr")}
             for s in allrow if s not in ("noisy", "oracle IRM")}  # fmt: skip
    data = (f"TEST-ONLY voices (flite rms, festival ked_diphone, festival cmu_us_slt_arctic_hts), "
            f"{args.n_per_voice} sentences each, plus the pysptk and amfm-decompy real recordings, each in "
            f"{args.real_draws} babble draws and levels per SNR (their mean, then each), and, as groups of their own, the natural TEST-ONLY voice hibari heart "
            f"({args.n_per_voice} sentences) and the eight ALSA speaker-test phrases (real speech, one woman, "
            f"about 1 s each); babble of 3-8 TRAIN-voice talkers at -5/0/5/10 dB")  # fmt: skip
    payload = {
        "model": shown_path(den.path), "arch": den.config.arch, "params": main_compute.params,
        "macs_per_frame": main_compute.macs_per_call,
        "mmac_per_second": main_compute.mmac_per_second, "data": data,
        "n_items": len(items), "share_of_oracle_gain": share, "seconds": round(time.time() - t0, 1),
        "dtln_params_approx": compute[DTLN_NAME].params if dtln else 1_000_000,
        "gtcrn_params": GTCRN_COMPUTE.params, "gtcrn_mmac_per_second": GTCRN_COMPUTE.mmac_per_second,
        "stapes_models": {label: shown_path(d.path) for label, d in models.items()},
        "compute": {s: {**dataclasses.asdict(c), "mmac_per_second": c.mmac_per_second} for s, c in compute.items()},
        "plot": os.path.relpath(args.plot, ROOT.parent),
    }  # fmt: skip
    plot_quality_vs_compute(rows, compute, Path(args.plot),
                            f"Denoising gain against compute: TEST-ONLY TTS voices, two real recordings, the natural "
                            f"TEST-ONLY voice and the ALSA phrases in babble at -5/0/5/10 dB ({len(items)} mixtures)")  # fmt: skip
    write_results(args.out, payload, rows, preamble=preamble(payload, compute, rows) + "\n")
    if args.card:
        update_card(Path(den.path) / "MODEL_CARD.md", Path(args.out).with_suffix(".md").read_text())
    print(Path(args.out).with_suffix(".md").read_text())
    return 0


def preamble(payload: dict, compute: dict[str, Compute], rows: list[dict]) -> str:
    """The text above the per-group table: compute and quality per system, the plot, data, oracle shares."""
    how = "; ".join(f"{s}: {c.how}" for s, c in compute.items())
    share = "; ".join(f"{s}: PESQ {v['pesq']:.0%}, STOI {v['stoi']:.0%}, SI-SDR {v['si_sdr']:.0%}"
                      for s, v in payload["share_of_oracle_gain"].items())  # fmt: skip
    return "\n\n".join(
        [
            compact_table(rows, compute).rstrip("\n"),
            f"![Denoising gain against compute]({payload['plot']})",
            "Compute is multiply-accumulates per second of audio in the layers that hold weights (convolutions, "
            "dense/fully-connected layers, LSTM gate matrices); element-wise ops and the STFT/FFT are not counted, "
            f"for any system. {how}.",
            f"Data: {payload['data']}; {payload['n_items']} mixtures.",
            f"Share of the oracle IRM's gain (all test voices): {share}",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
