"""Denoiser input features: compressed noisy magnitude, globally normalised, causal context.

Global per-bin mean/variance statistics from the training set (the paper found them better
than per-utterance ones) are stored beside every model and exported to the firmware.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from rced.audio import atomic_write_text
from rced.config import ModelConfig, input_feature_exponent
from rced.errors import RcedError
from rced.frontend import context_windows

LOG_EPS = 1e-5


def compress(mag: np.ndarray, kind: str) -> np.ndarray:
    """Magnitude -> network input scale (log or power-law compression)."""
    exponent = input_feature_exponent(kind)
    if exponent is None:
        return np.log(mag + LOG_EPS)
    return np.power(mag, exponent)


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """Per-bin mean and standard deviation of the compressed noisy magnitude."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, feats: np.ndarray) -> Normalizer:
        mean = feats.mean(axis=0)
        std = np.maximum(feats.std(axis=0), 1e-3)
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))

    def apply(self, feats: np.ndarray) -> np.ndarray:
        return ((feats - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(np.float32)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(dataclasses.asdict(self)) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        try:
            data = json.loads(Path(path).read_text())
            return cls(tuple(data["mean"]), tuple(data["std"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RcedError(f"{path}: not a normalisation file ({exc})") from None


def model_inputs(mag: np.ndarray, cfg: ModelConfig, norm: Normalizer) -> np.ndarray:
    """(frames, bins) noisy magnitude -> (frames, bins, 1, context) normalised model input."""
    feats = norm.apply(compress(mag, cfg.input_feature))
    silence = norm.apply(compress(np.zeros((1, mag.shape[1]), np.float32), cfg.input_feature))[0]
    return context_windows(feats, cfg.frontend.context, silence)[:, :, None, :]
