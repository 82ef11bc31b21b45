"""Streaming command spotting over a long recording (or a live microphone).

Three causal stages, each fed block by block:

1. :class:`PosteriorStream` — the recognition front-end as a stream: audio blocks in, the
   acoustic model's log-posterior frames out. It frames the audio (the same causal STFT as
   :func:`rced.frontend.stft`), masks each frame with the denoiser (its 8-frame causal context
   carried over between blocks), takes the log-mel of the enhanced magnitude, and runs the AM
   on the new frames plus the left context its receptive field needs. An AM frame is emitted
   once the AM's look-ahead for it has arrived, so the concatenated output equals
   :meth:`grammar.decoding.recognizer.Recognizer.posteriors` of the whole signal (offline == streamed).
2. :class:`Spotter` — every ``hop_s`` it decodes the last ``window_s`` of posteriors (less at the
   start of the input) against the grammar (:func:`grammar.decoding.decoder.decode`: the command must
   explain everything spoken in the window, and the grammar's threshold rejects non-command
   speech, so a command is found when some window holds it with pauses, not other words, around).
   An accepted window is aligned (CTC Viterbi of the winning expression) to find where inside the
   window the command is spoken: the first and last frame on a non-blank symbol give its start
   and end. Accepted windows whose spans overlap (or, for the same command, lie within
   ``refractory_s`` of each other) are one event; the event becomes a :class:`Detection` with the
   command, span and score of its best-scoring window (with :data:`LISTEN_VOTE`, of the best window
   of the command most of its windows name) once no later window can overlap it, so a command
   spoken once triggers once. The listener decodes at the grammar's threshold plus
   :data:`LISTEN_THRESHOLD_OFFSET` plus the command's :data:`LISTEN_COMMAND_OFFSETS` entry and keeps
   only events that :data:`LISTEN_MIN_WINDOWS` windows accepted and whose best window reaches the
   grammar's threshold plus :data:`LISTEN_BEST_OFFSET` (chosen by benchmarks/spotting.py on
   streams of Kokoro speakers no training saw). At the end of the input the windows that reach past
   it hear silence, so a command said just before the end is not cut short of windows.
3. :func:`spot` / :func:`listen_blocks` tie them together; ``grammar listen`` is the CLI
   (:func:`run_listen`): a file read block by block, standard input, or a live input device
   (:class:`Source`), each detection printed the moment it is final, Ctrl-C ending the input.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from grammar.acoustic.features import log_mel, speech_modulation, tonality
from grammar.alphabet import BLANK_ID
from grammar.decoding.decoder import Grammar, decode
from grammar.decoding.recognizer import check_duration, read_posteriors
from grammar.errors import GrammarError
from grammar.units import Units
from rced.audio import resample, truncated_wav, validate_audio
from rced.denoiser import shape_gain
from rced.frontend import window as analysis_window


@dataclasses.dataclass(frozen=True)
class Detection:
    """One spotted command: ``start``/``end`` in seconds from the start of the input, ``score``
    the decoder's confidence (the best window's), ``windows`` how many windows accepted it."""

    command: str
    start: float
    end: float
    score: float
    expression: str = ""
    windows: int = 1

    def to_json(self) -> dict:
        return {"command": self.command, "start": round(self.start, 3), "end": round(self.end, 3),
                "score": round(self.score, 4)}  # fmt: skip


# --------------------------------------------------------------------------- CTC alignment


def ctc_align(logp: np.ndarray, label: np.ndarray) -> np.ndarray | None:
    """Viterbi CTC alignment of ``label`` (symbol ids, no blanks) to (T, V) log-posteriors.

    Returns, per frame, the index into ``label`` of the symbol the best path emits there, -1 on
    a blank; None when the label cannot fit in T frames.
    """
    logp = np.asarray(logp, np.float64)
    label = np.asarray(label, np.int64)
    n_frames, n_states = len(logp), 2 * len(label) + 1
    ext = np.full(n_states, BLANK_ID, np.int64)
    ext[1::2] = label
    emis = logp[:, ext]
    skip = np.zeros(n_states, bool)
    skip[2:] = (ext[2:] != BLANK_ID) & (ext[2:] != ext[:-2])
    delta = np.full(n_states, -np.inf)
    delta[: min(2, n_states)] = emis[0, : min(2, n_states)]
    back = np.zeros((n_frames, n_states), np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    cand = np.full((3, n_states), -np.inf)
    cols = np.arange(n_states)
    for t in range(1, n_frames):
        cand[0] = delta
        cand[1, 1:] = delta[:-1]
        cand[2, 2:] = np.where(skip[2:], delta[:-2], -np.inf)
        arg = cand.argmax(axis=0)
        delta = cand[arg, cols] + emis[t]
        back[t] = arg
    ends = [n_states - 1] + ([n_states - 2] if n_states > 1 else [])
    s = max(ends, key=lambda e: delta[e])
    if not np.isfinite(delta[s]):
        return None
    path = np.empty(n_frames, np.int64)
    for t in range(n_frames - 1, -1, -1):
        path[t] = s
        s -= int(back[t, s])
    return np.where(path % 2 == 1, (path - 1) // 2, -1)


# --------------------------------------------------------------------------- streaming posteriors


def detection_measures(levels: np.ndarray, tonal: np.ndarray, frames_per_s: float, d: Detection,
                       first: int = 0) -> tuple[float, float]:  # fmt: skip
    """What the speech check reads of a detection: the modulation
    (:func:`grammar.acoustic.features.speech_modulation`) of the feature levels and the tonality
    (:func:`grammar.acoustic.features.tonality`) of the tonal flags from its start less
    :data:`SPEECH_MARGIN_S` to its end plus as much (``levels[0]`` and ``tonal[0]`` are feature
    frame ``first``; clipped to the frames given)."""
    a = max(int(np.floor((d.start - SPEECH_MARGIN_S) * frames_per_s)) - first, 0)
    b = max(int(np.ceil((d.end + SPEECH_MARGIN_S) * frames_per_s)) - first, a)
    return speech_modulation(levels[a:b]), tonality(tonal[a:b])


class PosteriorStream:
    """Causal block streaming of a :class:`~grammar.decoding.recognizer.Recognizer`'s front-end and AM.

    ``push(block)`` takes audio at the AM's sample rate (any block size) and returns the
    log-posterior frames that became final, ``flush()`` the rest at the end; concatenated they
    equal ``recognizer.posteriors(audio)``. With the int8 AM (fixed overlapping windows, as on
    the device: :class:`grammar.acoustic.int8.Int8AM`) frames come a window's hop at a time. With ``keep_spectrum`` the enhanced STFT frames are
    kept in :attr:`spectrum` (the listening path: ``rced.frontend.istft`` of them is the
    denoised audio, from the same single STFT, with the denoiser's own gain settings; the AM reads
    the plain mask at its ``input_mask_floor``: :func:`grammar.decoding.recognizer.am_front_end`).
    The features' levels and tonal flags (the speech check's tracks:
    :meth:`~grammar.decoding.recognizer.Recognizer.speech_tracks`) are kept for the last
    ``levels_kept_s`` seconds (default :data:`LEVELS_KEPT_S`; ``float("inf")``: all of them, as
    benchmarks replaying a stream need).
    """

    def __init__(self, recognizer, keep_spectrum: bool = False, levels_kept_s: float | None = None):
        self.rec = recognizer
        self.levels_kept_s = LEVELS_KEPT_S if levels_kept_s is None else levels_kept_s
        cfg = recognizer.config
        self.fe = fe = cfg.frontend
        den = recognizer.denoiser
        if den is not None:
            dfe = den.config.frontend
            if (dfe.sample_rate, dfe.n_fft, dfe.hop, dfe.window) != (fe.sample_rate, fe.n_fft, fe.hop, fe.window):
                raise GrammarError(f"listen: the denoiser's front-end {dfe} differs from the acoustic model's {fe}")
        self.stride = cfg.stride
        self.n_symbols = cfg.unit_set.size
        self.left, self.right = cfg.reach
        # a fixed-window AM (grammar.acoustic.int8.Int8AM, the device graph) runs overlapping windows, each on
        # its own: a window's outputs are final once all its frames are in
        self.window = getattr(recognizer.model, "frames", None)
        self._win = analysis_window(fe)
        self._history = np.zeros(fe.n_fft - fe.hop)
        self._pending = np.zeros(0)
        self._masks = den.raw_mask_stream() if den is not None else None
        self._release = {"ear": None, "am": None}  # rced.denoiser.shape_gain states of both paths
        self._feats = np.zeros((0, cfg.input_channels), np.float32)  # AM input from global frame _feat0 on
        self._trackers = None  # the AM's level trackers' state (Recognizer.am_input)
        self._feat0 = 0
        self._n_feat = 0
        self._n_out = 0
        self.n_samples = 0
        self.keep_spectrum = keep_spectrum
        self._spec: list[np.ndarray] = []
        self._levels = np.zeros(0)  # speech_tracks of the features from global frame _level0 on
        self._tonal = np.zeros(0)
        self._level0 = 0
        self._done = False

    @property
    def sample_rate(self) -> int:
        return self.fe.sample_rate

    @property
    def frame_s(self) -> float:
        """Seconds per AM output frame: AM frame j holds the samples [j, j + 1) * frame_s."""
        return self.stride * self.fe.hop / self.fe.sample_rate

    @property
    def spectrum(self) -> np.ndarray:
        """(frames, bins) enhanced complex STFT so far (only with ``keep_spectrum``)."""
        if not self._spec:
            return np.zeros((0, self.fe.n_bins), np.complex64)
        return np.concatenate(self._spec)

    def _frames(self, samples: np.ndarray) -> None:
        """STFT frames of ``samples`` (a multiple of hop) after the history; enhance; log-mel features."""
        fe = self.fe
        n = len(samples) // fe.hop
        if n == 0:
            return
        buf = np.concatenate([self._history, samples])
        self._history = buf[len(buf) - (fe.n_fft - fe.hop) :]
        idx = np.arange(n)[:, None] * fe.hop + np.arange(fe.n_fft)[None, :]
        spec = np.fft.rfft(buf[idx] * self._win, axis=1).astype(np.complex64)
        heard = spec
        if self.rec.denoiser is not None:
            # one network run; each path shapes the ratio mask with its own settings and state
            ear, am = self.rec.denoiser, self.rec.am_denoiser
            raw = self._masks(np.abs(spec))
            gain, self._release["ear"] = shape_gain(raw, ear.config, self._release["ear"])
            heard = spec * gain
            gain, self._release["am"] = shape_gain(raw, am.config, self._release["am"])
            spec = spec * gain
        if self.keep_spectrum:
            self._spec.append(heard)
        feats = self.rec.norm.apply(log_mel(np.abs(spec), self.rec.config))
        x, self._trackers = self.rec.am_input(feats, self._trackers)
        self._feats = np.concatenate([self._feats, x])
        self._n_feat += n
        levels, tonal = self.rec.speech_tracks(feats)
        self._levels = np.concatenate([self._levels, levels])
        self._tonal = np.concatenate([self._tonal, tonal])
        drop = len(self._levels) - int(min(self.levels_kept_s, 1e9) * self.fe.sample_rate / self.fe.hop)
        if drop > 0:  # only the last LEVELS_KEPT_S seconds are ever checked
            self._levels, self._tonal = self._levels[drop:], self._tonal[drop:]
            self._level0 += drop

    @property
    def levels(self) -> np.ndarray:
        """The feature frames' levels (:func:`grammar.acoustic.features.frame_levels`) kept: the last
        ``levels_kept_s`` seconds, from global feature frame :attr:`levels_start` on."""
        return self._levels

    @property
    def tonal(self) -> np.ndarray:
        """The feature frames' tonal flags (:func:`grammar.acoustic.features.frame_tonal`) kept, as
        :attr:`levels`."""
        return self._tonal

    @property
    def levels_start(self) -> int:
        return self._level0

    def detection_measures(self, d: Detection) -> tuple[float, float]:
        """:func:`detection_measures` of ``d`` over the tracks kept: (modulation, tonality)."""
        return detection_measures(self._levels, self._tonal, self.fe.sample_rate / self.fe.hop, d, self._level0)

    def _run_windows(self, final: bool) -> np.ndarray:
        """Fixed-window AM: run every window whose frames are all in (at the end: the rest, as offline)."""
        m = self.rec.model
        out = m.run(self._feats, self._feat0, self._n_feat, self._n_out, final)
        self._n_out += len(out)
        keep = m.needed_from(self._n_feat, self._n_out)  # drop features no later window needs
        self._feats = self._feats[keep - self._feat0 :]
        self._feat0 = keep
        out = read_posteriors(out, self.rec.config)  # as Recognizer.posteriors
        return out.astype(np.float32)

    def _run_am(self, final: bool) -> np.ndarray:
        """AM outputs that became exact: all whose look-ahead has arrived (all of them at the end)."""
        s = self.stride
        if final:
            pad = (-self._n_feat) % s  # as Recognizer.posteriors: repeat the last frame
            if pad and len(self._feats):
                self._feats = np.concatenate([self._feats, np.repeat(self._feats[-1:], pad, axis=0)])
                self._n_feat += pad
        if self.window is not None:
            return self._run_windows(final)
        if final:
            stop = self._n_feat // s
        else:
            stop = self._n_feat // s - self.right
        if stop <= self._n_out:
            return np.zeros((0, self.n_symbols), np.float32)
        f0 = max(0, s * (self._n_out - self.left))
        f1 = self._n_feat if final else s * (stop + self.right)
        chunk = self._feats[f0 - self._feat0 : f1 - self._feat0]
        out = self.rec.log_posteriors(chunk)[self._n_out - f0 // s : stop - f0 // s]
        self._n_out = stop
        keep = max(0, s * (self._n_out - self.left))  # drop features no later chunk needs
        self._feats = self._feats[keep - self._feat0 :]
        self._feat0 = keep
        return out.astype(np.float32)

    def push(self, block: np.ndarray) -> np.ndarray:
        if self._done:
            raise GrammarError("listen: push() after flush()")
        block = np.asarray(block, np.float32).reshape(-1)
        if len(block):
            block = validate_audio(block, "stream block")
        self.n_samples += len(block)
        self._pending = np.concatenate([self._pending, block])
        n = (len(self._pending) // self.fe.hop) * self.fe.hop
        if n:
            self._frames(self._pending[:n])
            self._pending = self._pending[n:]
        return self._run_am(final=False)

    def flush(self) -> np.ndarray:
        """The remaining frames: the tail is zero-padded exactly as :func:`rced.frontend.stft` pads."""
        if self._done:
            return np.zeros((0, self.n_symbols), np.float32)
        if self.n_samples == 0:
            raise GrammarError("listen: empty audio (no samples)")
        fe = self.fe
        tail = np.concatenate([self._pending, np.zeros((-len(self._pending)) % fe.hop + fe.n_fft - fe.hop)])
        self._pending = np.zeros(0)
        self._frames(tail)
        self._done = True
        return self._run_am(final=True)


# --------------------------------------------------------------------------- spotting


#: How ``grammar listen`` turns windows into detections, chosen with the window length on two
#: development streams of eight Kokoro speakers no training saw, a conversation and demo scenes
#: (``python benchmarks/spotting.py``, its ``choose`` and levers; benchmarks/results/spotting.md): an event
#: becomes a detection when at least ``LISTEN_MIN_WINDOWS`` windows accepted its command, each
#: window accepting at the grammar's threshold plus ``LISTEN_THRESHOLD_OFFSET`` plus its command's
#: entry in ``LISTEN_COMMAND_OFFSETS``, and only when the event's best window also reaches the
#: grammar's threshold plus ``LISTEN_BEST_OFFSET`` (a second, stricter check; None: none). A command
#: said to the device lies whole in several successive windows; a stretch of other talk that looks
#: like one seldom does, so asking for several lets each window accept more readily.
LISTEN_MIN_WINDOWS = 3
LISTEN_THRESHOLD_OFFSET = -1.2
LISTEN_BEST_OFFSET: float | None = -1.1
#: Per-command thresholds (a command not named here: 0), from the same benchmark's per-command lever:
#: lambda times how high the dev streams' windows of other talk score for each command of the default
#: grammar, less the median command's (``impostor_levels``, ``command_offsets``). With the AM's
#: posterior readout (``AMConfig.posterior_scale``, ``blank_penalty``) the rule puts 2-s windows with
#: one threshold first (with the stage-6 AM and the stricter check: 223 dev commands on the worse
#: chains of the two streams, against 220 for 2.5-s windows with per-command thresholds:
#: benchmarks/results/spotting.md), so none is shipped.
LISTEN_COMMAND_OFFSETS: Mapping[str, float] = types.MappingProxyType({})
#: Whether an event's command is the one most of its accepted windows name (:class:`Events`' vote)
#: rather than its best window's. The same benchmark's rule puts the vote (with the stricter check, at
#: the two offsets above) first: 121 + 109 = 230 dev commands on the worse chains of the two streams,
#: against 223 for the stricter check alone (-1.45, best -0.95), so it ships.
LISTEN_VOTE = True
#: The windows: the last ``LISTEN_WINDOW_S`` seconds decoded every ``LISTEN_HOP_S`` (also the block
#: size); accepted windows of one command within ``LISTEN_REFRACTORY_S`` of each other are one event.
#: 2-s windows and 2.5-s ones find about as many dev commands (the spotting levers); an event is final a
#: window plus the refractory time after the command ends.
LISTEN_WINDOW_S = 2.0
LISTEN_HOP_S = 0.25
LISTEN_REFRACTORY_S = 0.3
#: When the input ends, a window's hit counts only if at least ``LISTEN_TAIL_S`` seconds of the input
#: follow its last character: a command is heard whole only once its end is heard. Without it the
#: silence the spotter pads the input with (:meth:`Spotter.flush`) completes whatever the input
#: was cut in, and every padded window sees that same fragment (the int8 demo scene's last 0.13 s
#: of babble was taken for "mute" by three of them).
LISTEN_TAIL_S = 0.1
#: The speech check of a detection reads the features from its start less ``SPEECH_MARGIN_S`` to
#: its end plus as much; the stream keeps the last ``LEVELS_KEPT_S`` seconds of its tracks (a
#: detection is final a window and the refractory time after its end).
SPEECH_MARGIN_S = 0.5
LEVELS_KEPT_S = 8.0


def check_offsets(offsets: Mapping[str, float] | None) -> dict[str, float]:
    """Per-command threshold offsets as a plain dict (None: none), every value a finite number."""
    if offsets is None:
        return {}
    if not isinstance(offsets, Mapping):
        raise GrammarError(f"listen: per-command offsets must map commands to numbers, got {type(offsets).__name__}")
    out = {}
    for cmd, v in offsets.items():
        try:
            out[str(cmd)] = float(v)
        except (TypeError, ValueError):
            raise GrammarError(f"listen: the offset of {cmd!r} must be a number, got {v!r}") from None
        if not np.isfinite(out[str(cmd)]):
            raise GrammarError(f"listen: the offset of {cmd!r} must be a finite number, got {v!r}")
    return out


@dataclasses.dataclass(frozen=True)
class WindowHit:
    """The best expression of one decoded window, where the CTC alignment puts it (global AM
    frames ``first``..``last``), and its confidence."""

    command: str
    expression: str
    first: int
    last: int
    score: float


class Events:
    """Merges the hits of successive windows into detections, window by window.

    A hit joins the open event when it overlaps the event's best hit, or repeats its command
    within ``refractory_s`` seconds; the event is final once a window starts past its best hit's end
    plus the refractory time. The detection is the best hit's command, span and score; events with
    fewer than ``min_windows`` hits of that command are dropped (a command said to the device is
    seen whole by several successive windows; a fragment of other speech that looks like one
    seldom is), and so are events whose best score is below ``min_best``. With ``vote`` the event's
    command is the one most of its hits name (ties: the one with the best hit), and the detection
    that command's best hit: one window that scores a near miss highest does not outvote the rest.
    """

    def __init__(self, frame_s: float, refractory_s: float, min_windows: int = 1, min_best: float = -np.inf,
                 vote: bool = False):  # fmt: skip
        check_min_windows(min_windows)
        if np.isnan(min_best):
            raise GrammarError("listen: the events' best-score floor must be a number, got NaN")
        self.frame_s, self.min_windows, self.min_best = float(frame_s), min_windows, float(min_best)
        self.vote = bool(vote)
        self.refractory = int(round(refractory_s / frame_s))  # in AM frames
        self._group: list[WindowHit] = []

    def window(self, start: int, hit: WindowHit | None) -> list[Detection]:
        """The window starting at AM frame ``start`` accepted ``hit`` (None: it accepted nothing)."""
        out = []
        if self._group and start > self._best().last + self.refractory:
            out += self._finalise()
        if hit is not None:
            if self._group and not self._joins(hit):
                out += self._finalise()
            self._group.append(hit)
        return out

    def flush(self) -> list[Detection]:
        return self._finalise() if self._group else []

    def _best(self) -> WindowHit:
        return max(self._group, key=lambda h: h.score)  # ties: the earliest window

    def _joins(self, hit: WindowHit) -> bool:
        best = self._best()
        if hit.first <= best.last and hit.last >= best.first:
            return True
        return hit.command == best.command and hit.first <= best.last + self.refractory

    def _finalise(self) -> list[Detection]:
        votes = collections.Counter(h.command for h in self._group)
        if self.vote:
            best = max(self._group, key=lambda h: (votes[h.command], h.score))  # ties: the earliest window
        else:
            best = self._best()
        n = votes[best.command]
        self._group = []
        if n < self.min_windows or best.score < self.min_best:
            return []
        return [Detection(best.command, best.first * self.frame_s, (best.last + 1) * self.frame_s, best.score,
                          best.expression, n)]  # fmt: skip


def check_windows(window_s: float, hop_s: float, window_name: str = "window", hop_name: str = "hop") -> None:
    """A one-line GrammarError unless the window and hop are positive seconds and the hop is no
    longer than the window (audio would be skipped); the names are what the message calls them
    (``grammar listen`` checks its options with it before anything is printed)."""
    for name, v in ((window_name, window_s), (hop_name, hop_s)):
        if not (np.isfinite(v) and v > 0):
            raise GrammarError(f"listen: {name} {v}: must be a positive number of seconds")
    if hop_s > window_s:
        raise GrammarError(f"listen: {hop_name} {hop_s} is longer than {window_name} {window_s} (audio would be skipped)")


def check_min_windows(min_windows: int, name: str = "min_windows") -> None:
    """A one-line GrammarError unless an event needs at least one window (``name``: what the message
    calls it)."""
    if min_windows < 1:
        raise GrammarError(f"listen: {name} {min_windows}: must be at least 1")


def check_offset(offset: float, name: str) -> None:
    """A one-line GrammarError unless a threshold offset (called ``name``) is a finite number."""
    if not np.isfinite(offset):
        raise GrammarError(f"listen: {name} {offset}: must be a finite number")


def silent_frames(n: int, n_symbols: int) -> np.ndarray:
    """``n`` log-posterior frames of silence: the blank certain, every other symbol impossible."""
    out = np.full((max(0, n), n_symbols), -np.inf, np.float32)
    out[:, BLANK_ID] = 0.0
    return out


class Spotter:
    """Sliding-window grammar decoding over a stream of log-posterior frames; merges windows into detections.

    ``push(frames)`` returns the detections that became final; ``flush()`` the rest. Windows accept
    at the grammar's threshold plus the ``offsets`` entry of the window's command (per-command
    thresholds; a command not in it: 0); ``min_windows``, ``min_best`` and ``vote``: see :class:`Events`. With
    ``record`` every decoded window's start and best hit (accepted or not) is kept in
    :attr:`records`, from which :func:`replay` gives the detections at any other threshold.
    """

    def __init__(self, grammar: Grammar, frame_s: float, window_s: float = LISTEN_WINDOW_S, hop_s: float = LISTEN_HOP_S,
                 refractory_s: float = LISTEN_REFRACTORY_S, score_kind: str | None = None, spot: bool = False,
                 min_windows: int = 1, min_best: float = -np.inf, record: bool = False,
                 offsets: Mapping[str, float] | None = None, vote: bool = False):  # fmt: skip
        if grammar is None:
            raise GrammarError("listen: no grammar loaded")
        check_windows(window_s, hop_s)
        if refractory_s < 0:
            raise GrammarError(f"listen: refractory time {refractory_s} s must not be negative")
        # spot: keyword-spotting decoding (other speech in a window costs a command nothing); off by
        # default: it loses to whole-window decoding on isolated utterances (benchmarks/rejection.py)
        # and in conversation (benchmarks/spotting.py's levers)
        self.grammar, self.frame_s, self.score_kind, self.spot = grammar, float(frame_s), score_kind, spot
        self.offsets = check_offsets(offsets)
        self.win = max(1, int(round(window_s / frame_s)))
        self.hop = max(1, int(round(hop_s / frame_s)))
        self.events = Events(self.frame_s, refractory_s, min_windows, min_best, vote)
        self.records: list[tuple[int, WindowHit | None]] | None = [] if record else None
        self._buf = np.zeros((0, Units(grammar.units).size), np.float32)
        self._buf0 = 0  # global frame index of _buf[0]
        self._n = 0
        self._next_end = self.hop  # windows grow from the start until they reach window_s
        self._last_end = 0  # end of the last decoded window
        self._input_end: int | None = None  # frames of input, once flush() says it ended
        self._tail = int(round(LISTEN_TAIL_S / frame_s))
        self.windows_decoded = 0

    def _frames(self, a: int, b: int) -> np.ndarray:
        return self._buf[a - self._buf0 : b - self._buf0]

    def _hit(self, a: int, b: int) -> tuple[WindowHit | None, bool]:
        """Window [a, b): its best expression placed by alignment (None if it cannot be, or if it
        is rejected and not recorded), and whether the grammar accepts it."""
        logp = self._frames(a, b)
        self.windows_decoded += 1
        self._last_end = b
        d = decode(logp, self.grammar, self.score_kind, spot=self.spot)
        cmd = self.grammar.commands[self.grammar.command_of[d.expression]]
        accepted = bool(d.score >= self.grammar.threshold_for(self.spot) + self.offsets.get(cmd, 0.0))
        if not np.isfinite(d.log_likelihoods[d.expression]) or not (accepted or self.records is not None):
            return None, False
        path = ctc_align(logp, self.grammar.labels[d.expression])
        spoken = np.nonzero(path >= 0)[0] if path is not None else np.zeros(0, int)
        if not len(spoken):
            return None, False
        if self._input_end is not None and a + int(spoken[-1]) >= self._input_end - self._tail:
            return None, False  # cut by the end of the input (LISTEN_TAIL_S)
        hit = WindowHit(cmd, self.grammar.expressions[d.expression], a + int(spoken[0]), a + int(spoken[-1]),
                        float(d.score))  # fmt: skip
        return hit, accepted

    def _decide(self, a: int, b: int) -> list[Detection]:
        """Decode window [a, b) and hand it to the events."""
        hit, accepted = self._hit(a, b)
        if self.records is not None:
            self.records.append((a, hit))
        return self.events.window(a, hit if accepted else None)

    def push(self, logp: np.ndarray) -> list[Detection]:
        logp = np.asarray(logp, np.float32)
        if logp.size == 0:
            return []
        self._buf = np.concatenate([self._buf, logp])
        self._n += len(logp)
        out: list[Detection] = []
        while self._n >= self._next_end:
            out += self._decide(max(0, self._next_end - self.win), self._next_end)
            self._next_end += self.hop
        keep = max(0, self._next_end - self.win)
        if keep > self._buf0:
            self._buf = self._buf[keep - self._buf0 :]
            self._buf0 = keep
        return out

    def flush(self) -> list[Detection]:
        """The input ends in silence: decode the windows that reach past its end as if it went on
        with nothing but blanks (:func:`silent_frames`), so that a command said just before the end
        is seen by as many windows as one said mid-stream, then close the event. A hit that ends
        within :data:`LISTEN_TAIL_S` of the input's end is not counted: the input may have cut it."""
        out: list[Detection] = []
        if self._n:
            self._input_end = self._n
            out += self.push(silent_frames(self.win - self.hop, self._buf.shape[1]))
            if self._last_end < self._n:
                out += self._decide(max(0, self._n - self.win), self._n)
        return out + self.events.flush()


def window_records(logp: np.ndarray, grammar: Grammar, frame_s: float, window_s: float = LISTEN_WINDOW_S, hop_s: float = LISTEN_HOP_S,
                   score_kind: str | None = None, spot: bool = False) -> list[tuple[int, WindowHit | None]]:  # fmt: skip
    """Every window's start and best hit over a whole stream of log-posteriors, whatever its score:
    what :func:`replay` needs to give the spotter's detections at any threshold without decoding again."""
    sp = Spotter(grammar, frame_s, window_s, hop_s, score_kind=score_kind, spot=spot, record=True)
    sp.push(logp)
    sp.flush()
    return sp.records


def replay(records: Sequence[tuple[int, WindowHit | None]], threshold: float, frame_s: float,
           refractory_s: float = LISTEN_REFRACTORY_S, min_windows: int = 1, min_best: float = -np.inf,
           offsets: Mapping[str, float] | None = None, vote: bool = False) -> list[Detection]:  # fmt: skip
    """The detections a :class:`Spotter` with this threshold (and these event settings and
    per-command ``offsets``) gives on the stream the ``records`` come from: a hit counts when its
    score is >= ``threshold`` plus its command's offset."""
    offsets = check_offsets(offsets)
    ev = Events(frame_s, refractory_s, min_windows, min_best, vote)
    out: list[Detection] = []
    for start, hit in records:
        ok = hit is not None and hit.score >= threshold + offsets.get(hit.command, 0.0)
        out += ev.window(start, hit if ok else None)
    return out + ev.flush()


def _moved_threshold(recognizer, grammar: Grammar | None, offset: float, what: str) -> tuple[Grammar, float]:
    """The recognizer's grammar (for its backend) and its threshold moved by ``offset`` (``what``
    names the offset in the error when it is not a finite number)."""
    check_offset(offset, what)
    g = recognizer.decoding_grammar(grammar)
    if g is None:
        raise GrammarError("listen: no grammar loaded")
    return g, g.threshold + offset


def listening_grammar(recognizer, grammar: Grammar | None = None,
                      threshold_offset: float = LISTEN_THRESHOLD_OFFSET) -> Grammar:  # fmt: skip
    """The grammar a listener's windows are decoded with: the recognizer's (for its backend), its
    threshold moved by ``threshold_offset``."""
    g, threshold = _moved_threshold(recognizer, grammar, threshold_offset, "threshold offset")
    return g.with_threshold(threshold)


def best_floor(recognizer, grammar: Grammar | None, best_offset: float | None) -> float:
    """The score an event's best window must reach: the recognizer's grammar threshold (for its
    backend) plus ``best_offset``; -inf for None (no stricter check)."""
    if best_offset is None:
        return -np.inf
    return _moved_threshold(recognizer, grammar, best_offset, "best-window offset")[1]


def listen_blocks(recognizer, blocks: Iterable[np.ndarray], window_s: float = LISTEN_WINDOW_S, hop_s: float = LISTEN_HOP_S, *,
                  grammar: Grammar | None = None, refractory_s: float = LISTEN_REFRACTORY_S, stream: PosteriorStream | None = None,
                  name: str = "input", stop: Callable[[], bool] | None = None, min_windows: int = LISTEN_MIN_WINDOWS,
                  threshold_offset: float = LISTEN_THRESHOLD_OFFSET,
                  offsets: Mapping[str, float] | None = LISTEN_COMMAND_OFFSETS,
                  best_offset: float | None = LISTEN_BEST_OFFSET, speech_check: bool = True,
                  vote: bool = LISTEN_VOTE) -> Iterator[Detection]:  # fmt: skip
    """Detections, each yielded as soon as it is final, from audio blocks at the recognizer's sample rate.

    ``stop`` is asked before each block: when it says True (Ctrl-C) the input ends there and what
    was heard is still decoded. An input that ends by itself and is shorter than the AM's receptive
    field is the error :func:`grammar.decoding.recognizer.check_duration` gives ``recognize`` (named ``name``).
    ``min_windows``, ``threshold_offset``, the per-command ``offsets`` and ``best_offset`` (None: no
    stricter check): see :data:`LISTEN_MIN_WINDOWS`; ``vote``: :data:`LISTEN_VOTE`. A detection that fails the recognizer's speech
    check (``recognizer.sounds_like_speech``, over :data:`SPEECH_MARGIN_S` around it) is dropped, unless
    ``speech_check`` is False (the way to count both from one pass: the stream's tracks stay).
    """
    stream = stream or PosteriorStream(recognizer)
    spotter = Spotter(listening_grammar(recognizer, grammar, threshold_offset), stream.frame_s, window_s, hop_s,
                      refractory_s, min_windows=min_windows, offsets=offsets,
                      min_best=best_floor(recognizer, grammar, best_offset), vote=vote)  # fmt: skip

    def speech(dets: list[Detection]) -> Iterator[Detection]:  # the speech check of each detection
        if not speech_check:
            return iter(dets)
        return (d for d in dets if recognizer.sounds_like_speech(*stream.detection_measures(d)))

    cut = False
    for block in blocks:
        if stop is not None and stop():
            cut = True
            break
        yield from speech(spotter.push(stream.push(block)))
    if not cut:
        check_duration(stream.n_samples, recognizer.config, name)
    if stream.n_samples:
        yield from speech(spotter.push(stream.flush()))
    yield from speech(spotter.flush())


def spot(recognizer, audio: np.ndarray, sr: int, window_s: float = LISTEN_WINDOW_S, hop_s: float = LISTEN_HOP_S, *,
         grammar: Grammar | None = None, refractory_s: float = LISTEN_REFRACTORY_S, block_s: float | None = None,
         stream: PosteriorStream | None = None, name: str = "input", min_windows: int = LISTEN_MIN_WINDOWS,
         threshold_offset: float = LISTEN_THRESHOLD_OFFSET,
         offsets: Mapping[str, float] | None = LISTEN_COMMAND_OFFSETS,
         best_offset: float | None = LISTEN_BEST_OFFSET, speech_check: bool = True,
         vote: bool = LISTEN_VOTE) -> list[Detection]:  # fmt: skip
    """Spot the grammar's commands in a long recording, streamed through the chain in blocks.

    ``audio``: mono, any rate (resampled to the model's). Blocks are ``block_s`` long (default:
    ``hop_s``, what a live device would buffer). Returns the detections in time order;
    ``speech_check`` False keeps those the speech check would drop (see :func:`listen_blocks`).
    """
    audio = validate_audio(audio, name)
    if audio.ndim != 1:
        raise GrammarError(f"{name}: expected mono audio, got shape {audio.shape}")
    stream = stream or PosteriorStream(recognizer)
    x = resample(audio, sr, stream.sample_rate)
    block = max(1, int(round((block_s or hop_s) * stream.sample_rate)))
    blocks = (x[i : i + block] for i in range(0, len(x), block))
    return list(listen_blocks(recognizer, blocks, window_s, hop_s, grammar=grammar, refractory_s=refractory_s,
                              stream=stream, name=name, min_windows=min_windows,
                              threshold_offset=threshold_offset, offsets=offsets, best_offset=best_offset,
                              speech_check=speech_check, vote=vote))  # fmt: skip


# --------------------------------------------------------------------------- inputs

STDIN = "-"  # the INPUT that means standard input


@dataclasses.dataclass(frozen=True)
class Source:
    """Audio for ``grammar listen``: ``blocks(sample_rate, block_s)`` yields mono float32 blocks of
    ``block_s`` at ``sample_rate``, read as they are needed; ``seconds``: the length when known (a file)."""

    name: str
    blocks: Callable[[int, float], Iterator[np.ndarray]]
    seconds: float | None = None


def file_source(path: str | Path) -> Source:
    """An audio file, read block by block (never whole). Every check runs now, before any work:
    missing, empty, unreadable, truncated, NaN anywhere (:class:`rced.audio.AudioBlocks`)."""
    import soundfile as sf

    from rced.audio import AudioBlocks, rechunk

    reader = AudioBlocks(path)

    def blocks(sr: int, block_s: float) -> Iterator[np.ndarray]:
        reader.sr = sr
        yield from rechunk(reader, max(1, int(round(block_s * sr))))

    return Source(str(path), blocks, float(sf.info(str(path)).duration))


def stdin_source() -> Source:
    """Standard input as an audio stream: WAV (as ``sox ... -t wav -``, ``arecord``, ``ffmpeg -f wav -``
    write it into a pipe) or any format libsndfile reads from a pipe; any rate and channels. The
    header is read now (a one-line error if it is not audio); samples as they arrive."""
    import soundfile as sf

    name = "standard input"
    if sys.stdin is None or sys.stdin.isatty():
        raise GrammarError(f"{name} is a terminal: pipe a WAV stream into `grammar listen -`")
    try:
        fh = sf.SoundFile(sys.stdin.fileno(), closefd=False)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        msg = str(exc).splitlines()[0].replace("Error opening 0: ", "") if str(exc) else type(exc).__name__
        raise GrammarError(f"{name}: not a WAV stream libsndfile can read from a pipe ({msg})") from None

    promised = _promised_data_bytes(fh)

    def blocks(sr: int, block_s: float) -> Iterator[np.ndarray]:
        import soxr

        rs = None if fh.samplerate == sr else soxr.ResampleStream(fh.samplerate, sr, 1, dtype="float32", quality="HQ")
        step = max(1, int(round(block_s * fh.samplerate)))
        n = 0
        with fh:
            while len(data := fh.read(step, dtype="float32", always_2d=True)):
                n += len(data)
                x = validate_audio(data, name).mean(axis=1)
                yield x if rs is None else rs.resample_chunk(x).astype(np.float32, copy=False)
        if promised is not None and n < fh.frames:  # as a truncated file is refused
            raise truncated_wav(name, promised, n * promised // fh.frames, "the stream ended after")
        if rs is not None:
            yield rs.resample_chunk(np.zeros(0, np.float32), last=True).astype(np.float32, copy=False)

    return Source(name, blocks)


def _promised_data_bytes(fh) -> int | None:
    """The data size the header of a WAV stream promised (libsndfile's header log names it); None for
    another format or a size that promises nothing (:data:`rced.audio.STREAMING_DATA_SIZES`)."""
    import re

    from rced.audio import STREAMING_DATA_SIZES

    sizes = re.findall(r"^data : (\d+)", fh.extra_info, re.MULTILINE) if fh.format in ("WAV", "WAVEX") else []
    if not sizes or int(sizes[-1]) in STREAMING_DATA_SIZES or fh.frames <= 0:
        return None
    return int(sizes[-1])


def device_source(device, max_seconds: float | None = None) -> Source:
    """A live input device, the pair :func:`open_input_device` returned; until ``max_seconds`` or Ctrl-C."""
    sd, dev = device
    return Source(f"input device {'default' if dev is None else dev}",
                  lambda sr, block_s: microphone_blocks(sd, dev, sr, block_s, max_seconds))  # fmt: skip


# --------------------------------------------------------------------------- live microphone


def open_input_device(device: str | int | None):
    """(sounddevice module, device) after checking that both exist: a one-line GrammarError otherwise.

    ``sounddevice`` is an optional dependency, imported only here.
    """
    name = "default" if device is None else device
    try:
        import sounddevice as sd
    except ImportError:
        raise GrammarError("--device: the 'sounddevice' module is not installed (pip install sounddevice)") from None
    except OSError as exc:  # the module is there, the PortAudio library is not
        raise GrammarError(f"--device: sounddevice cannot load PortAudio ({exc})") from None
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        sd.query_devices(device, kind="input")
    except Exception as exc:  # sounddevice raises ValueError / PortAudioError
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GrammarError(f"--device {name}: no audio input device ({msg})") from None
    return sd, device


def microphone_blocks(sd, device, sample_rate: int, block_s: float,
                      max_seconds: float | None = None) -> Iterator[np.ndarray]:  # fmt: skip
    """Mono float32 blocks of ``block_s`` from an input device (see :func:`open_input_device`),
    until ``max_seconds`` of audio (None: until Ctrl-C)."""
    import queue

    q: queue.Queue = queue.Queue()

    def callback(indata, frames, time, status):
        if status:
            print(f"grammar: listen: {status}", file=sys.stderr)
        q.put(np.asarray(indata, np.float32)[:, 0].copy())

    block = max(1, int(round(block_s * sample_rate)))
    left = None if max_seconds is None else int(round(max_seconds * sample_rate))
    try:
        stream = sd.InputStream(device=device, channels=1, samplerate=sample_rate, blocksize=block,
                                dtype="float32", callback=callback)  # fmt: skip
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GrammarError(f"--device {device}: cannot record at {sample_rate} Hz ({msg})") from None
    with stream:
        while left is None or left > 0:
            try:
                x = q.get(timeout=0.2)  # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                continue
            if left is not None:
                x, left = x[:left], left - len(x)
            yield x


def format_detection(d: Detection) -> str:
    return f"{d.start:7.2f}  {d.end:7.2f}  {d.score:8.3f}  {d.command}"


@contextlib.contextmanager
def first_interrupt_stops() -> Iterator[Callable[[], bool]]:
    """Within: the first Ctrl-C only raises a flag (the returned function reads it), so the input
    ends at the next block and what was heard is still decoded and reported; a second Ctrl-C stops
    at once (KeyboardInterrupt). Outside the main thread, Ctrl-C is left as it is."""
    hit = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, frame):
        if hit:
            raise KeyboardInterrupt
        hit.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, previous)


def run_listen(recognizer, source: Source, *, window_s: float, hop_s: float, emit: Callable[[Detection], None],
               progress: bool = False, min_windows: int = LISTEN_MIN_WINDOWS,
               threshold_offset: float = LISTEN_THRESHOLD_OFFSET,
               offsets: Mapping[str, float] | None = LISTEN_COMMAND_OFFSETS,
               best_offset: float | None = LISTEN_BEST_OFFSET, vote: bool = LISTEN_VOTE) -> tuple[int, bool]:  # fmt: skip
    """The CLI's loop: ``source`` through the chain in ``hop_s`` blocks, ``emit`` each detection the
    moment it is final. ``progress``: a bar on stderr (when it is a terminal and the length is known).
    Ctrl-C ends the input (:func:`first_interrupt_stops`). Returns (detections, interrupted)."""
    from tqdm import tqdm

    stream = PosteriorStream(recognizer)
    bar = tqdm(total=source.seconds, unit="s", desc="listening", file=sys.stderr, leave=False,
               disable=not (progress and source.seconds and sys.stderr.isatty()),
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")  # fmt: skip

    def blocks() -> Iterator[np.ndarray]:
        for x in source.blocks(stream.sample_rate, hop_s):
            yield x
            bar.update(len(x) / stream.sample_rate)

    n = 0
    with bar, first_interrupt_stops() as stopped:
        for d in listen_blocks(recognizer, blocks(), window_s, hop_s, stream=stream, name=source.name, stop=stopped,
                               min_windows=min_windows, threshold_offset=threshold_offset, offsets=offsets,
                               best_offset=best_offset, vote=vote):
            with tqdm.external_write_mode(file=sys.stdout):  # the bar steps aside for the line
                emit(d)
            n += 1
        return n, stopped()
