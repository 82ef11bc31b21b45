"""R-CED and CR-CED (Park & Lee, 2017): fully convolutional, convolution along frequency only.

Input: (bins, 1, context) — the ``context`` causal frames (and any level trackers of
``ModelConfig.trackers``) are the channels of the first layer, which collapses time; every later layer is a Conv2D with a (width, 1) kernel over
frequency. Conv -> BatchNorm -> ReLU, no pooling, last layer one filter of width ``bins``.
Plain Conv2D/Add/ReLU/Reshape/Logistic: converts to full-int8 TFLite and runs in TFLM.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from rced.config import ModelConfig
from rced.errors import RcedError

RCED_FILTERS = (12, 16, 20, 24, 32, 24, 20, 16, 12)
RCED_WIDTHS = (13, 11, 9, 7, 7, 7, 9, 11, 13)
CRCED_BLOCK = ((18, 9), (30, 5), (8, 9))
CRCED_REPEATS = 5
# bced: band-compressed R-CED (rced.features.band_compression, fixed matrices), dilated along bands
BCED_WIDTHS = (7, 5, 5, 5, 5, 5, 5, 5, 7)
BCED_DILATIONS = (1, 1, 2, 2, 4, 2, 2, 1, 1)
ARCHES = ("rced", "crced", "bced")
# Named R-CED sizes (``rced train --size``): width multipliers for smaller microcontrollers.
# MACs per frame and quality of each: benchmarks/results/denoiser_presets.md.
SIZES = {"full": 1.0, "lite": 0.5, "micro": 0.35, "nano": 0.25}


def _scaled(f: int, mult: float) -> int:
    return max(1, int(round(f * mult)))


def _cbr(x, filters: int, width: int, name: str, dilation: int = 1):
    x = layers.Conv2D(filters, (width, 1), padding="same", dilation_rate=(dilation, 1), use_bias=False,
                      name=f"{name}_conv")(x)  # fmt: skip
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_model(cfg: ModelConfig, batch_size: int | None = None) -> keras.Model:
    """Keras model (bins, 1, input channels) -> (bins,); ``batch_size=1`` gives the device graph.
    The channels are the context frames and the level trackers (``cfg.input_channels``)."""
    bins, ctx = cfg.frontend.n_bins, cfg.input_channels
    inp = keras.Input((bins, 1, ctx), batch_size=batch_size, name="noisy_features")
    x = inp
    fixed = []
    out_width = bins
    if cfg.arch == "bced":  # (bins, 1, ctx) -> (ctx, 1, bins) -> fixed 1x1 conv -> (bands, 1, ctx)
        out_width = cfg.n_bands
        x = layers.Permute((3, 2, 1), name="to_bins_last")(x)
        fixed.append(layers.Conv2D(cfg.n_bands, 1, use_bias=False, trainable=False, name="band_compress"))
        x = layers.Permute((3, 2, 1), name="to_bands_first")(fixed[-1](x))
        for i, (f, w, d) in enumerate(zip(RCED_FILTERS, BCED_WIDTHS, BCED_DILATIONS)):
            x = _cbr(x, _scaled(f, cfg.width_mult), w, f"l{i + 1}", d)
    elif cfg.arch == "rced":
        for i, (f, w) in enumerate(zip(RCED_FILTERS, RCED_WIDTHS)):
            x = _cbr(x, _scaled(f, cfg.width_mult), w, f"l{i + 1}")
    elif cfg.arch == "crced":
        prev: list = [None] * len(CRCED_BLOCK)
        for b in range(CRCED_REPEATS):
            for j, (f, w) in enumerate(CRCED_BLOCK):
                x = _cbr(x, _scaled(f, cfg.width_mult), w, f"b{b + 1}_{j + 1}")
                if prev[j] is not None:  # additive skip between matching layers of blocks
                    x = layers.Add(name=f"b{b + 1}_{j + 1}_skip")([x, prev[j]])
                prev[j] = x
    else:
        raise RcedError(f"unknown architecture {cfg.arch!r} (choose from {', '.join(ARCHES)})")
    x = layers.Conv2D(1, (out_width, 1), padding="same", name="out_conv")(x)
    x = layers.Reshape((out_width,), name="out_flat")(x)
    if cfg.arch == "bced":  # each bin: the weighted mean of the values of its bands
        fixed.append(layers.Dense(bins, use_bias=False, trainable=False, name="band_expand"))
        x = fixed[-1](x)
    if cfg.output == "mask":
        x = layers.Activation("sigmoid", name="mask")(x)
    elif cfg.output == "magnitude":
        x = layers.ReLU(name="magnitude")(x)
    else:
        raise RcedError(f"unknown model output {cfg.output!r}")
    model = keras.Model(inp, x, name=cfg.arch)
    if fixed:
        from rced.features import band_compression

        comp, expand = band_compression(bins, cfg.n_bands, cfg.frontend.sample_rate)
        fixed[0].set_weights([comp[None, None]])
        fixed[1].set_weights([expand])
    return model


def device_model(model: keras.Model, cfg: ModelConfig) -> keras.Model:
    """The part of a (batch-1) model that runs as the int8 device graph: all of it, except for bced,
    whose graph ends at the band logits; the fixed band expansion and the output activation run after
    it in the firmware's float code (:func:`rced.features.device_head`), where the expansion is two taps per bin.
    (An int8 FULLY_CONNECTED expansion differed from TFLM by an LSB; as a 1x1 conv it broke 32 KB.)"""
    if cfg.arch != "bced":
        return model
    return keras.Model(model.input, model.get_layer("out_flat").output, name=model.name)


def traced_call(model: keras.Model, x, shape: tuple) -> np.ndarray:
    """``model(x)`` (inference) through one ``tf.function`` per Keras model with input ``shape``
    (None: free), kept on the model itself, so every holder shares it: copies of a Denoiser made
    by ``with_gain`` traced their own graph each, and TensorFlow warned of retracing."""
    fn = getattr(model, "_stapes_traced", None)
    if fn is None:
        import tensorflow as tf

        spec = tf.TensorSpec(shape, tf.float32)
        fn = tf.function(lambda t: model(t, training=False), input_signature=[spec])
        object.__setattr__(model, "_stapes_traced", fn)  # past Keras's attribute tracking
    return fn(np.asarray(x, np.float32)).numpy()


def count_params(model: keras.Model) -> int:
    """Parameters of the inference graph (BatchNorm folded into the convolutions)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            k = layer.kernel.shape
            bias = int(k[3]) if layer.trainable else 0  # folded BN gives every trained conv a bias
            total += int(k[0] * k[1] * k[2] * k[3]) + bias
        elif isinstance(layer, layers.Dense):
            total += int(np.prod(layer.kernel.shape)) + (int(layer.units) if layer.use_bias else 0)
    return total


def macs_per_frame(model: keras.Model) -> int:
    """Multiply-accumulates for one output frame, as the device runs them: convolutions and dense
    layers (bced's band compression as the dense 1x1 convolution of the int8 graph, its band
    expansion as the firmware's two taps a bin); element-wise ops excluded."""
    total = 0
    for layer in model.layers:
        if layer.name == "band_expand":
            total += 2 * int(layer.kernel.shape[1])
        elif isinstance(layer, layers.Dense):
            total += int(np.prod(layer.kernel.shape))
        if isinstance(layer, layers.Conv2D):
            k = layer.kernel.shape
            out_positions = int(layer.output.shape[1]) * int(layer.output.shape[2])
            total += out_positions * int(k[0] * k[1] * k[2] * k[3])
    return total
