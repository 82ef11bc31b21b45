"""Decoding-time levers (benchmarks/decoding_levers.py): each transform against its closed form."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.decoding_levers import LEVERS, Lever, aligned_confusion, log_posteriors, loud_mean, replaces, smooth
from grammar.alphabet import BLANK_ID, encode
from grammar.config import AMConfig
from grammar.decoding.listen import ctc_align
from grammar.decoding.recognizer import log_softmax


class LinearAM:
    """Stand-in recognizer: stride 2, log-softmax of a fixed linear map of every second frame."""

    def __init__(self, n_mels: int = 5, n_symbols: int = 4, seed: int = 0):
        self.config = AMConfig(stride=2)
        self.w = np.random.default_rng(seed).normal(size=(n_mels, n_symbols))
        self.seen: list[np.ndarray] = []

    def log_posteriors(self, feats: np.ndarray) -> np.ndarray:
        self.seen.append(feats)
        return log_softmax(feats[::2] @ self.w)


def feats_of(n: int = 9, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 5))


def test_the_first_lever_is_the_am_itself_padded_to_its_stride():
    am, f = LinearAM(), feats_of(9)
    out = log_posteriors(am, f, Lever("the AM as it is"), np.zeros(5))
    padded = np.concatenate([f, f[-1:]])  # 9 frames -> 10, the last repeated, as Recognizer.posteriors
    np.testing.assert_allclose(out, log_softmax(padded[::2] @ am.w))
    assert LEVERS[0] == Lever("the AM as it is") and len({lv.name for lv in LEVERS}) == len(LEVERS)


@pytest.mark.parametrize("scale,blank", [(1.0, 0.5), (1.4, 0.0), (2.0, 1.0)])
def test_posterior_scale_and_blank_offset_renormalise(scale, blank):
    am, f = LinearAM(), feats_of(10)
    base = log_posteriors(am, f, Lever("shipped"), np.zeros(5))
    out = log_posteriors(am, f, Lever("x", scale=scale, blank=blank), np.zeros(5))
    np.testing.assert_allclose(np.exp(out).sum(axis=1), 1.0, atol=1e-12)
    # p'_k is proportional to p_k ** scale, times exp(-blank) for the blank
    expect = scale * base
    expect[:, BLANK_ID] -= blank
    np.testing.assert_allclose(out, expect - np.logaddexp.reduce(expect, axis=1, keepdims=True), atol=1e-12)


def test_loud_mean_averages_the_louder_frames():
    f = np.zeros((10, 3))
    f[:, 0] = np.arange(10)  # frame levels 0..9 / 3: the louder 60 % are frames 4..9
    assert loud_mean(f)[0] == pytest.approx(np.mean(np.arange(4, 10)))


@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_utterance_mean_moves_towards_the_reference_by_alpha(alpha):
    am, f, ref = LinearAM(), feats_of(10), np.linspace(-1, 1, 5)
    log_posteriors(am, f, Lever("x", alpha=alpha), ref)
    shifted = am.seen[-1]
    np.testing.assert_allclose(shifted - f, np.broadcast_to(-alpha * (loud_mean(f) - ref), f.shape))
    if alpha == 1.0:  # a uniform shift keeps which frames are loud: the loud mean lands on the reference
        np.testing.assert_allclose(loud_mean(shifted), ref, atol=1e-12)


def one_hot_logp(symbols: list[int], n_symbols: int = 6, sure: float = 0.9) -> np.ndarray:
    """(T, V) log-posteriors whose frame t puts ``sure`` on symbols[t], the rest spread evenly."""
    p = np.full((len(symbols), n_symbols), (1 - sure) / (n_symbols - 1))
    p[np.arange(len(symbols)), symbols] = sure
    return np.log(p)


def test_aligned_confusion_is_the_mean_posterior_of_each_aligned_symbol():
    # "ab" as a b: frames blank, a, a, blank, b; on the third frame the AM is torn between a and b
    a, b = encode("a")[0], encode("b")[0]
    logp = one_hot_logp([BLANK_ID, a, b, BLANK_ID, b], n_symbols=29)
    logp[2] = np.log(np.full(29, 0.1 / 27))
    logp[2, a], logp[2, b] = np.log(0.46), np.log(0.44)
    conf = aligned_confusion([("ab", logp)])
    p = np.exp(logp)
    path = ctc_align(logp, encode("ab"))
    assert list(path) == [-1, 0, 0, -1, 1]  # the alignment this expects
    np.testing.assert_allclose(conf[a], p[[1, 2]].mean(axis=0))
    np.testing.assert_allclose(conf[b], p[4])
    np.testing.assert_allclose(conf[BLANK_ID], p[[0, 3]].mean(axis=0))
    c = encode("c")[0]
    np.testing.assert_array_equal(conf[c], np.eye(29)[c])  # never aligned: one-hot
    np.testing.assert_allclose(conf.sum(axis=1), 1.0)


def test_aligned_confusion_skips_texts_that_cannot_fit():
    a = encode("a")[0]
    fits = one_hot_logp([a, BLANK_ID], n_symbols=29)
    conf = aligned_confusion([("abcdef", fits), ("a", fits)])  # six letters cannot fit in two frames
    np.testing.assert_allclose(conf[a], np.exp(fits[0]))


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_smoothing_mixes_in_the_confusion_and_keeps_the_blank(weight):
    rng = np.random.default_rng(3)
    logp = log_softmax(rng.normal(size=(7, 5)))
    conf = rng.random((5, 5))
    conf /= conf.sum(axis=1, keepdims=True)
    out = smooth(logp, conf, weight)
    p = np.exp(logp)
    expect = (1 - weight) * p + weight * p @ conf.T
    expect[:, BLANK_ID] = p[:, BLANK_ID]  # the blank's row is the identity's
    np.testing.assert_allclose(np.exp(out), expect / expect.sum(axis=1, keepdims=True), atol=1e-12)
    if weight == 0.0:
        np.testing.assert_allclose(out, logp, atol=1e-12)


def test_identity_confusion_changes_nothing():
    logp = log_softmax(np.random.default_rng(4).normal(size=(6, 5)))
    np.testing.assert_allclose(smooth(logp, np.eye(5), 0.5), logp, atol=1e-12)


def test_a_confusion_lever_reads_its_matrix_before_the_readout():
    am, f = LinearAM(), feats_of(10)
    conf = np.full((4, 4), 0.25)
    lever = Lever("x", scale=2.0, blank=1.0, confusion=0.3)
    out = log_posteriors(am, f, lever, np.zeros(5), conf)
    raw = log_posteriors(am, f, Lever("raw"), np.zeros(5))
    expect = 2.0 * smooth(raw, conf, 0.3)
    expect[:, BLANK_ID] -= 1.0
    np.testing.assert_allclose(out, log_softmax(expect), atol=1e-12)
    with pytest.raises(ValueError, match="needs a confusion matrix"):
        log_posteriors(am, f, lever, np.zeros(5))


def paired(only_a: int, only_b: int, both: int = 10) -> tuple[list[bool], list[bool]]:
    """Two paired outcome lists with ``only_a`` true only in the first, ``only_b`` only in the second."""
    a = [True] * only_a + [False] * only_b + [True] * both
    b = [False] * only_a + [True] * only_b + [True] * both
    return a, b


@pytest.mark.parametrize("commands,nonspeech,expected", [
    ((12, 3), (0, 0), True),    # (12-3-1)^2/15 = 4.3 > 3.84 and no more non-speech
    ((12, 5), (0, 0), False),   # (12-5-1)^2/17 = 2.1: within chance
    ((12, 3), (25, 2), False),  # more commands, but far more hum and music taken for them
    ((12, 3), (6, 3), True),    # a few more clips, within chance: (6-3-1)^2/9 = 0.4
    ((3, 12), (0, 5), False),   # fewer commands right never replaces
])  # fmt: skip
def test_a_readout_replaces_the_shipped_one_only_with_more_commands_and_no_more_nonspeech(commands, nonspeech, expected):
    right, shipped_right = paired(*commands)
    taken, shipped_taken = paired(*nonspeech, both=0)
    assert replaces(right, shipped_right, taken, shipped_taken) is expected
