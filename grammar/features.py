"""AM features: log-mel energies computed from the (enhanced) STFT magnitude.

The AM reads the same 129-bin magnitude the denoiser produces, so the device runs one FFT
per hop. A vocal-tract-length warp is a warped mel matrix, so augmentation costs one matmul.
"""

from __future__ import annotations

import functools

import numpy as np

from grammar.config import AMConfig

LOG_FLOOR = 1e-6


@functools.lru_cache(maxsize=64)
def mel_matrix(n_mels: int, n_fft: int, sr: int, fmin: float, warp: float = 1.0) -> np.ndarray:
    """(n_bins, n_mels) triangular mel filterbank; ``warp`` scales the bin frequencies (VTLP)."""
    import librosa

    fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=sr / 2, htk=True, norm=None)
    if warp != 1.0:  # read the filterbank at warped frequencies: formants move by 1/warp
        bins = np.arange(fb.shape[1])
        fb = np.stack([np.interp(bins * warp, bins, row, right=0.0) for row in fb])
    return fb.T.astype(np.float32)


def log_mel(mag: np.ndarray, cfg: AMConfig, warp: float = 1.0) -> np.ndarray:
    """(frames, bins) magnitude -> (frames, n_mels) log mel power."""
    fe = cfg.frontend
    fb = mel_matrix(cfg.n_mels, fe.n_fft, fe.sample_rate, cfg.fmin, round(warp, 3))
    return np.log(np.square(mag, dtype=np.float32) @ fb + LOG_FLOOR)
