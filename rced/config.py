"""Frozen configuration dataclasses, saved as JSON beside every model.

Training and device features must match, so every model stores the exact
front-end it was trained with; ``load_json`` refuses unknown keys loudly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

from rced.errors import RcedError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    """STFT front-end shared by the denoiser, the acoustic model and the firmware."""

    sample_rate: int = 16000
    n_fft: int = 256
    hop: int = 128
    window: str = "sqrt_hann"  # sqrt_hann | hamming | hann
    context: int = 8  # frames fed to the denoiser: current + (context-1) past

    def __post_init__(self) -> None:
        c = self.context
        if not (isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 256):
            raise RcedError(f"context {c!r}: expected a whole number of frames in 1..256")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: one analysis window must be full before a frame exists."""
        return 1000.0 * self.n_fft / self.sample_rate

    @classmethod
    def preset(cls, name: str) -> FrontendConfig:
        """``default`` (16 kHz, sqrt-Hann 256/128) or ``paper`` (R-CED paper: 8 kHz, Hamming 256/64)."""
        if name == "default":
            return cls()
        if name == "paper":
            return cls(sample_rate=8000, n_fft=256, hop=64, window="hamming")
        raise RcedError(f"unknown front-end preset {name!r} (use 'default' or 'paper')")


INPUT_FEATURE_FORMS = "'log' or 'pow<exponent>' with a positive exponent, e.g. 'pow0.3'"
_POW = re.compile(r"pow((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def input_feature_exponent(kind: str) -> float | None:
    """None for ``log``, the exponent for ``pow<exponent>``; RcedError for anything else.

    One parser for the config check and the feature code, so a bad value fails when the
    config is made (before a run folder is written), not deep inside training.
    """
    if kind == "log":
        return None
    m = _POW.fullmatch(kind) if isinstance(kind, str) else None
    exponent = float(m.group(1)) if m else math.nan
    if not (math.isfinite(exponent) and exponent > 0):
        raise RcedError(f"unknown input feature {kind!r} (use {INPUT_FEATURE_FORMS})")
    return exponent


def is_mask_floor(value: object) -> bool:
    """A valid lower bound on the ratio mask: a finite number in [0, 1)."""
    return isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value < 1.0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What a denoiser model is: architecture, input compression and output meaning."""

    arch: str = "rced"  # rced (shipped) | crced | rced-lite
    frontend: FrontendConfig = dataclasses.field(default_factory=FrontendConfig)
    input_feature: str = "log"  # log | pow0.3 : compression of the noisy magnitude
    output: str = "mask"  # mask (sigmoid ratio mask on the noisy magnitude) | magnitude
    width_mult: float = 1.0  # scales every filter count (lighter presets)
    mask_floor: float = 0.0  # lower bound on the mask at inference: limits speech distortion
    # the listener's gain shaping (rced.denoiser.shape_gain), after the network, before the floor:
    mask_release: float = 0.0  # one-pole release in [0, 1): the mask never falls below its running mean
    mask_exponent: float = 1.0  # gain = mask ** exponent, in (0, 2]: below 1 spares uncertain bins
    n_bands: int | None = None  # bced only: bands the input is compressed to (rced.features.band_matrix)
    # input channels after the context frames: per-bin level trackers of the features (rced.features.track),
    # each (rise_s, fall_s), the time constants of a one-pole follower when the input is above / below it
    trackers: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        input_feature_exponent(self.input_feature)
        if not is_mask_floor(self.mask_floor):
            raise RcedError(f"mask floor {self.mask_floor!r}: expected a number in [0, 1)")
        if not is_mask_floor(self.mask_release):
            raise RcedError(f"mask release {self.mask_release!r}: expected a number in [0, 1)")
        e = self.mask_exponent
        if not (isinstance(e, (int, float)) and math.isfinite(e) and 0.0 < e <= 2.0):
            raise RcedError(f"mask exponent {e!r}: expected a number in (0, 2]")
        if self.trackers is not None:
            object.__setattr__(self, "trackers", check_trackers(self.trackers))
        if (self.arch == "bced") != (self.n_bands is not None):
            raise RcedError(f"n_bands {self.n_bands!r}: arch 'bced' needs a band count, other archs none")
        if self.n_bands is not None:
            if not isinstance(self.n_bands, int) or isinstance(self.n_bands, bool):
                raise RcedError(f"n_bands {self.n_bands!r}: expected an integer")
            from rced.features import band_matrix  # checks the range for this front-end

            band_matrix(self.frontend.n_bins, self.n_bands, self.frontend.sample_rate)

    @property
    def input_channels(self) -> int:
        """Channels of the network's input: the context frames, then one per tracker."""
        return self.frontend.context + len(self.trackers or ())

    @property
    def shapes_gain(self) -> bool:
        """Whether the listener's gain differs from max(mask, floor) (release or exponent set)."""
        return self.mask_release != 0.0 or self.mask_exponent != 1.0


def check_trackers(trackers: object) -> tuple[tuple[float, float], ...]:
    """Level trackers as a tuple of (rise_s, fall_s) pairs of positive, finite seconds (JSON gives lists)."""
    def positive(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0

    if not isinstance(trackers, (list, tuple)) or not trackers or not all(
        isinstance(t, (list, tuple)) and len(t) == 2 and all(positive(v) for v in t) for t in trackers
    ):
        raise RcedError(f"trackers {trackers!r}: expected a non-empty list of [rise_s, fall_s] pairs of positive seconds")
    return tuple((float(r), float(f)) for r, f in trackers)


def parse_tracker(text: str) -> tuple[float, float]:
    """One level tracker written ``RISE,FALL`` (seconds), as the trainers' ``--trackers`` take it."""
    try:
        return check_trackers([tuple(float(v) for v in text.split(","))])[0]
    except (ValueError, RcedError):
        raise RcedError(f"{text!r}: expected RISE,FALL, two positive seconds such as 2,0.05") from None


def check_reverb_share(share: float) -> None:
    """A share of recordings heard in simulated rooms (rced.rooms) must be a number in [0, 1]."""
    if not (isinstance(share, (int, float)) and math.isfinite(share) and 0.0 <= share <= 1.0):
        raise RcedError(f"reverb share {share!r}: expected a number in [0, 1]")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (saved beside its checkpoints)."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    target: str = "psa"  # psa: |S|cos(theta_s - theta_y) clipped to [0, |Y|] | irm | mag
    loss_compress: float = 0.3  # MSE on magnitudes raised to this power (1.0 = plain MSE)
    batch_frames: int = 512
    steps_per_epoch: int = 400
    epochs: int = 40
    learning_rate: float = 1e-3
    seed: int = 0
    snr_low: float = -5.0
    snr_high: float = 15.0
    reverb_share: float = 0.0  # share of utterances and babble tracks heard in simulated rooms (rced.rooms)
    tracker_history_s: float = 1.0  # with model.trackers: seconds of each segment before its context, to settle them

    def __post_init__(self) -> None:
        check_reverb_share(self.reverb_share)
        if not (math.isfinite(self.tracker_history_s) and 0 <= self.tracker_history_s <= 30):
            raise RcedError(f"tracker_history_s {self.tracker_history_s!r}: expected seconds in [0, 30]")

    @property
    def history_frames(self) -> int:
        """Frames each training segment has before its first context frame (0 without trackers)."""
        return round(self.tracker_history_s * self.model.frontend.frame_rate) if self.model.trackers else 0


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What training speech a run uses (saved in its folder, so a resumed run keeps it)."""

    utterances: int = 4000  # synthetic TRAIN-voice utterances
    data_seed: int = 0  # which utterances (texts, voices, prosody)
    pico_utterances: int = 0  # more, from the SVOX Pico TRAIN voices (rced.corpus.train_utterances)


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def from_dict(cls: type[T], data: dict, *, source: str = "config") -> T:
    """Build a (nested) frozen dataclass from a dict, rejecting unknown keys."""
    if not isinstance(data, dict):
        raise RcedError(f"{source}: expected a JSON object for {cls.__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise RcedError(f"{source}: unknown keys {sorted(unknown)} for {cls.__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        sub = hints[name]
        nested = dataclasses.is_dataclass(sub) and isinstance(sub, type)
        kwargs[name] = from_dict(sub, value, source=source) if nested else value
    try:
        return cls(**kwargs)
    except (TypeError, RcedError) as exc:
        raise RcedError(f"{source}: {exc}") from None


def save_json(obj: Any, path: str | Path) -> None:
    from rced.audio import atomic_write_text

    atomic_write_text(path, json.dumps(to_dict(obj), indent=2, sort_keys=True) + "\n")


def load_json(cls: type[T], path: str | Path) -> T:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RcedError(f"{path}: config file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RcedError(f"{path}: not valid JSON ({exc})") from None
    return from_dict(cls, data, source=str(path))
