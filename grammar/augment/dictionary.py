"""AM-specific statistical pronunciation dictionary (grammar augmentation, Yang et al. 2019).

Run the acoustic model over a large general speech set, take each utterance's greedy CTC
decoding, align it to the reference transcript with a minimum-edit-distance path at the
character level, and count, per reference word, the hypothesis substring aligned to it. The
result says how *this* AM tends to spell each word ("lights" -> "lites", "mute" -> "mut").

Alignment (:func:`align_words`): unit-cost Levenshtein between the reference and hypothesis
characters, except that a space is never substituted by a letter (nor a letter by a space):
word boundaries only align to word boundaries, so every hypothesis letter lands in one
reference word. On equal cost the backtrace prefers a diagonal step (match/substitution),
then a deletion, then an insertion. Each hypothesis character is attributed to a reference
word: a matched/substituted one to the word of its reference character, a hypothesis space
matched to a reference space to no word; an inserted one to the word it falls inside, or,
at a word boundary, to the word on its non-space side (after the last character of word w
and before the following space: w; after a space: the next word; before the first or after
the last reference character: the first or the last word). A word's decoding is its
characters in order, stripped at both ends, inner runs of spaces collapsed to one (a word
split in two keeps its space: "lights" -> "ligh ts"); a deleted word decodes as "".
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grammar.alphabet import encode, greedy_decode, normalize_text
from grammar.errors import GrammarError, read_format, write_json

FORMAT = "stapes-pronunciation-dictionary"
FORMAT_VERSION = 1

_BABBLE_SEED_OFFSET = 500_009  # babble talkers of build_default_pairs: train_utterances(60, seed + offset)
_SNR_RANGE = (5.0, 20.0)


# --------------------------------------------------------------------------- alignment


def _clean(s: str) -> str:
    return " ".join(s.split())


def align_words(ref: str, hyp: str) -> list[tuple[str, str]]:
    """(reference word, hypothesis substring aligned to it) for every word of ``ref``.

    ``ref`` and ``hyp`` are alphabet text (whitespace runs are collapsed first). See the module
    docstring for the alignment and attribution rules. ``ref`` with no word gives ``[]``.
    """
    if not isinstance(ref, str) or not isinstance(hyp, str):
        raise GrammarError("align_words: reference and hypothesis must be strings")
    ref, hyp = _clean(ref), _clean(hyp)
    words = ref.split()
    if not words:
        return []
    n, m = len(ref), len(hyp)
    r = np.frombuffer(ref.encode("utf-32-le"), dtype=np.uint32)
    h = np.frombuffer(hyp.encode("utf-32-le"), dtype=np.uint32)
    sp = ord(" ")
    # substitution cost: 0 match, 1 letter<->letter, forbidden (space<->letter)
    sub = np.where(r[:, None] == h[None, :], 0, np.where((r[:, None] == sp) != (h[None, :] == sp), 10**9, 1))
    d = np.zeros((n + 1, m + 1), dtype=np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):  # rows vectorised except the insertion chain along j
        diag = d[i - 1, :-1] + sub[i - 1]
        dele = d[i - 1, 1:] + 1
        row = np.minimum(diag, dele)
        # insertion: d[i, j] = min(row[j], d[i, j-1] + 1), a running minimum of row[k] + (j - k)
        row = np.concatenate([[d[i, 0]], row])
        idx = np.arange(m + 1)
        d[i] = np.minimum.accumulate(row - idx) + idx

    # word index of every reference character (-1 for spaces)
    word_of = np.full(n, -1, dtype=np.int64)
    pos = 0
    for w, word in enumerate(words):
        word_of[pos : pos + len(word)] = w
        pos += len(word) + 1

    owner = [-1] * m  # reference word that each hypothesis character belongs to
    pending: list[int] = []  # inserted hypothesis characters waiting for the next reference character
    i, j = n, m
    steps: list[tuple[str, int, int]] = []
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + sub[i - 1, j - 1]:
            steps.append(("diag", i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            steps.append(("del", i - 1, -1))
            i -= 1
        else:
            steps.append(("ins", -1, j - 1))
            j -= 1
    steps.reverse()
    prev_ref = -1  # index of the last reference character passed
    for kind, ri, hj in steps:
        if kind == "ins":
            pending.append(hj)
            continue
        if pending:  # insertions between reference characters prev_ref and ri
            for k in pending:
                owner[k] = _insertion_owner(prev_ref, ri, word_of, len(words))
            pending.clear()
        prev_ref = ri
        if kind == "diag":
            owner[hj] = int(word_of[ri])
    for k in pending:
        owner[k] = _insertion_owner(prev_ref, n, word_of, len(words))

    pieces: list[list[str]] = [[] for _ in words]
    for k, w in enumerate(owner):
        if w >= 0:
            pieces[w].append(hyp[k])
    return [(word, _clean("".join(p))) for word, p in zip(words, pieces)]


def _insertion_owner(before: int, after: int, word_of: np.ndarray, n_words: int) -> int:
    """Word owning characters inserted between reference positions ``before`` and ``after``
    (-1: start, len(ref): end)."""
    if before < 0:
        return 0
    if after >= len(word_of):
        return n_words - 1
    wb, wa = int(word_of[before]), int(word_of[after])
    if wb >= 0:  # after a letter: that letter's word (inside a word, or trailing before a space)
        return wb
    return wa if wa >= 0 else int(word_of[before - 1])  # after a space: the next word


# --------------------------------------------------------------------------- dictionary


def default_dictionary_path() -> Path:
    """Where the shipped dictionary (built for the shipped AM) lives."""
    return Path(__file__).resolve().parents[1] / "data" / "pron_dict_default.json"


@dataclass(frozen=True)
class PronDict:
    """Per reference word, how often the AM decoded it as each string ("" = deleted)."""

    counts: Mapping[str, Mapping[str, int]]
    provenance: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.counts, Mapping):
            raise GrammarError("pronunciation dictionary: counts must be a mapping word -> {decoding: count}")
        clean: dict[str, dict[str, int]] = {}
        for word, decs in self.counts.items():
            if not isinstance(word, str) or not word or not isinstance(decs, Mapping) or not decs:
                raise GrammarError(f"pronunciation dictionary: entry {word!r} must map a word to decoding counts")
            row: dict[str, int] = {}
            for dec, c in decs.items():
                if not isinstance(dec, str) or isinstance(c, bool) or not isinstance(c, int | np.integer) or c <= 0:
                    raise GrammarError(f"pronunciation dictionary: {word!r} -> {dec!r}: count must be a positive integer")
                if dec != _clean(dec):
                    raise GrammarError(f"pronunciation dictionary: {word!r} -> {dec!r}: untidy whitespace")
                encode(dec)  # alphabet check (GrammarError)
                row[dec] = int(c)
            clean[word] = row
        object.__setattr__(self, "counts", clean)
        if not isinstance(self.provenance, dict):
            raise GrammarError("pronunciation dictionary: provenance must be a dict")

    def __contains__(self, word: object) -> bool:
        return word in self.counts

    def __len__(self) -> int:
        return len(self.counts)

    def total(self, word: str) -> int:
        """How many times ``word`` occurred in the references (0 if never)."""
        return sum(self.counts.get(word, {}).values())

    def probs(self, word: str) -> dict[str, float]:
        """{decoding: relative frequency}, most probable first (ties: alphabetical); {} for an unseen word."""
        decs = self.counts.get(word, {})
        total = sum(decs.values())
        return {d: c / total for d, c in sorted(decs.items(), key=lambda kv: (-kv[1], kv[0]))}

    def top(self, word: str, k: int | None = None, min_prob: float = 0.0) -> list[tuple[str, float]]:
        """The ``k`` most probable decodings of ``word`` with probability >= ``min_prob``."""
        items = [(d, p) for d, p in self.probs(word).items() if p >= min_prob]
        return items if k is None else items[: max(0, int(k))]

    # -- files

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": FORMAT_VERSION, "provenance": self.provenance,
                "counts": {w: dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))
                           for w, d in sorted(self.counts.items())}}  # fmt: skip

    def save(self, path: str | os.PathLike) -> None:
        """Write the dictionary as JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PronDict:
        """Read a dictionary written by :meth:`save`; every problem is a one-line GrammarError naming the file."""
        path = Path(path)
        data = read_format(path, "pronunciation dictionary", "dictionary", FORMAT, FORMAT_VERSION)
        if not isinstance(data.get("counts"), dict):
            raise GrammarError(f"{path}: 'counts' must be a JSON object")
        prov = data.get("provenance", {})
        if not isinstance(prov, dict):
            raise GrammarError(f"{path}: 'provenance' must be a JSON object")
        try:
            return cls(data["counts"], {**prov, "path": str(path)})
        except GrammarError as exc:
            raise GrammarError(f"{path}: {str(exc).removeprefix('pronunciation dictionary: ')}") from None


def build_dictionary(pairs: Iterable[tuple[str, str]], provenance: dict | None = None) -> PronDict:
    """Count the decodings of every reference word over (reference, greedy hypothesis) pairs.

    References are normalised with :func:`normalize_text` (a reference with no letters is
    skipped); hypotheses must already be alphabet text (greedy decodings are).
    """
    counts: dict[str, Counter] = {}
    n_pairs = n_words = 0
    for ref, hyp in pairs:
        try:
            ref = normalize_text(ref)
        except GrammarError:
            continue
        n_pairs += 1
        for word, dec in align_words(ref, hyp):
            counts.setdefault(word, Counter())[dec] += 1
            n_words += 1
    if not counts:
        raise GrammarError("build_dictionary: no (reference, hypothesis) pairs with words")
    prov = {"n_pairs": n_pairs, "n_word_tokens": n_words, **(provenance or {})}
    return PronDict({w: dict(c) for w, c in counts.items()}, prov)


# --------------------------------------------------------------------------- data


def collect_pairs(recognizer, items: Iterable[tuple[str, np.ndarray]], progress: bool = True,
                  sr: int = 16000) -> list[tuple[str, str]]:  # fmt: skip
    """(normalised reference, greedy decoding) for every (text, audio) item, through the
    recognizer's chain (denoiser if it has one -> AM -> greedy CTC)."""
    from tqdm import tqdm

    items = list(items) if not isinstance(items, Sequence) else items
    out = []
    for k, (text, audio) in enumerate(tqdm(items, desc="decoding", unit="utt", disable=not progress)):
        hyp = greedy_decode(recognizer.posteriors(audio, sr, name=f"item {k}"))
        out.append((normalize_text(text), hyp))
    return out


#: Speech seed of the default dictionary: TRAIN voices, but not the acoustic model's own training
#: utterances (``grammar train-am`` uses seeds 0 and 1, the GPU data 2-4), so the dictionary
#: counts the errors the AM makes on speech it has not seen. Seed 0 (the AM's data) gave 13.5 %
#: of word tokens decoded exactly against 13.0 % on seed 100.
DICTIONARY_SEED = 100


def train_voice_posteriors(recognizer, n_utts: int = 2000, seed: int = DICTIONARY_SEED, progress: bool = True,
                           snr_range: tuple[float, float] = _SNR_RANGE, desc: str = "dictionary"):  # fmt: skip
    """(normalised reference, log-posteriors) of ``n_utts`` TRAIN-voice utterances
    (``train_utterances(n_utts, seed)``) through the recognizer's chain, each twice: clean, and mixed
    with babble at a random SNR in ``snr_range`` dB (babble talkers: ``train_utterances(60, seed +
    500009)``). A generator, deterministic in ``seed``: speech the AM has not trained on, for the
    statistics of its errors."""
    from tqdm import tqdm

    from rced.audio import load_audio
    from rced.corpus import load_utterances, make_babble, mix, synthesize_all, train_utterances

    if n_utts <= 0:
        raise GrammarError(f"{desc}: n_utts must be positive, got {n_utts}")
    utts = train_utterances(int(n_utts), seed)
    paths = synthesize_all(utts, desc=f"{desc} speech")  # then load one at a time: bounded memory
    pool = load_utterances(train_utterances(60, seed + _BABBLE_SEED_OFFSET), desc=f"{desc} babble")
    rng = np.random.default_rng([seed, 17])
    for k, (u, p) in enumerate(tqdm(list(zip(utts, paths)), desc=f"{desc} decoding", unit="utt",
                                    disable=not progress)):  # fmt: skip
        try:
            ref = normalize_text(u.text)
        except GrammarError:
            continue
        clean = load_audio(p)
        noisy = mix(clean, make_babble(len(clean), pool, rng), float(rng.uniform(*snr_range)))
        for audio in (clean, noisy):
            yield ref, recognizer.posteriors(audio, 16000, name=f"{desc} utterance {k}")


def build_default_pairs(recognizer, n_utts: int = 2000, seed: int = DICTIONARY_SEED, progress: bool = True,
                        snr_range: tuple[float, float] = _SNR_RANGE) -> list[tuple[str, str]]:  # fmt: skip
    """Pairs for the default dictionary: the greedy decoding of every utterance of
    :func:`train_voice_posteriors` (``n_utts`` TRAIN-voice utterances, clean and in babble), so
    2 * n_utts pairs. Deterministic in ``seed``."""
    return [(ref, greedy_decode(logp))
            for ref, logp in train_voice_posteriors(recognizer, n_utts, seed, progress, snr_range, "dictionary")]  # fmt: skip

