"""Command-recognition benchmark (benchmarks/recognition.py): counting at a threshold."""

from __future__ import annotations

import pytest

from benchmarks.recognition import accuracy_at


@pytest.mark.parametrize("threshold,accuracy,far", [(-9.0, 0.75, 1.0), (-1.0, 0.5, 0.5), (0.5, 0.0, 0.0)])
def test_accuracy_counts_right_and_accepted_commands_and_accepted_non_commands(threshold, accuracy, far):
    # four commands (the third decoded as another command) and two non-commands
    ok = [True, True, False, True, False, False]
    scores = [0.0, -0.5, 0.2, -2.0, -0.8, -3.0]
    is_cmd = [True, True, True, True, False, False]
    r = accuracy_at(ok, scores, is_cmd, threshold)
    assert r == {"accuracy": accuracy, "far": far, "accuracy_no_rejection": 0.75, "n_commands": 4, "n_non_commands": 2}


def test_a_score_equal_to_the_threshold_is_accepted():
    assert accuracy_at([True, False], [-1.0, -1.0], [True, False], -1.0)["far"] == 1.0
