"""The STFT front-end: causal framing, analysis, and weighted overlap-add synthesis.

Frame ``t`` covers samples ``[t*hop - (n_fft - hop), t*hop + hop)`` of the input, so the
newest ``hop`` samples always end the frame (causal, streaming-friendly). Synthesis divides
by the overlap-added product of the analysis and synthesis windows, so analysis followed by
synthesis reconstructs the input exactly for any window whose overlap-add is non-zero.
"""

from __future__ import annotations

import numpy as np

from rced.config import FrontendConfig
from rced.errors import RcedError


def window(cfg: FrontendConfig) -> np.ndarray:
    """Periodic analysis window (also used for synthesis)."""
    n = np.arange(cfg.n_fft)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.n_fft)
    if cfg.window == "sqrt_hann":
        return np.sqrt(hann)
    if cfg.window == "hann":
        return hann
    if cfg.window == "hamming":
        return 0.54 - 0.46 * np.cos(2 * np.pi * n / cfg.n_fft)
    raise RcedError(f"unknown window {cfg.window!r}")


def ola_norm(cfg: FrontendConfig) -> np.ndarray:
    """Per-phase normaliser: sum over overlapping frames of w_analysis * w_synthesis (length hop)."""
    if cfg.n_fft % cfg.hop:
        raise RcedError(f"n_fft {cfg.n_fft} must be a multiple of hop {cfg.hop}")
    w2 = window(cfg) ** 2
    return w2.reshape(-1, cfg.hop).sum(axis=0)


def n_frames(n_samples: int, cfg: FrontendConfig) -> int:
    """Frames that cover every sample with a full set of overlapping windows."""
    return -(-n_samples // cfg.hop) + cfg.n_fft // cfg.hop - 1


def stft(audio: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Complex STFT, shape (n_frames(len), n_bins); zero padding on both ends."""
    audio = np.asarray(audio, dtype=np.float64)
    t = n_frames(len(audio), cfg)
    pad_front = cfg.n_fft - cfg.hop
    padded = np.zeros((t - 1) * cfg.hop + cfg.n_fft)
    padded[pad_front : pad_front + len(audio)] = audio
    idx = np.arange(t)[:, None] * cfg.hop + np.arange(cfg.n_fft)[None, :]
    return np.fft.rfft(padded[idx] * window(cfg), axis=1).astype(np.complex64)


def istft(spec: np.ndarray, cfg: FrontendConfig, length: int | None = None) -> np.ndarray:
    """Weighted overlap-add inverse of :func:`stft`; ``length`` trims to the original size."""
    spec = np.asarray(spec)
    t = spec.shape[0]
    k_over = cfg.n_fft // cfg.hop
    frames = np.fft.irfft(spec, n=cfg.n_fft, axis=1) * window(cfg)
    out = np.zeros((t - 1) * cfg.hop + cfg.n_fft)
    for k in range(k_over):  # vectorised over frames, one pass per overlap phase
        seg = frames[:, k * cfg.hop : (k + 1) * cfg.hop].reshape(-1)
        out[k * cfg.hop : k * cfg.hop + t * cfg.hop] += seg
    pad_front = cfg.n_fft - cfg.hop
    n_full = max(t - k_over + 1, 0) * cfg.hop  # samples covered by every overlapping frame
    out = out[pad_front : pad_front + n_full] / np.tile(ola_norm(cfg), n_full // cfg.hop)
    if length is not None:
        if length > len(out):
            raise RcedError(f"istft: asked for {length} samples, spectrum covers {len(out)}")
        out = out[:length]
    return out.astype(np.float32)


def context_windows(feat: np.ndarray, context: int, pad_value: np.ndarray | float) -> np.ndarray:
    """(frames, bins) -> (frames, bins, context): each frame with its ``context-1`` past frames.

    Oldest first along the last axis; frames before the start take ``pad_value`` (the
    feature of silence), so the result is exactly what a causal stream sees.
    """
    t, b = feat.shape
    pad = np.broadcast_to(np.asarray(pad_value, dtype=feat.dtype), (context - 1, b))
    padded = np.concatenate([pad, feat], axis=0)
    idx = np.arange(t)[:, None] + np.arange(context)[None, :]
    return padded[idx].transpose(0, 2, 1)
