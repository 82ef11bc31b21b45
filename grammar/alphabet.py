"""The acoustic model's character alphabet, text normalisation, and greedy CTC decoding.

Index 0 is the CTC blank; then space, apostrophe and ``a``-``z``: 29 symbols. Command text
is normalised to this alphabet once, when it is read (:func:`normalize_text`); :func:`encode`
itself never normalises, so an expression that reaches the decoder is exactly what is scored.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable

import numpy as np

from grammar.errors import GrammarError

BLANK = "<blank>"
BLANK_ID = 0
SYMBOLS: tuple[str, ...] = (BLANK, " ", "'", *string.ascii_lowercase)
NUM_SYMBOLS = len(SYMBOLS)  # 29
_INDEX = {c: i for i, c in enumerate(SYMBOLS) if i != BLANK_ID}

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_LIGATURES = str.maketrans(
    {"\u00df": "ss", "\u00e6": "ae", "\u0153": "oe", "\u00f8": "o", "\u0131": "i", "\u0142": "l"}
)
# Word separators become spaces; every other character outside the alphabet is dropped.
_SEPARATORS = re.compile(r"[\s\-_/\\\u2010-\u2015,;:!?()\[\]{}\"|+*=<>~]+")
_THOUSANDS = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_STRAY_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")


def _spell_int(n: int) -> str:
    """English words for 0 <= n < 10**6 ("twenty one", "three hundred five")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + _spell_int(n % 100))
    return _spell_int(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + _spell_int(n % 1000))


def _spell_digits(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _spell_number(match: re.Match) -> str:
    whole, _, frac = match.group(0).partition(".")
    if (len(whole) > 1 and whole.startswith("0")) or len(whole) > 6:
        words = _spell_digits(whole)  # "007", phone numbers, codes: digit by digit
    else:
        words = _spell_int(int(whole))
    if frac:
        words += " point " + _spell_digits(frac)
    return f" {words} "


def normalize_text(s: str) -> str:
    """Map free text onto the alphabet: lower case, accents removed, numbers spelled out.

    Hyphens, underscores, slashes and sentence punctuation separate words; ``&`` becomes
    "and" and ``%`` "percent"; apostrophes survive only inside words ("what's"); any other
    character outside the alphabet is dropped; whitespace is collapsed and stripped.
    Raises :class:`GrammarError` when nothing is left.
    """
    if not isinstance(s, str):
        raise GrammarError(f"expected text, got {type(s).__name__}")
    t = unicodedata.normalize("NFKD", s.translate(_APOSTROPHES))
    t = "".join(c for c in t if not unicodedata.combining(c)).lower().translate(_LIGATURES)
    t = t.replace("&", " and ").replace("%", " percent ")
    t = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), t)
    t = _NUMBER.sub(_spell_number, t)
    t = _SEPARATORS.sub(" ", t)
    t = "".join(c for c in t if c in _INDEX)
    t = _STRAY_APOSTROPHE.sub(" ", t)
    t = " ".join(t.split())
    if not t:
        raise GrammarError(f"{s!r}: no letters left after normalisation")
    return t


def encode(text: str) -> np.ndarray:
    """Symbol ids (int64, no blanks) of ``text``, which must already be in the alphabet."""
    try:
        return np.fromiter((_INDEX[c] for c in text), dtype=np.int64, count=len(text))
    except KeyError as exc:
        raise GrammarError(
            f"{text!r}: character {exc.args[0]!r} is not in the alphabet (space, apostrophe, a-z)"
        ) from None


def decode(ids: Iterable[int]) -> str:
    """Text of a sequence of symbol ids; blanks are skipped, repeats are kept."""
    out = []
    for i in np.asarray(ids, dtype=np.int64).reshape(-1):
        if not 0 <= i < NUM_SYMBOLS:
            raise GrammarError(f"symbol id {int(i)} is outside the alphabet (0..{NUM_SYMBOLS - 1})")
        if i != BLANK_ID:
            out.append(SYMBOLS[i])
    return "".join(out)


def check_posteriors(logp: np.ndarray, n_symbols: int | None = NUM_SYMBOLS) -> np.ndarray:
    """Validate a (T, V) log-posterior matrix: 2-D, at least one frame, no NaN or +inf, no all -inf frame."""
    logp = np.asarray(logp)
    if logp.ndim != 2 or logp.shape[0] == 0 or logp.shape[1] == 0:
        raise GrammarError(f"log-posteriors: expected a non-empty (frames, symbols) matrix, got shape {logp.shape}")
    if n_symbols is not None and logp.shape[1] != n_symbols:
        raise GrammarError(f"log-posteriors: expected {n_symbols} symbols per frame, got {logp.shape[1]}")
    if np.isnan(logp).any() or np.isposinf(logp).any():
        raise GrammarError("log-posteriors: contain NaN or +inf")
    if np.isneginf(logp).all(axis=1).any():
        raise GrammarError("log-posteriors: a frame has no finite value (every symbol has probability 0)")
    return logp


def best_path_ids(logp: np.ndarray, n_symbols: int | None = NUM_SYMBOLS) -> np.ndarray:
    """Symbol ids of the best path: argmax per frame, repeats merged (blanks kept, for the caller to drop)."""
    best = check_posteriors(logp, n_symbols).argmax(axis=1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return best[keep]


def greedy_decode(logp: np.ndarray) -> str:
    """Best-path transcript: argmax per frame, merge repeats, drop blanks."""
    return decode(best_path_ids(logp))
