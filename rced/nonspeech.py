"""Non-speech sounds a device hears: mains and motor hum, coloured noise, beeps, sweeps, clicks and
simple music.

A recognizer trained only on speech (in babble) may hear a low hum as a nasal ("mute"); these
clips are the negatives of the acoustic model's training (an empty transcript: all blank) and of
``benchmarks/nonspeech.py``, which counts how many a chain takes for a command. Every clip is
made from a seed alone, so training and benchmark sets are disjoint by seed.
"""

from __future__ import annotations

import numpy as np

from rced.errors import RcedError

KINDS = ("hum", "noise", "tones", "sweep", "clicks", "music")


def _harmonics(f0: np.ndarray, sr: int, n: int, tilt_db: float, rng: np.random.Generator) -> np.ndarray:
    """A harmonic tone following the instantaneous fundamental ``f0`` (Hz per sample), harmonics
    below Nyquist falling ``tilt_db`` per octave, each at a random phase."""
    phase = 2 * np.pi * np.cumsum(f0) / sr
    out = np.zeros(len(f0))
    for k in range(1, n + 1):
        if k * f0.max() >= 0.45 * sr:
            break
        out += 10 ** (-tilt_db * np.log2(k) / 20) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out


def _hum(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:  # mains: 50 or 60 Hz and its harmonics, steady
        f0 = np.full(n, rng.choice([50.0, 60.0]))
    else:  # a motor or fan: 70-400 Hz with slow drift and a little wobble
        base = rng.uniform(70, 400)
        t = np.arange(n) / sr
        f0 = base * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t) + rng.uniform(-0.05, 0.05) * t / t[-1])
    return _harmonics(f0, sr, 40, rng.uniform(3, 12), rng)


def _noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise (spectral slope 0, -3 or -6 dB per octave), slowly modulated."""
    slope = rng.choice([0.0, 0.5, 1.0])
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[1:] /= (f[1:] / 100.0) ** slope
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    t = np.arange(n) / sr
    return x * (1 + rng.uniform(0, 0.6) * np.sin(2 * np.pi * rng.uniform(0.1, 3) * t))


def _tones(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Beeps: pure tones of 300-4000 Hz, on and off."""
    out = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.05, 0.6) * sr)
        seg = np.arange(min(length, n - pos))
        out[pos : pos + len(seg)] = np.sin(2 * np.pi * rng.uniform(300, 4000) * seg / sr)
        pos += len(seg) + int(rng.uniform(0.05, 0.5) * sr)
    return out


def _sweep(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Sirens and sweeps: a harmonic tone whose pitch glides up and down."""
    t = np.arange(n) / sr
    lo, hi = sorted(rng.uniform(100, 2000, 2))
    f0 = lo + (hi - lo) * 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(0.2, 2) * t))
    return _harmonics(f0, sr, 5, rng.uniform(6, 20), rng)


def _clicks(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Clicks, knocks and ticks: decaying bursts at random times."""
    out = np.zeros(n)
    for start in rng.integers(0, n, int(rng.integers(2, 30))):
        length = min(int(rng.uniform(0.002, 0.05) * sr), n - start)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / max(1.0, rng.uniform(0.001, 0.01) * sr))
        out[start : start + length] += burst * rng.uniform(0.2, 1)
    return out


def _music(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Notes and chords of harmonic tones (equal-tempered, 65-1000 Hz) with decaying envelopes."""
    out = np.zeros(n)
    pos = 0
    while pos < n:
        length = min(int(rng.uniform(0.15, 0.8) * sr), n - pos)
        env = np.exp(-np.arange(length) / (rng.uniform(0.1, 0.6) * sr))
        for _ in range(int(rng.integers(1, 4))):
            f0 = 65.4 * 2 ** (int(rng.integers(0, 48)) / 12)
            out[pos : pos + length] += env * _harmonics(np.full(length, f0), sr, 12, rng.uniform(4, 12), rng)
        pos += length
    return out


_MAKERS = {"hum": _hum, "noise": _noise, "tones": _tones, "sweep": _sweep, "clicks": _clicks, "music": _music}


def nonspeech_clip(seed: int, seconds: float = 2.0, sr: int = 16000, kind: str | None = None) -> tuple[np.ndarray, str]:
    """(float32 audio at a random level, its kind) made from ``seed`` alone; ``kind`` None draws
    one of :data:`KINDS`. Levels span -45 to -10 dBFS RMS, peaks stay within full scale."""
    if kind is not None and kind not in _MAKERS:
        raise RcedError(f"non-speech kind {kind!r} (known: {', '.join(KINDS)})")
    if not np.isfinite(seconds) or seconds <= 0:
        raise RcedError(f"non-speech clip of {seconds} seconds: expected a positive length")
    rng = np.random.default_rng(seed)
    kind = kind or KINDS[int(rng.integers(len(KINDS)))]
    return at_random_level(_MAKERS[kind](int(round(seconds * sr)), sr, rng), rng), kind


def at_random_level(x: np.ndarray, rng: np.random.Generator, low_db: float = -45.0, high_db: float = -10.0) -> np.ndarray:
    """``x`` as float32 at an RMS level drawn from ``rng`` uniformly in [``low_db``, ``high_db``] dBFS,
    scaled down where a peak would pass 0.99 (full scale)."""
    x = x / max(1e-12, float(np.sqrt(np.mean(x**2)))) * 10 ** (rng.uniform(low_db, high_db) / 20)
    peak = float(np.max(np.abs(x)))
    if peak > 0.99:
        x *= 0.99 / peak
    return x.astype(np.float32)
