"""Speech-quality metrics: PESQ (wide-band), STOI and SI-SDR, each with the noisy reference."""

from __future__ import annotations

import numpy as np


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019)."""
    n = min(len(reference), len(estimate))
    s = np.asarray(reference[:n], np.float64)
    e = np.asarray(estimate[:n], np.float64)
    s = s - s.mean()
    e = e - e.mean()
    alpha = np.dot(e, s) / (np.dot(s, s) + 1e-12)
    target = alpha * s
    return float(10 * np.log10((np.sum(target**2) + 1e-12) / (np.sum((e - target) ** 2) + 1e-12)))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sr: int = 16000) -> float:
    """Wide-band PESQ (ITU-T P.862.2); NaN when PESQ finds no speech."""
    from pesq import PesqError, pesq

    n = min(len(reference), len(estimate))
    try:
        return float(pesq(sr, reference[:n].astype(np.float64), estimate[:n].astype(np.float64), "wb"))
    except PesqError:
        return float("nan")


def stoi(reference: np.ndarray, estimate: np.ndarray, sr: int = 16000) -> float:
    """Short-time objective intelligibility (Taal et al., 2011)."""
    from pystoi import stoi as _stoi

    n = min(len(reference), len(estimate))
    return float(_stoi(reference[:n], estimate[:n], sr, extended=False))


def all_metrics(reference: np.ndarray, estimate: np.ndarray, sr: int = 16000) -> dict[str, float]:
    return {"pesq": pesq_wb(reference, estimate, sr), "stoi": stoi(reference, estimate, sr),
            "si_sdr": si_sdr(reference, estimate)}  # fmt: skip
