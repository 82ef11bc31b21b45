"""Full-integer int8 conversion of the denoiser and the acoustic model, calibrated on training-like data.

Calibration data come from the training distribution: TRAIN-voice utterances
(``rced.corpus.train_utterances``) mixed with babble of other TRAIN-voice talkers
(``make_babble``, ``mix``) at the SNRs and levels the models were trained on. Denoiser samples
are its own input features (``rced.features.model_inputs``); AM samples are fixed-length windows
of the normalised log-mel of the *enhanced* spectrum (``grammar.recognizer.Recognizer.features``),
exactly the chain the device runs. Calibration audio is held at 16 kHz (the corpus rate) and resampled
to each model's front-end rate before mixing, as training does (``rced.train`` resamples its speech);
at 16 kHz the resampling is the identity.

:func:`write_int8_beside` and :func:`write_am_int8_beside` write ``model_int8.tflite`` into a
model folder (what ``rced --backend int8`` and ``grammar --backend int8`` run; the CLI is
``firmware-export int8 [denoiser|am|all]``); the bundle converts with the same functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
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

AM_FRAMES = 126  # 1.008 s of 8 ms hops: the AM's fixed device window
DENOISER_SNR_DB = (-5.0, 15.0)  # rced.config.TrainConfig defaults
AM_SNR_DB = (0.0, 25.0)  # grammar.config.AMTrainConfig defaults
AM_P_CLEAN = 0.25
LEVEL_DB = (-12.0, 6.0)  # level variation around the TTS level (as in rced.train.sample_batch)


# --------------------------------------------------------------------------- calibration audio


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Clean speech to mix, a babble pool, and a held-out utterance for the golden vectors, all at
    ``sample_rate`` Hz (16 kHz: the corpus and ``rced.audio.load_audio`` rate)."""

    speech: tuple[np.ndarray, ...]
    babble_pool: tuple[np.ndarray, ...]
    held_out: np.ndarray
    description: str
    seed: int = 0
    sample_rate: int = DEFAULT_SR

    @classmethod
    def from_audio(cls, speech: list[np.ndarray], babble_pool: list[np.ndarray] | None = None,
                   description: str = "caller-supplied audio", seed: int = 0,
                   sample_rate: int = DEFAULT_SR) -> Calibration:  # fmt: skip
        """Use ``speech[:-1]`` for calibration and ``speech[-1]`` for the goldens; babble from ``babble_pool``
        (default: the speech itself). All audio is at ``sample_rate`` Hz."""
        if len(speech) < 2:
            raise ExportError("calibration: need at least two utterances (one is held out for the golden vectors)")
        if sample_rate <= 0:
            raise ExportError(f"calibration: sample rate {sample_rate} Hz is not positive")
        speech = [np.asarray(s, np.float32) for s in speech]
        pool = [np.asarray(s, np.float32) for s in (babble_pool or speech)]
        return cls(tuple(speech[:-1]), tuple(pool), speech[-1], description, seed, int(sample_rate))

    @classmethod
    def from_corpus(cls, n_utterances: int = 48, seed: int = 0, babble_utterances: int = 24,
                    babble_seed: int = 777) -> Calibration:  # fmt: skip
        """TRAIN-voice utterances of the synthetic corpus (cached on disk after the first run)."""
        from rced.corpus import load_utterances, train_utterances

        speech = load_utterances(train_utterances(n_utterances + 1, seed), desc="calibration speech")
        pool = load_utterances(train_utterances(babble_utterances, babble_seed), desc="calibration babble")
        desc = (f"{n_utterances} TRAIN-voice utterances (rced.corpus.train_utterances(n, seed={seed})) in babble of "
                f"{babble_utterances} other TRAIN-voice utterances (seed {babble_seed})")  # fmt: skip
        return cls.from_audio(speech, pool, desc, seed)

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
    """(frames, n_mels) normalised log-mel of the enhanced spectrum: the Recognizer's own features
    (``audio`` at the AM's front-end rate)."""
    from grammar.recognizer import Recognizer

    return Recognizer(None, am_cfg, am_norm, denoiser=den).features(audio, am_cfg.frontend.sample_rate)


def am_windows(feats: np.ndarray, frames: int, silence: np.ndarray, starts: list[int]) -> np.ndarray:
    """(len(starts), frames, 1, n_mels) windows; past the end is silence."""
    out = np.broadcast_to(silence, (len(starts), frames, len(silence))).copy()
    for i, s in enumerate(starts):
        chunk = feats[s : s + frames]
        out[i, : len(chunk)] = chunk
    return out[:, :, None, :].astype(np.float32)


def am_samples(am_cfg, am_norm, den, cal: Calibration, frames: int = AM_FRAMES, n_windows: int = 64) -> np.ndarray:
    """(n, frames, 1, n_mels) AM inputs from enhanced calibration mixtures (some clean, as in AM training)."""
    from grammar.errors import GrammarError
    from grammar.int8 import am_silence

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


# --------------------------------------------------------------------------- device graphs


def device_denoiser(den):
    """Batch-1 Keras graph of a loaded denoiser (``rced.models.build_model``, weights copied)."""
    from rced.models import build_model

    model = build_model(den.config, batch_size=1)
    model.set_weights(den.model.get_weights())
    return model


def device_am(am_model, am_cfg, frames: int = AM_FRAMES):
    """Batch-1, fixed-window AM (``grammar.am.build_am``, weights copied) with a Softmax on the output."""
    import keras

    from grammar.am import build_am

    if frames <= 0 or frames % am_cfg.stride:
        raise ExportError(f"AM window: {frames} frames is not a positive multiple of the stride {am_cfg.stride}")
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


def convert_int8(model, samples: np.ndarray, name: str) -> bytes:
    """Full-integer int8 TFLite (int8 input and output) of a batch-1 Keras model, calibrated on
    ``samples`` (N, *input shape without batch), checked for TFLM: every op a TFLM builtin, no float op."""
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
    with captured_output() as log, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")  # int8 input: none needed
        try:
            data = conv.convert()
            err = None
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


def write_int8_beside(model_dir: str | os.PathLike | None = None, *, calibration: Calibration | None = None,
                      n_frames: int = 800) -> Path:  # fmt: skip
    """Convert the float denoiser of ``model_dir`` (None = shipped default) and write
    ``model_int8.tflite`` into the folder (atomically); returns its path."""
    from rced.audio import atomic_write_bytes
    from rced.denoiser import Denoiser
    from rced.int8 import INT8_MODEL_NAME

    den = Denoiser.load(model_dir)
    cal = calibration or Calibration.from_corpus()
    data, _ = convert_denoiser(den, cal, n_frames)
    out = Path(den.path) / INT8_MODEL_NAME
    atomic_write_bytes(out, data)
    return out


def convert_am(am_model, am_cfg, am_norm, den, cal: Calibration, frames: int = AM_FRAMES,
               n_windows: int = 64) -> tuple[bytes, np.ndarray]:  # fmt: skip
    """(int8 flatbuffer, calibration windows) of a float AM as the device runs it: ``frames``-frame
    windows with a Softmax, calibrated on enhanced calibration mixtures (``den``: the float denoiser
    in front of the AM, or None)."""
    samples = am_samples(am_cfg, am_norm, den, cal, frames, n_windows)
    return convert_int8(device_am(am_model, am_cfg, frames), samples, "am"), samples


def write_am_int8_beside(am_dir: str | os.PathLike | None = None, *, denoiser: str | os.PathLike | None | bool = None,
                         calibration: Calibration | None = None, frames: int = AM_FRAMES,
                         n_windows: int = 64) -> Path:  # fmt: skip
    """Convert the float AM of ``am_dir`` (None = shipped default) and write ``model_int8.tflite`` into
    the folder (atomically); returns its path. Calibration features go through the float denoiser
    ``denoiser`` (folder, None = shipped, False = none), as in :func:`firmware_export.build_bundle`.
    The result is loaded with :class:`grammar.int8.Int8AM` (what ``grammar --backend int8`` runs)
    before it is written."""
    from grammar.int8 import Int8AM
    from grammar.recognizer import Recognizer
    from rced.audio import atomic_write_bytes
    from rced.int8 import INT8_MODEL_NAME

    rec = Recognizer.load(am_dir, denoiser=denoiser, grammar=False)
    cal = calibration or Calibration.from_corpus()
    data, _ = convert_am(rec.model, rec.config, rec.norm, rec.denoiser, cal, frames, n_windows)
    Int8AM(data, rec.config, rec.norm, source=f"{rec.path}: am int8")
    out = Path(rec.path) / INT8_MODEL_NAME
    atomic_write_bytes(out, data)
    return out
