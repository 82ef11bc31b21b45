"""AM features: log-mel energies computed from the (enhanced) STFT magnitude.

The AM reads the same 129-bin magnitude the denoiser produces, so the device runs one FFT
per hop. A vocal-tract-length warp is a warped mel matrix, so augmentation costs one matmul.
"""

from __future__ import annotations

import functools

import numpy as np

from grammar.config import AMConfig
from rced.features import track, tracker_gains

LOG_FLOOR = 1e-6


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def htk_mel_filterbank(n_mels: int, n_fft: int, sr: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters, unnormalised: the same numbers as
    ``librosa.filters.mel(htk=True, norm=None)`` (tested), without importing librosa (seconds of
    start-up) at inference."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    width = np.diff(edges)
    ramps = np.subtract.outer(edges, freqs)
    fb = np.zeros((n_mels, len(freqs)), np.float32)
    for i in range(n_mels):
        fb[i] = np.maximum(0.0, np.minimum(-ramps[i] / width[i], ramps[i + 2] / width[i + 1]))
    return fb


@functools.lru_cache(maxsize=64)
def mel_matrix(n_mels: int, n_fft: int, sr: int, fmin: float, warp: float = 1.0) -> np.ndarray:
    """(n_bins, n_mels) triangular mel filterbank; ``warp`` scales the bin frequencies (VTLP)."""
    fb = htk_mel_filterbank(n_mels, n_fft, sr, fmin, sr / 2)
    if warp != 1.0:  # read the filterbank at warped frequencies: a formant at f reads as one at warp * f
        bins = np.arange(fb.shape[1])
        fb = np.stack([np.interp(bins * warp, bins, row, right=0.0) for row in fb])
    return fb.T.astype(np.float32)


def log_mel(mag: np.ndarray, cfg: AMConfig, warp: float = 1.0) -> np.ndarray:
    """(frames, bins) magnitude -> (frames, n_mels) log mel power."""
    fe = cfg.frontend
    fb = mel_matrix(cfg.n_mels, fe.n_fft, fe.sample_rate, cfg.fmin, round(warp, 3))
    return np.log(np.square(mag, dtype=np.float32) @ fb + LOG_FLOOR)


def with_trackers(feats: np.ndarray, cfg: AMConfig, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalised log-mel (frames, n_mels) -> the AM's input (frames, ``cfg.input_channels``): the bands,
    then each of ``cfg.trackers`` over the means of ``cfg.tracker_bands`` adjacent bands, tracker by
    tracker. They tell the network the level and noise floor of the last seconds per band, which one
    window of frames cannot. ``state`` is :func:`rced.features.track`'s (None: start on the first
    frame); the new state is returned, so a block-by-block run equals one run on the whole input."""
    if not cfg.trackers:
        return feats, None
    feats = np.asarray(feats, np.float32)
    n, k = len(feats), len(cfg.trackers) * cfg.tracker_groups
    if n == 0:
        return np.zeros((0, feats.shape[1] + k), np.float32), state
    groups = feats.reshape(n, cfg.tracker_groups, cfg.tracker_bands).mean(axis=2)
    tracks, state = track(groups, tracker_gains(cfg), state)
    return np.concatenate([feats, tracks.reshape(n, k)], axis=1), state


#: The speech check (``grammar.decoding.recognizer.SPEECH_FLOOR``) reads how the level of the AM's
#: features rises and falls: speech does so at the syllable rate, hum, fans, noise and steady tones
#: do not. The level of a frame is the mean of its normalised log-mel bands, smoothed over
#: ``MODULATION_SMOOTH`` frames (24 ms); its change over ``MODULATION_LAG`` frames (96 ms, about
#: half a syllable) is averaged over ``MODULATION_SPAN`` frames (1 s), and an input's modulation is
#: the largest such average (so silence around one utterance does not dilute it).
MODULATION_SMOOTH = 3
MODULATION_LAG = 12
MODULATION_SPAN = 125


def frame_levels(feats: np.ndarray) -> np.ndarray:
    """(frames, n_mels) normalised log-mel features -> (frames,) level: the mean over bands."""
    return np.asarray(feats, np.float64).mean(axis=1)


def _largest_span_mean(x: np.ndarray) -> float:
    """The largest mean of ``x`` over any ``MODULATION_SPAN`` consecutive frames (the mean of all
    of them when fewer; 0 when none)."""
    if len(x) == 0:
        return 0.0
    if len(x) <= MODULATION_SPAN:
        return float(x.mean())
    total = np.concatenate([[0.0], np.cumsum(x)])
    return float((total[MODULATION_SPAN:] - total[:-MODULATION_SPAN]).max() / MODULATION_SPAN)


def speech_modulation(levels: np.ndarray) -> float:
    """The modulation of a level track (:func:`frame_levels`): the largest mean over any
    ``MODULATION_SPAN`` frames of |s[t] - s[t - MODULATION_LAG]|, s the level's moving average over
    ``MODULATION_SMOOTH`` frames (the mean over all of them when fewer; 0 when none)."""
    levels = np.asarray(levels, np.float64).reshape(-1)
    if len(levels) <= MODULATION_SMOOTH + MODULATION_LAG - 1:
        return 0.0
    smooth = np.convolve(levels, np.full(MODULATION_SMOOTH, 1.0 / MODULATION_SMOOTH), mode="valid")
    return _largest_span_mean(np.abs(smooth[MODULATION_LAG:] - smooth[:-MODULATION_LAG]))


#: The speech check's second test (``grammar.decoding.recognizer.TONAL_CEILING``): a beep, a whistle,
#: a siren, an alarm or a hum puts nearly all of a frame's power into one frequency, which the
#: analysis window spreads over a few FFT bins and so over a few adjacent mel bands (two or three
#: of the narrow bands below about 300 Hz, where a band is one bin wide); voiced speech spreads its
#: harmonics and formants, and fricatives their noise, over many. A frame is tonal when some
#: ``TONAL_BANDS`` adjacent mel bands hold at least ``TONAL_SHARE`` of its power; an input's
#: tonality is the largest share of tonal frames in any ``MODULATION_SPAN`` frames (1 s).
TONAL_BANDS = 3
TONAL_SHARE = 0.9


def frame_tonal(log_power: np.ndarray) -> np.ndarray:
    """(frames, n_mels) log-mel power (:func:`log_mel`, before normalisation) -> (frames,) 1.0 where
    the frame is tonal, else 0.0."""
    x = np.asarray(log_power, np.float64)
    if x.ndim != 2 or x.shape[1] < TONAL_BANDS:
        raise ValueError(f"frame_tonal: expected (frames, n_mels >= {TONAL_BANDS}) log-mel power, got shape {x.shape}")
    p = np.exp(x - x.max(axis=1, keepdims=True))
    c = np.concatenate([np.zeros((len(p), 1)), np.cumsum(p, axis=1)], axis=1)
    adjacent = (c[:, TONAL_BANDS:] - c[:, :-TONAL_BANDS]).max(axis=1)  # the strongest run of adjacent bands
    return (adjacent >= TONAL_SHARE * c[:, -1]).astype(np.float64)


def tonality(tonal: np.ndarray) -> float:
    """The tonality of a track of :func:`frame_tonal` flags: the largest share of tonal frames in
    any ``MODULATION_SPAN`` frames (the share over all of them when fewer; 0 when none)."""
    return _largest_span_mean(np.asarray(tonal, np.float64).reshape(-1))
