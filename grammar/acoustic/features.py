"""AM features: log-mel energies computed from the (enhanced) STFT magnitude.

The AM reads the same 129-bin magnitude the denoiser produces, so the device runs one FFT
per hop. A vocal-tract-length warp is a warped mel matrix, so augmentation costs one matmul.
"""

from __future__ import annotations

import functools

import numpy as np

from grammar.config import AMConfig

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
    if warp != 1.0:  # read the filterbank at warped frequencies: formants move by 1/warp
        bins = np.arange(fb.shape[1])
        fb = np.stack([np.interp(bins * warp, bins, row, right=0.0) for row in fb])
    return fb.T.astype(np.float32)


def log_mel(mag: np.ndarray, cfg: AMConfig, warp: float = 1.0) -> np.ndarray:
    """(frames, bins) magnitude -> (frames, n_mels) log mel power."""
    fe = cfg.frontend
    fb = mel_matrix(cfg.n_mels, fe.n_fft, fe.sample_rate, cfg.fmin, round(warp, 3))
    return np.log(np.square(mag, dtype=np.float32) @ fb + LOG_FLOOR)
