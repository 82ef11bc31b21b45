"""Denoiser input features: compressed noisy magnitude, globally normalised, causal context.

Global per-bin mean/variance statistics from the training set (the paper found them better
than per-utterance ones) are stored beside every model and exported to the firmware.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
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


def tracker_gains(cfg: ModelConfig) -> np.ndarray:
    """(trackers, 2) one-pole gains (rise, fall) per frame of ``cfg.trackers``' time constants."""
    tau = np.asarray(cfg.trackers or (), np.float64).reshape(-1, 2)
    return (1.0 - np.exp(-1.0 / (tau * cfg.frontend.frame_rate))).astype(np.float32)


def track(feats: np.ndarray, gains: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin level trackers of (frames, bins) features: each follows the input with its rise gain
    when the input is above it and its fall gain when below (equal gains: a running mean; a slow
    rise and a fast fall: the noise floor). ``state`` (trackers, bins) is the value before the first
    frame (None: the first frame itself). Returns ((frames, trackers, bins) values after each frame,
    the last state): a block-by-block run carrying the state equals one run on the whole input."""
    feats = np.asarray(feats, np.float32)
    rise, fall = (gains[:, i : i + 1].astype(np.float32) for i in (0, 1))
    s = np.repeat(feats[:1], len(gains), axis=0) if state is None else np.asarray(state, np.float32).copy()
    out = np.empty((len(feats), len(gains), feats.shape[1]), np.float32)
    for t, f in enumerate(feats):
        d = f - s
        s = s + np.where(d > 0, rise, fall) * d
        out[t] = s
    return out, s


class InputStream:
    """The network's input frame by frame, block after block: the normalised features with their
    ``context - 1`` past frames (silence before the first), then the trackers' values (rced.features.track).
    Any split of the frames into blocks gives the same inputs as one block: what offline
    (:func:`model_inputs`), streaming, listening and the firmware all compute."""

    def __init__(self, cfg: ModelConfig, norm: Normalizer):
        self.cfg, self.norm = cfg, norm
        bins, ctx = cfg.frontend.n_bins, cfg.frontend.context
        self.silence = norm.apply(compress(np.zeros((1, bins), np.float32), cfg.input_feature))[0]
        self.past = np.repeat(self.silence[None], ctx - 1, axis=0)
        self.gains = tracker_gains(cfg)
        self.state: np.ndarray | None = None

    def push(self, mag: np.ndarray) -> np.ndarray:
        """(frames, bins) noisy magnitude -> (frames, bins, 1, input channels) network input."""
        ctx = self.cfg.frontend.context
        feats = self.norm.apply(compress(np.asarray(mag, np.float32), self.cfg.input_feature))
        seen = np.concatenate([self.past, feats])
        x = context_windows(seen, ctx, self.silence)[ctx - 1 :]
        self.past = seen[len(seen) - (ctx - 1) :]
        if len(self.gains) and len(feats):
            tracks, self.state = track(feats, self.gains, self.state)
            x = np.concatenate([x, tracks.transpose(0, 2, 1)], axis=2)
        return x[:, :, None, :]


def model_inputs(mag: np.ndarray, cfg: ModelConfig, norm: Normalizer) -> np.ndarray:
    """(frames, bins) noisy magnitude -> (frames, bins, 1, input channels) normalised model input:
    the context frames, oldest first, then the trackers (:class:`InputStream` from the first frame)."""
    return InputStream(cfg, norm).push(mag)


LINEAR_BELOW_HZ = 300.0  # bins below this frequency keep a band of their own (identity rows)


def band_matrix(n_bins: int, n_bands: int, sample_rate: int) -> np.ndarray:
    """(n_bands, n_bins) hat functions: identity below LINEAR_BELOW_HZ, then triangles spaced
    evenly on log(1 + f / f_b) (ERB-rate at f_b = 229 Hz; f_b grows, towards linear, until every
    band holds a bin). Every column sums to 1 (the bands partition each bin), so the mask
    expansion is the transpose and a constant band mask gives the same constant bin mask."""
    if n_bands == n_bins:
        return np.eye(n_bins, dtype=np.float32)
    freqs = np.arange(n_bins) * (sample_rate / 2) / (n_bins - 1)
    n_lin = int(np.sum(freqs < LINEAR_BELOW_HZ))
    if not n_lin + 2 <= n_bands <= n_bins:
        raise RcedError(f"n_bands {n_bands}: expected {n_lin + 2}..{n_bins} at {sample_rate} Hz with {n_bins} bins")
    f_b = 229.0
    while True:  # centres as fractional bin positions, one bin apart at least
        warp = np.log1p(freqs / f_b)
        u = np.linspace(warp[n_lin], warp[-1], n_bands - n_lin)
        centres = np.interp(u, warp, np.arange(n_bins, dtype=np.float64))
        if np.min(np.diff(centres)) >= 1.0 - 1e-9:
            break
        f_b *= 1.25
    m = np.zeros((n_bands, n_bins))
    m[np.arange(n_lin), np.arange(n_lin)] = 1.0
    for k in range(n_lin, n_bins):
        j = min(int(np.searchsorted(centres, k, side="right")) - 1, len(centres) - 2)
        t = (k - centres[j]) / (centres[j + 1] - centres[j])
        m[n_lin + j, k] += 1.0 - t
        m[n_lin + j + 1, k] += t
    return m.astype(np.float32)


def band_compression(n_bins: int, n_bands: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(compress (n_bins, n_bands), expand (n_bands, n_bins)): compress takes each band's weighted
    mean of its bins (rows normalised); expand gives each bin the weighted mean of its bands' gains."""
    m = band_matrix(n_bins, n_bands, sample_rate).astype(np.float64)
    compress_ = (m / m.sum(axis=1, keepdims=True)).T
    expand = m / m.sum(axis=0, keepdims=True)
    return compress_.astype(np.float32), expand.astype(np.float32)


def expansion_taps(expand: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (n_bands, n_bins) expansion as two taps per bin: (first band b[k], weights w0[k], w1[k])
    with out[k] = w0[k] z[b[k]] + w1[k] z[b[k] + 1], equal to ``z @ expand`` (each bin lies in at
    most two adjacent bands): what the firmware computes, 129 x 10 bytes instead of a dense matrix."""
    n_bands, n_bins = expand.shape
    first = np.zeros(n_bins, np.int16)
    w0, w1 = np.zeros(n_bins, np.float32), np.zeros(n_bins, np.float32)
    for k in range(n_bins):
        nz = np.flatnonzero(expand[:, k])
        if len(nz) == 0 or nz[-1] - nz[0] > 1:
            raise RcedError(f"band expansion: bin {k} takes bands {nz.tolist()}, expected one or two adjacent bands")
        b = min(int(nz[0]), n_bands - 2)
        first[k], w0[k], w1[k] = b, expand[b, k], expand[b + 1, k]
    return first, w0, w1


def config_expansion_taps(cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`expansion_taps` of a bced config's band expansion: what the firmware (its settings
    header) and :func:`device_head` both compute with."""
    fe = cfg.frontend
    return expansion_taps(band_compression(fe.n_bins, cfg.n_bands, fe.sample_rate)[1])


def device_output_width(cfg: ModelConfig) -> int:
    """Values per frame that the device graph outputs: bands for bced, else bins."""
    return cfg.n_bands if cfg.arch == "bced" else cfg.frontend.n_bins


def device_head(cfg: ModelConfig) -> Callable[[np.ndarray], np.ndarray] | None:
    """numpy (N, bands) band logits -> (N, bins) model output, as the float model computes it (the
    two-tap band expansion of :func:`config_expansion_taps`, then sigmoid or ReLU); None when
    the device graph's output is already the model's (every architecture but bced)."""
    if cfg.arch != "bced":
        return None
    first, w0, w1 = config_expansion_taps(cfg)

    def head(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float32)
        v = z[:, first] * w0 + z[:, first + 1] * w1
        return (1.0 / (1.0 + np.exp(-np.clip(v, -60.0, 60.0))) if cfg.output == "mask" else np.maximum(v, 0.0)).astype(np.float32)

    return head
