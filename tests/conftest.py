"""Shared fixtures: small audio files of every awkward kind, made on the fly."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def speechlike(sr: int = 16000, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Harmonic tone with a syllable-rate envelope: a closed-form stand-in for voiced speech."""
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) * (np.random.default_rng(seed).uniform(0.5, 1.0))
    return (0.1 * x * env).astype(np.float32)


def assert_blocks_equal_whole(step, x: np.ndarray, cuts: list[tuple[int, int]], **tol) -> None:
    """``step(part, state) -> (out, state)`` (state None at first) run over the blocks ``x[a:b]`` of
    ``cuts``, carrying its state, gives what one run on ``x`` gives (``tol``: assert_allclose's)."""
    whole, _ = step(x, None)
    state, parts = None, []
    for a, b in cuts:
        out, state = step(x[a:b], state)
        parts.append(out)
    np.testing.assert_allclose(np.concatenate(parts), whole, **tol)


@pytest.fixture
def wav_16k(tmp_path):
    p = tmp_path / "speech.wav"
    sf.write(p, speechlike(), 16000)
    return p


@pytest.fixture
def bad_files(tmp_path):
    """name -> path of inputs every CLI must reject with a one-line error."""
    out = {}
    out["empty"] = tmp_path / "empty.wav"
    out["empty"].write_bytes(b"")
    out["text"] = tmp_path / "notes.wav"
    out["text"].write_text("this is not audio\n" * 20)
    good = tmp_path / "good.wav"
    sf.write(good, speechlike(), 16000, subtype="PCM_16")
    data = good.read_bytes()
    out["truncated"] = tmp_path / "truncated.wav"
    out["truncated"].write_bytes(data[: len(data) // 2])
    out["nan"] = tmp_path / "nan.wav"
    x = speechlike()
    x[100:200] = np.nan
    sf.write(out["nan"], x, 16000, subtype="FLOAT")
    out["zero_samples"] = tmp_path / "zero_samples.wav"
    sf.write(out["zero_samples"], np.zeros(0, np.float32), 16000)
    out["missing"] = tmp_path / "does_not_exist.wav"
    return out
