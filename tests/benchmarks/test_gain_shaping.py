"""The listener's gain-shaping choice (benchmarks/gain_shaping.py) on small grids whose answer is known."""

from __future__ import annotations

import pytest

from benchmarks.gain_shaping import STOI_MARGIN, choose, criterion


def row(floor: float, pesq: float, stoi: tuple[float, float], sdr: float) -> dict:
    return {"mask_floor": floor, "mask_release": 0.6, "mask_exponent": 0.9,
            "dev_d_pesq": pesq, "dev_d_stoi": stoi[0], "dev_d_si_sdr": sdr,
            "vocoded_d_pesq": pesq, "vocoded_d_stoi": stoi[1], "vocoded_d_si_sdr": sdr}  # fmt: skip


def test_criterion_counts_each_metric_in_units_of_its_target():
    assert criterion(row(0.2, 0.10, (0.0, 0.0), 1.5)) == pytest.approx(2.0)


def test_the_best_setting_that_keeps_stoi_on_both_sets_wins_over_floors():
    rows = [row(0.2, 0.09, (0.010, 0.001), 1.4),  # best criterion, but loses the margin on one set
            row(0.25, 0.06, (0.008, 0.006), 1.3),  # the answer
            row(0.3, 0.04, (0.012, 0.011), 1.1)]  # fmt: skip
    assert choose(rows) is rows[1]


def test_without_a_setting_over_the_margin_the_best_worst_case_stoi():
    rows = [row(0.2, 0.09, (0.001, -0.004), 1.4), row(0.3, 0.04, (0.003, 0.002), 1.1)]
    assert all(min(r["dev_d_stoi"], r["vocoded_d_stoi"]) < STOI_MARGIN for r in rows)
    assert choose(rows) is rows[1]
