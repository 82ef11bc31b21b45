"""Warp-sensitivity benchmark (benchmarks/warp_sensitivity.py): the frequency scale it reads, and its counting."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.warp_sensitivity import BEST_OF, SCALES, SETS, best, counts, rows_of
from grammar.acoustic.features import log_mel
from grammar.config import AMConfig
from rced.frontend import stft


@pytest.mark.parametrize("scale", [0.88, 1.12, 1.2])
def test_a_scale_reads_a_tone_where_that_multiple_of_it_reads(scale):
    """log_mel's warp, as the benchmark uses it: a formant at f reads as one at scale * f."""
    cfg = AMConfig()
    t = np.arange(16000) / 16000

    def band(hz: float, warp: float = 1.0) -> int:
        mag = np.abs(stft((0.1 * np.sin(2 * np.pi * hz * t)).astype(np.float32), cfg.frontend))
        return int(log_mel(mag, cfg, warp)[20].argmax())

    assert band(1000.0, scale) == band(1000.0 * scale)
    assert (band(1000.0, scale) > band(1000.0)) == (scale > 1)


def item(label, **per):
    return {"label": label, "per": {float(k[1:].replace("_", ".")): v for k, v in per.items()}}


def test_best_of_scales_keeps_the_best_scoring_decision():
    per = {0.94: (-2.0, "mute"), 1.0: (-1.0, "call home"), 1.06: (-1.0, "unmute")}
    assert best(per, (1.0,)) == (-1.0, "call home")
    assert best(per, (0.94, 1.0, 1.06)) == (-1.0, "call home")  # ties: the first scale
    assert best(per, (1.06, 0.94)) == (-1.0, "unmute")


def test_counts_take_the_right_command_at_the_threshold_and_false_alarms_of_non_commands():
    items = [item("mute", s1_0=(-1.0, "mute")), item("mute", s1_0=(-3.0, "mute")),  # right; below the threshold
             item("mute", s1_0=(-0.5, "unmute")),  # accepted as the wrong command: not right, not a false alarm
             item(None, s1_0=(-1.5, "mute")), item(None, s1_0=(-2.5, "mute"))]  # fmt: skip
    c = counts(items, -2.0, (1.0,))
    assert (c["right"], c["commands"], c["false_alarms"]) == (1, 3, 1)
    assert c["accuracy"] == pytest.approx(1 / 3, abs=1e-4) and c["far"] == pytest.approx(0.5)


def test_rows_set_each_readings_threshold_on_the_calibration_non_commands():
    rng = np.random.default_rng(0)

    def utt(label):
        return {"label": label, "per": {s: (float(rng.normal()), label or "mute") for s in SCALES}}

    measured = {k: [utt("mute") for _ in range(30)] + [utt(None) for _ in range(40)] for k in SETS}
    rows = rows_of(measured)
    assert [r["reading"] for r in rows] == [f"formants x {s:g}" for s in SCALES] + list(BEST_OF)
    for r in rows:
        cal = r["calibration set"]
        assert cal["far"] <= 0.05 and cal["false_alarms"] == 2  # floor(0.05 * 40) non-commands at most, here exactly
        scales = r["scales"]
        non = sorted((best(it["per"], scales)[0] for it in measured["calibration set"] if it["label"] is None), reverse=True)
        assert non[2] - 1e-4 < r["threshold"] <= non[1] + 1e-4  # the third-highest is rejected (the row rounds to 1e-4)
