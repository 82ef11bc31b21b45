"""Command-recognition benchmark (benchmarks/recognition.py): counting at a threshold, ensembles of AMs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.recognition import Ensemble, accuracy_at, chain_digest, det_point, mean_posteriors
from grammar.metrics import det_curve


@pytest.mark.parametrize("threshold,accuracy,far", [(-9.0, 0.75, 1.0), (-1.0, 0.5, 0.5), (0.5, 0.0, 0.0)])
def test_accuracy_counts_right_and_accepted_commands_and_accepted_non_commands(threshold, accuracy, far):
    # four commands (the third decoded as another command) and two non-commands
    ok = [True, True, False, True, False, False]
    scores = [0.0, -0.5, 0.2, -2.0, -0.8, -3.0]
    is_cmd = [True, True, True, True, False, False]
    r = accuracy_at(ok, scores, is_cmd, threshold)
    assert r == {"accuracy": accuracy, "far": far, "accuracy_no_rejection": 0.75, "n_commands": 4, "n_non_commands": 2}


def test_a_score_equal_to_the_threshold_is_accepted():
    assert accuracy_at([True, False], [-1.0, -1.0], [True, False], -1.0)["far"] == 1.0


@pytest.mark.parametrize("max_far,accuracy,far", [(0.0, 0.25, 0.0), (0.25, 0.5, 0.25), (0.5, 0.75, 0.5), (1.0, 0.75, 0.5)])
def test_det_point_is_the_best_accuracy_within_the_far_bound(max_far, accuracy, far):
    # commands right at 0.9 / 0.5 / 0.1, one decoded wrong at 0.7; non-commands at 0.6 / 0.3 / 0.0 / -1
    labels = ["a", "b", "c", "a", None, None, None, None]
    best = ["a", "b", "c", "b", "a", "b", "c", "a"]
    scores = [0.9, 0.5, 0.1, 0.7, 0.6, 0.3, 0.0, -1.0]
    d = det_point(det_curve(labels, best, scores), max_far)
    assert (d["accuracy"], d["far"]) == (accuracy, far)
    ok = accuracy_at([lab == b for lab, b in zip(labels, best)], scores, [lab is not None for lab in labels], d["threshold"])
    assert (ok["accuracy"], ok["far"]) == (accuracy, far)  # the threshold it names gives that point


class FixedAM:
    """Stand-in chain: the same log-posteriors whatever it hears."""

    def __init__(self, probs, units: str = "chars", stride: int = 2):
        self.logp = np.log(np.asarray(probs, dtype=np.float64))
        self.config = SimpleNamespace(unit_set=SimpleNamespace(name=units), stride=stride)

    def posteriors(self, audio, sr, name="input"):
        return self.logp


def test_an_ensemble_averages_the_members_posteriors_over_their_common_frames():
    a = FixedAM([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    b = FixedAM([[0.1, 0.9], [0.3, 0.7]])  # one frame shorter
    out = Ensemble([a, b]).posteriors(np.zeros(10), 16000)
    np.testing.assert_allclose(np.exp(out), [[0.3, 0.7], [0.6, 0.4]], atol=1e-12)
    np.testing.assert_allclose(Ensemble([a]).posteriors(None, 16000), a.logp)
    np.testing.assert_allclose(mean_posteriors([a.logp, a.logp]), a.logp, atol=1e-12)


def test_an_ensemble_refuses_members_of_other_units_or_strides():
    with pytest.raises(SystemExit, match="one unit set and stride"):
        Ensemble([FixedAM([[1.0]]), FixedAM([[1.0]], units="phones")])
    with pytest.raises(SystemExit, match="one unit set and stride"):
        Ensemble([FixedAM([[1.0]]), FixedAM([[1.0]], stride=4)])


def test_a_windowed_am_s_cache_key_follows_its_window_schedule():
    """Cached int8 posteriors are stale once the device windows change: the schedule is part of the key;
    a chain without one (the float AM) keys as before."""
    from grammar.config import AMConfig

    def chain(model):
        return SimpleNamespace(backend="int8", path=None, denoiser=None, config=AMConfig(), model=model)

    plain = chain(SimpleNamespace())
    a, b = chain(SimpleNamespace(schedule="on-input-2")), chain(SimpleNamespace(schedule="before-input-1"))
    assert len({chain_digest(plain), chain_digest(a), chain_digest(b)}) == 3
    assert chain_digest(a) == chain_digest(chain(SimpleNamespace(schedule="on-input-2")))
