"""Grammar search: score matrix, vectorised evaluation, greedy and CEM, augment, CLI errors."""

import argparse
import itertools

import numpy as np
import pytest

from grammar.alphabet import NUM_SYMBOLS, SYMBOLS
from grammar.augment.candidates import CandidateSet
from grammar.augment.cli import add_parsers
from grammar.augment.dictionary import PronDict, build_dictionary
from grammar.augment.search import ScoreMatrix, augment, cem_search, greedy_search, prune, repair
from grammar.decoding.decoder import Grammar, calibrate_threshold, decode
from grammar.errors import GrammarError
from grammar.metrics import recognition_metrics
from tests.grammar.conftest import synthetic_posterior

# ----------------------------------------------------------------------------- helpers


def slow_evaluate(L, S, labels, ec, n_base, mask, target=None, threshold=None):
    """Reference: one grammar at a time, the decoder's rules written out with loops."""
    include = list(range(n_base)) + [n_base + k for k in np.nonzero(mask)[0]]
    cmds, scores = [], []
    for u in range(len(L)):
        j = include[int(np.argmax([L[u, e] for e in include]))]
        finite = np.isfinite(L[u, j])
        cmds.append(int(ec[j]) if finite else None)
        scores.append(S[u, j] if finite else -np.inf)
    if threshold is None:
        threshold = calibrate_threshold([s for s, lab in zip(scores, labels) if lab < 0], target)
    preds = [c if c is not None and s >= threshold else None for c, s in zip(cmds, scores)]
    m = recognition_metrics([None if lab < 0 else int(lab) for lab in labels], preds)
    return {"objective": m["mdr"] + m["mcr"], "mdr": m["mdr"], "mcr": m["mcr"], "far": m["far"],
            "threshold": threshold}  # fmt: skip


def random_matrix(seed, n_cmd=3, per_cmd=3, n_utts=40, ties=False, neg_inf=False, target=0.1):
    rng = np.random.default_rng(seed)
    K = n_cmd * per_cmd
    ec = np.r_[np.arange(n_cmd), np.repeat(np.arange(n_cmd), per_cmd)]
    labels = np.where(rng.random(n_utts) < 0.3, -1, rng.integers(0, n_cmd, n_utts))
    labels[:2] = [-1, 0]
    L = (rng.integers(-6, 0, (n_utts, n_cmd + K)) if ties else rng.normal(size=(n_utts, n_cmd + K)) * 2).astype(float)
    L[np.arange(n_utts)[labels >= 0], labels[labels >= 0]] += 1.0  # the right base is a bit more likely
    S = rng.normal(size=L.shape)
    if ties:
        S = np.round(S, 1)
    if neg_inf:
        L[rng.random(L.shape) < 0.15] = -np.inf
        L[3] = -np.inf  # an utterance too short for every expression
    S[~np.isfinite(L)] = -np.inf
    return ScoreMatrix(L, S, labels, ec, n_cmd, rng.random(K), target_far=target)


def all_masks_within(matrix, budget):
    K = matrix.n_candidates
    masks = np.array(list(itertools.product([False, True], repeat=K)), dtype=bool)
    return masks[matrix.budget_ok(masks, budget)]


def brute_force(matrix, budget):
    masks = all_masks_within(matrix, budget)
    return float(matrix.evaluate_many(masks).objective.min())


def _base_matrix(seed, n_cmd, per_cmd, per_class):
    """(rng, K, ec, labels, L, S): per_class utterances of each command, then per_class
    non-commands; each command utterance is recognised (-0.5) or too weak and rejected (-5.0,
    'hard'), with even odds; the non-command rows and the candidates' columns are left to fill."""
    rng = np.random.default_rng(seed)
    K = n_cmd * per_cmd
    ec = np.r_[np.arange(n_cmd), np.repeat(np.arange(n_cmd), per_cmd)]
    labels = np.r_[np.repeat(np.arange(n_cmd), per_class), -np.ones(per_class, int)]
    L = np.full((len(labels), n_cmd + K), -30.0)
    S = np.full((len(labels), n_cmd + K), -9.0)
    for u in np.nonzero(labels >= 0)[0]:
        L[u, labels[u]], S[u, labels[u]] = -10.0, (-5.0 if rng.random() < 0.5 else -0.5)
    return rng, K, ec, labels, L, S


def separable_matrix(seed, n_cmd=3, per_cmd=3, per_class=8):
    """Each candidate fixes some hard utterances of its command (gain) and may steal some easy
    utterances of another command (loss): the objective is additive, so greedy is optimal."""
    rng, K, ec, labels, L, S = _base_matrix(seed, n_cmd, per_cmd, per_class)
    for u in np.nonzero(labels < 0)[0]:
        L[u, rng.integers(n_cmd)], S[u, :n_cmd] = -10.0, -5.0
    for k in range(K):
        c = ec[n_cmd + k]
        hard = [u for u in np.nonzero(labels == c)[0] if S[u, c] == -5.0 and (L[u, n_cmd:] == -30).all()]
        for u in rng.permutation(hard)[: rng.integers(0, 3)]:
            L[u, n_cmd + k], S[u, n_cmd + k] = -5.0, -0.5
        easy = [u for u in np.nonzero((labels >= 0) & (labels != c))[0]
                if S[u, labels[u]] == -0.5 and (L[u, n_cmd:] == -30).all()]  # fmt: skip
        for u in rng.permutation(easy)[: rng.integers(0, 2)]:
            L[u, n_cmd + k], S[u, n_cmd + k] = -4.0, -0.5  # misclassified
    return ScoreMatrix(L, S, labels, ec, n_cmd, rng.random(K), target_far=0.0)


def interacting_matrix(seed, n_cmd=3, per_cmd=3, per_class=10, target=0.1):
    """Candidates fix overlapping sets of hard utterances (with different strengths), steal
    utterances of other commands, and raise false alarms on non-commands (which moves the
    re-calibrated threshold): greedy can miss the optimum."""
    rng, K, ec, labels, L, S = _base_matrix(seed, n_cmd, per_cmd, per_class)
    U = len(labels)
    for u in np.nonzero(labels < 0)[0]:
        L[u, rng.integers(n_cmd)] = -10.0
        S[u, :n_cmd] = rng.uniform(-6, -4)
    for k in range(K):
        c, e = ec[n_cmd + k], n_cmd + k
        hard = np.nonzero((labels == c) & (S[np.arange(U), np.maximum(labels, 0)] == -5.0))[0]
        for u in rng.permutation(hard)[: rng.integers(0, 4)]:
            L[u, e], S[u, e] = -5.0 + rng.uniform(-1, 1), rng.uniform(-1, -0.2)
        for u in rng.permutation(np.nonzero((labels >= 0) & (labels != c))[0])[: rng.integers(0, 2)]:
            L[u, e], S[u, e] = -4.0 + rng.uniform(-1, 1), -0.5
        for u in rng.permutation(np.nonzero(labels < 0)[0])[: rng.integers(0, 3)]:
            L[u, e], S[u, e] = -5.0 + rng.uniform(-1, 1), rng.uniform(-3, 0)
    return ScoreMatrix(L, S, labels, ec, n_cmd, rng.random(K), target_far=target)


def peaked_logp(text, rng, frames_per_char=3):
    ids = [0] + [i for c in text for i in (SYMBOLS.index(c),) * frames_per_char + (0,)]
    x = rng.normal(size=(len(ids), NUM_SYMBOLS))
    x[np.arange(len(ids)), ids] += 6.0
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


# ----------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize("seed,ties,neg_inf", [(0, False, False), (1, True, False), (2, False, True), (3, True, True)])
def test_evaluate_many_equals_slow_reference(seed, ties, neg_inf):
    m = random_matrix(seed, ties=ties, neg_inf=neg_inf)
    rng = np.random.default_rng(seed + 100)
    masks = rng.random((60, m.n_candidates)) < 0.4
    masks[0] = False
    masks[1] = True
    for target in (0.0, 0.1, 0.5, 1.0):
        ev = m.evaluate_many(masks, target)
        for i, mask in enumerate(masks):
            ref = slow_evaluate(m.log_lik, m.scores, m.labels, m.expr_command, m.n_base, mask, target)
            got = ev.row(i)
            for key in ("objective", "mdr", "mcr", "far", "threshold"):
                assert got[key] == pytest.approx(ref[key]), (i, key)
            assert got["far"] <= target + 1e-12
            assert got["size"] == mask.sum()
    ev = m.evaluate_many(masks, threshold=0.3)  # fixed-threshold rule
    for i, mask in enumerate(masks):
        ref = slow_evaluate(m.log_lik, m.scores, m.labels, m.expr_command, m.n_base, mask, threshold=0.3)
        assert ev.row(i)["objective"] == pytest.approx(ref["objective"])
        assert ev.row(i)["far"] == pytest.approx(ref["far"])


def test_chunked_evaluation_matches(monkeypatch):
    import grammar.augment.search as search

    m = random_matrix(5)
    masks = np.random.default_rng(0).random((50, m.n_candidates)) < 0.5
    whole = m.evaluate_many(masks)
    monkeypatch.setattr(search, "_GATHER_BUDGET", 1)  # one grammar per chunk
    parts = m.evaluate_many(masks)
    np.testing.assert_array_equal(whole.objective, parts.objective)
    np.testing.assert_array_equal(whole.threshold, parts.threshold)
    assert len(m.evaluate_many(masks[:0]).objective) == 0


def test_matrix_refuses_grammar_dependent_scores():
    x = np.log(np.full((6, NUM_SYMBOLS), 1.0 / NUM_SYMBOLS))
    with pytest.raises(GrammarError, match="'len_margin' depends on the whole grammar"):
        ScoreMatrix.from_posteriors([x, x], ["ab", None], ("ab", "ba"), None, score_kind="len_margin")


def test_matrix_matches_the_decoder_on_real_posteriors():
    rng = np.random.default_rng(7)
    commands = ("ab", "ba", "abc")
    cands = CandidateSet(commands, ("aab", "bb", "ac", "abb"), (0, 1, 2, 0), (0.4, 0.3, 0.2, 0.1))
    posts, labels = [], []
    for i in range(40):
        T = 2 if i % 13 == 0 else int(rng.integers(4, 12))  # some too short for 3-letter expressions
        x = rng.normal(size=(T, NUM_SYMBOLS)) * 2
        posts.append(x - np.log(np.exp(x).sum(axis=1, keepdims=True)))
        labels.append(None if i % 3 == 0 else commands[i % len(commands)])
    m = ScoreMatrix.from_posteriors(posts, labels, commands, cands, target_far=0.2)
    for mask in itertools.product([False, True], repeat=len(cands)):
        mask = np.array(mask)
        got = m.evaluate(mask)
        g0 = m.grammar(mask, 0.0)
        decisions = [decode(p, g0) for p in posts]
        non = [d.score for d, lab in zip(decisions, labels) if lab is None]
        thr = calibrate_threshold(non, 0.2)
        g = g0.with_threshold(thr)
        preds = [decode(p, g).command for p in posts]
        ref = recognition_metrics(labels, preds)
        assert got["threshold"] == thr
        assert got["far"] == pytest.approx(ref["far"]) and got["mdr"] == pytest.approx(ref["mdr"])
        assert got["mcr"] == pytest.approx(ref["mcr"])
        cmd, score, ok = m.decisions(mask[None])
        for u, d in enumerate(decisions):
            assert score[0, u] == pytest.approx(d.score) or (score[0, u] == d.score == -np.inf)
            assert ok[0, u] == np.isfinite(d.log_likelihoods[d.expression])
            if ok[0, u]:
                assert g.commands[cmd[0, u]] == g.commands[g.command_of[d.expression]]


# ----------------------------------------------------------------------------- search


def test_repair_keeps_highest_priority_per_command():
    rng = np.random.default_rng(0)
    cc = np.array([0, 0, 0, 1, 1, 2, 0, 1])
    pr = rng.random(len(cc))
    masks = rng.random((500, len(cc))) < 0.7
    out = repair(masks, cc, 2, pr)
    assert not (out & ~masks).any()  # only drops
    for m_in, m_out in zip(masks, out):
        for c in range(3):
            cols = np.nonzero(cc == c)[0]
            chosen = cols[m_in[cols]]
            keep = chosen[np.argsort(-pr[chosen], kind="stable")][:2]
            assert set(np.nonzero(m_out[cols])[0] + 0) == {int(np.nonzero(cols == k)[0][0]) for k in keep}
    tb = repair(np.ones((1, 3), bool), np.zeros(3, int), 1, np.zeros(3), tiebreak=np.array([0.1, 0.9, 0.5]))
    assert tb.tolist() == [[False, True, False]]


@pytest.mark.parametrize("seed", range(5))
def test_greedy_and_cem_find_the_optimum_of_separable_problems(seed):
    m = separable_matrix(seed)
    for budget in (1, 2):
        best = brute_force(m, budget)
        g = greedy_search(m, budget)
        assert g.objective == pytest.approx(best)
        c = cem_search(m, budget, n_samples=128, iters=40, seed=0)
        assert c.objective == pytest.approx(best)
        for r in (g, c):
            assert m.budget_ok(r.mask, budget)[0] and r.metrics["far"] <= 0.0
            assert r.metrics == m.evaluate(r.mask)  # the metrics reported are the mask's


@pytest.mark.parametrize("seed", range(8))
def test_cem_finds_the_optimum_of_interacting_problems(seed):
    m = interacting_matrix(seed)
    for budget in (1, 2):
        best = brute_force(m, budget)
        c = cem_search(m, budget, n_samples=200, iters=40, seed=0)
        assert c.objective == pytest.approx(best)
        g = greedy_search(m, budget)  # greedy: never worse than the base, may miss the optimum here
        assert best - 1e-12 <= g.objective <= g.base_metrics["objective"]


@pytest.mark.parametrize("seed", range(3))
def test_search_on_random_problems_never_worse_than_base(seed):
    m = random_matrix(seed + 10, n_utts=60)
    best = brute_force(m, 2)
    for r in (cem_search(m, 2, n_samples=100, iters=20, seed=0), greedy_search(m, 2)):
        assert best - 1e-12 <= r.objective <= r.base_metrics["objective"]


def test_every_cem_sample_and_result_honours_the_constraints():
    m = random_matrix(21, n_cmd=4, per_cmd=5, n_utts=80, target=0.05)
    seen = []
    real = m.evaluate_many

    def spy(masks, target_far=None, threshold=None):
        ev = real(masks, target_far, threshold)
        seen.append((np.array(masks), ev))
        return ev

    m.evaluate_many = spy
    for budget in (1, 2, 3):
        seen.clear()
        r = cem_search(m, budget, n_samples=64, iters=10, seed=3)
        assert seen and all(m.budget_ok(ms, budget).all() for ms, _ in seen)
        assert all((ev.far <= 0.05 + 1e-12).all() for _, ev in seen)
        assert m.budget_ok(r.mask, budget)[0] and r.metrics["far"] <= 0.05
        seen.clear()
        r = greedy_search(m, budget)
        assert all((ev.far <= 0.05 + 1e-12).all() for _, ev in seen)
        assert m.budget_ok(r.mask, budget)[0]


def _removal_objectives(m, mask):
    inc = np.nonzero(mask)[0]
    trial = np.repeat(mask[None], len(inc), axis=0)
    trial[np.arange(len(inc)), inc] = False
    return m.evaluate_many(trial).objective


@pytest.mark.parametrize("seed", range(4))
def test_prune_never_raises_the_objective_and_leaves_only_needed_candidates(seed):
    m = random_matrix(seed + 40, n_cmd=3, per_cmd=4, n_utts=60)
    rng = np.random.default_rng(seed)
    for mask in rng.random((5, m.n_candidates)) < 0.6:
        before = m.evaluate(mask)["objective"]
        out, metrics = prune(m, mask)
        assert not (out & ~mask).any()  # only drops
        assert metrics == m.evaluate(out) and metrics["objective"] <= before + 1e-12
        assert (_removal_objectives(m, out) > metrics["objective"] + 1e-12).all()  # every one left is needed


def test_search_results_are_minimal():
    for seed in range(3):
        m = random_matrix(seed + 50, n_utts=60)
        for r in (cem_search(m, 2, n_samples=64, iters=10, seed=0), greedy_search(m, 2)):
            assert (_removal_objectives(m, r.mask) > r.objective + 1e-12).all()
            assert r.params["pruned"] >= 0


def test_prune_drops_a_candidate_that_wins_nothing():
    # one command, two candidates: candidate 0 fixes utterance 0; candidate 1 never beats the base
    L = np.array([[-9.0, -1.0, -20.0], [-1.0, -20.0, -20.0], [-5.0, -20.0, -20.0]])
    S = np.array([[-9.0, -0.1, -9.0], [-0.1, -9.0, -9.0], [-9.0, -9.0, -9.0]])
    m = ScoreMatrix(L, S, [0, 0, -1], [0, 0, 0], n_base=1, target_far=0.0)
    out, metrics = prune(m, np.array([True, True]))
    assert out.tolist() == [True, False] and metrics["objective"] == 0.0


def _right(m, masks, threshold):
    cmd, score, ok = m.decisions(masks)
    return ok & (score >= threshold) & (cmd == m.labels) & m.is_cmd


@pytest.mark.parametrize("seed,ties,neg_inf", [(0, False, False), (1, True, False), (2, False, True)])
def test_fixable_bounds_every_grammar_and_each_is_fixed_by_one_candidate(seed, ties, neg_inf):
    m = random_matrix(seed + 60, n_cmd=3, per_cmd=3, n_utts=50, ties=ties, neg_inf=neg_inf)
    masks = all_masks_within(m, m.n_candidates)  # every grammar: 2^9
    for thr in (-1.0, 0.0, 0.5):
        fix = m.fixable(thr)
        base_right = _right(m, m.base_mask(), thr)[0]
        assert not (fix & base_right).any() and not (fix & ~m.is_cmd).any()
        newly = _right(m, masks, thr) & ~base_right
        assert not (newly & ~fix).any()  # no grammar fixes an utterance outside the bound
        singles = _right(m, np.eye(m.n_candidates, dtype=bool), thr)
        assert (singles.any(axis=0) & ~base_right == fix).all()  # and one candidate fixes each in it
        # so the bound on the cut holds for the full-threshold metrics too
        errors = m.n_command - base_right.sum()
        cuts = 1 - m.evaluate_many(masks, threshold=thr).objective * m.n_command / max(errors, 1)
        assert (cuts <= fix.sum() / max(errors, 1) + 1e-12).all()


def test_fixable_closed_case():
    # utterance 0 (command 0) is rejected by the base (score -9) and candidate 0 wins with a good
    # score; utterance 1 (command 0) loses to command 1, and its candidate is beaten by that base;
    # utterance 2 (command 1) is right already
    L = np.array([[-5.0, -8.0, -1.0, -9.0], [-6.0, -2.0, -3.0, -9.0], [-8.0, -1.0, -9.0, -9.0], [-9.0, -2.0, -9.0, -9.0]])
    S = np.array([[-9.0, -9.0, -0.1, -9.0], [-0.1, -0.1, -0.1, -9.0], [-9.0, -0.1, -9.0, -9.0], [-9.0, -5.0, -9.0, -9.0]])
    m = ScoreMatrix(L, S, [0, 0, 1, -1], [0, 1, 0, 1], n_base=2, target_far=0.0)
    assert m.fixable(-1.0).tolist() == [True, False, False, False]
    assert m.fixable(0.0).tolist() == [False, False, False, False]  # candidate 0's score no longer clears it


def test_cem_is_seeded_and_records_history():
    m = random_matrix(30, n_utts=60)
    a = cem_search(m, 2, n_samples=50, iters=8, seed=1, tol=0.0)
    b = cem_search(m, 2, n_samples=50, iters=8, seed=1, tol=0.0)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.history == b.history and len(a.history) == 8
    assert {"iteration", "best", "mean", "best_so_far", "max_uncertainty"} <= set(a.history[0])
    so_far = [h["best_so_far"] for h in a.history]
    assert so_far == sorted(so_far, reverse=True)
    assert a.n_evaluations >= 8 * 50 and a.evals_per_second > 0
    c = cem_search(m, 2, n_samples=50, iters=200, seed=1, init="prob")
    assert c.params["iterations_run"] < 200  # converged: probabilities near 0/1
    assert (np.minimum(c.probabilities, 1 - c.probabilities) < 1e-3).all()


def test_greedy_ties_prefer_higher_probability():
    # two identical candidates for command 0: the more probable one is added
    L = np.array([[-5.0, -9.0, -1.0, -1.0], [-9.0, -5.0, -20.0, -20.0], [-5.0, -5.0, -20.0, -20.0]])
    S = np.array([[-5.0, -9.0, -0.1, -0.1], [-9.0, -0.1, -9.0, -9.0], [-3.0, -3.0, -9.0, -9.0]])
    m = ScoreMatrix(L, S, [0, 1, -1], [0, 1, 0, 0], 2, [0.2, 0.7], target_far=0.0)
    r = greedy_search(m, 1)
    assert r.mask.tolist() == [False, True] and r.objective == 0.0


def test_search_errors():
    m = random_matrix(0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(GrammarError, match="budget"):
            greedy_search(m, bad)
        with pytest.raises(GrammarError, match="budget"):
            cem_search(m, bad)
    with pytest.raises(GrammarError):
        cem_search(m, 1, init=1.5)
    for kwargs, needle in (({"n_samples": 1}, "n_samples"), ({"iters": 0}, "iters"),
                           ({"elite_frac": 0.0}, "elite_frac"), ({"smoothing": 1.01}, "smoothing")):  # fmt: skip
        with pytest.raises(GrammarError, match=needle):
            cem_search(m, 1, **kwargs)
    with pytest.raises(GrammarError):
        m.evaluate_many(np.zeros((2, 3), bool))
    with pytest.raises(GrammarError, match="target"):
        m.evaluate_many(np.zeros((1, m.n_candidates), bool), target_far=2.0)
    L = np.zeros((3, 2))
    with pytest.raises(GrammarError, match="non-command"):
        ScoreMatrix(L, L, [0, 0, 0], [0, 0], 1)
    with pytest.raises(GrammarError, match="no command utterances"):
        ScoreMatrix(L, L, [-1, -1, -1], [0, 0], 1)
    with pytest.raises(GrammarError, match="empty"):
        ScoreMatrix(np.zeros((0, 2)), np.zeros((0, 2)), [], [0, 0], 1)


# ----------------------------------------------------------------------------- augment


COMMANDS = ["turn on the lights", "mute", "call home"]
SPELL = {"turn on the lights": "turn on the lites", "mute": "mut", "call home": "call hom"}


def _search_set(seed=0):
    rng = np.random.default_rng(seed)
    posts, labels = [], []
    for _ in range(4):
        for c in COMMANDS:
            posts.append(peaked_logp(SPELL[c] if rng.random() < 0.75 else c, rng))
            labels.append(c)
    for text in ("the cat sat", "open the door", "call homer", "turn on the light", "mutt", "mutter"):
        posts.append(peaked_logp(text, rng))
        labels.append(None)
    return posts, labels


def _dictionary():
    pairs = [(c, SPELL[c]) for c in COMMANDS] * 3 + [(c, c) for c in COMMANDS] + [("the lights", "the ligh")]
    return build_dictionary(pairs, provenance={"source": "test"})


@pytest.mark.parametrize("method", ["greedy", "cem"])
def test_augment_end_to_end(method):
    posts, labels = _search_set()
    g = augment(COMMANDS, posts, labels, _dictionary(), method, budget=2, target_far=0.0, seed=0,
                search_kwargs={"n_samples": 64, "iters": 20} if method == "cem" else None)  # fmt: skip
    assert isinstance(g, Grammar) and g.expressions[:3] == tuple(COMMANDS)
    assert set(SPELL.values()) <= set(g.expressions)
    p = g.provenance
    assert p["method"] == method and p["budget"] == 2 and p["seed"] == 0 and p["dictionary"] == "test"
    assert p["objective"] < p["base_objective"] and p["n_utterances"] == len(posts)
    assert {"threshold_rule", "budget_rule", "search_seconds", "n_candidates", "history", "target_far"} <= set(p)
    for c in range(3):
        assert len(g.expressions_of(c)) <= 1 + 2
    preds = [decode(x, g).command for x in posts]
    m = recognition_metrics(labels, preds)
    assert m["far"] <= 0.0 and m["mdr"] + m["mcr"] == pytest.approx(p["objective"])


def test_augment_default_target_is_the_base_far_at_its_threshold():
    posts, labels = _search_set(1)
    g = augment(COMMANDS, posts, labels, _dictionary(), "greedy", budget=1, base_threshold=-1e9)
    assert g.provenance["target_far"] == 1.0  # everything accepted at -1e9
    assert g.provenance["base_at_base_threshold"]["far"] == 1.0


def test_augment_errors():
    posts, labels = _search_set()
    d = _dictionary()
    with pytest.raises(GrammarError, match="budget"):
        augment(COMMANDS, posts, labels, d, "cem", budget=0, target_far=0.0)
    with pytest.raises(GrammarError, match="empty"):
        augment(COMMANDS, [], [], d, "cem", budget=1, target_far=0.0)
    with pytest.raises(GrammarError, match="not among the commands"):
        augment(COMMANDS, posts, labels[:-1] + ["volume up"], d, "greedy", budget=1, target_far=0.0)
    with pytest.raises(GrammarError, match="method"):
        augment(COMMANDS, posts, labels, d, "beam", budget=1, target_far=0.0)
    with pytest.raises(GrammarError, match="target_far or base_threshold"):
        augment(COMMANDS, posts, labels, d, "greedy", budget=1)


# ----------------------------------------------------------------------------- command line


def _parse(*argv):
    p = argparse.ArgumentParser(prog="grammar")
    add_parsers(p.add_subparsers(dest="command", required=True))
    return p.parse_args([str(a) for a in argv])


@pytest.fixture
def cli_inputs(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")  # never read: inputs are checked before any audio
    cmds = tmp_path / "commands.txt"
    cmds.write_text("mute\ncall home\n")
    good = tmp_path / "good.csv"
    good.write_text("path,label\na.wav,mute\na.wav,\n")
    d = tmp_path / "dict.json"
    PronDict({"mute": {"mut": 1}}).save(d)
    return tmp_path, cmds, good, d


@pytest.mark.parametrize("case,needle", [
    ("label", "is not among the commands"),
    ("empty", "empty manifest"),
    ("dict", "not a pronunciation dictionary"),
    ("nodict", "pronunciation dictionary not found"),
    ("only-commands", "no non-command utterances"),
    ("only-non-commands", "no command utterances"),
    ("cem-samples", "n_samples (--samples) must be >= 2, got 1"),
    ("cem-elite", "elite_frac (--elite-frac) must lie in (0, 1], got 0.0"),
    ("cem-iters", "iters (--iters) must be >= 1, got 0"),
    ("cem-smoothing", "smoothing (--smoothing) must lie in (0, 1], got 1.5"),
])  # fmt: skip
def test_cli_bad_input_is_one_line_grammar_error(cli_inputs, case, needle):
    tmp, cmds, manifest, d = cli_inputs
    budget = 2
    if case == "label":
        manifest = tmp / "bad.csv"
        manifest.write_text("path,label\na.wav,volume up\n")
    elif case == "empty":
        manifest = tmp / "empty.csv"
        manifest.write_text("path,label\n")
    elif case == "dict":
        d = tmp / "wrong.json"
        d.write_text('{"format": "stapes-grammar", "version": 1}')
    elif case == "nodict":
        d = tmp / "missing.json"
    elif case.startswith("only"):
        manifest = tmp / f"{case}.csv"
        manifest.write_text("path,label\na.wav,mute\n" if case == "only-commands" else "path,label\na.wav,\n")
    method = {"cem-samples": ["cem", "--samples", "1"], "cem-elite": ["cem", "--elite-frac", "0"],
              "cem-iters": ["cem", "--iters", "0"], "cem-smoothing": ["cem", "--smoothing", "1.5"]}.get(case, ["greedy"])
    args = _parse("augment", "--commands", cmds, "--dataset", manifest, "--method", *method, "--budget", budget,
                  "--dictionary", d, "--target-far", "0.05", "-o", tmp / "g.json")  # fmt: skip
    with pytest.raises(GrammarError) as exc:
        args.func(args)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg
    if case in ("label", "empty", "only-commands", "only-non-commands"):
        assert str(manifest) in msg
    if case in ("dict", "nodict"):
        assert str(d) in msg


def test_cli_parsers():
    a = _parse("augment", "--commands", "c.txt", "--dataset", "m.csv", "--method", "cem", "-o", "g.json", "--json")
    assert a.budget == 5 and a.method == "cem" and a.json and a.target_far is None
    b = _parse("dictionary", "build", "-o", "d.json", "--n-utts", "10", "--seed", "3")
    assert b.n_utts == 10 and b.seed == 3 and b.func.__name__ == "cmd_dictionary_build"

@pytest.mark.parametrize("argv", [
    ("augment", "--commands", "c.txt", "--dataset", "m.csv", "-o", "g.json", "--budget", "0"),
    ("augment", "--commands", "c.txt", "--dataset", "m.csv", "-o", "g.json", "--budget", "-2"),
    ("augment", "--commands", "c.txt", "--dataset", "m.csv", "-o", "g.json", "--top-k", "0"),
    ("dictionary", "build", "-o", "d.json", "--n-utts", "0"),
])  # fmt: skip
def test_cli_counts_must_be_positive(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(*argv)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exc.value.code == 2 and f"argument {argv[-2]}" in err and "must be positive" in err, err


@pytest.mark.parametrize("kind", ["len_norm", "len_margin"])
def test_cli_base_far_uses_the_shipped_score_kind(kind):
    # the shipped grammar's threshold only means something for its own score kind: the FAR the
    # augment CLI carries over is the base grammar's, decoded with that kind and threshold
    from grammar.augment.cli import _base_far

    cmds = ("mute", "call home")
    posts = [synthetic_posterior(t, frames_per_char=1) for t in ("mute", "zzzz", "call home")]
    labels = [None, None, "call home"]  # a command utterance does not count
    strict = Grammar.from_commands(cmds, threshold=0.0, score_kind=kind)
    open_ = Grammar.from_commands(cmds, threshold=-np.inf, score_kind=kind)
    scores = [decode(p, open_).score for p in posts[:2]]
    assert scores[0] > scores[1]
    mid = Grammar.from_commands(cmds, threshold=float(np.mean(scores)), score_kind=kind)
    assert _base_far(cmds, posts, labels, mid) == 0.5
    assert _base_far(cmds, posts, labels, open_) == 1.0
    assert _base_far(cmds, posts, labels, strict.with_threshold(scores[0] + 1.0)) == 0.0
