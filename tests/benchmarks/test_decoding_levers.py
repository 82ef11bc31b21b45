"""Decoding-time levers (benchmarks/decoding_levers.py): each transform against its closed form."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.decoding_levers import LEVERS, Lever, log_posteriors, loud_mean
from grammar.alphabet import BLANK_ID
from grammar.config import AMConfig
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
