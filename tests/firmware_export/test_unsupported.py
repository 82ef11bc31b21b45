"""Models the device cannot run fail with a one-line message naming the op or layer."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_export.errors import ExportError


def _model(fn):
    import keras

    inp = keras.Input((10, 4), batch_size=1)
    return keras.Model(inp, keras.layers.Lambda(fn, name="odd")(keras.layers.Dense(4)(inp)))


SAMPLES = np.random.default_rng(0).random((4, 10, 4)).astype(np.float32)


def test_builtin_op_that_tflm_lacks_is_named():
    """TOPK_V2 is a TFLite builtin but has no TFLM kernel."""
    import tensorflow as tf

    from firmware_export.convert import convert_int8

    with pytest.raises(ExportError, match=r"^topk: op TOPK_V2 is not supported by TFLM"):
        convert_int8(_model(lambda x: tf.math.top_k(x, 2)[0]), SAMPLES, "topk")


def test_op_without_builtin_kernel_is_named():
    """tf.math.erf would need SELECT_TF_OPS (TensorFlow kernels), which TFLM lacks."""
    import tensorflow as tf

    from firmware_export.convert import convert_int8

    with pytest.raises(ExportError, match=r"^erf: int8 conversion failed: op\(s\) Erf .*SELECT_TF_OPS") as info:
        convert_int8(_model(tf.math.erf), SAMPLES, "erf")
    assert "\n" not in str(info.value)


def test_recurrent_layer_is_refused_before_conversion():
    import keras

    from firmware_export.convert import convert_int8

    inp = keras.Input((10, 4), batch_size=1)
    model = keras.Model(inp, keras.layers.LSTM(8, name="rnn")(inp))
    with pytest.raises(ExportError, match=r"layer 'rnn' \(LSTM\) is recurrent.*UNIDIRECTIONAL_SEQUENCE_LSTM"):
        convert_int8(model, SAMPLES, "lstm")


def test_float_op_and_custom_op_are_refused():
    from firmware_export.flatbuffer import ModelInfo, TensorInfo, check_tflm

    t8 = TensorInfo("x", (1, 4), "INT8", 0.1, 0)
    with pytest.raises(ExportError, match="custom op 'FlexErf'.*SELECT_TF_OPS"):
        check_tflm(ModelInfo(("CUSTOM:FlexErf",), {"CUSTOM:FlexErf": 1}, (t8,), (t8,), ()), "m")
    with pytest.raises(ExportError, match="op CUMSUM computes in float"):
        check_tflm(ModelInfo(("CUMSUM",), {"CUMSUM": 1}, (t8,), (t8,), ("CUMSUM",)), "m")
    f32 = TensorInfo("x", (1, 4), "FLOAT32", 0.0, 0)
    with pytest.raises(ExportError, match="input tensor 'x' is FLOAT32, expected INT8"):
        check_tflm(ModelInfo(("ADD",), {"ADD": 1}, (f32,), (t8,), ()), "m")
