"""benchmarks/export.py: the int8 chain at the float chain's test FAR."""

from __future__ import annotations

import pytest

from benchmarks.export import accepted_at_far


@pytest.mark.parametrize(("n_false_alarms", "expected"), [
    (0, [None, None, None, None, None]),  # only above every non-command: 0.5
    (1, [None, "b", None, "a", None]),  # above 0.3: one non-command (0.5) and the command at 0.4
    (2, [None, "b", "a", "a", "b"]),  # above 0.1
    (3, ["a", "b", "a", "a", "b"]),  # everything
])  # fmt: skip
def test_accepted_at_far_accepts_that_many_non_commands(n_false_alarms, expected):
    labels = [None, None, None, "a", "a"]
    best = ["a", "b", "a", "a", "b"]
    scores = [0.1, 0.5, 0.3, 0.4, 0.2]
    out = accepted_at_far(labels, best, scores, n_false_alarms)
    assert out == expected
    assert sum(o is not None for o, lab in zip(out, labels) if lab is None) == n_false_alarms
