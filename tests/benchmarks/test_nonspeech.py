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
