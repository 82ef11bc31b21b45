"""AM-lever comparison (benchmarks/am_levers.py): the rooms rows' counting at a dry threshold."""

from __future__ import annotations

import numpy as np

from benchmarks.am_levers import in_rooms_measure
from grammar.alphabet import NUM_SYMBOLS, encode
from grammar.decoding.decoder import Grammar
from grammar.decoding.recognizer import log_softmax


def spoken(text: str | None) -> np.ndarray:
    """Log-posteriors that spell ``text`` clearly (one peaked frame per symbol, blanks between); None:
    blanks only, which no command fits."""
    logits = np.zeros((2 * len(text or "x") + 1, NUM_SYMBOLS))
    logits[:, 0] = 8.0
    if text is not None:
        logits[1::2, 0] = 0.0
        logits[1::2][np.arange(len(text)), encode(text)] = 8.0
    return log_softmax(logits)


class ScriptedAM:
    """Stand-in recognizer: the audio's first sample indexes the text it 'hears'."""

    def __init__(self, texts: list[str | None]):
        self.texts = texts

    def posteriors(self, audio: np.ndarray, sr: int, name: str = "input") -> np.ndarray:
        return spoken(self.texts[int(audio[0])])


def test_rooms_count_commands_right_and_non_commands_accepted_per_condition():
    heard = ["call home", "mute", "call home", None, "mute", "mute"]  # what the AM makes of each row
    rows = [{"label": "call home", "condition": "babble"},  # right
            {"label": "mute", "condition": "room"},  # right
            {"label": "mute", "condition": "room"},  # the wrong command
            {"label": "call home", "condition": "room"},  # only blanks: below the threshold
            {"label": None, "condition": "room"},  # a false alarm
            {"label": None, "condition": "babble"}]  # a false alarm  # fmt: skip
    for i, r in enumerate(rows):
        r["audio"], r["rt60"] = np.full(4, i, np.float32), 0.3
    grammar = Grammar.from_commands(["mute", "call home"])
    out = in_rooms_measure(ScriptedAM(heard), grammar, rows, threshold=-0.5)
    assert out["right"] == [True, True, False, False]  # the commands' rows, in order
    room, babble = out["conditions"]["room"], out["conditions"]["babble"]
    assert (room["accuracy"], room["far"], room["n_commands"], room["n_non_commands"]) == (1 / 3, 1.0, 3, 1)
    assert (babble["accuracy"], babble["far"], babble["n_commands"], babble["n_non_commands"]) == (1.0, 1.0, 1, 1)
    strict = in_rooms_measure(ScriptedAM(heard), grammar, rows, threshold=1.0)  # above every score: all rejected
    assert strict["right"] == [False] * 4 and strict["conditions"]["room"]["far"] == 0.0
