"""Speech-check benchmark (benchmarks/speech_check.py): its floor rule and its counting."""

from __future__ import annotations

import pytest

from benchmarks.speech_check import MARGIN, choose_floor, summary


@pytest.mark.parametrize(("lowest", "want"), [(0.234, 0.15), (0.3, 0.2), (0.45, 0.3), (0.0151, 0.01)])
def test_floor_is_two_thirds_of_the_lowest_right_command_rounded_down(lowest, want):
    assert MARGIN == pytest.approx(2 / 3)
    assert choose_floor([0.9, lowest, 0.5]) == pytest.approx(want)


@pytest.mark.parametrize("values", [[], [0.3, float("nan")]])
def test_floor_needs_finite_modulations(values):
    with pytest.raises(SystemExit, match="no finite modulation"):
        choose_floor(values)


def test_summary_counts_what_the_floor_rejects():
    rows = [{"label": "mute", "command": "mute", "modulation": 0.1},  # right, rejected at 0.15
            {"label": "mute", "command": "mute", "modulation": 0.4},  # right, kept
            {"label": "mute", "command": None, "modulation": 0.05},  # missed anyway
            {"label": "mute", "command": "call home", "modulation": 0.05},  # wrong command: not right
            {"label": None, "command": "mute", "modulation": 0.12},  # false alarm, rejected
            {"label": None, "command": "mute", "modulation": 0.3},  # false alarm, kept
            {"label": None, "command": None, "modulation": 0.0}]  # fmt: skip
    s = summary(rows, 0.15)
    assert (s["commands"], s["non_commands"], s["right"], s["right_rejected"]) == (4, 3, 2, 1)
    assert (s["false_alarms"], s["false_alarms_rejected"], s["lowest_right"]) == (2, 1, 0.1)
    assert summary(rows[2:3], 0.15)["lowest_right"] is None
