"""benchmarks/export.py: the int8 chain at the float chain's test FAR."""

from __future__ import annotations

import pytest

from benchmarks.export import accepted_at_far


@pytest.mark.parametrize(("n_false_alarms", "expected"), [
    (0, [None, None, None, None, None]),  # only above every non-command: 0.5
    (1, [None, "b", None, "a", None]),  # above 0.3: one non-command (0.5) and the command at 0.4
    (2, [None, "b", "a", "a", "b"]),  # above 0.1
    (3, ["a", "b", "a", "a", "b"]),  # everything
])  # fmt: skip
def test_accepted_at_far_accepts_that_many_non_commands(n_false_alarms, expected):
    labels = [None, None, None, "a", "a"]
    best = ["a", "b", "a", "a", "b"]
    scores = [0.1, 0.5, 0.3, 0.4, 0.2]
    out = accepted_at_far(labels, best, scores, n_false_alarms)
    assert out == expected
    assert sum(o is not None for o, lab in zip(out, labels) if lab is None) == n_false_alarms


def test_factor_chains_swap_one_part_of_the_float_chain_each():
    import numpy as np

    from benchmarks.export import factor_chains
    from grammar.decoding.recognizer import Recognizer
    from tests.conftest import speechlike

    rec = Recognizer.load(backend="keras")
    den_q = Recognizer.load(backend="int8", grammar=False).denoiser
    chains = factor_chains(rec, (rec.path / "model_int8.tflite").read_bytes(), den_q)
    pad = np.zeros(8000, np.float32)
    x = np.concatenate([pad, speechlike(seconds=2.0), pad])
    want = np.exp(rec.posteriors(x, 16000))
    windows = np.exp(chains["float AM in the device's windows"].posteriors(x, 16000))
    swapped = np.exp(chains["float AM, int8 denoiser"].posteriors(x, 16000))
    # the device's windows carry the AM's whole left reach: the float AM in them reads the same
    assert windows.shape == want.shape and np.abs(windows - want).max() < 0.01
    assert chains["float AM in the device's windows"].denoiser is rec.denoiser
    # the int8 denoiser is the one part that changed in the other chain, and it does change the posteriors
    assert chains["float AM, int8 denoiser"].model is rec.model and chains["float AM, int8 denoiser"].denoiser is den_q
    assert swapped.shape == want.shape and np.abs(swapped - want).max() > 1e-3
