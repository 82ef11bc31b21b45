"""PocketSphinx, the peer recognizer: its en-us continuous model (trained on real speech), the
commands as its grammar, run from Python (PyPI ``pocketsphinx``, which ships the model).

- :func:`recognize`: an isolated utterance against a JSGF grammar of the commands (the best
  command, no rejection: a JSGF search always returns one).
- :func:`spot`: keyword spotting in a long stream (its ``kws`` search: each command a keyphrase
  with one detection threshold), the stream fed in 0.25-s blocks as a device would.

Words its dictionary lacks (of the default commands: "unmute") are given the pronunciation of
two dictionary words they split into ("un" + "mute"); a word that splits into none is an error.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Sequence

import numpy as np

SR = 16000
FRAME_S = 0.01  # PocketSphinx frames


@functools.lru_cache(maxsize=1)
def _dictionary() -> dict[str, str]:
    from pocketsphinx import get_model_path

    out: dict[str, str] = {}
    with open(os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict")) as f:
        for line in f:
            word, _, phones = line.strip().partition(" ")
            out.setdefault(word, phones)
    return out


def pronunciation(word: str) -> str:
    """The dictionary's phones, or those of the two dictionary words ``word`` splits into."""
    d = _dictionary()
    if word in d:
        return d[word]
    for i in range(len(word) - 2, 1, -1):
        if word[:i] in d and word[i:] in d:
            return f"{d[word[:i]]} {d[word[i:]]}"
    raise ValueError(f"pocketsphinx: no pronunciation for {word!r}")


def _decoder(commands: Sequence[str], kind: str, text: str):
    """A decoder that knows every word of ``commands``, searching with a ``kind`` ("jsgf" or
    "kws") search read from ``text`` (the words are added before the search is read)."""
    from pocketsphinx import Decoder

    dec = Decoder(loglevel="FATAL")
    for w in sorted({w for c in commands for w in c.split()}):
        if w not in _dictionary():
            dec.add_word(w, pronunciation(w), True)
    with tempfile.NamedTemporaryFile("w", suffix=f".{kind}", delete=False) as f:
        f.write(text)
    try:
        (dec.add_jsgf_file if kind == "jsgf" else dec.add_kws)("search", f.name)
        dec.activate_search("search")
    finally:
        os.unlink(f.name)
    return dec


def _pcm(audio: np.ndarray) -> bytes:
    return (np.clip(np.asarray(audio, np.float64), -1, 1) * 32767).astype("<i2").tobytes()


def _word_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two word sequences."""
    row = list(range(len(b) + 1))
    for i, wa in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, wb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (wa != wb))
    return row[-1]


def recognize(audio: np.ndarray, commands: Sequence[str]) -> str | None:
    """The command PocketSphinx hears in one 16-kHz utterance (JSGF grammar of ``commands``).

    When no path reaches the grammar's end, PocketSphinx returns its best partial path ("what
    time"); that is read as the command nearest to it in words (no rejection). None: it heard nothing.
    """
    dec = _jsgf_decoder(tuple(commands))
    dec.start_utt()
    dec.process_raw(_pcm(audio), False, True)
    dec.end_utt()
    hyp = dec.hyp()
    words = hyp.hypstr.split() if hyp is not None else []
    if not words:
        return None
    return min(commands, key=lambda c: _word_distance(words, c.split()))


@functools.lru_cache(maxsize=4)
def _jsgf_decoder(commands: tuple[str, ...]):
    rules = " | ".join(f"( {c} )" for c in commands)
    return _decoder(commands, "jsgf", f"#JSGF V1.0;\ngrammar commands;\npublic <command> = {rules};\n")


def spot(audio: np.ndarray, commands: Sequence[str], threshold: float = 1e-20,
         block_s: float = 0.25) -> list[tuple[str, float, float]]:  # fmt: skip
    """(command, start s, end s) of every keyphrase PocketSphinx spots in a 16-kHz stream;
    ``threshold`` is every keyphrase's detection threshold (its ``kws_threshold``)."""
    dec = _decoder(commands, "kws", "".join(f"{c} /{threshold:g}/\n" for c in commands))
    pcm = _pcm(audio)
    step = int(block_s * SR) * 2
    out: list[tuple[str, float, float]] = []
    utt0 = 0  # sample where the current utterance began
    dec.start_utt()
    for i in range(0, len(pcm), step):
        dec.process_raw(pcm[i : i + step], False, False)
        if dec.hyp() is not None:
            for seg in dec.seg():
                word = " ".join(seg.word.split())
                if word in commands:
                    out.append((word, utt0 / SR + seg.start_frame * FRAME_S, utt0 / SR + (seg.end_frame + 1) * FRAME_S))
            dec.end_utt()
            utt0 = (i + step) // 2
            dec.start_utt()
    dec.end_utt()
    return out
