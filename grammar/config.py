"""Frozen configurations of the acoustic model and its training, saved as JSON beside the model."""

from __future__ import annotations

import dataclasses

from grammar.errors import GrammarError
from grammar.units import Units
from rced.config import FrontendConfig, check_trackers, is_mask_floor
from rced.errors import RcedError


@dataclasses.dataclass(frozen=True)
class AMConfig:
    """Pure-convolution CTC acoustic model over log-mel features of the shared STFT."""

    frontend: FrontendConfig = dataclasses.field(default_factory=FrontendConfig)
    n_mels: int = 40
    fmin: float = 60.0
    channels: int = 160
    blocks: int = 6
    kernel: int = 9
    stride: int = 2  # first layer: output frame rate = frontend rate / stride
    lookahead: int = 1  # right context (output frames) of each depthwise block
    # mask floor of the denoiser in front of this AM (None: the denoiser's own). The AM and its
    # rejection threshold are calibrated behind it; the listener's output keeps the denoiser's floor.
    input_mask_floor: float | None = None
    # output units (grammar.units.UNIT_SETS); None: characters (configs from before phonemes; an unset
    # field keeps the recorded calibration keys of firmware_export valid)
    units: str | None = None
    # how the decoder reads the AM's log-posteriors l[t, s] (grammar.decoding.recognizer.read_posteriors):
    # posterior_scale * l with the blank lowered by blank_penalty nats, renormalised per frame (a
    # temperature and a CTC blank penalty; None: 1 and 0). The grammar's thresholds and the pronunciation
    # dictionary are calibrated through it; the network and its int8 graph do not depend on it.
    posterior_scale: float | None = None
    blank_penalty: float | None = None
    # input channels after the log-mel bands: level trackers (rced.features.track) of the normalised
    # log-mel averaged over groups of ``tracker_bands`` adjacent bands, each (rise_s, fall_s); None: none
    trackers: tuple[tuple[float, float], ...] | None = None
    tracker_bands: int | None = None

    #: fields that change how the outputs are read, never the network (left out of the int8 calibration key)
    READOUT_FIELDS = ("posterior_scale", "blank_penalty")

    def __post_init__(self) -> None:
        Units(self.units or "chars")  # a one-line GrammarError for an unknown unit set
        f = self.input_mask_floor
        if f is not None and not is_mask_floor(f):
            raise GrammarError(f"input_mask_floor {f!r}: expected null or a number in [0, 1)")
        a, b = self.posterior_scale, self.blank_penalty
        if a is not None and not (isinstance(a, int | float) and not isinstance(a, bool) and 0 < a < 100):
            raise GrammarError(f"posterior_scale {a!r}: expected null or a number in (0, 100)")
        if b is not None and not (isinstance(b, int | float) and not isinstance(b, bool) and 0 <= b < 100):
            raise GrammarError(f"blank_penalty {b!r}: expected null or a number in [0, 100)")
        if self.trackers is not None:
            try:
                object.__setattr__(self, "trackers", check_trackers(self.trackers))
            except RcedError as exc:
                raise GrammarError(str(exc)) from None
        g = self.tracker_bands
        if (self.trackers is None) != (g is None):
            raise GrammarError(f"tracker_bands {g!r}: trackers need a band group size, no trackers none")
        if g is not None and not (isinstance(g, int) and not isinstance(g, bool) and g > 0 and self.n_mels % g == 0):
            raise GrammarError(f"tracker_bands {g!r}: expected a positive divisor of n_mels ({self.n_mels})")

    def without_readout(self) -> AMConfig:
        """This config read as the AM gives its outputs (the neutral readout)."""
        return dataclasses.replace(self, **dict.fromkeys(self.READOUT_FIELDS))

    @property
    def readout(self) -> tuple[float, float]:
        """(posterior scale, blank penalty) of the decoder's reading: (1, 0) reads the AM as it is."""
        return (1.0 if self.posterior_scale is None else float(self.posterior_scale),
                0.0 if self.blank_penalty is None else float(self.blank_penalty))

    @property
    def tracker_groups(self) -> int:
        """Band groups each tracker follows (0 without trackers)."""
        return self.n_mels // self.tracker_bands if self.tracker_bands else 0

    @property
    def input_channels(self) -> int:
        """Channels of the network's input: the log-mel bands, then each tracker's band groups."""
        return self.n_mels + len(self.trackers or ()) * self.tracker_groups

    @property
    def unit_set(self) -> Units:
        """The output units (:class:`grammar.units.Units`)."""
        return Units(self.units or "chars")

    @property
    def reach(self) -> tuple[int, int]:
        """(left, right): output frames at each end of an input chunk that its zero padding corrupts.

        The input convolution sees ``5 - stride`` frames of the past; each depthwise block
        ``kernel - 1 - lookahead`` output frames to the left and ``lookahead`` to the right.
        """
        left = -(-(5 - self.stride) // self.stride) + self.blocks * (self.kernel - 1 - self.lookahead)
        return left, self.blocks * self.lookahead

    @property
    def lookahead_ms(self) -> float:
        return 1000.0 * self.blocks * self.lookahead * self.stride / self.frontend.frame_rate


@dataclasses.dataclass(frozen=True)
class AMTrainConfig:
    am: AMConfig = dataclasses.field(default_factory=AMConfig)
    batch_utts: int = 16
    steps_per_epoch: int = 300
    epochs: int = 30
    learning_rate: float = 2e-3
    seed: int = 0
    snr_low: float = 0.0
    snr_high: float = 25.0
    p_clean: float = 0.25
    p_enhanced: float = 0.4  # the rest: noisy without the denoiser
    spec_freq_masks: int = 2
    spec_time_masks: int = 2
    vtlp: float = 0.1  # frequency warp factor range 1 +- vtlp
    tempo: float = 0.1  # time-stretch range 1 +- tempo
