"""Training: on-the-fly babble mixing in the STFT domain, checkpoints every epoch, resume.

The STFT is linear, so a mixture's spectrum is the clean spectrum plus the scaled babble
spectrum: every batch draws fresh utterance segments, babble tracks, SNRs and levels at
almost no cost. Each epoch's data is seeded by (seed, epoch), so an interrupted run that
resumes from its checkpoint sees exactly the batches it would have seen.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from rced.audio import DEFAULT_SR, atomic_write_text, resample
from rced.config import DataConfig, TrainConfig, load_json, save_json
from rced.corpus import load_utterances, make_babble, train_utterances
from rced.errors import RcedError
from rced.features import Normalizer, compress, model_inputs
from rced.frontend import n_frames, stft

SEG_FRAMES = 32
ROOMS = 48  # simulated rooms a run draws from when TrainConfig.reverb_share > 0
DATA_CONFIG = "data_config.json"  # a run's DataConfig, beside train_config.json
STRATEGIES = ("default", "mirrored", "multiworker")


def get_strategy(name: str):
    """tf.distribute strategy by name: the same script runs on one CPU, several GPUs or workers."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy(devices=None if gpus else ["/cpu:0"])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise RcedError(f"unknown strategy {name!r} (choose from {', '.join(STRATEGIES)})")


@dataclasses.dataclass
class SpectralPool:
    """Utterance spectra and long babble-track spectra to mix from. ``clean`` is the speech as the
    microphone hears it; ``target``, where given, what the denoiser should keep of it (an utterance
    in a simulated room: its direct sound and early reflections; None: the speech itself)."""

    clean: list[np.ndarray]
    babble: list[np.ndarray]
    target: list[np.ndarray | None] | None = None


def build_pool(utts_audio: list[np.ndarray], babble_audio: list[np.ndarray], cfg: TrainConfig,
               n_tracks: int = 24, track_s: float = 30.0, seed: int = 0) -> SpectralPool:  # fmt: skip
    """Spectra of the utterances and of ``n_tracks`` babble tracks; ``cfg.reverb_share`` of each in
    simulated rooms (rced.rooms), drawn from their own generator so a dry pool is what it always was."""
    fe = cfg.model.frontend
    rng = np.random.default_rng(seed)
    ctx = fe.context
    long = [a for a in utts_audio if n_frames(len(a), fe) >= SEG_FRAMES + ctx + cfg.history_frames]
    if not long:
        raise RcedError("training set: no utterance is long enough for one segment")
    tracks = [make_babble(int(track_s * fe.sample_rate), babble_audio, rng) for _ in range(n_tracks)]
    if not cfg.reverb_share:
        return SpectralPool([stft(a, fe) for a in long], [stft(t, fe) for t in tracks])
    from rced.rooms import reverberate, room_responses

    room_rng = np.random.default_rng([seed, 5])
    rooms = room_responses(ROOMS, fe.sample_rate, seed=int(room_rng.integers(2**31)))
    clean, target = [], []
    for a in long:
        if room_rng.random() < cfg.reverb_share:
            wet, early = reverberate(a, rooms[int(room_rng.integers(ROOMS))])
            clean.append(stft(wet, fe))
            target.append(stft(early, fe))
        else:
            clean.append(stft(a, fe))
            target.append(None)
    tracks = [reverberate(t, rooms[int(room_rng.integers(ROOMS))])[0] if room_rng.random() < cfg.reverb_share else t
              for t in tracks]  # fmt: skip
    return SpectralPool(clean, [stft(t, fe) for t in tracks], target)


def sample_batch(pool: SpectralPool, cfg: TrainConfig, rng: np.random.Generator,
                 n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Noisy and clean spectra of segments with ``n_frames`` output frames in all, each with its
    ``context - 1`` past frames and, for a model with trackers, ``cfg.history_frames`` before them."""
    ctx = cfg.model.frontend.context
    n_seg = max(1, n_frames // SEG_FRAMES)
    span = SEG_FRAMES + ctx - 1 + cfg.history_frames
    ys, ss = [], []
    for _ in range(n_seg):
        k = int(rng.integers(len(pool.clean)))
        s = pool.clean[k]
        i0 = int(rng.integers(0, len(s) - span + 1))
        s = s[i0 : i0 + span]
        t = pool.target[k] if pool.target is not None else None
        t = s if t is None else t[i0 : i0 + span]
        b = pool.babble[int(rng.integers(len(pool.babble)))]
        j0 = int(rng.integers(0, len(b) - span + 1))
        n = b[j0 : j0 + span]
        snr = rng.uniform(cfg.snr_low, cfg.snr_high)
        es, en = np.sum(np.abs(s) ** 2), np.sum(np.abs(n) ** 2) + 1e-12
        g = math.sqrt(es / en / 10 ** (snr / 10)) if es > 0 else 1.0
        level = 10 ** (rng.uniform(-12, 6) / 20)  # level variation around the TTS level
        ys.append(level * (s + g * n))
        ss.append(level * t)
    return np.stack(ys), np.stack(ss)


def targets(y: np.ndarray, s: np.ndarray, kind: str) -> np.ndarray:
    """Training target magnitude for the kept frames."""
    ay = np.abs(y)
    if kind == "psa":
        return np.clip(np.abs(s) * np.cos(np.angle(s) - np.angle(y)), 0.0, ay)
    if kind == "irm":
        n = y - s
        return ay * np.sqrt(np.abs(s) ** 2 / (np.abs(s) ** 2 + np.abs(n) ** 2 + 1e-12))
    if kind == "mag":
        return np.abs(s)
    raise RcedError(f"unknown target {kind!r} (psa, irm or mag)")


def make_examples(y: np.ndarray, s: np.ndarray, cfg: TrainConfig, norm: Normalizer) -> tuple[np.ndarray, np.ndarray]:
    """Segments -> (x: (N, bins, 1, input channels), packed y_true: (N, 2*bins) = [|Y|, target]);
    the trackers run from each segment's first frame, over its history."""
    lead = cfg.model.frontend.context - 1 + cfg.history_frames
    xs, ts = [], []
    for yi, si in zip(y, s):
        x = model_inputs(np.abs(yi), cfg.model, norm)[lead:]  # keep frames with real past
        t = targets(yi[lead:], si[lead:], cfg.target)
        xs.append(x)
        ts.append(np.concatenate([np.abs(yi[lead:]), t], axis=1))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ts).astype(np.float32)


def make_loss(cfg: TrainConfig):
    """MSE between compressed enhanced and target magnitudes (mask models multiply |Y|)."""
    import keras
    from keras import ops

    bins = cfg.model.frontend.n_bins
    c = cfg.loss_compress
    as_mask = cfg.model.output == "mask"

    @keras.saving.register_keras_serializable(package="rced")
    def compressed_mse(y_true, y_pred):
        mag, tgt = y_true[:, :bins], y_true[:, bins:]
        est = y_pred * mag if as_mask else y_pred
        return ops.mean(ops.square(ops.power(est + 1e-8, c) - ops.power(tgt + 1e-8, c)), axis=-1)

    return compressed_mse


class ResumableRun:
    """A training run in a folder: one checkpoint per epoch, CSV log, resume on rerun.

    Subclasses provide the data (``_load_data``, ``_epoch_dataset``, ``self.val``) and the
    model (``_new_model``, ``_custom_objects``); the epoch loop, learning-rate schedule,
    checkpoints and the ``tf.distribute`` strategy live here once for every model.
    """

    config_cls: type = TrainConfig
    data_config_cls: type | None = None  # a frozen dataclass of the data-defining arguments, if any

    def __init__(self, run_dir: str | Path, cfg=None, *, strategy: str = "default", init_from: str | Path | None = None,
                 data: dict[str, Any] | None = None):  # fmt: skip
        """``data``: the data-defining arguments (None values: the folder's own, or the defaults)."""
        self.init_from = Path(init_from) if init_from else None
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.dir / "train_config.json"
        if cfg_path.exists():
            saved = load_json(self.config_cls, cfg_path)
            if cfg is not None and cfg != saved:
                raise RcedError(f"{cfg_path}: run folder holds a different configuration; use a new folder")
            cfg = saved
        self.cfg = cfg or self.config_cls()
        self.data_cfg = self._data_config(data or {})
        if not cfg_path.exists():
            save_json(self.cfg, cfg_path)
        if self.data_cfg is not None and not (self.dir / DATA_CONFIG).exists():
            save_json(self.data_cfg, self.dir / DATA_CONFIG)
        self.strategy_name = strategy
        self._recover()

    def _data_config(self, given: dict[str, Any]):
        """The run's data arguments: the folder's own (an explicit different value is refused), else ``given``.

        A run folder's norm.json and checkpoints belong to the speech it was started on, so a
        plain rerun must not fall back to other data (a folder from before data_config.json
        existed records what this call gives).
        """
        if self.data_config_cls is None:
            return None
        path = self.dir / DATA_CONFIG
        explicit = {k: v for k, v in given.items() if v is not None}
        if not path.exists():
            try:
                return self.data_config_cls(**explicit)
            except TypeError as exc:
                raise RcedError(f"{path}: {exc}") from None
        saved = load_json(self.data_config_cls, path)
        for name, value in explicit.items():
            if getattr(saved, name, value) != value:
                raise RcedError(f"{path}: this run trains with {name}={getattr(saved, name)!r}, not {value!r}; "
                                f"leave {name} out to resume, or use a new folder")  # fmt: skip
        return saved

    def _load_data(self) -> None:
        raise NotImplementedError

    def _epoch_dataset(self, epoch: int):
        raise NotImplementedError

    def _new_model(self):
        raise NotImplementedError

    def _custom_objects(self) -> dict:
        return {}

    def _model(self):
        import keras

        ckpt = self.dir / "ckpt.keras"
        if ckpt.exists():
            return keras.saving.load_model(ckpt, safe_mode=True, custom_objects=self._custom_objects())
        keras.utils.set_random_seed(self.cfg.seed)
        model = self._new_model()
        if self.init_from is not None:  # warm start: weights only, fresh optimizer and schedule
            if not self.init_from.exists():
                raise RcedError(f"{self.init_from}: checkpoint to initialise from not found")
            src = keras.saving.load_model(self.init_from, safe_mode=True, compile=False)
            weights = src.get_weights()
            have = [tuple(w.shape) for w in model.get_weights()]
            given = [tuple(w.shape) for w in weights]
            if have != given:
                diff = next(((a, b) for a, b in zip(have, given) if a != b), (len(have), len(given)))
                raise RcedError(f"{self.init_from}: its network differs from this run's (weights {diff[1]} where "
                                f"this run has {diff[0]}); give the configuration it was trained with")  # fmt: skip
            model.set_weights(weights)
        return model

    def _lr(self, epoch: int) -> float:
        """Cosine decay to 5% over the run, by epoch (so a resumed run follows the same schedule)."""
        frac = epoch / max(1, self.cfg.epochs)
        return self.cfg.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    def state(self) -> dict:
        p = self.dir / "state.json"
        return json.loads(p.read_text()) if p.exists() else {"epochs_done": 0, "best_val": None}

    def run(self, max_epochs_this_run: int | None = None, verbose: int = 1) -> dict:
        """Train until ``cfg.epochs`` (or ``max_epochs_this_run`` more); checkpoint every epoch."""
        state = self.state()
        if state["epochs_done"] >= self.cfg.epochs:
            return state
        strategy = get_strategy(self.strategy_name)
        self._load_data()
        with strategy.scope():
            model = self._model()
        stop_at = self.cfg.epochs
        if max_epochs_this_run is not None:
            stop_at = min(stop_at, state["epochs_done"] + max_epochs_this_run)
        for epoch in range(state["epochs_done"], stop_at):
            model.optimizer.learning_rate.assign(self._lr(epoch))
            t0 = time.time()
            hist = model.fit(self._epoch_dataset(epoch), epochs=epoch + 1, initial_epoch=epoch,
                             steps_per_epoch=self.cfg.steps_per_epoch, verbose=verbose)  # fmt: skip
            val = float(model.evaluate(*self.val, batch_size=self.val_batch, verbose=0))
            row = {"epoch": epoch, "loss": float(hist.history["loss"][-1]), "val_loss": val,
                   "lr": self._lr(epoch), "seconds": round(time.time() - t0, 1)}  # fmt: skip
            row.update(self._extra_metrics(model))
            self._commit_epoch(model, epoch, row, state)
            if verbose:
                print(f"epoch {epoch + 1}/{self.cfg.epochs}: loss {row['loss']:.5f} val {val:.5f} ({row['seconds']} s)")
        return state

    # -- crash-consistent epoch commit ------------------------------------------------------
    # Ordering: the epoch's checkpoint (and best model, when better) are first saved under
    # names tagged with the new epoch count, and its log row appended; state.json, replaced
    # atomically, is the single commit point; only then are the tagged files renamed into
    # place. A kill before the state write leaves state.json, ckpt.keras and best.keras of the
    # previous epoch (the tagged files and the log row are dropped on the next start: the
    # epoch is trained once more, from the same checkpoint and the same seeded data); a kill
    # after it leaves tagged files whose tag equals epochs_done, renamed on the next start.
    # So ckpt.keras, best.keras, best_val and log.csv always describe the same epochs.

    def _commit_epoch(self, model, epoch: int, row: dict, state: dict) -> None:
        """Write one finished epoch: staged models, log row, state.json (the commit), renames."""
        done = epoch + 1
        _save_model_atomic(model, self._staged("ckpt", done))
        if state["best_val"] is None or row["val_loss"] < state["best_val"]:
            _save_model_atomic(model, self._staged("best", done))
            state["best_val"] = row["val_loss"]
        _append_csv(self.dir / "log.csv", row)
        state["epochs_done"] = done
        atomic_write_text(self.dir / "state.json", json.dumps(state) + "\n")
        self._recover()

    def _staged(self, name: str, epochs_done: int) -> Path:
        return self.dir / f".{name}.e{epochs_done}.keras"

    def _recover(self) -> None:
        """Finish a committed epoch (rename its staged models), drop an uncommitted one's leftovers."""
        done = self.state()["epochs_done"]
        for name in ("best", "ckpt"):
            staged = self._staged(name, done)
            if staged.exists():
                os.replace(staged, self.dir / f"{name}.keras")
        for pattern in (".ckpt.e*.keras", ".best.e*.keras", ".*.part.keras"):
            for leftover in self.dir.glob(pattern):
                leftover.unlink(missing_ok=True)
        _truncate_csv(self.dir / "log.csv", done)

    val_batch = 1024

    def _extra_metrics(self, model) -> dict:
        return {}

    def _model_config(self):
        """The model's own configuration, saved as config.json beside the exported weights."""
        raise NotImplementedError

    def _inference_model(self):
        """A fresh inference graph (no optimizer, no training-only state) to receive the weights."""
        raise NotImplementedError

    def export(self, out_dir: str | Path) -> Path:
        """Write the best checkpoint as a shippable model folder (model.keras, config.json, norm.json, and
        model_float.tflite, what inference runs: :mod:`rced.tflite_export`)."""
        import keras

        from rced.runtime import FLOAT_MODEL_NAME, INT8_MODEL_NAME
        from rced.tflite_export import write_float_beside

        best = self.dir / "best.keras"
        if not best.exists():
            raise RcedError(f"{self.dir}: no trained checkpoint to export")
        trained = keras.saving.load_model(best, safe_mode=True, compile=False)
        model = self._inference_model()
        model.set_weights(trained.get_weights())
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        # .tflite files converted from earlier weights must not run with the new ones: removed first,
        # so a kill part-way leaves no stale network (a folder without model_float.tflite runs model.keras)
        (out / INT8_MODEL_NAME).unlink(missing_ok=True)
        (out / FLOAT_MODEL_NAME).unlink(missing_ok=True)
        _save_model_atomic(model, out / "model.keras")
        save_json(self._model_config(), out / "config.json")
        Normalizer.load(self.dir / "norm.json").save(out / "norm.json")
        write_float_beside(model, out)
        return out


class Trainer(ResumableRun):
    """Denoiser training run in ``run_dir``; calling :meth:`run` again resumes it."""

    data_config_cls = DataConfig

    def __init__(self, run_dir: str | Path, cfg: TrainConfig | None = None, *, n_utts: int | None = None,
                 data_seed: int | None = None, pico_utterances: int | None = None, strategy: str = "default",
                 utts_audio: list[np.ndarray] | None = None, init_from: str | Path | None = None):  # fmt: skip
        """``n_utts``/``data_seed``/``pico_utterances`` None: the run folder's own on resume, DataConfig's
        defaults on a new run."""
        super().__init__(run_dir, cfg, strategy=strategy, init_from=init_from,
                         data={"utterances": n_utts, "data_seed": data_seed, "pico_utterances": pico_utterances})
        self.n_utts, self.data_seed = self.data_cfg.utterances, self.data_cfg.data_seed
        self._utts_audio = utts_audio

    # -- data -----------------------------------------------------------------------------
    def _load_data(self) -> None:
        audio = self._utts_audio
        if audio is None:
            plan = train_utterances(self.n_utts, self.data_seed, pico=self.data_cfg.pico_utterances)
            audio = load_utterances(plan, desc="train speech")
        sr = self.cfg.model.frontend.sample_rate
        if sr != DEFAULT_SR:  # e.g. the paper preset at 8 kHz
            audio = [resample(a, DEFAULT_SR, sr) for a in audio]
        n_val = max(2, len(audio) // 40)
        train_audio, val_audio = audio[n_val:], audio[:n_val]
        # babble talkers are drawn from the training speech itself (other utterances)
        self.pool = build_pool(train_audio, train_audio, self.cfg, seed=self.cfg.seed)
        self.val_pool = build_pool(val_audio, val_audio, self.cfg, n_tracks=4, track_s=10.0, seed=self.cfg.seed + 1)
        norm_path = self.dir / "norm.json"
        if norm_path.exists():
            self.norm = Normalizer.load(norm_path)
        else:
            rng = np.random.default_rng(self.cfg.seed + 2)
            y, _ = sample_batch(self.pool, self.cfg, rng, 20000)
            self.norm = Normalizer.fit(compress(np.abs(y).reshape(-1, y.shape[-1]), self.cfg.model.input_feature))
            self.norm.save(norm_path)
        rng = np.random.default_rng(self.cfg.seed + 3)
        self.val = make_examples(*sample_batch(self.val_pool, self.cfg, rng, 8192), self.cfg, self.norm)

    def _epoch_dataset(self, epoch: int):
        import tensorflow as tf

        cfg = self.cfg
        bins, channels = cfg.model.frontend.n_bins, cfg.model.input_channels

        def gen():
            rng = np.random.default_rng([cfg.seed, epoch])
            for _ in range(cfg.steps_per_epoch):
                yield make_examples(*sample_batch(self.pool, cfg, rng, cfg.batch_frames), cfg, self.norm)

        sig = (tf.TensorSpec((None, bins, 1, channels), tf.float32), tf.TensorSpec((None, 2 * bins), tf.float32))
        return tf.data.Dataset.from_generator(gen, output_signature=sig).prefetch(4)

    # -- model ----------------------------------------------------------------------------
    def _custom_objects(self) -> dict:
        return {"compressed_mse": make_loss(self.cfg)}

    def _new_model(self):
        import keras

        from rced.models import build_model

        model = build_model(self.cfg.model)
        model.compile(keras.optimizers.Adam(self.cfg.learning_rate, clipnorm=5.0), loss=make_loss(self.cfg))
        return model

    def _model_config(self):
        return self.cfg.model

    def _inference_model(self):
        from rced.models import build_model

        return build_model(self.cfg.model)


def _save_model_atomic(model, path: Path) -> None:
    """Save to ``path`` through a temporary name (a kill never leaves half a zip under ``path``)."""
    tmp = path.with_name(f".{path.stem.lstrip('.')}.part.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _append_csv(path: Path, row: dict) -> None:
    """Append one row, rewriting the (small) file atomically: a kill never leaves half a row."""
    old = path.read_bytes().decode("utf-8") if path.exists() else ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(row))
    if not old:
        w.writeheader()
    w.writerow(row)
    atomic_write_text(path, old + buf.getvalue())


def _truncate_csv(path: Path, epochs_done: int) -> None:
    """Drop log rows of epochs not committed (``epoch >= epochs_done``), atomically; no-op when none."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames or [], list(reader)
    keep = [r for r in rows if int(r["epoch"]) < epochs_done]
    if len(keep) == len(rows):
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(keep)
    atomic_write_text(path, buf.getvalue())
