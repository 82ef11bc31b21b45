"""The LiteRT runtime: float TFLite files equal their Keras models, batching, errors, no TensorFlow at inference."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rced.errors import RcedError
from rced.runtime import FLOAT_MODEL_NAME, Network

# float32 TFLite (XNNPACK) against Keras (TensorFlow) on the same weights: only the order of float
# additions differs. Measured: denoiser mask 1.5e-6, AM logits 6.6e-5 on these inputs (logits up to 15).
MASK_ATOL = 1e-5
LOGIT_ATOL = 1e-3


def _shipped_denoisers():
    from rced.denoiser import default_model_path, preset_model_path

    return [default_model_path(), preset_model_path("lite")]


@pytest.mark.parametrize("folder", _shipped_denoisers(), ids=["default", "lite"])
def test_shipped_float_denoiser_equals_its_keras_model(folder):
    """model_float.tflite is model.keras (a stale file would fail here), batched or frame by frame."""
    from rced.denoiser import Denoiser

    keras_den, tfl = Denoiser.load(folder, backend="keras"), Denoiser.load(folder)
    assert tfl.backend == "float" and keras_den.backend == "keras" and tfl.model.batched
    fe = tfl.config.frontend
    x = np.random.default_rng(0).standard_normal((700, fe.n_bins, 1, tfl.config.input_channels)).astype(np.float32)
    want = keras_den._run(x)
    assert np.abs(tfl._run(x) - want).max() < MASK_ATOL  # 700 frames: two invokes (MAX_BATCH 512)
    assert np.abs(np.concatenate([tfl._run(x[i : i + 1]) for i in range(5)]) - want[:5]).max() < MASK_ATOL


def test_shipped_float_am_equals_its_keras_model():
    from grammar.decoding.recognizer import Recognizer

    keras_rec = Recognizer.load(denoiser=False, grammar=False, backend="keras")
    rec = Recognizer.load(denoiser=False, grammar=False)
    assert rec.model.backend == "float" and rec.backend == "float" and keras_rec.backend == "float"
    for frames in (40, 334):  # any length: the time axis is free (Recognizer pads to the stride)
        feats = np.random.default_rng(frames).standard_normal((frames, rec.config.input_channels)).astype(np.float32)
        got, want = rec._am(feats[None, :, None, :]), keras_rec._am(feats[None, :, None, :])
        assert got.shape == want.shape == (1, -(-frames // rec.config.stride), 29)
        assert np.abs(got - want).max() < LOGIT_ATOL


def test_write_float_beside_converts_a_keras_model(tmp_path):
    """What training and `firmware-export int8` write beside model.keras runs as the Keras model does."""
    from rced.config import ModelConfig
    from rced.models import build_model
    from rced.tflite_export import write_float_beside

    cfg = ModelConfig(width_mult=0.25)
    model = build_model(cfg)
    path = write_float_beside(model, tmp_path)
    assert path == tmp_path / FLOAT_MODEL_NAME
    net = Network.load(path)
    x = np.random.default_rng(1).standard_normal((3, *net.input_shape[1:])).astype(np.float32)
    assert np.abs(net(x) - model(x).numpy()).max() < MASK_ATOL


def test_network_errors_are_one_line(tmp_path):
    bad = tmp_path / "junk.tflite"
    bad.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(RcedError, match=r"junk\.tflite: not a loadable TFLite model"):
        Network.load(bad)
    with pytest.raises(RcedError, match=r"missing\.tflite: cannot read model"):
        Network.load(tmp_path / "missing.tflite")
    from rced.denoiser import default_model_path

    net = Network.load(default_model_path() / FLOAT_MODEL_NAME)
    with pytest.raises(RcedError, match=r"input of shape \(129, 1, 7\) per item"):
        net(np.zeros((2, 129, 1, 7), np.float32))


def test_int8_network_quantises_like_tflite():
    """Network on an int8 file: float in, dequantised float out; run_int8 is the raw int8 path."""
    from rced.denoiser import default_model_path
    from rced.runtime import INT8_MODEL_NAME, dequantize, quantize

    net = Network.load(default_model_path() / INT8_MODEL_NAME)
    assert net.backend == "int8" and not net.batched and net.input_shape[0] == 1
    x = np.random.default_rng(2).standard_normal((4, *net.input_shape[1:])).astype(np.float32)
    q = net.run_int8(quantize(x, net.in_scale, net.in_zp))
    assert q.dtype == np.int8 and q.shape == (4, *net.output_shape[1:])
    assert np.array_equal(net(x), dequantize(q, net.out_scale, net.out_zp))


@pytest.mark.parametrize("backend", ["float", "int8"])
def test_inference_does_not_import_tensorflow(backend):
    """Denoising, recognition and listening on the shipped models run on LiteRT alone, with nothing on stderr."""
    code = f"""
import sys, numpy as np
from rced.denoiser import Denoiser
from grammar.decoding.recognizer import Recognizer
from grammar.decoding.listen import spot
x = (0.05 * np.random.default_rng(0).standard_normal(24000)).astype(np.float32)
Denoiser.load(backend="{backend}").denoise(x, 16000)
rec = Recognizer.load(backend="{backend}")
rec.recognize(x, 16000)
spot(rec, x, 16000)
print(sorted(m for m in ("tensorflow", "keras", "librosa", "scipy.signal") if m in sys.modules))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", res.stdout
    assert res.stderr.strip() == "", res.stderr


def test_keras_backend_traces_one_graph_for_every_copy_and_batch():
    """Copies made by with_gain share the Keras model's traced graph: no retracing warnings."""
    from rced.denoiser import Denoiser

    den = Denoiser.load(backend="keras")
    fe = den.config.frontend
    rng = np.random.default_rng(3)
    for d, n in ((den, 5), (den.with_gain(mask_floor=0.3), 17), (den.with_gain(mask_release=0.0), 1)):
        d._run(rng.standard_normal((n, fe.n_bins, 1, den.config.input_channels)).astype(np.float32))
    assert den.model._stapes_traced.experimental_get_tracing_count() == 1
