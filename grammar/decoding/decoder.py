"""Grammar decoding: CTC likelihood of every grammar expression, best one, confidence, reject.

A grammar is the user's command set plus, after augmentation, alternate spellings
("expressions") that each map to one command. :func:`decode` scores every expression against
the acoustic model's log-posteriors with the CTC forward algorithm, picks the most likely one,
and accepts its command when the confidence score reaches the grammar's threshold.

Confidence (``score_kind="len_norm"``, the default) is the gap between the expression's log
likelihood and the log probability of the unconstrained best path, divided by the expression's
length in characters; ``"frame_norm"`` divides by the number of frames instead;
``"len_margin"`` adds a quarter of the expression's lead over the best expression of any OTHER
command, also per character (it rejects near misses that fit two commands about equally). A
grammar carries the score kind its threshold was calibrated with (``Grammar.score_kind``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from grammar.alphabet import check_posteriors, normalize_text
from grammar.errors import GrammarError, read_format, write_json
from grammar.units import SPELLED_ONCE, Units

FORMAT = "stapes-grammar"
FORMAT_VERSION = 1
# Placeholder until calibrated on non-command speech with calibrate_threshold().
DEFAULT_THRESHOLD = -1.0

_NEG = -1e30  # finite stand-in for log(0) inside the recursion: no inf - inf = NaN
_CHUNK = 128  # frames of emissions gathered at once (bounds memory on long inputs)


# --------------------------------------------------------------------------- CTC likelihood


def _check_labels(labels: Iterable, n_symbols: int) -> list[np.ndarray]:
    out = []
    for e, lab in enumerate(labels):
        arr = np.asarray(lab)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise GrammarError(f"label {e}: expected a 1-D sequence of integer symbol ids")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < 1 or arr.max() >= n_symbols):
            raise GrammarError(f"label {e}: symbol ids must lie in 1..{n_symbols - 1} (0 is the blank)")
        out.append(arr)
    return out


def _pack(labels: list[np.ndarray], n_symbols: int):
    """Lay all extended label sequences (blank, c1, blank, ..., cL, blank) end to end in one
    flat state vector, two guard states before each; guards emit a symbol that never occurs."""
    lengths = np.array([len(lab) for lab in labels], dtype=np.int64)
    n_states = 2 * lengths + 1
    starts = 2 + np.concatenate([[0], np.cumsum(n_states + 2)[:-1]])
    total = int((n_states + 2).sum())
    guard = n_symbols
    ext = np.full(total, guard, dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(n_states)[:-1]])
    ext[np.repeat(starts, n_states) + np.arange(n_states.sum()) - np.repeat(first, n_states)] = 0
    if lengths.sum():
        cfirst = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pos = np.repeat(starts, lengths) + 1 + 2 * (np.arange(lengths.sum()) - np.repeat(cfirst, lengths))
        ext[pos] = np.concatenate(labels)
    # s-2 -> s is allowed into a character that differs from the character two states back
    # (so "aa" needs a blank between); the guard symbol makes the first character reachable
    # from the start guard, which is how the recursion starts.
    skip_bias = np.full(total, _NEG)
    ok = (ext[2:] != 0) & (ext[2:] != guard) & (ext[2:] != ext[:-2])
    skip_bias[2:][ok] = 0.0
    return ext, skip_bias, starts, n_states


def ctc_log_likelihood(logp: np.ndarray, labels: Sequence, spot: bool = False) -> np.ndarray:
    """log P(label | x) for every label, by the CTC forward algorithm in log space.

    ``logp`` is (T, V) log-posteriors with the blank at index 0; ``labels`` are 1-D arrays of
    symbol ids in 1..V-1 (an empty label is the blank-only path). All labels run through one
    vectorised recursion over time. Returns an (E,) float64 array, ``-inf`` where a label cannot
    fit in T frames (it needs one frame per character plus one per repeated pair).
    Exponentials run in float32 on offsets from a float64 running maximum: absolute error
    about 1e-7 nats per frame.

    ``spot=True`` is keyword spotting, by Viterbi: the log probability of the best single path
    that spells the label anywhere inside the frames, with a filler before and after it that
    scores each of its frames by the frame's best symbol (the unconstrained best path). Speech
    around a command costs it nothing, and the gap to the best path (never positive) measures
    the command's own frames only. (A sum over placements would reward short labels for the
    number of places they fit.)
    """
    logp = check_posteriors(logp, None)
    n_frames, n_symbols = logp.shape
    labels = _check_labels(labels, n_symbols)
    if not labels:
        return np.empty(0)
    ext, skip_bias, starts, n_states = _pack(labels, n_symbols)
    total = len(ext)

    lp = np.empty((n_frames, n_symbols + 1 + spot))
    np.maximum(logp, _NEG, out=lp[:, :n_symbols])
    lp[:, n_symbols] = _NEG
    if spot:  # the guard before each label becomes the leading filler (it can stay and emits)
        lp[:, n_symbols + 1] = lp[:, :n_symbols].max(axis=1)  # the filler's emission: the best symbol
        ext = ext.copy()
        ext[starts - 1] = n_symbols + 1
        skip_bias = skip_bias.copy()
        skip_bias[starts - 1] = _NEG
        post = np.full(len(starts), _NEG)  # trailing filler, entered from the label's end

    alpha = np.full(total + 2, _NEG)  # two leading guards so that the shifted views exist
    alpha[starts + 1] = 0.0  # time -1: all mass on the guard before each sequence
    cur, prev1, prev2_view = alpha[2:], alpha[1:-1], alpha[:-2]
    prev2 = np.empty(total)
    m = np.empty(total)
    f = np.empty((3, total), dtype=np.float32)
    s = np.empty(total, dtype=np.float32)
    for t0 in range(0, n_frames, _CHUNK):
        emis = lp[t0 : t0 + _CHUNK][:, ext]
        for k, em in enumerate(emis):
            if spot and t0 + k:  # post at frame t: filler after a label that ended at t-1 or earlier
                end = np.maximum(cur[starts + n_states - 1], cur[starts + n_states - 2])
                post = np.maximum(post, end) + lp[t0 + k, n_symbols + 1]
            np.add(prev2_view, skip_bias, out=prev2)
            np.maximum(cur, prev1, out=m)
            np.maximum(m, prev2, out=m)
            if spot:  # Viterbi: the best single path
                np.add(m, em, out=cur)
                continue
            np.subtract(cur, m, out=f[0], casting="unsafe")
            np.subtract(prev1, m, out=f[1], casting="unsafe")
            np.subtract(prev2, m, out=f[2], casting="unsafe")
            np.exp(f, out=f)
            np.add(f[0], f[1], out=s)
            s += f[2]
            np.log(s, out=s)
            np.add(m, s, out=cur)
            cur += em

    last = cur[starts + n_states - 1]
    before = cur[starts + n_states - 2]  # for an empty label: the guard, ~ log 0
    if spot:
        out = np.maximum(np.maximum(last, before), post)
    else:
        top = np.maximum(last, before)
        out = top + np.log(np.exp(last - top) + np.exp(before - top))
    out[out < _NEG / 2] = -np.inf
    return out


def best_path_log_prob(logp: np.ndarray) -> float:
    """Log probability of the unconstrained best path: the sum over frames of the max log-posterior."""
    return float(check_posteriors(logp, None).max(axis=1).sum())


# --------------------------------------------------------------------------- scoring


def _len_norm(log_lik: np.ndarray, best_path: float, lengths: np.ndarray, n_frames: int,
              command_of: np.ndarray) -> np.ndarray:  # fmt: skip
    return (log_lik - best_path) / lengths


def _frame_norm(log_lik: np.ndarray, best_path: float, lengths: np.ndarray, n_frames: int,
                command_of: np.ndarray) -> np.ndarray:  # fmt: skip
    return (log_lik - best_path) / n_frames


#: Weight of the margin term of ``len_margin``, chosen on the calibration set of
#: benchmarks/recognition.py among 0, 0.25, 0.5, 0.75 and 1 (best calibration accuracy at the
#: threshold that keeps FAR <= 10 %); benchmarks/rejection.py measures the kinds side by side.
MARGIN_WEIGHT = 0.25


def command_margin(log_lik: np.ndarray, command_of: np.ndarray) -> np.ndarray:
    """Per expression: its log-likelihood minus the best one of any other command's expressions.

    0 where no other command has a finite likelihood (nothing to compare with); -inf where
    the expression itself is impossible.
    """
    log_lik = np.asarray(log_lik, dtype=np.float64)
    cmds = np.asarray(command_of, dtype=np.int64)
    per_cmd = np.full(int(cmds.max()) + 1, -np.inf)
    np.maximum.at(per_cmd, cmds, log_lik)
    if len(per_cmd) < 2:
        return np.where(np.isfinite(log_lik), 0.0, -np.inf)
    top, second = np.argsort(-per_cmd, kind="stable")[:2]
    other = np.where(cmds == top, per_cmd[second], per_cmd[top])
    with np.errstate(invalid="ignore"):
        margin = np.where(np.isfinite(other), log_lik - other, 0.0)
    return np.where(np.isfinite(log_lik), margin, -np.inf)


def _len_margin(log_lik: np.ndarray, best_path: float, lengths: np.ndarray, n_frames: int,
                command_of: np.ndarray) -> np.ndarray:  # fmt: skip
    return (log_lik - best_path + MARGIN_WEIGHT * command_margin(log_lik, command_of)) / lengths


ScoreFn = Callable[[np.ndarray, float, np.ndarray, int, np.ndarray], np.ndarray]
#: Confidence scores: fn(log-likelihoods (E,), best-path log prob, lengths in chars (E,), frames,
#: command index of every expression (E,)) -> (E,).
SCORE_KINDS: dict[str, ScoreFn] = {"len_norm": _len_norm, "frame_norm": _frame_norm, "len_margin": _len_margin}
#: Kinds whose score of one expression depends on the other expressions of the grammar: the
#: augmentation's score matrix, which scores every candidate once, cannot use them.
GRAMMAR_DEPENDENT_KINDS = frozenset({"len_margin"})


def _score_fn(score_kind: str | ScoreFn) -> ScoreFn:
    if callable(score_kind):
        return score_kind
    try:
        return SCORE_KINDS[score_kind]
    except KeyError:
        raise GrammarError(f"unknown score kind {score_kind!r} (known: {', '.join(SCORE_KINDS)})") from None


# --------------------------------------------------------------------------- grammar


@dataclass(frozen=True)
class Grammar:
    """Commands, the expressions that stand for them, and the rejection threshold.

    ``command_of[i]`` is the index in ``commands`` of the command that ``expressions[i]``
    spells. ``provenance`` records how the grammar was made (ignored by ``==``).
    ``spot_threshold`` is the threshold of keyword-spotting decoding (``decode(..., spot=True)``,
    what ``grammar listen`` runs), calibrated apart because spotting scores run higher; None
    means ``threshold``. ``score_kind`` is the confidence score both thresholds were calibrated
    with (spotting always scores ``len_norm``). ``int8_threshold`` replaces ``threshold`` for the
    int8 device chain (:meth:`for_backend`), whose posteriors score higher; None means the same.
    ``units`` names the AM output units the expressions are spelled in (:mod:`grammar.units`):
    expressions are unit strings, the command text itself for characters.
    """

    commands: tuple[str, ...]
    expressions: tuple[str, ...]
    command_of: tuple[int, ...]
    threshold: float = DEFAULT_THRESHOLD
    provenance: dict = field(default_factory=dict, compare=False)
    spot_threshold: float | None = None
    score_kind: str = "len_norm"
    int8_threshold: float | None = None
    units: str = "chars"

    def __post_init__(self) -> None:
        Units(self.units)  # one-line error for an unknown unit set
        for name in ("commands", "expressions"):
            value = self.__dict__[name]
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise GrammarError(f"grammar: {name} must be a sequence of strings")
            value = tuple(value)
            for i, v in enumerate(value):
                if not isinstance(v, str) or not v:
                    raise GrammarError(f"grammar: {name}[{i}] must be a non-empty string, got {v!r}")
            object.__setattr__(self, name, value)
        try:
            cmd_of = tuple(self.command_of)
        except TypeError:
            raise GrammarError("grammar: command_of must be a sequence of command indices") from None
        for i, c in enumerate(cmd_of):
            if isinstance(c, bool) or not isinstance(c, int | np.integer):
                raise GrammarError(f"grammar: command_of[{i}] must be an integer, got {c!r}")
        object.__setattr__(self, "command_of", tuple(int(c) for c in cmd_of))
        for name in ("threshold", "spot_threshold", "int8_threshold"):
            value = self.__dict__[name]
            if value is None and name != "threshold":
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise GrammarError(f"grammar: {name} must be a number, got {value!r}") from None
            if math.isnan(number):
                raise GrammarError(f"grammar: {name} is NaN")
            object.__setattr__(self, name, number)
        if not isinstance(self.provenance, dict):
            raise GrammarError("grammar: provenance must be a dict")
        if self.score_kind not in SCORE_KINDS:
            raise GrammarError(f"grammar: unknown score kind {self.score_kind!r} (known: {', '.join(SCORE_KINDS)})")
        self._validate()

    def _validate(self) -> None:
        if not self.commands:
            raise GrammarError("grammar: no commands")
        seen_cmd: dict[str, int] = {}
        for i, c in enumerate(self.commands):
            if c in seen_cmd:
                raise GrammarError(f"grammar: command {c!r} listed twice (commands {seen_cmd[c]} and {i})")
            seen_cmd[c] = i
        if len(self.command_of) != len(self.expressions):
            raise GrammarError(
                f"grammar: {len(self.expressions)} expressions but {len(self.command_of)} command_of entries"
            )
        n = len(self.commands)
        seen: dict[str, int] = {}
        for i, (expr, c) in enumerate(zip(self.expressions, self.command_of, strict=True)):
            if not 0 <= c < n:
                raise GrammarError(f"grammar: expression {i} ({expr!r}) maps to command {c}, outside 0..{n - 1}")
            try:
                Units(self.units).encode(expr)
            except GrammarError as exc:
                raise GrammarError(f"grammar: expression {i}: {exc}") from None
            if expr in seen:
                j = seen[expr]
                if self.command_of[j] != c:
                    raise GrammarError(
                        f"grammar: expression {expr!r} maps to two commands "
                        f"({self.commands[self.command_of[j]]!r} and {self.commands[c]!r})"
                    )
                raise GrammarError(f"grammar: expression {expr!r} listed twice (expressions {j} and {i})")
            seen[expr] = i
        orphans = sorted(set(range(n)) - set(self.command_of))
        if orphans:
            raise GrammarError(f"grammar: command {self.commands[orphans[0]]!r} has no expression")

    # -- construction

    @classmethod
    def from_commands(
        cls, commands: Iterable[str], threshold: float = DEFAULT_THRESHOLD, provenance: dict | None = None,
        score_kind: str = "len_norm", int8_threshold: float | None = None, units: str = "chars",
        once: str = SPELLED_ONCE,
    ) -> Grammar:
        """The commands (normalised), each spelled in ``units``: for characters the text itself and,
        where it doubles a letter of ``once``, with that letter once; every cmudict pronunciation
        for phonemes (:meth:`grammar.units.Units.spellings`)."""
        cmds = tuple(normalize_text(c) for c in commands)
        spelled = [Units(units).spellings(c, once) for c in cmds]
        exprs = tuple(e for sp in spelled for e in sp)
        command_of = tuple(i for i, sp in enumerate(spelled) for _ in sp)
        return cls(cmds, exprs, command_of, threshold, dict(provenance or {}), score_kind=score_kind,
                   int8_threshold=int8_threshold, units=units)  # fmt: skip

    def with_threshold(self, threshold: float) -> Grammar:
        return dataclasses.replace(self, threshold=threshold, provenance=dict(self.provenance))

    def with_spot_threshold(self, threshold: float | None) -> Grammar:
        return dataclasses.replace(self, spot_threshold=threshold, provenance=dict(self.provenance))

    def for_backend(self, backend: str) -> Grammar:
        """This grammar with the whole-input threshold calibrated for ``backend`` ("float" or "int8")."""
        if backend == "int8" and self.int8_threshold is not None:
            return dataclasses.replace(self, threshold=self.int8_threshold, provenance=dict(self.provenance))
        return self

    def threshold_for(self, spot: bool) -> float:
        return self.spot_threshold if spot and self.spot_threshold is not None else self.threshold

    def expressions_of(self, command: str | int) -> tuple[str, ...]:
        """The expressions that spell one command (given by text or index)."""
        if isinstance(command, str):
            if command not in self.commands:
                raise GrammarError(f"grammar: no command {command!r}")
            command = self.commands.index(command)
        idx = command
        return tuple(e for e, c in zip(self.expressions, self.command_of, strict=True) if c == idx)

    @cached_property
    def labels(self) -> tuple[np.ndarray, ...]:
        """Encoded expressions (symbol ids), computed once."""
        return tuple(Units(self.units).encode(e) for e in self.expressions)

    @cached_property
    def lengths(self) -> np.ndarray:
        """Expression lengths in units."""
        return np.array([len(e) for e in self.expressions], dtype=np.float64)

    # -- files

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "threshold": self.threshold,
            **({"spot_threshold": self.spot_threshold} if self.spot_threshold is not None else {}),
            **({"int8_threshold": self.int8_threshold} if self.int8_threshold is not None else {}),
            "score_kind": self.score_kind,
            "units": self.units,
            "commands": list(self.commands),
            "expressions": [Units(self.units).show(e) for e in self.expressions],
            "command_of": list(self.command_of),
            "provenance": self.provenance,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the grammar as JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Grammar:
        """Read a grammar written by :meth:`save`; every problem is a one-line GrammarError naming the file."""
        path = Path(path)
        data = read_format(path, "grammar file", "grammar", FORMAT, FORMAT_VERSION)
        for key, kind in (("commands", list), ("expressions", list), ("command_of", list), ("threshold", int | float)):
            if key not in data:
                raise GrammarError(f"{path}: grammar file lacks {key!r}")
            if isinstance(data[key], bool) or not isinstance(data[key], kind):
                raise GrammarError(f"{path}: {key!r} has the wrong type ({type(data[key]).__name__})")
        provenance = data.get("provenance", {})
        if not isinstance(provenance, dict):
            raise GrammarError(f"{path}: 'provenance' must be a JSON object")
        try:
            spot, int8 = data.get("spot_threshold"), data.get("int8_threshold")
            for key, value in (("spot_threshold", spot), ("int8_threshold", int8)):
                if isinstance(value, bool) or not isinstance(value, int | float | None):
                    raise GrammarError(f"grammar: {key!r} has the wrong type ({type(value).__name__})")
            kind = data.get("score_kind", "len_norm")  # files from before score kinds were stored
            units = data.get("units", "chars")  # files from before phonemes
            for key, value in (("score_kind", kind), ("units", units)):
                if not isinstance(value, str):
                    raise GrammarError(f"grammar: {key!r} has the wrong type ({type(value).__name__})")
            exprs = [Units(units).parse(e) if isinstance(e, str) else e for e in data["expressions"]]
            return cls(data["commands"], exprs, data["command_of"], data["threshold"], provenance, spot,
                       kind, int8, units)  # fmt: skip
        except GrammarError as exc:
            raise GrammarError(f"{path}: {str(exc).removeprefix('grammar: ')}") from None


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, eq=False)
class Decision:
    """The outcome for one utterance. ``command`` is None when rejected; ``expression`` and
    ``score`` describe the most likely expression either way; ``speech_modulation`` and
    ``tonality`` are the input's, where the recognizer's speech check measured them."""

    command: str | None
    expression: int
    score: float
    scores: np.ndarray  # confidence of every expression (E,)
    log_likelihoods: np.ndarray  # CTC log-likelihood of every expression (E,)
    command_index: int | None = None
    speech_modulation: float | None = None
    tonality: float | None = None

    @property
    def accepted(self) -> bool:
        return self.command is not None


def decode(logp: np.ndarray, grammar: Grammar, score_kind: str | ScoreFn | None = None, spot: bool = False) -> Decision:
    """Most likely expression for (T, symbols) log-posteriors; its command if its confidence >= threshold.

    ``spot=True``: keyword spotting (the expression anywhere in the frames, see
    :func:`ctc_log_likelihood`), judged against the grammar's spotting threshold.
    ``score_kind`` None: the grammar's own (``len_norm`` when spotting).
    """
    logp = check_posteriors(logp, Units(grammar.units).size)
    if score_kind is None:
        score_kind = "len_norm" if spot else grammar.score_kind
    score_fn = _score_fn(score_kind)
    log_lik = ctc_log_likelihood(logp, grammar.labels, spot=spot)
    scores = np.asarray(score_fn(log_lik, best_path_log_prob(logp), grammar.lengths, logp.shape[0],
                                 np.asarray(grammar.command_of)), dtype=np.float64)  # fmt: skip
    # whole-input decoding: the most likely expression; spotting: the best confidence (raw
    # likelihood would favour the shortest expression, which constrains the fewest frames)
    best = int(np.argmax(scores if spot else log_lik))
    score = float(scores[best])
    if score >= grammar.threshold_for(spot) and np.isfinite(log_lik[best]):
        cmd = grammar.command_of[best]
        return Decision(grammar.commands[cmd], best, score, scores, log_lik, cmd)
    return Decision(None, best, score, scores, log_lik, None)


def far_target_for_bound(max_far: float, n_non_commands: int, confidence: float = 0.95) -> float:
    """Calibration FAR target k/n such that the true FAR stays <= ``max_far`` with this confidence.

    Calibrating to exactly ``max_far`` on n non-commands leaves the device's FAR above it about
    half the time: the threshold sits on a sample quantile. This returns the largest k/n whose
    one-sided Clopper-Pearson upper bound is <= ``max_far`` (0 when even k = 0 is not enough).
    With 240 calibration non-commands and max_far 0.10: 16/240 = 6.7 %. ``n_non_commands`` is
    the number of *independent* non-commands (:func:`grammar.dataset.n_independent`): one text
    rendered in four noise conditions false-alarms in all of them or in none, so counting each
    rendition overstates the confidence.
    """
    from scipy.stats import beta

    if not 0.0 < max_far < 1.0 or not 0.0 < confidence < 1.0:
        raise GrammarError(f"far_target_for_bound: max_far {max_far} and confidence {confidence} must lie in (0, 1)")
    if n_non_commands < 1:
        raise GrammarError("far_target_for_bound: no non-command utterances")
    k = np.arange(n_non_commands)
    ok = beta.ppf(confidence, k + 1, n_non_commands - k) <= max_far  # the bound grows with k
    return float(k[ok].max()) / n_non_commands if ok.any() else 0.0


def calibrate_threshold(scores_of_non_commands: np.ndarray, target_far: float) -> float:
    """Smallest threshold whose false-alarm rate on these non-command scores is <= target_far.

    A score >= threshold is an accept. The threshold is the next float above the score that
    must be rejected, so exactly floor(target_far * n) scores (fewer on ties) stay accepted;
    ``-inf`` when target_far >= 1.
    """
    scores = np.asarray(scores_of_non_commands, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        raise GrammarError("calibrate_threshold: no non-command scores")
    if np.isnan(scores).any() or np.isposinf(scores).any():
        raise GrammarError("calibrate_threshold: scores contain NaN or +inf")
    if not 0.0 <= target_far <= 1.0:
        raise GrammarError(f"calibrate_threshold: target false-alarm rate {target_far} is outside [0, 1]")
    n = scores.size
    allowed = int(math.floor(target_far * n + 1e-9))  # how many may be accepted
    if allowed >= n:
        return -math.inf
    must_reject = np.sort(scores)[n - allowed - 1]
    return float(np.nextafter(must_reject, np.inf))
