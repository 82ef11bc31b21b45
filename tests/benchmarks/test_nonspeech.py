"""Non-speech benchmark (benchmarks/nonspeech.py): its counting."""

from __future__ import annotations

import pytest

from benchmarks.nonspeech import table
from rced.nonspeech import KINDS


def test_table_counts_acceptances_per_kind_and_condition():
    rows = [{"kind": k, "condition": c} for c in ("clean", "10 dB babble") for k in KINDS for _ in range(2)]
    preds = [None] * len(rows)
    preds[0] = "mute"  # clean hum, one of two
    preds[len(KINDS) * 2] = "mute"  # babble hum
    preds[len(KINDS) * 2 + 3] = "call home"  # babble noise
    t = table(rows, preds)
    assert t["clean"]["hum"] == 0.5 and t["clean"]["noise"] == 0.0
    assert t["clean"]["all"] == pytest.approx(1 / (2 * len(KINDS)))
    assert t["10 dB babble"]["hum"] == 0.5 and t["10 dB babble"]["noise"] == 0.5
    assert t["taken_for"] == {"mute": 2, "call home": 1} and list(t["taken_for"]) == ["mute", "call home"]


def test_the_listening_stream_is_the_sounds_joined_by_crossfades():
    import numpy as np

    from benchmarks.nonspeech import FADE_S, LONG_S, SEED0, long_stream
    from rced.nonspeech import nonspeech_clip

    x, kinds = long_stream(1)
    n = len(KINDS)
    assert sorted(kinds) == sorted(KINDS)
    assert len(x) == round((n * LONG_S - (n - 1) * FADE_S) * 16000)
    firsts = [nonspeech_clip(SEED0 + 500_000 + 1000 * k, LONG_S, kind=kind)[0] for k, kind in enumerate(KINDS)]
    head = int((LONG_S - FADE_S) * 16000)
    assert np.array_equal(x[:head], firsts[KINDS.index(kinds[0])][:head])  # the first sound, untouched up to its fade


@pytest.mark.parametrize("kind", ["dtmf", "buzzer", "smoke alarm", "ringback", "whistle"])
def test_alarm_clips_are_made_from_their_seed_at_a_bounded_level(kind):
    import numpy as np

    from benchmarks.nonspeech import ALARM_KINDS, alarm_clip

    assert kind in ALARM_KINDS and kind not in KINDS  # held out: not a kind training's generator makes
    x = alarm_clip(kind, 3)
    assert x.dtype == np.float32 and x.shape == (32000,) and np.isfinite(x).all()
    assert np.array_equal(x, alarm_clip(kind, 3)) and not np.array_equal(x, alarm_clip(kind, 4))
    rms_db = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    assert -40.5 <= rms_db <= -14.5 and np.abs(x).max() <= 0.99


def test_alarm_kind_must_be_known():
    from benchmarks.nonspeech import alarm_clip

    with pytest.raises(ValueError, match="alarm kind 'siren'"):
        alarm_clip("siren", 0)


def test_md_table_has_a_row_per_chain_and_condition():
    from benchmarks.nonspeech import md_table

    rows = [{"kind": k, "condition": c} for c in ("clean", "10 dB babble") for k in ("a", "b")]
    t = table(rows, ["mute", None, None, None], kinds=("a", "b"))
    lines = md_table({"chain": t}, ("a", "b"))
    assert lines[0] == "| chain | condition | a | b | all | taken for |"
    assert lines[2] == "| chain | 10 dB babble | 0% | 0% | 0% | mute 1 |" and lines[3] == "|  | clean | 100% | 0% | 50% |  |"
