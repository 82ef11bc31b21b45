"""Commands-in-rooms benchmark (benchmarks/rooms.py): what each condition hears, and its counting."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.rooms import CONDITIONS, heard, score
from rced.corpus import rms
from rced.rooms import RoomResponse


def room(rt60: float, echo: float = 0.5) -> RoomResponse:
    """A closed-form room: the direct sound and one echo 100 samples later."""
    h = np.zeros(200, np.float32)
    h[0], h[100] = 1.0, echo
    return RoomResponse(h, h[:1].copy(), rt60)


def test_each_item_is_heard_dry_in_its_room_and_in_babble_at_the_snr():
    rng = np.random.default_rng(0)
    items = [("mute", rng.normal(size=800).astype(np.float32)), (None, rng.normal(size=800).astype(np.float32))]
    rooms = [room(0.3), room(0.6, echo=0.25)]
    pool = [rng.normal(size=4000).astype(np.float32) * 0.1 for _ in range(8)]
    rows = heard(items, rooms, pool, seed=1)
    assert [r["condition"] for r in rows] == list(CONDITIONS) * 2
    for k, (label, audio) in enumerate(items):
        dry, wet, noisy = rows[3 * k : 3 * k + 3]
        assert dry["label"] == wet["label"] == noisy["label"] == label
        np.testing.assert_array_equal(dry["audio"], audio)
        echo = rooms[k].full[100]  # item k in room k: the direct sound plus its echo, cut to the item's length
        expect = audio.astype(np.float64).copy()
        expect[100:] += echo * audio[:-100]
        np.testing.assert_allclose(wet["audio"], expect, atol=1e-5)
        assert (dry["rt60"], wet["rt60"], noisy["rt60"]) == (None, rooms[k].rt60, rooms[k].rt60)
        babble = noisy["audio"] - wet["audio"]
        assert 20 * np.log10(rms(wet["audio"]) / rms(babble)) == pytest.approx(10.0, abs=0.01)


def test_score_counts_commands_right_at_the_threshold_false_alarms_and_rt60_halves():
    rows = [{"label": "mute", "condition": "dry", "rt60": None},
            {"label": "mute", "condition": "room", "rt60": 0.3},
            {"label": "mute", "condition": "room", "rt60": 0.7},  # the longest RT60 counts in the upper half
            {"label": None, "condition": "room", "rt60": 0.5},
            {"label": "mute", "condition": CONDITIONS[2], "rt60": 0.3},
            {"label": None, "condition": CONDITIONS[2], "rt60": 0.3}]  # fmt: skip
    decided = [("mute", -1.0), ("mute", -1.0), ("unmute", 0.0), ("call home", -0.5), ("mute", -3.0), ("mute", -3.0)]
    out = score(rows, decided, threshold=-2.0)
    assert out["dry"]["accuracy"] == 1.0 and out["dry"]["far"] is None
    assert out["room"]["accuracy"] == 0.5 and out["room"]["far"] == 1.0  # the wrong command is not right
    assert out["room"]["rt60_short"] == {"accuracy": 1.0, "n": 1}
    assert out["room"]["rt60_long"] == {"accuracy": 0.0, "n": 1}
    assert out[CONDITIONS[2]]["accuracy"] == 0.0 and out[CONDITIONS[2]]["far"] == 0.0  # below the threshold
