"""Speech-check benchmark (benchmarks/speech_check.py): its floor rule and its counting."""

from __future__ import annotations

import pytest

from benchmarks.speech_check import MARGIN, by_condition, choose_ceiling, choose_floor, summary


@pytest.mark.parametrize(("lowest", "want"), [(0.234, 0.15), (0.3, 0.2), (0.45, 0.3), (0.0151, 0.01)])
def test_floor_is_two_thirds_of_the_lowest_right_command_rounded_down(lowest, want):
    assert MARGIN == pytest.approx(2 / 3)
    assert choose_floor([0.9, lowest, 0.5]) == pytest.approx(want)


@pytest.mark.parametrize("values", [[], [0.3, float("nan")]])
def test_floor_needs_finite_modulations(values):
    with pytest.raises(SystemExit, match="no finite modulation"):
        choose_floor(values)


@pytest.mark.parametrize(("highest", "want"), [(0.17, 0.26), (0.1, 0.15), (0.0, 0.0), (0.8, 1.0)])
def test_ceiling_is_the_highest_right_tonality_over_the_margin_rounded_up(highest, want):
    assert choose_ceiling([0.0, highest, 0.05 * highest]) == pytest.approx(want)


def test_ceiling_needs_finite_tonalities():
    with pytest.raises(SystemExit, match="no finite tonality"):
        choose_ceiling([0.1, float("inf")])


def test_summary_counts_what_the_floor_and_ceiling_reject():
    rows = [{"label": "mute", "command": "mute", "modulation": 0.1, "tonality": 0.0},  # right, rejected at 0.15
            {"label": "mute", "command": "mute", "modulation": 0.4, "tonality": 0.1},  # right, kept
            {"label": "mute", "command": "mute", "modulation": 0.4, "tonality": 0.5},  # right, rejected: tonal
            {"label": "mute", "command": None, "modulation": 0.05, "tonality": 0.0},  # missed anyway
            {"label": "mute", "command": "call home", "modulation": 0.05, "tonality": 0.9},  # wrong: not right
            {"label": None, "command": "mute", "modulation": 0.12, "tonality": 0.0},  # false alarm, rejected
            {"label": None, "command": "mute", "modulation": 0.3, "tonality": 0.9},  # false alarm, rejected: tonal
            {"label": None, "command": "mute", "modulation": 0.3, "tonality": 0.2},  # false alarm, kept
            {"label": None, "command": None, "modulation": 0.0, "tonality": 1.0}]  # fmt: skip
    s = summary(rows, 0.15, 0.26)
    assert (s["commands"], s["non_commands"], s["right"], s["right_rejected"], s["right_rejected_by_ceiling"]) == (5, 4, 3, 2, 1)
    assert (s["false_alarms"], s["false_alarms_rejected"], s["lowest_right"], s["highest_tonality_right"]) == (3, 2, 0.1, 0.5)
    assert summary(rows[3:4], 0.15, 0.26)["lowest_right"] is None


def test_non_speech_clips_are_counted_without_the_check_with_the_floor_and_with_both():
    rows = [{"command": "mute", "modulation": 0.05, "tonality": 0.0},  # fails the floor
            {"command": "mute", "modulation": 0.5, "tonality": 0.9},  # fails the ceiling only
            {"command": "mute", "modulation": 0.5, "tonality": 0.0},  # passes both
            {"command": None, "modulation": 0.5, "tonality": 0.0},  # rejected by the grammar
            {"command": "mute", "modulation": 0.5, "tonality": 0.9}]  # fmt: skip
    got = by_condition(rows, ["clean"] * 4 + ["babble"], 0.15, 0.26)
    assert got["clean"] == {"clips": 4, "accepted": 3, "accepted_floor_only": 2, "accepted_with_check": 1}
    assert got["babble"] == {"clips": 1, "accepted": 1, "accepted_floor_only": 1, "accepted_with_check": 0}
