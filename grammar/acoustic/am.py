"""The CTC acoustic model: separable convolutions over time, at most ~100 ms look-ahead.

Layout (time, 1, features) so every layer is a TFLM builtin (PAD, CONV_2D, DEPTHWISE_CONV_2D,
ADD, plus SOFTMAX at export): a strided causal input convolution, residual depthwise-separable
blocks with ``lookahead`` frames of right context each, and a 1x1 projection to the output units
(``AMConfig.units``: 29 characters or 41 phoneme symbols, blank and word space included).
The model outputs logits; CTC and the grammar decoder run outside the model.
"""

from __future__ import annotations

import keras
from keras import layers

from grammar.config import AMConfig


def build_am(cfg: AMConfig, frames: int | None = None, batch_size: int | None = None) -> keras.Model:
    """(batch, frames, 1, channels) normalised log-mel (and its trackers, ``features.with_trackers``)
    -> (batch, frames/stride, symbols) logits."""
    n_symbols = cfg.unit_set.size
    inp = keras.Input((frames, 1, cfg.input_channels), batch_size=batch_size, name="log_mel")
    x = layers.ZeroPadding2D(((5 - cfg.stride, 0), (0, 0)), name="in_pad")(inp)  # causal
    x = layers.Conv2D(cfg.channels, (5, 1), strides=(cfg.stride, 1), use_bias=False, name="in_conv")(x)
    x = layers.BatchNormalization(name="in_bn")(x)
    x = layers.ReLU(name="in_relu")(x)
    left = cfg.kernel - 1 - cfg.lookahead
    for b in range(cfg.blocks):
        y = layers.ZeroPadding2D(((left, cfg.lookahead), (0, 0)), name=f"b{b}_pad")(x)
        y = layers.DepthwiseConv2D((cfg.kernel, 1), use_bias=False, name=f"b{b}_dw")(y)
        y = layers.BatchNormalization(name=f"b{b}_dw_bn")(y)
        y = layers.ReLU(name=f"b{b}_dw_relu")(y)
        y = layers.Conv2D(cfg.channels, 1, use_bias=False, name=f"b{b}_pw")(y)
        y = layers.BatchNormalization(name=f"b{b}_pw_bn")(y)
        y = layers.ReLU(name=f"b{b}_pw_relu")(y)
        x = layers.Add(name=f"b{b}_res")([x, y])
    x = layers.Conv2D(n_symbols, 1, name="logits")(x)
    x = layers.Reshape((-1, n_symbols), name="frames_by_symbols")(x)
    return keras.Model(inp, x, name="ctc_am")


def am_params(model: keras.Model) -> int:
    """Parameters of the inference graph (BatchNorm folded into the preceding convolution)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            k = layer.kernel.shape
            out_ch = k[2] * k[3] if isinstance(layer, layers.DepthwiseConv2D) else k[3]
            total += int(k[0] * k[1] * k[2] * k[3]) + int(out_ch)
    return total


def am_macs_per_second(model: keras.Model, cfg: AMConfig) -> float:
    """Multiply-accumulates per second of audio."""
    per_out_frame = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            k = layer.kernel.shape
            per_out_frame += int(k[0] * k[1] * k[2] * k[3])
    return per_out_frame * cfg.frontend.frame_rate / cfg.stride
