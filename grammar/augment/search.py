"""Grammar search over a candidate set: a precomputed score matrix, vectorised evaluation of
many grammars at once, greedy search and the cross-entropy method (Yang et al. 2019).

**Score matrix.** For a search data set (utterances with labels: a command or non-command)
and every expression (the base expressions, each command once as written, then all candidates:
a spelling with a letter once, as ``Grammar.from_commands`` adds, is a candidate here), the CTC
log-likelihood ``L[u, e]`` and the confidence ``S[u, e]`` (the decoder's ``len_norm``:
``(L - best path) / len(e)``) are computed once with the decoder's own functions. A grammar
is a boolean inclusion mask over the candidates; base expressions are always included.
Decoding a grammar is then a selection: per utterance, the included expression with the
highest ``L`` (ties: the lowest expression index, as :func:`grammar.decoding.decoder.decode` does
when the grammar lists the base expressions first and the chosen candidates in candidate
order), its command and its score; accepted when ``L`` is finite and score >= threshold.
Only candidates whose ``L`` beats the utterance's best base expression can ever win, so each
utterance keeps a short list of those, sorted, ending with the base winner; the lists lie end
to end, and evaluating N grammars is one gather of the masks over all list entries, times a
descending weight, and one segmented max (``np.maximum.reduceat``) giving every utterance's
first included entry: no loop over grammars or utterances.

**Threshold rule (re-calibration).** Every grammar tried gets its own rejection threshold:
the smallest one keeping its false-alarm rate on the search set's non-command utterances
<= the target (exactly :func:`grammar.decoding.decoder.calibrate_threshold`, vectorised with one
partial sort per grammar). So every grammar evaluated honours the FAR constraint by
construction. The default target is the base grammar's FAR at a given base threshold.

**Objective.** MDR + MCR on the command utterances (lower is better), at that threshold.

**Budget.** At most ``budget`` *extra* expressions (candidates) per command; the base
expression is always in and not counted.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from grammar.alphabet import encode, normalize_text
from grammar.augment.candidates import DEFAULT_PER_WORD, DEFAULT_TOP_K, CandidateSet, generate_candidates
from grammar.augment.dictionary import PronDict
from grammar.decoding.decoder import GRAMMAR_DEPENDENT_KINDS, Grammar, _score_fn, best_path_log_prob, ctc_log_likelihood
from grammar.errors import GrammarError

_GATHER_BUDGET = 1 << 24  # booleans gathered at once by evaluate_many (bounds memory)
METHODS = ("cem", "greedy")
THRESHOLD_RULE = "recalibrated per grammar: smallest threshold with FAR <= target on the search set's non-commands"
BUDGET_RULE = "at most `budget` extra expressions (candidates) per command; the base expression is always included"


@dataclass(frozen=True)
class Evaluations:
    """Metrics of N grammars (arrays of shape (N,)); ``objective`` = ``mdr`` + ``mcr``."""

    objective: np.ndarray
    mdr: np.ndarray
    mcr: np.ndarray
    far: np.ndarray
    threshold: np.ndarray
    size: np.ndarray  # candidates included

    def row(self, i: int) -> dict:
        return {k: (int(v[i]) if k == "size" else float(v[i])) for k, v in self.__dict__.items()}


class ScoreMatrix:
    """Scores of every expression on every search utterance, and fast grammar evaluation.

    ``log_lik`` and ``scores``: (U, E) with the ``n_base`` base expressions first, then the
    K = E - n_base candidates; ``expr_command``: (E,) command index of every expression;
    ``labels``: (U,) command index, -1 for a non-command utterance; ``cand_prob``: (K,)
    candidate probabilities (tie-breaks, CEM init). ``target_far``: the default FAR target.
    """

    def __init__(self, log_lik: np.ndarray, scores: np.ndarray, labels: Sequence[int], expr_command: Sequence[int],
                 n_base: int, cand_prob: Sequence[float] | None = None, target_far: float | None = None,
                 commands: Sequence[str] | None = None, expressions: Sequence[str] | None = None):  # fmt: skip
        L = np.asarray(log_lik, dtype=np.float64)
        S = np.asarray(scores, dtype=np.float64)
        if L.ndim != 2 or L.shape != S.shape:
            raise GrammarError(f"score matrix: log_lik {L.shape} and scores {S.shape} must be equal 2-D shapes")
        n_utts, n_expr = L.shape
        if n_utts == 0:
            raise GrammarError("score matrix: empty data set (no utterances)")
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.expr_command = np.asarray(expr_command, dtype=np.int64).reshape(-1)
        if len(self.labels) != n_utts or len(self.expr_command) != n_expr:
            raise GrammarError("score matrix: labels / expr_command do not match the matrix shape")
        if not 1 <= n_base <= n_expr:
            raise GrammarError(f"score matrix: n_base={n_base} outside 1..{n_expr}")
        self.n_commands = int(self.expr_command.max()) + 1
        if commands is not None and len(commands) != self.n_commands:
            raise GrammarError("score matrix: commands do not match expr_command")
        if self.expr_command.min() < 0 or set(self.expr_command[:n_base].tolist()) != set(range(self.n_commands)):
            raise GrammarError("score matrix: every command needs a base expression")
        if self.labels.min() < -1 or self.labels.max() >= self.n_commands:
            raise GrammarError("score matrix: a label is not a command index (or -1)")
        if np.isnan(L).any() or np.isposinf(L).any() or np.isnan(S).any():
            raise GrammarError("score matrix: NaN or +inf in the matrix")
        self.log_lik, self.scores, self.n_base = L, S, int(n_base)
        self.n_candidates = n_expr - self.n_base
        self.cand_command = self.expr_command[self.n_base :]
        cp = np.ones(self.n_candidates) if cand_prob is None else np.asarray(cand_prob, np.float64).reshape(-1)
        if len(cp) != self.n_candidates:
            raise GrammarError("score matrix: cand_prob does not match the number of candidates")
        self.cand_prob = cp
        self.commands = tuple(commands) if commands is not None else None
        self.expressions = tuple(expressions) if expressions is not None else None
        self.is_cmd = self.labels >= 0
        self.n_command = int(self.is_cmd.sum())
        self.n_noncommand = n_utts - self.n_command
        if self.n_command == 0:
            raise GrammarError("score matrix: no command utterances (MDR and MCR are undefined)")
        if self.n_noncommand == 0:
            raise GrammarError("score matrix: no non-command utterances (the false-alarm rate cannot be measured)")
        self.target_far = target_far
        self.n_evaluations = 0
        self._prepare()

    # -- construction from acoustic-model output

    @classmethod
    def from_posteriors(cls, posteriors: Sequence[np.ndarray], labels: Sequence[str | None], commands: Sequence[str],
                        candidates: CandidateSet | None = None, score_kind: str = "len_norm",
                        target_far: float | None = None, progress: bool = False) -> ScoreMatrix:  # fmt: skip
        """Score the base commands and all ``candidates`` on every utterance's (T, 29) log-posteriors.

        ``labels``: command text per utterance (None = non-command); must be among ``commands``.
        """
        from tqdm import tqdm

        cmds = tuple(commands)
        if candidates is not None and tuple(candidates.commands) != cmds:
            raise GrammarError("score matrix: the candidate set was made for other commands")
        if len(posteriors) != len(labels):
            raise GrammarError(f"score matrix: {len(posteriors)} posteriors but {len(labels)} labels")
        if not len(posteriors):
            raise GrammarError("score matrix: empty data set (no utterances)")
        index = {c: i for i, c in enumerate(cmds)}
        lab = []
        for i, label in enumerate(labels):
            if label is not None and label not in index:
                raise GrammarError(f"score matrix: utterance {i}: label {label!r} is not among the commands")
            lab.append(-1 if label is None else index[label])
        texts = list(cmds) + (list(candidates.texts) if candidates is not None else [])
        expr_cmd = list(range(len(cmds))) + (list(candidates.command_of) if candidates is not None else [])
        enc = [encode(t) for t in texts]
        lengths = np.array([len(t) for t in texts], dtype=np.float64)
        if score_kind in GRAMMAR_DEPENDENT_KINDS:
            raise GrammarError(f"score matrix: score kind {score_kind!r} depends on the whole grammar, so it cannot "
                               "be scored once per expression; search with len_norm or frame_norm")  # fmt: skip
        fn = _score_fn(score_kind)
        expr_cmd_arr = np.asarray(expr_cmd)
        L = np.empty((len(posteriors), len(texts)))
        S = np.empty_like(L)
        for u, logp in enumerate(tqdm(posteriors, desc="scoring expressions", unit="utt", disable=not progress)):
            L[u] = ctc_log_likelihood(logp, enc)
            S[u] = fn(L[u], best_path_log_prob(logp), lengths, len(logp), expr_cmd_arr)
        S[~np.isfinite(L)] = -np.inf
        probs = candidates.probs if candidates is not None else ()
        return cls(L, S, lab, expr_cmd, len(cmds), probs, target_far, cmds, texts)

    # -- precomputation

    def _prepare(self) -> None:
        L, S, nb = self.log_lik, self.scores, self.n_base
        base_best = np.argmax(L[:, :nb], axis=1)  # first maximum: decoder order
        rows = np.arange(len(L))
        self.base_L = L[rows, base_best]
        self.base_cmd = self.expr_command[base_best]
        self.base_score = S[rows, base_best]
        self.base_ok = np.isfinite(self.base_L)
        cand_L = L[:, nb:]
        beats = cand_L > self.base_L[:, None]
        # Per utterance, a list: the candidates that beat its best base expression (best first, ties:
        # lower index), then the best base expression itself (column K of the padded mask, always
        # included). Laid end to end (CSR); entry j has weight = list length - position (> 0, larger
        # = earlier), so a segment max of mask * weight finds the first included entry.
        K = self.n_candidates
        idx, cmd, score, ok, weight, lens = [], [], [], [], [], []
        for u in range(len(L)):
            ks = np.nonzero(beats[u])[0]
            ks = ks[np.lexsort((ks, -cand_L[u, ks]))]
            idx.append(np.r_[ks, K])
            cmd.append(np.r_[self.cand_command[ks], self.base_cmd[u]])
            score.append(np.r_[S[u, nb + ks], self.base_score[u]])
            ok.append(np.r_[np.ones(len(ks), bool), self.base_ok[u]])
            weight.append(np.arange(len(ks) + 1, 0, -1))
            lens.append(len(ks) + 1)
        self._seg_lens = np.array(lens, dtype=np.int64)
        self._seg_starts = np.r_[0, np.cumsum(self._seg_lens)[:-1]].astype(np.int64)
        self._flat_idx = np.concatenate(idx).astype(np.int64)
        self._flat_cmd = np.concatenate(cmd).astype(np.int64)
        self._flat_score = np.concatenate(score).astype(np.float64)
        self._flat_ok = np.concatenate(ok).astype(bool)
        self.max_list = int(self._seg_lens.max()) - 1  # candidates that can win on one utterance, at most
        wdt = np.uint8 if self.max_list < 255 else np.int16 if self.max_list < 2**15 - 1 else np.int32
        self._flat_weight = np.concatenate(weight).astype(wdt)
        self._non = np.nonzero(~self.is_cmd)[0]
        self._cmd = np.nonzero(self.is_cmd)[0]

    # -- evaluation

    def _target(self, target_far: float | None) -> float:
        t = self.target_far if target_far is None else target_far
        if t is None:
            raise GrammarError("score matrix: no FAR target (pass target_far)")
        if not 0.0 <= float(t) <= 1.0:
            raise GrammarError(f"score matrix: target false-alarm rate {t} is outside [0, 1]")
        return float(t)

    def check_masks(self, masks: np.ndarray) -> np.ndarray:
        m = np.asarray(masks)
        if m.ndim == 1:
            m = m[None]
        if m.ndim != 2 or m.shape[1] != self.n_candidates:
            raise GrammarError(f"masks: expected shape (N, {self.n_candidates}), got {np.shape(masks)}")
        return m.astype(bool, copy=False)

    def decisions(self, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per grammar and utterance: (best command (N, U), its score (N, U), finite (N, U))."""
        m = self.check_masks(masks)
        padded = np.ones((len(m), self.n_candidates + 1), dtype=bool)
        padded[:, :-1] = m
        val = padded[:, self._flat_idx] * self._flat_weight  # (N, entries): weight where included, else 0
        top = np.maximum.reduceat(val, self._seg_starts, axis=1)  # (N, U), >= 1: the base is always in
        entry = self._seg_starts + (self._seg_lens - top)  # first included entry of every list
        return self._flat_cmd[entry], self._flat_score[entry], self._flat_ok[entry]

    def evaluate_many(self, masks: np.ndarray, target_far: float | None = None,
                      threshold: float | None = None) -> Evaluations:  # fmt: skip
        """Metrics of N grammars (masks (N, K) bool) at once.

        Threshold: re-calibrated per grammar for ``target_far`` (default: the matrix's
        target); or, when ``threshold`` is given, that fixed threshold for every grammar (FAR
        may then exceed any target: used to measure the base grammar at its own threshold).
        """
        m = self.check_masks(masks)
        target = self._target(target_far) if threshold is None else None
        per = max(1, _GATHER_BUDGET // max(1, len(self._flat_idx) + 8 * len(self.labels)))
        parts = [self._evaluate_chunk(m[i : i + per], target, threshold) for i in range(0, len(m), per)]
        self.n_evaluations += len(m)
        if not parts:
            parts = [self._evaluate_chunk(m, target, threshold)]
        return Evaluations(*(np.concatenate([getattr(p, f) for p in parts]) for f in Evaluations.__dataclass_fields__))

    def _evaluate_chunk(self, m: np.ndarray, target: float | None, threshold: float | None) -> Evaluations:
        cmd, score, ok = self.decisions(m)
        s = np.where(ok, score, -np.inf)
        n_non = self.n_noncommand
        if threshold is not None:
            thr = np.full(len(m), float(threshold))
        else:
            allowed = int(math.floor(target * n_non + 1e-9))
            if allowed >= n_non:
                thr = np.full(len(m), -np.inf)
            else:
                k = n_non - allowed - 1
                must_reject = np.partition(s[:, self._non], k, axis=1)[:, k]
                thr = np.nextafter(must_reject, np.inf)
        acc = ok & (s >= thr[:, None])
        far = acc[:, self._non].mean(axis=1)
        acc_c = acc[:, self._cmd]
        mdr = 1.0 - acc_c.mean(axis=1)
        mcr = (acc_c & (cmd[:, self._cmd] != self.labels[self._cmd][None, :])).mean(axis=1)
        return Evaluations(mdr + mcr, mdr, mcr, far, thr, m.sum(axis=1))

    def evaluate(self, mask: np.ndarray, target_far: float | None = None, threshold: float | None = None) -> dict:
        """Metrics of one grammar as a dict."""
        return self.evaluate_many(self.check_masks(mask)[:1], target_far, threshold).row(0)

    def base_mask(self) -> np.ndarray:
        return np.zeros(self.n_candidates, dtype=bool)

    def fixable(self, threshold: float) -> np.ndarray:
        """(U,) command utterances the base grammar gets wrong at ``threshold`` that one candidate
        alone would get right: a bound on what any grammar from this candidate set can fix.

        Why it bounds every grammar at that threshold: base expressions stay in every grammar,
        so a fixed utterance's winner must be a candidate of its own command whose
        log-likelihood beats every base expression (ties go to the base) and whose score
        clears the threshold, and that candidate alone would fix it too. The relative cut of
        MDR + MCR is at most ``fixable(t).sum()`` over the base's errors (new errors only lower it).
        """
        cmd, score, ok = self.decisions(self.base_mask())
        right = ok[0] & (score[0] >= threshold) & (cmd[0] == self.labels)
        base_best = self.log_lik[:, : self.n_base].max(axis=1)
        own = self.cand_command[None, :] == self.labels[:, None]
        wins = own & (self.log_lik[:, self.n_base :] > base_best[:, None]) & (self.scores[:, self.n_base :] >= threshold)
        return self.is_cmd & ~right & wins.any(axis=1)

    def budget_ok(self, masks: np.ndarray, budget: int) -> np.ndarray:
        """(N,) whether each grammar has at most ``budget`` candidates per command."""
        m = self.check_masks(masks)
        counts = np.zeros((len(m), self.n_commands), dtype=np.int64)
        for c in range(self.n_commands):
            counts[:, c] = m[:, self.cand_command == c].sum(axis=1)
        return (counts <= budget).all(axis=1)

    def grammar(self, mask: np.ndarray, threshold: float, provenance: dict | None = None) -> Grammar:
        """The decoder's Grammar for a mask: base expressions, then the chosen candidates in order."""
        if self.commands is None or self.expressions is None:
            raise GrammarError("score matrix: built without expression texts; cannot make a Grammar")
        m = self.check_masks(mask)[0]
        keep = list(range(self.n_base)) + [self.n_base + k for k in np.nonzero(m)[0]]
        return Grammar(self.commands, tuple(self.expressions[e] for e in keep),
                       tuple(int(self.expr_command[e]) for e in keep), threshold, dict(provenance or {}))  # fmt: skip


# --------------------------------------------------------------------------- search


@dataclass
class SearchResult:
    """Best grammar found: ``mask`` over the candidates and its metrics; ``history`` per step /
    iteration (greedy: objective after each addition; CEM: best and mean objective of the
    samples, best so far, and the largest remaining uncertainty min(p, 1 - p))."""

    method: str
    mask: np.ndarray
    metrics: dict
    base_metrics: dict
    target_far: float
    budget: int
    n_evaluations: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    probabilities: np.ndarray | None = None  # CEM: final inclusion probabilities

    @property
    def objective(self) -> float:
        return float(self.metrics["objective"])

    @property
    def evals_per_second(self) -> float:
        return self.n_evaluations / self.seconds if self.seconds > 0 else math.inf


def _check_budget(budget: int) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < 1:
        raise GrammarError(f"budget must be a positive integer (extra expressions per command), got {budget!r}")
    return int(budget)


def _toggled(mask: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(len(idx), K) masks: ``mask`` with candidate ``idx[i]`` switched in row i (greedy's additions,
    prune's removals)."""
    trial = np.repeat(mask[None], len(idx), axis=0)
    trial[np.arange(len(idx)), idx] = ~mask[idx]
    return trial


def greedy_search(matrix: ScoreMatrix, budget: int, target_far: float | None = None,
                  max_steps: int | None = None) -> SearchResult:  # fmt: skip
    """Start from the base grammar; repeatedly add the candidate whose addition lowers the
    objective most (ties: higher candidate probability, then lower index), among those whose
    command has fewer than ``budget`` candidates; stop when no addition lowers it; then
    :func:`prune` (a later addition can make an earlier one useless)."""
    budget = _check_budget(budget)
    target = matrix._target(target_far)
    t0 = time.perf_counter()
    n0 = matrix.n_evaluations
    mask = matrix.base_mask()
    counts = np.zeros(matrix.n_commands, dtype=np.int64)
    cur = matrix.evaluate_many(mask[None], target).row(0)
    base = dict(cur)
    history = [{"step": 0, "objective": cur["objective"], "added": None}]
    steps = 0
    while max_steps is None or steps < max_steps:
        free = np.nonzero(~mask & (counts[matrix.cand_command] < budget))[0]
        if not len(free):
            break
        ev = matrix.evaluate_many(_toggled(mask, free), target)
        order = np.lexsort((free, -matrix.cand_prob[free], ev.objective))
        best = order[0]
        if not ev.objective[best] < cur["objective"] - 1e-12:
            break
        k = int(free[best])
        mask[k] = True
        counts[matrix.cand_command[k]] += 1
        cur = ev.row(best)
        steps += 1
        history.append({"step": steps, "objective": cur["objective"], "added": k})
    n_found = int(mask.sum())
    mask, cur = prune(matrix, mask, target)
    return SearchResult("greedy", mask, cur, base, target, budget, matrix.n_evaluations - n0, time.perf_counter() - t0,
                        history, {"max_steps": max_steps, "pruned": n_found - int(mask.sum())})  # fmt: skip


def repair(masks: np.ndarray, command_of: np.ndarray, budget: int, priority: np.ndarray,
           tiebreak: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Enforce the budget: per grammar and command, keep the ``budget`` included candidates of
    highest ``priority`` (ties: higher ``tiebreak``, then lower index) and drop the rest.
    Vectorised over grammars."""
    m = np.asarray(masks, dtype=bool)
    if m.ndim == 1:
        m = m[None]
    k = m.shape[1]
    if k == 0:
        return m.copy()
    idx = np.arange(k)
    tb = np.zeros(k) if tiebreak is None else np.asarray(tiebreak, np.float64)
    order = np.lexsort((idx, -tb, -np.asarray(priority, np.float64), command_of))  # grouped by command, best first
    s = m[:, order]
    cs = np.cumsum(s, axis=1)
    cmd_sorted = command_of[order]
    start = np.r_[True, cmd_sorted[1:] != cmd_sorted[:-1]]
    seg_first = np.maximum.accumulate(np.where(start, idx, 0))  # column where each command's run starts
    before = np.where(seg_first > 0, cs[:, np.maximum(seg_first - 1, 0)], 0)
    keep = s & (cs - before <= budget)
    out = np.empty_like(m)
    out[:, order] = keep
    return out


def prune(matrix: ScoreMatrix, mask: np.ndarray, target_far: float | None = None) -> tuple[np.ndarray, dict]:
    """Drop candidates that do not help: repeatedly remove the included candidate whose removal
    leaves the objective lowest, as long as it is no higher than before (ties: the less probable
    candidate, then the higher index). The search-set objective never rises; the grammar gets
    smaller (fewer expressions to decode on the device, fewer chances to false-alarm on new data).
    Returns the mask and its metrics."""
    target = matrix._target(target_far)
    mask = matrix.check_masks(mask)[0].copy()
    cur = matrix.evaluate_many(mask[None], target).row(0)
    while True:
        inc = np.nonzero(mask)[0]
        if not len(inc):
            return mask, cur
        ev = matrix.evaluate_many(_toggled(mask, inc), target)
        best = int(np.lexsort((-inc, matrix.cand_prob[inc], ev.objective))[0])
        if ev.objective[best] > cur["objective"] + 1e-12:
            return mask, cur
        mask[inc[best]] = False
        cur = ev.row(best)


def check_cem_options(n_samples: int, iters: int, elite_frac: float, smoothing: float) -> None:
    """Refuse CEM settings the search cannot run with (one-line error naming the option and its
    CLI flag); ``grammar augment`` calls it before any acoustic-model work."""
    if n_samples < 2:
        raise GrammarError(f"cem: n_samples (--samples) must be >= 2, got {n_samples}")
    if iters < 1:
        raise GrammarError(f"cem: iters (--iters) must be >= 1, got {iters}")
    for name, flag, value in (("elite_frac", "--elite-frac", elite_frac), ("smoothing", "--smoothing", smoothing)):
        if not 0.0 < value <= 1.0:
            raise GrammarError(f"cem: {name} ({flag}) must lie in (0, 1], got {value}")


def cem_search(matrix: ScoreMatrix, budget: int, target_far: float | None = None, n_samples: int = 256,
               elite_frac: float = 0.1, smoothing: float = 0.7, iters: int = 50, init: float | str = 0.3,
               seed: int = 0, tol: float = 1e-3) -> SearchResult:  # fmt: skip
    """Cross-entropy method over Bernoulli inclusion probabilities ``p`` (one per candidate).

    ``init``: a probability for every candidate, or ``"prob"``: ``budget`` times the
    candidate's share of its command's candidate probability (clipped to [0.02, 0.9]).
    Each iteration draws ``n_samples`` grammars (include k with probability p_k); the
    **repair rule** keeps, per command, the ``budget`` sampled candidates with the highest
    current p (ties: higher candidate probability, then lower index); all samples are scored
    in one :meth:`ScoreMatrix.evaluate_many` call; the elite are the best ``elite_frac``
    by objective (ties: sample order, which is random: preferring small grammars among
    equals collapses p early on flat objectives); then
    ``p <- smoothing * elite_mean + (1 - smoothing) * p``. Stops when every p is within
    ``tol`` of 0 or 1, or after ``iters`` iterations. The best grammar seen (lowest
    objective, then fewest candidates) is returned, the base grammar and the repaired
    rounding of the final p included, after :func:`prune`. Deterministic in ``seed``.
    """
    budget = _check_budget(budget)
    target = matrix._target(target_far)
    check_cem_options(n_samples, iters, elite_frac, smoothing)
    t0 = time.perf_counter()
    n0 = matrix.n_evaluations
    rng = np.random.default_rng(seed)
    K = matrix.n_candidates
    cc = matrix.cand_command
    if isinstance(init, str):
        if init != "prob":
            raise GrammarError(f"cem: init must be a probability or 'prob', got {init!r}")
        tot = np.bincount(cc, weights=matrix.cand_prob, minlength=matrix.n_commands)
        share = np.divide(matrix.cand_prob, tot[cc], out=np.full(K, 1.0 / max(1, K)), where=tot[cc] > 0)
        p = np.clip(budget * share, 0.02, 0.9)
    else:
        if not 0.0 < float(init) < 1.0:
            raise GrammarError(f"cem: init probability must lie in (0, 1), got {init}")
        p = np.full(K, float(init))
    n_elite = max(1, int(math.ceil(elite_frac * n_samples)))

    base_ev = matrix.evaluate_many(matrix.base_mask()[None], target)
    best_mask, best = matrix.base_mask(), base_ev.row(0)

    def consider(masks: np.ndarray, ev: Evaluations) -> None:
        nonlocal best_mask, best
        i = int(np.lexsort((np.arange(len(masks)), ev.size, ev.objective))[0])
        obj, size = float(ev.objective[i]), int(ev.size[i])
        if obj < best["objective"] - 1e-12 or (obj <= best["objective"] + 1e-12 and size < best["size"]):
            best_mask, best = masks[i].copy(), ev.row(i)

    history: list[dict] = []
    it = 0
    for it in range(1, iters + 1):
        samples = rng.random((n_samples, K)) < p
        samples = repair(samples, cc, budget, p, matrix.cand_prob)
        ev = matrix.evaluate_many(samples, target)
        order = np.argsort(ev.objective, kind="stable")  # ties: sample order, i.e. at random
        elite = samples[order[:n_elite]]
        consider(samples, ev)
        p = smoothing * elite.mean(axis=0) + (1.0 - smoothing) * p
        spread = float(np.minimum(p, 1.0 - p).max()) if K else 0.0
        history.append({"iteration": it, "best": float(ev.objective[order[0]]), "mean": float(ev.objective.mean()),
                        "best_so_far": float(best["objective"]), "max_uncertainty": spread})  # fmt: skip
        if spread < tol:
            break
    mode = repair((p > 0.5)[None], cc, budget, p, matrix.cand_prob)
    consider(mode, matrix.evaluate_many(mode, target))
    n_found = int(best_mask.sum())
    best_mask, best = prune(matrix, best_mask, target)
    params = {"n_samples": n_samples, "elite_frac": elite_frac, "smoothing": smoothing, "iters": iters,
              "iterations_run": it, "init": init, "seed": seed, "tol": tol, "pruned": n_found - int(best_mask.sum())}  # fmt: skip
    return SearchResult("cem", best_mask, best, base_ev.row(0), target, budget, matrix.n_evaluations - n0,
                        time.perf_counter() - t0, history, params, p)  # fmt: skip


# --------------------------------------------------------------------------- end to end


def augment(commands: Sequence[str], posteriors: Sequence[np.ndarray], labels: Sequence[str | None],
            dictionary: PronDict, method: str = "cem", budget: int = 5, *, target_far: float | None = None,
            base_threshold: float | None = None, top_k: int = DEFAULT_TOP_K, per_word: int = DEFAULT_PER_WORD,
            seed: int = 0, score_kind: str = "len_norm", search_kwargs: dict | None = None,
            dataset: str | None = None, progress: bool = False) -> Grammar:  # fmt: skip
    """Augmented grammar for ``commands`` from a search data set.

    ``posteriors``: (T, 29) log-posteriors per utterance; ``labels``: its command text (None =
    non-command). Builds the candidates (:func:`generate_candidates`, ``top_k`` per command),
    the score matrix, runs ``method`` (``"cem"`` or ``"greedy"``) under ``budget`` extra
    expressions per command, and returns a Grammar (base expressions first) whose threshold
    is the re-calibrated one for the chosen grammar. FAR target: ``target_far``, or else the
    base grammar's FAR at ``base_threshold`` on this data set. ``provenance`` records the
    method, budget, seed, rules, objectives, timings, data set size and dictionary source.
    """
    if method not in METHODS:
        raise GrammarError(f"augment: unknown method {method!r} (known: {', '.join(METHODS)})")
    budget = _check_budget(budget)
    cmds = tuple(normalize_text(c) for c in commands)
    if not len(posteriors):
        raise GrammarError("augment: empty data set (no utterances)")
    if target_far is None and base_threshold is None:
        raise GrammarError("augment: give target_far or base_threshold (the base grammar's threshold)")
    t0 = time.perf_counter()
    cands = generate_candidates(cmds, dictionary, top_k=top_k, per_word=per_word)
    matrix = ScoreMatrix.from_posteriors(posteriors, labels, cmds, cands, score_kind, progress=progress)
    t_matrix = time.perf_counter() - t0
    base_fixed = None
    if target_far is None:
        base_fixed = matrix.evaluate(matrix.base_mask(), threshold=base_threshold)
        target_far = base_fixed["far"]
    matrix.target_far = float(target_far)
    kw = dict(search_kwargs or {})
    if method == "cem":
        result = cem_search(matrix, budget, seed=seed, **kw)
    else:
        result = greedy_search(matrix, budget, **kw)
    if not matrix.budget_ok(result.mask, budget)[0] or result.metrics["far"] > matrix.target_far + 1e-12:
        raise GrammarError("augment: internal error: the search returned a grammar outside the constraints")
    prov = {
        "method": method,
        "budget": budget,
        "budget_rule": BUDGET_RULE,
        "seed": seed,
        "threshold_rule": THRESHOLD_RULE,
        "target_far": float(target_far),
        "base_threshold": base_threshold,
        "base_at_base_threshold": base_fixed,
        "base": result.base_metrics,
        "result": result.metrics,
        "objective": result.objective,
        "base_objective": result.base_metrics["objective"],
        "search_seconds": round(result.seconds, 4),
        "matrix_seconds": round(t_matrix, 4),
        "n_evaluations": result.n_evaluations,
        "evals_per_second": round(result.evals_per_second, 1),
        "search_params": result.params,
        "history": result.history,
        "dataset": dataset,
        "n_utterances": int(len(matrix.labels)),
        "n_command": matrix.n_command,
        "n_noncommand": matrix.n_noncommand,
        "score_kind": score_kind,
        "n_candidates": len(cands),
        "top_k": top_k,
        "per_word": per_word,
        "dictionary": dictionary.provenance.get("path") or dictionary.provenance.get("source"),
        "n_added": int(result.mask.sum()),
    }
    g = matrix.grammar(result.mask, float(result.metrics["threshold"]), prov)
    return dataclasses.replace(g, score_kind=score_kind, provenance=dict(g.provenance))
