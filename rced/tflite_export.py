"""Float TFLite files of Keras models: what the inference runtime (:mod:`rced.runtime`) runs.

Training and export use TensorFlow; inference does not. Every model folder keeps
``model_float.tflite`` beside ``model.keras``, converted here with the model's free dimensions
(batch, and the acoustic model's time axis) left free, so the runtime runs many frames per invoke.
"""

from __future__ import annotations

import os
from pathlib import Path

from rced.errors import RcedError
from rced.runtime import FLOAT_MODEL_NAME, silenced_output


def float_tflite(model, name: str = "model") -> bytes:
    """Float32 TFLite flatbuffer of a Keras model (no quantisation, builtin ops only)."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        with silenced_output():  # the converter prints its saved-artifact summary on stdout
            return bytes(conv.convert())
    except Exception as exc:  # ConverterError and friends
        raise RcedError(f"{name}: float TFLite conversion failed ({str(exc).strip().splitlines()[-1][:200]})") from None


def write_float_beside(model, folder: str | os.PathLike, name: str = "model") -> Path:
    """Convert ``model`` and write ``model_float.tflite`` into ``folder`` (atomically); returns its path."""
    from rced.audio import atomic_write_bytes

    out = Path(folder) / FLOAT_MODEL_NAME
    atomic_write_bytes(out, float_tflite(model, name))
    return out
