"""Real-speech commands benchmark (benchmarks/real_commands.py): its counting, and its recordings."""

from __future__ import annotations

import pytest

from benchmarks.real_commands import ALSA, PHRASES, SNRS, recordings, table


def test_table_counts_accuracy_and_false_alarms_per_condition():
    labels = ["front left", "rear left", None, "side right", None]
    preds = ["front left", "front left", "rear left", "side right", None]
    snrs = [None, 5.0, 5.0, 5.0, None]
    t = table(labels, preds, snrs)
    assert t["clean"] == {"accuracy": 1.0, "false_alarms": 0, "non_commands": 1}
    assert t["5.0"] == {"accuracy": 0.5, "false_alarms": 1, "non_commands": 1}
    assert t["all"]["accuracy"] == pytest.approx(2 / 3) and t["all"]["false_alarms"] == 1
    assert set(t) == {"clean", "20.0", "10.0", "5.0", "all"} and SNRS[0] is None
    assert t["20.0"] == {"accuracy": None, "false_alarms": 0, "non_commands": 0}  # no trial there


@pytest.mark.skipif(not ALSA.exists(), reason="alsa-utils' speaker-test recordings are not installed")
def test_the_recordings_are_the_phrases_at_16_khz():
    cmds, others = recordings()
    assert [name for name, _ in cmds] == list(PHRASES) and len(others) == 2
    for _, audio in cmds:
        assert 1.0 < len(audio) / 16000 < 2.0 and abs(audio).max() > 0.05
