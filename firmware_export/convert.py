"""Full-integer int8 conversion of the denoiser and the acoustic model, calibrated on training-like data.

Calibration data come from the training distribution: TRAIN-voice utterances
(``rced.corpus.train_utterances``) mixed with babble of other TRAIN-voice talkers
(``make_babble``, ``mix``) at the SNRs and levels the models were trained on. Denoiser samples
are its own input features (``rced.features.model_inputs``); AM samples are fixed-length windows
of the normalised log-mel of the *enhanced* spectrum (``grammar.decoding.recognizer.Recognizer.features``),
exactly the chain the device runs. Calibration audio is held at 16 kHz (the corpus rate) and resampled
to each model's front-end rate before mixing, as training does (``rced.train`` resamples its speech);
at 16 kHz the resampling is the identity.

That audio is synthesised by the machine's TTS engines, whose builds differ between machines, so
the activation ranges the shipped models were calibrated to are recorded (:data:`RANGES_FILE`,
written by ``scripts/record_calibration.py``): :func:`denoiser_int8` and :func:`am_int8` rebuild a
recorded model from them byte for byte, synthesising nothing, and calibrate any other model on
synthesised audio with a warning that its bytes depend on the machine. :func:`convert_denoiser` and
:func:`convert_am` always calibrate on the samples.

:func:`write_int8_beside` and :func:`write_am_int8_beside` write ``model_int8.tflite`` into a
model folder (what ``rced --backend int8`` and ``grammar --backend int8`` run; the CLI is
``firmware-export int8 [denoiser|am|all]``), and the float runtime's ``model_float.tflite`` beside it
(:mod:`rced.tflite_export`); the bundle converts with the same functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from firmware_export.errors import ExportError
from firmware_export.flatbuffer import check_tflm, inspect
from rced.audio import DEFAULT_SR, resample
from rced.tflite_export import write_float_beside

# The AM's fixed device window: 1.328 s of 8 ms hops. With the shipped AM's reach (44 output frames of
# past, 6 of look-ahead, grammar.acoustic.int8.window_schedule) each window keeps 33 output frames
# (0.528 s, as the 126-frame windows with 24 frames of context did before); its TFLM arena is 89,696 B
# with the margin (126 frames: 73,856 B), within the 96 KB budget.
AM_FRAMES = 166
DENOISER_SNR_DB = (-5.0, 15.0)  # rced.config.TrainConfig defaults
AM_SNR_DB = (0.0, 25.0)  # grammar.config.AMTrainConfig defaults
AM_P_CLEAN = 0.25
LEVEL_DB = (-12.0, 6.0)  # level variation around the TTS level (as in rced.train.sample_batch)


# --------------------------------------------------------------------------- calibration audio


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """Which synthetic-corpus audio calibrates: ``n_utterances`` + 1 TRAIN-voice utterances
    (``rced.corpus.train_utterances(n_utterances + 1, seed)``, the last held out for the golden
    vectors) in babble of ``babble_utterances`` others (seed ``babble_seed``). The audio comes from
    this machine's TTS engines, whose builds vary between machines."""

    n_utterances: int = 48
    seed: int = 0
    babble_utterances: int = 24
    babble_seed: int = 777

    def describe(self) -> str:
        return (f"{self.n_utterances} TRAIN-voice utterances (rced.corpus.train_utterances(n, seed={self.seed})) in "
                f"babble of {self.babble_utterances} other TRAIN-voice utterances (seed {self.babble_seed})")  # fmt: skip

    def load(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(speech, babble pool) at 16 kHz, synthesised (or read from the corpus cache)."""
        from rced.corpus import load_utterances, train_utterances

        speech = load_utterances(train_utterances(self.n_utterances + 1, self.seed), desc="calibration speech")
        pool = load_utterances(train_utterances(self.babble_utterances, self.babble_seed), desc="calibration babble")
        return speech, pool


#: The corpus set the shipped int8 models were calibrated on; their ranges are in :data:`RANGES_FILE`.
SHIPPED_CORPUS = CorpusSpec()


@dataclasses.dataclass(frozen=True, eq=False)  # audio arrays: equal only to itself
class Calibration:
    """Clean speech to mix, a babble pool, and a held-out utterance for the golden vectors, all at
    ``sample_rate`` Hz (16 kHz: the corpus and ``rced.audio.load_audio`` rate).

    ``audio`` holds (speech, babble pool, held-out) when given; a ``corpus`` calibration synthesises
    its audio on first use, so one whose models have recorded ranges (:func:`denoiser_int8`,
    :func:`am_int8`) synthesises nothing."""

    description: str
    seed: int = 0
    sample_rate: int = DEFAULT_SR
    corpus: CorpusSpec | None = None
    audio: tuple | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def from_audio(cls, speech: list[np.ndarray], babble_pool: list[np.ndarray] | None = None,
                   description: str = "caller-supplied audio", seed: int = 0,
                   sample_rate: int = DEFAULT_SR) -> Calibration:  # fmt: skip
        """Use ``speech[:-1]`` for calibration and ``speech[-1]`` for the goldens; babble from ``babble_pool``
        (default: the speech itself). All audio is at ``sample_rate`` Hz."""
        if sample_rate <= 0:
            raise ExportError(f"calibration: sample rate {sample_rate} Hz is not positive")
        return cls(description, seed, int(sample_rate), audio=_split_audio(speech, babble_pool))

    @classmethod
    def from_corpus(cls, n_utterances: int = 48, seed: int = 0, babble_utterances: int = 24,
                    babble_seed: int = 777) -> Calibration:  # fmt: skip
        """TRAIN-voice utterances of the synthetic corpus, synthesised on first use (cached on disk)."""
        if n_utterances < 1 or babble_utterances < 1:
            raise ExportError(f"calibration: need at least one utterance and one babble talker, got {n_utterances} "
                              f"and {babble_utterances}")  # fmt: skip
        spec = CorpusSpec(n_utterances, seed, babble_utterances, babble_seed)
        return cls(spec.describe(), seed, corpus=spec)

    @functools.cached_property
    def _clips(self) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray]:
        return self.audio if self.audio is not None else _split_audio(*self.corpus.load())

    @property
    def speech(self) -> tuple[np.ndarray, ...]:
        return self._clips[0]

    @property
    def babble_pool(self) -> tuple[np.ndarray, ...]:
        return self._clips[1]

    @property
    def held_out(self) -> np.ndarray:
        return self._clips[2]

    def _at(self, audio: np.ndarray, sr: int | None) -> np.ndarray:
        """``audio`` (at :attr:`sample_rate`) resampled to ``sr`` Hz (None: as held; equal rates: unchanged)."""
        return audio if sr is None else resample(audio, self.sample_rate, sr)

    def mixtures(self, snr_db: tuple[float, float], p_clean: float, salt: int,
                 sr: int | None = None) -> list[np.ndarray]:  # fmt: skip
        """Every calibration utterance in babble at a random SNR and level (clean with probability p_clean),
        at ``sr`` Hz (the model's front-end rate; speech and babble are resampled before mixing, as in training)."""
        from rced.corpus import make_babble, mix

        rng = np.random.default_rng([self.seed, salt])
        pool = [self._at(p, sr) for p in self.babble_pool]
        out = []
        for s in self.speech:
            s = self._at(s, sr)
            level = 10 ** (rng.uniform(*LEVEL_DB) / 20)
            if rng.random() < p_clean:
                out.append((s * level).astype(np.float32))
            else:
                noise = make_babble(len(s), pool, rng)
                out.append(mix(s, noise, float(rng.uniform(*snr_db))) * np.float32(level))
        return out

    def held_out_mixture(self, snr_db: float = 5.0, sr: int | None = None) -> np.ndarray:
        """The held-out utterance in babble at ``snr_db``, at ``sr`` Hz (the model's front-end rate)."""
        from rced.corpus import make_babble, mix

        rng = np.random.default_rng([self.seed, 99])
        held = self._at(self.held_out, sr)
        return mix(held, make_babble(len(held), [self._at(p, sr) for p in self.babble_pool], rng), snr_db)


def _split_audio(speech: list[np.ndarray], babble_pool: list[np.ndarray] | None):
    """(calibration speech, babble pool, held-out utterance) as float32; the pool defaults to the speech."""
    if len(speech) < 2:
        raise ExportError("calibration: need at least two utterances (one is held out for the golden vectors)")
    speech = [np.asarray(s, np.float32) for s in speech]
    pool = [np.asarray(s, np.float32) for s in (babble_pool or speech)]
    return tuple(speech[:-1]), tuple(pool), speech[-1]

def denoiser_samples(den, cal: Calibration, n_frames: int = 800) -> np.ndarray:
    """(n, bins, 1, context) denoiser input features drawn from the calibration mixtures."""
    from rced.features import model_inputs
    from rced.frontend import stft

    fe = den.config.frontend
    feats = [model_inputs(np.abs(stft(x, fe)), den.config, den.norm)
             for x in cal.mixtures(DENOISER_SNR_DB, 0.0, salt=1, sr=fe.sample_rate)]  # fmt: skip
    allf = np.concatenate(feats)
    rng = np.random.default_rng([cal.seed, 2])
    idx = np.sort(rng.choice(len(allf), size=min(n_frames, len(allf)), replace=False))
    return allf[idx].astype(np.float32)


def am_features(audio: np.ndarray, am_cfg, am_norm, den) -> np.ndarray:
    """(frames, channels) AM input of the enhanced spectrum: the Recognizer's own features, with the
    AM's level trackers if it has them (``audio`` at the AM's front-end rate)."""
    from grammar.decoding.recognizer import Recognizer

    rec = Recognizer(None, am_cfg, am_norm, denoiser=den)
    return rec.am_input(rec.features(audio, am_cfg.frontend.sample_rate))[0]


def am_windows(feats: np.ndarray, frames: int, silence: np.ndarray, starts: list[int]) -> np.ndarray:
    """(len(starts), frames, 1, channels) windows; past the end is silence."""
    out = np.broadcast_to(silence, (len(starts), frames, len(silence))).copy()
    for i, s in enumerate(starts):
        chunk = feats[s : s + frames]
        out[i, : len(chunk)] = chunk
    return out[:, :, None, :].astype(np.float32)


def am_samples(am_cfg, am_norm, den, cal: Calibration, frames: int = AM_FRAMES, n_windows: int = 64) -> np.ndarray:
    """(n, frames, 1, channels) AM inputs from enhanced calibration mixtures (some clean, as in AM training)."""
    from grammar.acoustic.int8 import am_silence
    from grammar.errors import GrammarError

    rng = np.random.default_rng([cal.seed, 3])
    silence = am_silence(am_cfg, am_norm)
    wins = []
    for x in cal.mixtures(AM_SNR_DB, AM_P_CLEAN, salt=4, sr=am_cfg.frontend.sample_rate):
        try:
            f = am_features(x, am_cfg, am_norm, den)
        except GrammarError:
            continue  # shorter than the AM's receptive field
        start = int(rng.integers(0, max(1, len(f) - frames // 2)))
        wins.append(am_windows(f, frames, silence, [start]))
    if not wins:
        raise ExportError("calibration: no utterance is long enough for the acoustic model")
    wins_a = np.concatenate(wins)
    reps = -(-n_windows // len(wins_a))
    return np.concatenate([wins_a] * reps)[:n_windows]


# --------------------------------------------------------------------------- recorded calibration ranges
#
# The int8 graph depends on the calibration samples only through each activation tensor's range
# (TFLite's calibrator keeps a running min and max). RANGES_FILE records those ranges for the
# shipped models, keyed by a digest of each model's weights, config and normalisation (and, for the
# AM, of the denoiser in front of it) and by the calibration set; a rebuild with them synthesises no
# audio and reproduces the shipped bytes (scripts/record_calibration.py writes the file).

RANGES_FILE = Path(__file__).with_name("calibration_ranges.json")
_log = logging.getLogger("firmware_export")


def _set_fields(value):
    """A config as a dict without its unset (None) fields: an optional field added later, left unset,
    keeps every recorded key valid."""
    if isinstance(value, dict):
        return {k: _set_fields(v) for k, v in value.items() if v is not None}
    return value


def weights_digest(model, config, norm) -> str:
    """sha256 of a Keras model's weights (values, shapes, order), its config and its normalisation;
    the config's ``READOUT_FIELDS`` (how outputs are read, never the graph) are left out."""
    readout = getattr(config, "READOUT_FIELDS", ())
    fields = {k: v for k, v in _set_fields(dataclasses.asdict(config)).items() if k not in readout}
    settings = [fields, dataclasses.asdict(norm)]
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for w in model.get_weights():
        w = np.ascontiguousarray(w)
        h.update(f"{w.dtype.str}{w.shape}".encode())
        h.update(w.tobytes())
    return h.hexdigest()


def denoiser_key(den, cal: Calibration, n_frames: int = 800) -> dict | None:
    """What a denoiser's calibration ranges depend on (None: given audio, which is never recorded)."""
    if cal.corpus is None or not hasattr(den.model, "get_weights"):
        return None
    return {"kind": "denoiser", "model": weights_digest(den.model, den.config, den.norm),
            "calibration": dataclasses.asdict(cal.corpus), "samples": n_frames}  # fmt: skip


def am_key(am_model, am_cfg, am_norm, den, cal: Calibration, frames: int = AM_FRAMES,
           n_windows: int = 64) -> dict | None:  # fmt: skip
    """What an AM's calibration ranges depend on: also the denoiser as the AM's front-end
    (``grammar.decoding.recognizer.am_front_end``), whose enhanced spectrum its calibration windows are."""
    from grammar.decoding.recognizer import am_front_end

    front = am_front_end(den, am_cfg)
    if cal.corpus is None or not all(hasattr(m, "get_weights") for m in (am_model, getattr(front, "model", am_model))):
        return None
    return {"kind": "am", "model": weights_digest(am_model, am_cfg, am_norm),
            "front_end": None if front is None else weights_digest(front.model, front.config, front.norm),
            "calibration": dataclasses.asdict(cal.corpus), "samples": n_windows, "frames": frames}  # fmt: skip


def load_records(path: Path = RANGES_FILE) -> dict:
    """The recorded-ranges file: ``{"tensorflow": version, "records": [{"key", "ranges", "int8_sha256", ...}]}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data.get("records"), list):
            raise ValueError("no 'records' list")
        return data
    except FileNotFoundError:
        return {"tensorflow": None, "records": []}
    except (OSError, ValueError, AttributeError) as exc:
        raise ExportError(f"{path}: not a calibration-ranges file ({exc})") from None


def recorded(key: dict | None, what: str, cal: Calibration) -> dict | None:
    """The record for ``key`` in :data:`RANGES_FILE`, or None; when the calibration audio has to be
    synthesised instead, a warning says so (its bytes then depend on this machine's TTS engines)."""
    if key is None:
        return None
    for rec in load_records()["records"]:
        if rec.get("key") == key:
            return rec
    why = ("no calibration ranges are recorded for this model's weights, config and normalisation"
           + (" with this denoiser in front" if key["kind"] == "am" else "")
           if cal.corpus == SHIPPED_CORPUS else "not the shipped calibration set")  # fmt: skip
    _log.warning(f"{what}: calibrating on freshly synthesised TRAIN-voice audio ({why}); its audio depends on this "
                 f"machine's TTS engine builds, so another machine may write other int8 bytes "
                 f"(scripts/record_calibration.py records a model's ranges)")  # fmt: skip
    return None


@contextlib.contextmanager
def calibration_ranges(ranges: dict[str, list[float]] | None, name: str) -> Iterator[None]:
    """Within the block, TFLite's calibrator reports ``ranges`` ({tensor name: [min, max]}) for every
    tensor it calibrates, whatever samples it ran on (None: unchanged)."""
    if ranges is None:
        yield
        return
    from tensorflow.lite.python.optimize import calibrator
    from tensorflow.lite.tools import flatbuffer_utils

    real = calibrator.Calibrator.calibrate

    def calibrate(self, dataset_gen):
        model = flatbuffer_utils.convert_bytearray_to_object(real(self, dataset_gen))
        for t in (t for g in model.subgraphs for t in g.tensors):
            q, tname = t.quantization, t.name.decode()
            if q is None or q.min is None:
                continue
            if tname not in ranges or len(q.min) != 1:
                raise ExportError(f"{name}: the recorded calibration ranges do not fit this converter's graph (tensor "
                                  f"{tname!r}); rerun scripts/record_calibration.py")  # fmt: skip
            q.min, q.max = (np.array([v], np.float32) for v in ranges[tname])
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))

    calibrator.Calibrator.calibrate = calibrate
    try:
        yield
    finally:
        calibrator.Calibrator.calibrate = real


def convert_recorded(model, rec: dict, name: str) -> bytes:
    """int8 flatbuffer of a batch-1 Keras model calibrated with the recorded ranges of ``rec``
    (the calibrator runs on one silent sample; its ranges are replaced); warns when the bytes are not
    those recorded (another TensorFlow or CPU architecture)."""
    import tensorflow as tf

    data = convert_int8(model, np.zeros((1, *model.input_shape[1:]), np.float32), name, ranges=rec["ranges"])
    if hashlib.sha256(data).hexdigest() != rec.get("int8_sha256"):
        _log.warning(f"{name}: rebuilt from the recorded calibration ranges, but the bytes differ from the recorded "
                     f"build (TensorFlow {tf.__version__} here, {load_records().get('tensorflow')} recorded)")  # fmt: skip
    return data


# --------------------------------------------------------------------------- device graphs


def device_denoiser(den):
    """Batch-1 Keras device graph of a loaded denoiser (``rced.models.build_model``, weights copied;
    for bced up to the band logits: ``rced.models.device_model``)."""
    from rced.models import build_model, device_model

    model = build_model(den.config, batch_size=1)
    model.set_weights(den.model.get_weights())
    return device_model(model, den.config)


def check_am_window(frames: int, am_cfg) -> None:
    """An ExportError unless the device AM's windows of ``frames`` STFT frames suit ``am_cfg``
    (:func:`grammar.acoustic.int8.window_problem`)."""
    from grammar.acoustic.int8 import window_problem

    problem = window_problem(am_cfg, frames)
    if problem is not None:
        raise ExportError(f"AM window: {problem}")


def check_am_folder_window(am_dir: str | os.PathLike | None, frames: int) -> None:
    """:func:`check_am_window` against the stride and reach in the AM folder's config.json (None = shipped AM),
    before any slow step; a folder whose config cannot be read is left to the model loader's error."""
    from grammar.config import AMConfig
    from grammar.decoding.recognizer import default_am_path
    from grammar.errors import GrammarError
    from rced.config import load_json
    from rced.errors import RcedError

    try:
        cfg = load_json(AMConfig, Path(am_dir or default_am_path()) / "config.json")
    except (RcedError, GrammarError):
        return
    check_am_window(frames, cfg)


def device_am(am_model, am_cfg, frames: int = AM_FRAMES):
    """Batch-1, fixed-window AM (``grammar.acoustic.am.build_am``, weights copied) with a Softmax on the output."""
    import keras

    from grammar.acoustic.am import build_am

    check_am_window(frames, am_cfg)
    base = build_am(am_cfg, frames=frames, batch_size=1)
    base.set_weights(am_model.get_weights())
    return keras.Model(base.input, keras.layers.Softmax(name="posteriors")(base.output), name="ctc_am_device")


# --------------------------------------------------------------------------- conversion


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Send this process's stdout and stderr (Python and C++) to a buffer; yields a list that
    receives the captured text when the block ends."""
    box: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    py = io.StringIO()  # Python-level writers (sys.stdout may not be fd 1, e.g. under pytest)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            with contextlib.redirect_stdout(py), contextlib.redirect_stderr(py):
                yield box
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            box.append(tmp.read().decode("utf-8", "replace") + py.getvalue())


_RECURRENT = ("RNN", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def check_layers(model, name: str) -> None:
    """Refuse layers that cannot become a TFLM int8 graph before the converter sees them
    (recurrent layers crash the int8 converter here and unroll into huge TFLM graphs)."""
    import keras

    stack = list(model.layers)
    while stack:
        layer = stack.pop(0)
        kinds = {c.__name__ for c in type(layer).__mro__}
        if isinstance(layer, keras.layers.RNN) or kinds & set(_RECURRENT):
            raise ExportError(f"{name}: layer {layer.name!r} ({type(layer).__name__}) is recurrent; it would need "
                              "op UNIDIRECTIONAL_SEQUENCE_LSTM/WHILE, which int8 conversion does not support here "
                              "(use convolutions)")  # fmt: skip
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)


def _converter_message(text: str) -> str:
    """The useful part of a converter failure: the op names it could not lower."""
    m = re.search(r"TF Select ops: ([^\n]+)", text)
    if m:
        return f"op(s) {m.group(1).strip()} have no TFLite builtin kernel (would need SELECT_TF_OPS, which TFLM lacks)"
    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)' op is neither a custom op nor a flex op", text)))
    if ops:
        return f"op(s) {', '.join(ops)} have no TFLite builtin kernel"
    m = re.search(r"error: ([^\n]+)", text)
    if m:
        return m.group(1).strip()[:300]
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "unknown converter failure"


def convert_int8(model, samples: np.ndarray, name: str, ranges: dict[str, list[float]] | None = None) -> bytes:
    """Full-integer int8 TFLite (int8 input and output) of a batch-1 Keras model, calibrated on
    ``samples`` (N, *input shape without batch), or with recorded ``ranges`` (:func:`calibration_ranges`),
    checked for TFLM: every op a TFLM builtin, no float op."""
    import tensorflow as tf

    check_layers(model, name)
    samples = np.asarray(samples, np.float32)

    def representative():
        for s in samples:
            yield [s[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with captured_output() as log, warnings.catch_warnings(), calibration_ranges(ranges, name):
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")  # int8 input: none needed
        try:
            data = conv.convert()
            err = None
        except ExportError:
            raise
        except Exception as exc:  # ConverterError and friends
            err = exc
    if err is not None:
        raise ExportError(f"{name}: int8 conversion failed: {_converter_message(str(err) + chr(10) + ''.join(log))}")
    check_tflm(inspect(data, name), name)
    return bytes(data)


def convert_denoiser(den, cal: Calibration, n_frames: int = 800) -> tuple[bytes, np.ndarray]:
    """(int8 flatbuffer, calibration samples) of a loaded :class:`rced.denoiser.Denoiser`."""
    samples = denoiser_samples(den, cal, n_frames)
    return convert_int8(device_denoiser(den), samples, "denoiser"), samples


def denoiser_int8(den, calibration: Calibration | None = None, n_frames: int = 800) -> bytes:
    """int8 flatbuffer of a loaded Keras denoiser: with its recorded ranges when ``calibration`` is the
    shipped corpus set (the default) and they are recorded (nothing synthesised, the same bytes on every
    machine), else calibrated on the samples of ``calibration`` (:func:`convert_denoiser`)."""
    cal = calibration or Calibration.from_corpus()
    rec = recorded(denoiser_key(den, cal, n_frames), f"{den.path or 'denoiser'}", cal)
    if rec is not None:
        return convert_recorded(device_denoiser(den), rec, "denoiser")
    return convert_denoiser(den, cal, n_frames)[0]


def write_int8_beside(model_dir: str | os.PathLike | None = None, *, calibration: Calibration | None = None,
                      n_frames: int = 800) -> Path:  # fmt: skip
    """Convert the float denoiser of ``model_dir`` (None = shipped default) and write
    ``model_int8.tflite`` into the folder (atomically); returns its path."""
    from rced.audio import atomic_write_bytes
    from rced.denoiser import Denoiser
    from rced.int8 import INT8_MODEL_NAME

    den = Denoiser.load(model_dir, backend="keras")
    data = denoiser_int8(den, calibration, n_frames)
    out = Path(den.path) / INT8_MODEL_NAME
    atomic_write_bytes(out, data)
    write_float_beside(den.model, den.path, "denoiser")
    return out


def convert_am(am_model, am_cfg, am_norm, den, cal: Calibration, frames: int = AM_FRAMES,
               n_windows: int = 64) -> tuple[bytes, np.ndarray]:  # fmt: skip
    """(int8 flatbuffer, calibration windows) of a float AM as the device runs it: ``frames``-frame
    windows with a Softmax, calibrated on enhanced calibration mixtures (``den``: the float denoiser
    in front of the AM, or None)."""
    samples = am_samples(am_cfg, am_norm, den, cal, frames, n_windows)
    return convert_int8(device_am(am_model, am_cfg, frames), samples, "am"), samples


def am_int8(am_model, am_cfg, am_norm, den, calibration: Calibration | None = None, frames: int = AM_FRAMES,
            n_windows: int = 64, what: str = "am") -> bytes:  # fmt: skip
    """int8 flatbuffer of a float AM as the device runs it: with its recorded ranges when
    ``calibration`` is the shipped corpus set (the default) and they are recorded for this AM behind
    this denoiser ``den`` (nothing synthesised), else calibrated on enhanced calibration mixtures
    (:func:`convert_am`)."""
    cal = calibration or Calibration.from_corpus()
    rec = recorded(am_key(am_model, am_cfg, am_norm, den, cal, frames, n_windows), what, cal)
    if rec is not None:
        return convert_recorded(device_am(am_model, am_cfg, frames), rec, "am")
    return convert_am(am_model, am_cfg, am_norm, den, cal, frames, n_windows)[0]


def write_am_int8_beside(am_dir: str | os.PathLike | None = None, *, denoiser: str | os.PathLike | None | bool = None,
                         calibration: Calibration | None = None, frames: int = AM_FRAMES,
                         n_windows: int = 64) -> Path:  # fmt: skip
    """Convert the float AM of ``am_dir`` (None = shipped default) and write ``model_int8.tflite`` into
    the folder (atomically); returns its path. Calibration features go through the float denoiser
    ``denoiser`` (folder, None = shipped, False = none), as in :func:`firmware_export.build_bundle`.
    The result is loaded with :class:`grammar.acoustic.int8.Int8AM` (what ``grammar --backend int8`` runs)
    before it is written."""
    from grammar.acoustic.int8 import Int8AM
    from grammar.decoding.recognizer import Recognizer
    from rced.audio import atomic_write_bytes
    from rced.int8 import INT8_MODEL_NAME

    rec = Recognizer.load(am_dir, denoiser=denoiser, grammar=False, backend="keras")
    data = am_int8(rec.model, rec.config, rec.norm, rec.denoiser, calibration, frames, n_windows, str(rec.path))
    Int8AM(data, rec.config, rec.norm, source=f"{rec.path}: am int8")
    out = Path(rec.path) / INT8_MODEL_NAME
    atomic_write_bytes(out, data)
    write_float_beside(rec.model, rec.path, "am")
    return out
