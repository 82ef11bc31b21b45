"""int8 at run time: model_int8.tflite beside a model folder, Int8Denoiser, parity with the float model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from rced.errors import RcedError
from tests.conftest import speechlike

# Bound on |int8 mask - float mask| for the tiny random-weight denoiser: the mask's int8 LSB is
# 1/256 = 0.0039 (measured: mean 0.0009, max 0.012); input quantisation and ten requantised layers
# add a few LSB at worst.
MASK_MEAN_ABS_BOUND = 0.004  # one LSB
MASK_MAX_ABS_BOUND = 0.03


@pytest.fixture(scope="module")
def int8_folder(tmp_path_factory, tiny_denoiser, calibration):
    from firmware_export.convert import write_int8_beside

    folder = tmp_path_factory.mktemp("int8") / "model"
    shutil.copytree(tiny_denoiser, folder)
    path = write_int8_beside(folder, calibration=calibration, n_frames=200)
    assert path == folder / "model_int8.tflite" and path.stat().st_size > 1000
    return folder


def test_missing_int8_model_is_a_clear_error(tiny_denoiser):
    from rced.int8 import Int8Denoiser

    with pytest.raises(RcedError, match="model_int8.tflite: int8 model not found .write it with"):
        Int8Denoiser.load(tiny_denoiser)


def test_int8_denoiser_matches_float_within_bound(int8_folder):
    from rced.denoiser import Denoiser
    from rced.frontend import stft
    from rced.int8 import Int8Denoiser

    fl, q = Denoiser.load(int8_folder), Int8Denoiser.load(int8_folder)
    assert q.sample_rate == fl.sample_rate and q.config == fl.config and q.path == int8_folder
    x = speechlike(16000, 1.0, seed=9) + 0.01 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    mag = np.abs(stft(x, fl.config.frontend))
    diff = np.abs(q.mask(mag) - fl.mask(mag))
    assert diff.mean() < MASK_MEAN_ABS_BOUND and diff.max() < MASK_MAX_ABS_BOUND, (diff.mean(), diff.max())
    y = q.denoise(x, 16000)
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    spec = stft(x, fl.config.frontend)
    assert np.allclose(q.enhance_stft(spec), spec * q.mask(np.abs(spec)))


def test_int8_mask_is_bit_exact_with_tflm(int8_folder):
    """The exact host int8 path is what the device computes: same quantised input, same int8 output as
    TFLM; the default (LiteRT's optimised kernels) is within one LSB of it."""
    from firmware_export.verify import run_tflm
    from rced.features import model_inputs
    from rced.frontend import stft
    from rced.int8 import Int8Denoiser, quantize

    den = Int8Denoiser.load(int8_folder, exact=True)
    m = den.model
    feats = model_inputs(np.abs(stft(speechlike(16000, 0.3), den.config.frontend)), den.config, den.norm)
    qin = quantize(feats, m.in_scale, m.in_zp)
    data = (int8_folder / "model_int8.tflite").read_bytes()
    exact = m.run_int8(qin)
    assert np.array_equal(exact, run_tflm(data, qin, 64 * 1024))
    fast = Int8Denoiser.load(int8_folder).model.run_int8(qin)
    assert np.abs(fast.astype(int) - exact.astype(int)).max() <= 1


def test_rced_cli_int8_backend(int8_folder, tmp_path, capsys):
    from rced.cli import main

    src = tmp_path / "in.wav"
    sf.write(src, speechlike(16000, 0.5), 16000)
    assert main(["denoise", str(src), "-o", str(tmp_path / "out.wav"), "--model", str(int8_folder),
                 "--backend", "int8"]) == 0  # fmt: skip
    assert sf.info(str(tmp_path / "out.wav")).frames == 8000
