"""The recognition chain as users call it: audio -> denoiser -> log-mel -> CTC AM -> grammar.

One STFT serves both paths: the AM's log-mel comes from the denoiser's enhanced magnitude.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import numpy as np

from grammar.acoustic.features import frame_levels, frame_tonal, log_mel, speech_modulation, tonality, with_trackers
from grammar.alphabet import BLANK_ID
from grammar.config import AMConfig
from grammar.decoding.decoder import Decision, Grammar, decode
from grammar.errors import GrammarError
from rced.audio import resample, validate_audio
from rced.denoiser import PLAIN_GAIN, Progress
from rced.features import Normalizer
from rced.frontend import stft

BACKENDS = ("float", "int8", "keras")  # as rced.denoiser.BACKENDS

#: The speech check: an accepted command is rejected when the input's modulation
#: (:func:`grammar.acoustic.features.speech_modulation` of the AM's features) is below this floor,
#: for hum, fans, noise and steady tones that the AM, trained on speech alone, takes for a command
#: (nearly always "mute"). Chosen by ``python benchmarks/speech_check.py``: two thirds of the lowest
#: modulation among the calibration set's commands the chain gets right, rounded down to 0.01
#: (benchmarks/results/speech_check.md). None: no check.
SPEECH_FLOOR: float | None = 0.15

#: The speech check's second test: an accepted command is rejected when the input's tonality
#: (:func:`grammar.acoustic.features.tonality`: the largest share, in any second, of frames where three
#: adjacent mel bands hold 90 % of their power) is above this ceiling, for beeps, whistles, sirens
#: and alarms, which rise and fall as speech does and so pass the floor. Chosen by ``python
#: benchmarks/speech_check.py``: one and a half times the highest tonality among the calibration
#: set's commands the chain gets right (the floor's margin, inverted), rounded up to 0.01. None: no test.
TONAL_CEILING: float | None = 0.46


def default_am_path() -> Path:
    return Path(str(resources.files("grammar") / "default_am"))


def default_grammar_path() -> Path:
    return Path(str(resources.files("grammar") / "data" / "grammar_default.json"))


def receptive_field_frames(cfg: AMConfig) -> int:
    """STFT frames one AM output frame depends on (input conv plus the depthwise blocks)."""
    return 5 + cfg.blocks * (cfg.kernel - 1) * cfg.stride


def check_duration(n_samples: int, cfg: AMConfig, name: str) -> None:
    """The one rule on short inputs (``recognize``, ``transcribe``, ``listen``): audio of ``n_samples``
    at the AM's rate shorter than its receptive field is a one-line error naming ``name``."""
    sr = cfg.frontend.sample_rate
    need = receptive_field_frames(cfg) * cfg.frontend.hop
    if n_samples == 0:
        raise GrammarError(f"{name}: empty audio (no samples)")
    if n_samples < need:
        raise GrammarError(f"{name}: audio of {n_samples / sr:.2f} s is shorter than the acoustic model's "
                           f"receptive field ({need / sr:.2f} s)")  # fmt: skip


def am_input_floor(am_config: AMConfig, denoiser_config) -> float:
    """The mask floor the AM reads: its ``input_mask_floor``, else the denoiser's own."""
    floor = getattr(am_config, "input_mask_floor", None)
    return denoiser_config.mask_floor if floor is None else floor


def am_front_end(denoiser, am_config: AMConfig):
    """``denoiser`` as the front-end of an AM with ``am_config``: the plain ratio mask at the AM's
    floor (:func:`am_input_floor`), without the listener's release and exponent (the AM is trained
    and calibrated on the plain mask); ``denoiser`` itself when that is what it already does."""
    if denoiser is None:
        return None
    floor = am_input_floor(am_config, denoiser.config)
    if floor == denoiser.config.mask_floor and not denoiser.config.shapes_gain:
        return denoiser
    return denoiser.with_gain(mask_floor=floor, **PLAIN_GAIN)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-posteriors from (frames, symbols) scores, normalised per frame."""
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def read_posteriors(scores: np.ndarray, cfg: AMConfig | None) -> np.ndarray:
    """The decoder's log-posteriors from the AM's (frames, symbols) scores: normalised per frame, then
    read through ``cfg.readout`` (scaled, the blank lowered, renormalised); a ``cfg`` of None or with
    the neutral readout leaves them as the AM gives them."""
    logp = log_softmax(scores)
    scale, penalty = cfg.readout if cfg is not None else (1.0, 0.0)
    if scale == 1.0 and penalty == 0.0:
        return logp
    logp = logp * scale
    logp[:, BLANK_ID] -= penalty
    return log_softmax(logp)


class Recognizer:
    """Denoiser (optional) + CTC acoustic model + grammar decoder. ``speech_floor`` and
    ``tonal_ceiling``: the speech check of ``recognize`` and ``grammar.decoding.listen`` ("shipped":
    :data:`SPEECH_FLOOR` and :data:`TONAL_CEILING` as they are when the recognizer is made; None: no
    such test)."""

    def __init__(self, model, config: AMConfig, norm: Normalizer, denoiser=None, grammar: Grammar | None = None,
                 path: Path | None = None, speech_floor: float | None | str = "shipped",
                 tonal_ceiling: float | None | str = "shipped"):  # fmt: skip
        speech_floor = SPEECH_FLOOR if isinstance(speech_floor, str) and speech_floor == "shipped" else speech_floor
        tonal_ceiling = TONAL_CEILING if isinstance(tonal_ceiling, str) and tonal_ceiling == "shipped" else tonal_ceiling
        check_speech_floor(speech_floor)
        check_tonal_ceiling(tonal_ceiling)
        self.model, self.config, self.norm = model, config, norm
        self.denoiser, self.grammar, self.path = denoiser, grammar, path
        self.speech_floor, self.tonal_ceiling = speech_floor, tonal_ceiling
        self._am_den = (None, None)

    @property
    def am_denoiser(self):
        """The denoiser as the AM's front-end (:func:`am_front_end`: the plain mask at the AM's
        ``input_mask_floor``); ``self.denoiser`` itself makes the listener's output."""
        key = (self.denoiser, self.denoiser.config if self.denoiser is not None else None,
               getattr(self.config, "input_mask_floor", None))  # fmt: skip
        if self._am_den[0] != key:  # one copy per (denoiser, floor), not one per call
            self._am_den = (key, am_front_end(self.denoiser, self.config))
        return self._am_den[1]

    @classmethod
    def load(cls, path: str | Path | None = None, *, denoiser: str | Path | None | bool = None,
             grammar: Grammar | str | Path | None | bool = None, backend: str = "float",
             exact: bool = False) -> Recognizer:  # fmt: skip
        """AM folder (None = shipped); ``denoiser``: folder, None = shipped, False = none;
        ``grammar``: a Grammar, a grammar JSON path, None = the shipped default, False = none;
        ``backend``: ``float`` (each folder's ``model_float.tflite`` through LiteRT), ``int8`` (each
        folder's ``model_int8.tflite``: :class:`rced.int8.Int8Denoiser` and
        :class:`grammar.acoustic.int8.Int8AM`, the device chain; ``exact``: LiteRT's reference kernels,
        bit-exact with TFLM) or ``keras`` (``model.keras`` through TensorFlow)."""
        from rced.denoiser import Denoiser, load_model_folder

        if backend not in BACKENDS:
            raise GrammarError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        folder = Path(path) if path is not None else default_am_path()
        if backend == "int8":
            from grammar.acoustic.int8 import Int8AM

            model = Int8AM.load(folder, exact=exact)
            config, norm = model.cfg, model.norm
        else:
            model, config, norm = load_model_folder(folder, AMConfig, "acoustic-model folder", GrammarError, backend)
        den = None if denoiser is False else Denoiser.load(denoiser, backend=backend, exact=exact)
        if grammar is False:
            grammar = None
        elif grammar is None:
            grammar = Grammar.load(default_grammar_path())
        elif not isinstance(grammar, Grammar):
            grammar = Grammar.load(grammar)
        return cls(model, config, norm, den, grammar, folder)

    @property
    def sample_rate(self) -> int:
        return self.config.frontend.sample_rate

    def enhanced_spectrum(self, audio: np.ndarray, sr: int, name: str = "input",
                          progress: Progress | None = None) -> np.ndarray:  # fmt: skip
        """(frames, bins) STFT of the audio at the AM's rate, enhanced by the AM's front-end denoiser (if any)."""
        audio = validate_audio(audio, name)
        x = resample(audio, sr, self.sample_rate)
        check_duration(len(x), self.config, name)
        spec = stft(x, self.config.frontend)
        return self.am_denoiser.enhance_stft(spec, progress) if self.am_denoiser is not None else spec

    def features(self, audio: np.ndarray, sr: int, name: str = "input", progress: Progress | None = None) -> np.ndarray:
        """(frames, n_mels) normalised log-mel of the (enhanced) spectrum."""
        return self.norm.apply(log_mel(np.abs(self.enhanced_spectrum(audio, sr, name, progress)), self.config))

    def posteriors(self, audio: np.ndarray, sr: int, name: str = "input", progress: Progress | None = None) -> np.ndarray:
        """(T, symbols) log-posteriors over the AM's units; ``progress(done, total)`` in the denoiser's frames."""
        return self.posteriors_of(self.features(audio, sr, name, progress))

    def am_input(self, feats: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(frames, n_mels) features -> (the AM's input, the trackers' state): with the level trackers
        of an AM that has them (:func:`grammar.acoustic.features.with_trackers`), else the features."""
        if self.config is None:  # a test stand-in
            return feats, state
        return with_trackers(feats, self.config, state)

    def posteriors_of(self, feats: np.ndarray) -> np.ndarray:
        """(T, symbols) log-posteriors of a whole input's features (padded to a multiple of the stride)."""
        feats = self.am_input(feats)[0]
        pad = (-len(feats)) % self.config.stride
        if pad:
            feats = np.concatenate([feats, np.repeat(feats[-1:], pad, axis=0)])
        return self.log_posteriors(feats)

    def log_posteriors(self, feats: np.ndarray) -> np.ndarray:
        """(frames, channels) AM input (:meth:`am_input`) -> (ceil(frames / stride), symbols) log-posteriors
        of the AM, as the decoder reads them (:func:`read_posteriors`)."""
        return read_posteriors(self._am(feats[None, :, None, :].astype(np.float32))[0], self.config)

    def _am(self, x: np.ndarray) -> np.ndarray:
        """The AM on a (1, frames, 1, channels) input; Keras models through one traced graph (an eager
        call costs tens of ms), anything else (TFLite networks, the int8 runner, test stand-ins) as it is."""
        if not hasattr(self.model, "layers"):
            return np.asarray(self.model(x, training=False))
        from rced.models import traced_call

        return traced_call(self.model, x, (1, None, 1, self.config.input_channels))

    @property
    def backend(self) -> str:
        """"int8" when the AM is the int8 device model (its grammar threshold may differ), else "float"
        (a float TFLite or Keras AM: the same network)."""
        return "int8" if getattr(self.model, "backend", "float") == "int8" else "float"

    def decoding_grammar(self, grammar: Grammar | None = None) -> Grammar | None:
        """``grammar`` (default: the loaded one) with the threshold of this recognizer's backend."""
        g = grammar or self.grammar
        am_units = self.config.unit_set.name if self.config is not None else None  # None: a test stand-in
        if g is not None and am_units is not None and g.units != am_units:
            raise GrammarError(f"the grammar is spelled in {g.units}, the acoustic model ({self.path or 'given'}) "
                               f"outputs {am_units}: rebuild the grammar for this AM")  # fmt: skip
        return g.for_backend(self.backend) if g is not None else None

    def transcribe(self, audio: np.ndarray, sr: int, name: str = "input") -> str:
        """Best-path transcript in the AM's units (phonemes as "V AA L Y UW M | AH P")."""
        units = self.config.unit_set
        return units.show(units.greedy(self.posteriors(audio, sr, name)))

    def no_speech_check(self) -> None:
        """Switch the speech check off (``--no-speech-check``): no floor, no ceiling."""
        self.speech_floor = self.tonal_ceiling = None

    def speech_tracks(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The speech check's per-frame tracks of normalised features: their levels
        (:func:`~grammar.acoustic.features.frame_levels`) and tonal flags
        (:func:`~grammar.acoustic.features.frame_tonal` of the log-mel power before normalisation)."""
        feats = np.asarray(feats, np.float64)
        power = feats * np.asarray(self.norm.std, np.float64) + np.asarray(self.norm.mean, np.float64)
        return frame_levels(feats), frame_tonal(power)

    def sounds_like_speech(self, modulation: float, tonality: float = 0.0) -> bool:
        """Whether an input of this modulation and tonality passes the speech check: modulation at
        least :attr:`speech_floor`, tonality at most :attr:`tonal_ceiling` (a test that is None passes)."""
        return passes_speech_check(modulation, tonality, self.speech_floor, self.tonal_ceiling)

    @property
    def speech_limits(self) -> tuple[float | None, float | None]:
        """(floor, ceiling) of the speech check, for :func:`passes_speech_check`."""
        return self.speech_floor, self.tonal_ceiling

    def recognize(self, audio: np.ndarray, sr: int, name: str = "input", grammar: Grammar | None = None,
                  progress: Progress | None = None, speech_check: bool = True) -> Decision:  # fmt: skip
        """The grammar's decision on one utterance, with its ``speech_modulation`` and ``tonality``; an
        accepted command is rejected when they fail the speech check (:meth:`sounds_like_speech`; with
        ``speech_check`` False the grammar's decision as it is, for benchmarks that count both)."""
        g = self.decoding_grammar(grammar)
        if g is None:
            raise GrammarError("recognize: no grammar loaded")
        feats = self.features(audio, sr, name, progress)
        d = decode(self.posteriors_of(feats), g)
        levels, tonal = self.speech_tracks(feats)
        modulation, tonal_share = speech_modulation(levels), tonality(tonal)
        if d.accepted and speech_check and not self.sounds_like_speech(modulation, tonal_share):
            d = dataclasses.replace(d, command=None, command_index=None)
        return dataclasses.replace(d, speech_modulation=modulation, tonality=tonal_share)


def passes_speech_check(modulation: float, tonality: float, floor: float | None, ceiling: float | None) -> bool:
    """The speech check: modulation at least ``floor`` and tonality at most ``ceiling`` (a test
    that is None passes)."""
    check_speech_floor(floor)
    check_tonal_ceiling(ceiling)
    return (floor is None or modulation >= floor) and (ceiling is None or tonality <= ceiling)


def check_tonal_ceiling(ceiling: float | None) -> None:
    """A tonal ceiling is None (no test) or a number in [0, 1]: else a one-line GrammarError."""
    if ceiling is not None and (isinstance(ceiling, bool) or not isinstance(ceiling, int | float)
                                or not 0 <= ceiling <= 1):  # fmt: skip
        raise GrammarError(f"tonal ceiling {ceiling!r}: expected a share in [0, 1] (or no test)")


def check_speech_floor(floor: float | None) -> None:
    """A speech floor is None (no check) or a finite number >= 0: else a one-line GrammarError."""
    if floor is not None and (isinstance(floor, bool) or not isinstance(floor, int | float) or not floor >= 0
                              or not np.isfinite(floor)):
        raise GrammarError(f"speech floor {floor!r}: expected a number >= 0 (or no check)")
