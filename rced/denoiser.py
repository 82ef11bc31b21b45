"""The denoiser as users call it: load a model folder, enhance audio offline or as a stream."""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from pathlib import Path

import numpy as np

from rced.audio import resample, validate_audio
from rced.config import ModelConfig, load_json
from rced.errors import RcedError
from rced.features import InputStream, Normalizer
from rced.frontend import istft, ola_norm, stft, window
from rced.runtime import FLOAT_MODEL_NAME, INT8_MODEL_NAME, load_network

CHUNK_FRAMES = 4096
#: "float": model_float.tflite, "int8": model_int8.tflite (both LiteRT, no TensorFlow);
#: "keras": model.keras through TensorFlow (training, export and parity checks)
BACKENDS = ("float", "int8", "keras")
#: progress(done, total) callbacks take frames
Progress = Callable[[int, int], None]


def default_model_path() -> Path:
    """The shipped default model folder inside the package."""
    return Path(str(resources.files("rced") / "default_model"))


def preset_model_path(name: str) -> Path:
    """A shipped lighter model folder, ``rced/presets/<name>`` (see rced.models.SIZES)."""
    return Path(str(resources.files("rced") / "presets" / name))


def shipped_presets() -> list[str]:
    """Names of the shipped lighter model folders (``rced/presets/*``)."""
    root = preset_model_path("x").parent
    return sorted(p.parent.name for p in root.glob("*/config.json"))


def model_folder(path: str | Path | None) -> Path:
    """The denoiser folder ``path`` names: None is the shipped default, a bare preset name (``lite``) that
    is not a path here is that shipped preset, anything else a folder."""
    if path is None:
        return default_model_path()
    folder = Path(path)
    if not folder.exists() and str(path) in shipped_presets():
        return preset_model_path(str(path))
    return folder


def load_model_folder(folder: Path, config_cls: type, what: str, error: type[Exception] = RcedError,
                      backend: str = "keras", *, exact: bool = False, hint: str = ""):  # fmt: skip
    """(network, config, normaliser) of a model folder: config.json, norm.json and the network of
    ``backend`` (:data:`BACKENDS`): a :class:`rced.runtime.Network` on ``model_float.tflite`` or
    ``model_int8.tflite``, or the Keras model of ``model.keras`` (safe mode). A folder without
    ``model_float.tflite`` (written by training and by ``firmware-export int8``) runs its Keras
    model, which needs TensorFlow. ``hint`` is the command that writes a missing int8 file.
    The model file is checked first: it is what a user most often has not written yet.

    Shared by every model of the project; errors are one line of ``error`` naming the path.
    """
    if backend not in BACKENDS:
        raise error(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if not folder.is_dir():
        raise error(f"{folder}: {what} not found")
    if backend == "float" and not (folder / FLOAT_MODEL_NAME).exists() and (folder / "model.keras").exists():
        backend = "keras"  # an older folder: its Keras weights, through TensorFlow
    model_file = folder / ("model.keras" if backend == "keras" else FLOAT_MODEL_NAME if backend == "float"
                           else INT8_MODEL_NAME)  # fmt: skip
    if not model_file.exists():
        raise error(f"{model_file}: {backend} model not found" + (f" (write it with `{hint}`)" if hint and
                                                                   backend == "int8" else ""))  # fmt: skip
    for name in ("config.json", "norm.json"):
        if not (folder / name).exists():
            raise error(f"{folder}: {what} lacks {name}")
    try:
        config = load_json(config_cls, folder / "config.json")
        norm = Normalizer.load(folder / "norm.json")
    except RcedError as exc:
        raise error(str(exc)) from None
    if backend != "keras":
        return load_network(folder, backend, error, exact=exact), config, norm
    try:
        import keras
    except ImportError:
        raise error(f"{folder}: has no {FLOAT_MODEL_NAME}, and reading model.keras needs TensorFlow (pip install "
                    f"'stapes[train]'; then `firmware-export int8` writes the .tflite files)") from None

    try:
        model = keras.saving.load_model(folder / "model.keras", safe_mode=True, compile=False)
    except Exception as exc:  # keras raises many types for a bad file
        raise error(f"{folder / 'model.keras'}: cannot load model ({str(exc).splitlines()[0][:120]})") from None
    return model, config, norm


#: the ModelConfig fields that shape the gain after the network (Denoiser.with_gain may change them)
GAIN_FIELDS = ("mask_floor", "mask_release", "mask_exponent")
#: release and exponent off: the gain is max(mask, floor), the plain mask (what the AM reads)
PLAIN_GAIN = {"mask_release": 0.0, "mask_exponent": 1.0}


class MaskStream:
    """Called on successive blocks of (frames, bins) noisy magnitude, gives each block's
    :meth:`Denoiser.raw_mask` as if every frame before it had come in the same call; its state is
    the network's input state (:attr:`inputs`, a :class:`rced.features.InputStream`)."""

    def __init__(self, den: Denoiser):
        self.den = den
        self.inputs = InputStream(den.config, den.norm)

    def __call__(self, mag: np.ndarray) -> np.ndarray:
        if not len(mag):
            return np.zeros((0, self.den.config.frontend.n_bins), np.float32)
        return self.den._ratio(self.den._run(self.inputs.push(mag)), mag)


def shape_gain(mask: np.ndarray, config: ModelConfig, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The listener's gain from a (frames, bins) ratio mask, causally: a one-pole release (the mask
    never falls below its running mean r = a r + (1 - a) m, so speech offsets are not cut short),
    then ``mask ** exponent``, then the floor. ``state`` is r after the previous frame (None:
    zeros, as a device starts); the updated r comes back, so blocks chain exactly."""
    state = np.zeros(mask.shape[1]) if state is None else state
    a = config.mask_release
    if a > 0 and len(mask):
        run = np.empty(mask.shape)
        for t, m in enumerate(np.asarray(mask, np.float64)):  # a frame at a time, as the device does
            state = run[t] = (1.0 - a) * m + a * state
        mask = np.maximum(mask, run)
    if config.mask_exponent != 1.0:
        mask = mask**config.mask_exponent
    return np.maximum(mask, config.mask_floor).astype(np.float32), state


class Denoiser:
    """R-CED denoiser: masks the noisy STFT magnitude, keeps the noisy phase."""

    def __init__(self, model, config: ModelConfig, norm: Normalizer, path: Path | None = None):
        """``model``: a :class:`rced.runtime.Network` (float or int8 TFLite) or a Keras model."""
        self.model = model
        self.config = config
        self.norm = norm
        self.path = path

    @classmethod
    def load(cls, path: str | Path | None = None, backend: str = "float", *, exact: bool = False) -> Denoiser:
        """Load a model folder (None = shipped default) with the network of ``backend``: "float"
        (``model_float.tflite``), "int8" (``model_int8.tflite``, the device graph; ``exact``: LiteRT's
        reference kernels, bit-exact with TFLM) or "keras" (``model.keras``, needs TensorFlow)."""
        folder = model_folder(path)
        model, config, norm = load_model_folder(folder, ModelConfig, "model folder", backend=backend, exact=exact,
                                                hint=f"firmware-export int8 denoiser --denoiser {folder}")  # fmt: skip
        if backend == "int8" and cls is Denoiser:
            from rced.int8 import Int8Denoiser

            cls = Int8Denoiser  # checks the device graph's shapes against the config
        return cls(model, config, norm, folder)

    @property
    def backend(self) -> str:
        """"float" or "int8" (a TFLite network), or "keras"."""
        return getattr(self.model, "backend", "keras")

    def with_gain(self, **changes) -> Denoiser:
        """The same network with other gain settings (``mask_floor``, ``mask_release``,
        ``mask_exponent``): a recogniser may want another mask in front of its acoustic model than
        the listener's output (the copy shares the weights; ModelConfig checks the values)."""
        unknown = sorted(set(changes) - set(GAIN_FIELDS))
        if unknown:
            raise RcedError(f"with_gain: {', '.join(unknown)} is not a gain setting (those are {', '.join(GAIN_FIELDS)})")
        out = copy.copy(self)
        out.config = dataclasses.replace(self.config, **changes)
        return out

    def with_mask_floor(self, floor: float) -> Denoiser:
        """The same network with another mask floor (see :meth:`with_gain`)."""
        return self.with_gain(mask_floor=floor)

    @property
    def sample_rate(self) -> int:
        return self.config.frontend.sample_rate

    def _run(self, x: np.ndarray) -> np.ndarray:
        """Model on a (n, bins, 1, input channels) batch: the TFLite network as it is; a Keras model through
        one traced graph (eager calls cost ms each)."""
        if self.backend != "keras":
            return self.model(x)
        from rced.models import traced_call

        return traced_call(self.model, x, (None, self.config.frontend.n_bins, 1, self.config.input_channels))

    def raw_mask(self, noisy_mag: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """(frames, bins) noisy magnitude -> the network's ratio mask in [0, 1] (no floor, no shaping).
        ``progress(done, total)`` is called in frames after each chunk."""
        out = np.empty_like(noisy_mag, dtype=np.float32)
        masks = self.raw_mask_stream()
        for i0 in range(0, len(noisy_mag), CHUNK_FRAMES):
            m = masks(noisy_mag[i0 : i0 + CHUNK_FRAMES])
            out[i0 : i0 + len(m)] = m
            if progress is not None:
                progress(i0 + len(m), len(noisy_mag))
        return out

    def raw_mask_stream(self) -> MaskStream:
        """Raw masks of successive blocks of noisy magnitude, each given every frame before it
        (:class:`MaskStream`): the one causal path of offline, streaming and listening."""
        return MaskStream(self)

    def mask(self, noisy_mag: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """(frames, bins) noisy magnitude -> (frames, bins) gain in [mask_floor, 1] (release, exponent, floor)."""
        return shape_gain(self.raw_mask(noisy_mag, progress), self.config)[0]

    def _ratio(self, out: np.ndarray, noisy_mag: np.ndarray) -> np.ndarray:
        """Network output -> ratio mask (one place for offline and streaming)."""
        if self.config.output == "magnitude":
            out = np.clip(out / np.maximum(noisy_mag, 1e-8), 0.0, 1.0)
        return out

    def enhance_stft(self, noisy_spec: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        return noisy_spec * self.mask(np.abs(noisy_spec), progress)

    def denoise(self, audio: np.ndarray, sr: int, progress: Progress | None = None) -> np.ndarray:
        """Enhance ``audio`` (mono, any rate); returns float32 at the model's sample rate.
        ``progress(done, total)`` is called in STFT frames as the network runs."""
        audio = validate_audio(audio, "input")
        if audio.ndim != 1:
            raise RcedError(f"input: expected mono audio, got shape {audio.shape}")
        x = resample(audio, sr, self.sample_rate)
        fe = self.config.frontend
        return istft(self.enhance_stft(stft(x, fe), progress), fe, length=len(x))

    def stream(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Causal block streaming at the model's sample rate: any block sizes in, enhanced audio out.

        Keeps the last ``n_fft - hop`` input samples, the network's input state (the last ``context - 1``
        feature frames and the trackers; :class:`rced.features.InputStream`) and an overlap-add accumulator; output lags input by ``n_fft - hop`` samples inside,
        but the yielded samples are aligned with the input and, concatenated, equal
        :meth:`denoise` of the whole signal.
        """
        fe = self.config.frontend
        hop, n_fft = fe.hop, fe.n_fft
        k_over = n_fft // hop
        win, norm = window(fe), np.tile(ola_norm(fe), 1)
        history = np.zeros(n_fft - hop)
        masks = self.raw_mask_stream()
        ola = np.zeros(n_fft - hop)  # overlap-add carried to the next frames
        pending = np.zeros(0)
        total_in = 0
        to_skip = n_fft - hop  # emitted samples that precede the input's first sample
        emitted = 0

        release = None  # shape_gain's state: the running mean of the mask

        @functools.lru_cache(maxsize=8)
        def frame_index(n: int) -> np.ndarray:  # (n, n_fft): the samples of each of n frames
            return np.arange(n)[:, None] * hop + np.arange(n_fft)[None, :]

        def process(samples: np.ndarray) -> np.ndarray:
            nonlocal history, ola, release
            n = len(samples) // hop
            buf = np.concatenate([history, samples])
            history = buf[len(buf) - (n_fft - hop) :]
            spec = np.fft.rfft(buf[frame_index(n)] * win, axis=1)
            mag = np.abs(spec).astype(np.float32)
            mask, release = shape_gain(masks(mag), self.config, release)
            frames = np.fft.irfft(spec * mask, n=n_fft, axis=1) * win
            # overlap-add: the carried tail, then each hop-long segment of every frame in place
            acc = np.zeros((n + k_over - 1) * hop)
            acc[: len(ola)] = ola
            for j in range(k_over):
                acc[j * hop : (j + n) * hop] += frames[:, j * hop : (j + 1) * hop].reshape(-1)
            ola = acc[n * hop :]
            return (acc[: n * hop].reshape(n, hop) / norm).reshape(-1)

        def emit(out: np.ndarray, limit: int | None = None) -> np.ndarray:
            nonlocal to_skip, emitted
            cut = min(to_skip, len(out))
            out, to_skip = out[cut:], to_skip - cut
            if limit is not None:
                out = out[: max(0, limit - emitted)]
            emitted += len(out)
            return out.astype(np.float32)

        for block in blocks:
            block = np.asarray(block, np.float32)
            if block.ndim > 2 or (block.ndim == 2 and block.shape[1] != 1):
                raise RcedError(f"stream block: expected mono samples, got shape {block.shape}")
            block = validate_audio(block.reshape(-1), "stream block") if block.size else np.zeros(0)
            total_in += len(block)
            pending = np.concatenate([pending, block])
            n = (len(pending) // hop) * hop
            if n:
                out = emit(process(pending[:n]))
                pending = pending[n:]
                if len(out):
                    yield out
        tail = np.concatenate([pending, np.zeros((-len(pending)) % hop + (k_over - 1) * hop)])
        out = emit(process(tail), limit=total_in)
        if len(out):
            yield out
