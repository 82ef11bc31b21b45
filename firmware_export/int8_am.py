"""The int8 acoustic model on the host, as the device runs it: fixed windows, back to back.

:class:`Int8AM` is callable like the Keras AM inside :class:`grammar.recognizer.Recognizer`
(``model(x) -> (1, T/stride, 29)`` scores whose log-softmax the recognizer takes), so an int8
recognition chain is a Recognizer with an :class:`rced.int8.Int8Denoiser` and an Int8AM.
"""

from __future__ import annotations

import numpy as np

from firmware_export.convert import am_silence
from firmware_export.errors import ExportError


class Int8AM:
    """(1, T, 1, n_mels) normalised log-mel -> (1, ceil(T / stride), 29) log-posteriors, window by window."""

    def __init__(self, model_content: bytes, am_cfg, am_norm):
        from rced.int8 import Int8Model

        self.model = Int8Model(model_content, "am int8")
        self.cfg = am_cfg
        shape = self.model.input_shape
        if len(shape) != 4 or shape[2] != 1 or shape[3] != am_cfg.n_mels:
            raise ExportError(f"am int8: input shape {shape} does not match the AM config ({am_cfg.n_mels} mels)")
        self.frames = shape[1]
        self.silence = am_silence(am_cfg, am_norm)
        self.floor = 0.5 * self.model.out_scale  # the int8 softmax rounds small posteriors to 0

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        from rced.int8 import dequantize, quantize

        feats = np.asarray(x, np.float32)[0, :, 0, :]
        t = len(feats)
        n_win = max(1, -(-t // self.frames))
        padded = np.broadcast_to(self.silence, (n_win * self.frames, len(self.silence))).copy()
        padded[:t] = feats
        wins = padded.reshape(n_win, self.frames, 1, -1)
        q = self.model.run_int8(quantize(wins, self.model.in_scale, self.model.in_zp))
        p = dequantize(q, self.model.out_scale, self.model.out_zp).reshape(-1, q.shape[-1])
        return np.log(np.maximum(p, self.floor))[None, : -(-t // self.cfg.stride)]


def int8_recognizer(am_content: bytes, rec, den_int8, grammar=None):
    """A Recognizer running the device chain: int8 denoiser, int8 AM in fixed windows, grammar decoder."""
    from grammar.recognizer import Recognizer

    return Recognizer(Int8AM(am_content, rec.config, rec.norm), rec.config, rec.norm, den_int8,
                      grammar if grammar is not None else rec.grammar, rec.path)  # fmt: skip
