"""The int8 acoustic model on the host, as the device runs it: fixed windows that overlap.

``model_int8.tflite`` beside an AM folder's float weights is the graph the device runs (batch 1,
int8 in and out, a fixed window of STFT frames, a Softmax on the output;
``firmware-export int8 am`` writes it). :class:`Int8AM` is callable like the Keras AM inside
:class:`grammar.decoding.recognizer.Recognizer` (``model(x) -> (1, ceil(T / stride), 29)`` scores whose
log-softmax the recognizer takes): the normalised log-mel is cut into windows of the model's
length, each window is quantised with the model's input scale and zero point and run through
LiteRT (its optimised kernels, within one LSB of TFLM, or with ``exact`` its reference kernels,
bit-exact with TFLM; see :mod:`rced.runtime`), and the int8 posteriors are dequantised. A window's
first output frames see its zero padding instead of the past and its last ones lack their look-ahead,
so windows overlap: window j starts j hops of output frames into the input and keeps its output frames
[context, context + hop), the first window all of its first context + hop. The context is the AM's
whole left reach and the tail its look-ahead, so every kept frame sees what it sees in the whole
input; the first window starts on the input's first frame, where its layers pad with zeros as the
float model's do on the whole input, and once the input ends, one window set on its last frames
gives the frames the regular windows have not (their look-ahead there would be the window's zero
padding where the float model pads its inner layers). So with the float weights in the windows the
posteriors are the whole-input model's for any input at least a window long (shorter ones are one
window, padded after the end). Before, the first window started ``context`` frames before the
input, on zero input features: on 720 short test commands the float AM in those windows got 61.0 %
against 64.2 % whole (benchmarks/export.py's factor rows). Back-to-back windows cost the float AM most of
its accuracy on short commands (40 % -> 8 % on 240 test utterances); 24 frames of context, about half
the left reach of an earlier AM, cost it 2.5 points at a test-set FAR of 10 % (62.9 % -> 60.4 %, 720
test utterances).

So an int8 recognition chain is a Recognizer with an :class:`rced.int8.Int8Denoiser` and an
Int8AM (``Recognizer.load(..., backend="int8")``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grammar.config import AMConfig
from grammar.errors import GrammarError
from rced.features import Normalizer

# The int8 softmax rounds every posterior below half an LSB (1/512) to 0; decoding reads this log
# posterior in its place: the float AM's mean log-posterior over those below half an LSB on the
# calibration set (TEST-ONLY voices, seed 101: 82 % of the posteriors of 1,200 utterances; measured by
# `python benchmarks/listening.py --zero-posterior`). Half an LSB itself (log -6.2) made every symbol
# the AM rules out cheap for a path: in continuous listening the int8 chain took commands for others.
ZERO_LOG_POSTERIOR = -11.61


def window_schedule(cfg: AMConfig, frames: int) -> tuple[int, int, int]:
    """(context, tail, hop) in output frames for device windows of ``frames`` STFT frames: each window
    keeps outputs [context, context + hop); the next window starts hop output frames later. The
    context is the AM's left reach and the tail its right reach, so a kept frame's receptive field
    lies inside its window."""
    left, right = cfg.reach
    return left, right, frames // cfg.stride - left - right


def window_problem(cfg: AMConfig, frames: int) -> str | None:
    """What is wrong with device windows of ``frames`` STFT frames for this AM (None: nothing): they
    must hold whole output frames, more of them than the AM's reach (context plus look-ahead), so
    that each window gives some."""
    if frames <= 0 or frames % cfg.stride:
        return f"{frames} frames is not a positive multiple of the stride {cfg.stride}"
    left, right = cfg.reach
    if window_schedule(cfg, frames)[2] <= 0:
        return (f"{frames} frames give {frames // cfg.stride} output frames, none left after the AM's {left} of "
                f"context and {right} of look-ahead (use more than {(left + right) * cfg.stride} frames)")
    return None


def am_silence(am_cfg: AMConfig, am_norm: Normalizer) -> np.ndarray:
    """(channels,) AM input of silence (its trackers settled on it): what pads a window and fills the past."""
    from grammar.acoustic.features import LOG_FLOOR, with_trackers

    return with_trackers(am_norm.apply(np.full((1, am_cfg.n_mels), np.log(LOG_FLOOR), np.float32)), am_cfg)[0][0]


def int8_command(folder: Path | None) -> str:
    """The command that writes ``model_int8.tflite`` into an AM folder (None = the shipped one)."""
    return "firmware-export int8 am" + (f" --am {folder}" if folder is not None else "")


class Int8AM:
    """(1, T, 1, channels) AM input -> (1, ceil(T / stride), 29) log-posteriors, window by window."""

    backend = "int8"
    #: Which window schedule gives the posteriors (caches of them key on it): since 2026-12 the first
    #: window starts on the input and one more ends on it; before, the first began on zeros before it.
    schedule = "on-input-2"

    def __init__(self, model_content, am_cfg: AMConfig, am_norm: Normalizer, source: str = "am int8",
                 *, exact: bool = True):  # fmt: skip
        """``model_content``: the flatbuffer, or a loaded int8 :class:`rced.runtime.Network`. ``exact``:
        LiteRT's reference kernels (bit-exact with TFLM), else its optimised ones (within one LSB, tens
        of times faster; what ``Recognizer.load(backend="int8")`` runs by default)."""
        from rced.errors import RcedError
        from rced.int8 import Int8Model
        from rced.runtime import Network

        try:
            self.model = model_content if isinstance(model_content, Network) else Int8Model(model_content, source,
                                                                                              exact=exact)  # fmt: skip
        except RcedError as exc:
            raise GrammarError(str(exc)) from None
        source = self.model.source
        self.cfg, self.norm = am_cfg, am_norm
        shape, out = self.model.input_shape, self.model.output_shape
        if len(shape) != 4 or shape[2] != 1 or shape[3] != am_cfg.input_channels:
            raise GrammarError(f"{source}: input shape {shape} does not match the AM config "
                               f"({am_cfg.input_channels} input channels)")  # fmt: skip
        problem = window_problem(am_cfg, shape[1])
        if problem is not None:
            raise GrammarError(f"{source}: its input window: {problem}")
        if out != (1, shape[1] // am_cfg.stride, am_cfg.unit_set.size):
            raise GrammarError(f"{source}: output shape {out} does not match a window of {shape[1]} frames at "
                               f"stride {am_cfg.stride}")  # fmt: skip
        self.frames = shape[1]  # the fixed device window, in STFT frames
        # context: output frames of each window that only give past; tail: those at its end whose
        # look-ahead is padding; hop: the output frames each window contributes
        self.context, self.tail, self.hop = window_schedule(am_cfg, self.frames)
        # what pads a window past the input's last frame (an input shorter than a window): normalised
        # features of 0 (the input zero point), nearest the float model's own zero padding. Digital-silence
        # features are far outside what the AM saw in training: with them, in the windows that once began
        # before the input, the float AM got 28 % of the test commands, with zeros 40 % (240 utterances)
        self.pad = np.zeros(am_cfg.input_channels, np.float32)
        self.floor = float(np.exp(ZERO_LOG_POSTERIOR))  # what a posterior the int8 softmax rounded to 0 reads

    @classmethod
    def load(cls, path: str | Path, *, exact: bool = False) -> Int8AM:
        """``model_int8.tflite`` of an AM folder (with its ``config.json`` and ``norm.json``)."""
        from rced.denoiser import load_model_folder

        folder = Path(path)
        net, cfg, norm = load_model_folder(folder, AMConfig, "acoustic-model folder", GrammarError, "int8",
                                           exact=exact, hint=int8_command(folder))  # fmt: skip
        return cls(net, cfg, norm)

    def window_start(self, j: int) -> int:
        """First input frame of window ``j``."""
        return j * self.hop * self.cfg.stride

    def window_of(self, n_out: int) -> int:
        """The window whose kept output frames hold output frame ``n_out``."""
        return 0 if n_out < self.context + self.hop else (n_out - self.context) // self.hop

    def probabilities(self, window: np.ndarray) -> np.ndarray:
        """One window: (frames, channels) AM input (shorter: padded with zeros) -> all of its
        (frames / stride, 29) dequantised posteriors."""
        from rced.runtime import dequantize, quantize

        win = np.broadcast_to(self.pad, (self.frames, len(self.pad))).copy()
        win[: len(window)] = window[: self.frames]
        q = self.model.run_int8(quantize(win[None, :, None, :], self.model.in_scale, self.model.in_zp))
        return dequantize(q, self.model.out_scale, self.model.out_zp)[0]

    def _logp(self, feats: np.ndarray, feat0: int, start: int, lo: int, hi: int) -> np.ndarray:
        """Log-posteriors of output frames [lo, hi) from the window on input frames [start, start + frames)
        (``feats`` from frame ``feat0`` on; frames past its end: zeros)."""
        p = self.probabilities(feats[start - feat0 : start - feat0 + self.frames])
        first = start // self.cfg.stride
        return np.log(np.maximum(p[lo - first : hi - first], self.floor))

    def run(self, feats: np.ndarray, feat0: int, n_feat: int, n_out: int, final: bool) -> np.ndarray:
        """Log-posteriors from output frame ``n_out`` on that input frames [0, ``n_feat``) make final
        (``feats`` holds those from frame ``feat0`` on, at least from ``needed_from``): every window
        whose frames have all come in, and with ``final`` (the input has ended) the rest up to
        ceil(n_feat / stride), from a window set on the input's last frames."""
        s, outs = self.cfg.stride, []
        while True:
            j = self.window_of(n_out)
            start = self.window_start(j)
            if start + self.frames > n_feat:
                break
            hi = (j + 1) * self.hop + self.context
            outs.append(self._logp(feats, feat0, start, n_out, hi))
            n_out = hi
        total = -(-n_feat // s)
        if final and n_out < total:  # one window ending on the last frame (rounded up to the stride)
            start = max(0, -(-(n_feat - self.frames) // s) * s)
            outs.append(self._logp(feats, feat0, start, n_out, total))
        return np.concatenate(outs) if outs else np.zeros((0, self.cfg.unit_set.size), np.float32)

    def needed_from(self, n_feat: int, n_out: int) -> int:
        """The first input frame :meth:`run` can still read, output frames [0, ``n_out``) given."""
        return max(0, min(self.window_start(self.window_of(n_out)), n_feat - self.frames))

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        feats = np.asarray(x, np.float32)[0, :, 0, :]
        return self.run(feats, 0, len(feats), 0, final=True)[None]


def int8_recognizer(am_content: bytes, rec, den_int8, grammar=None):
    """A Recognizer running the device chain on an in-memory int8 AM: ``den_int8`` (an
    :class:`rced.int8.Int8Denoiser`, or None), the int8 AM in fixed windows, the grammar decoder."""
    from grammar.decoding.recognizer import Recognizer

    return Recognizer(Int8AM(am_content, rec.config, rec.norm), rec.config, rec.norm, den_int8,
                      grammar if grammar is not None else rec.grammar, rec.path)  # fmt: skip
