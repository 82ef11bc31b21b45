"""Acoustic-model training: TRAIN-voice read speech, clean / in babble / behind the denoiser.

Each utterance is prepared once (log-mel of the clean speech, of one babble mixture, and for
half of the utterances of that mixture after the shipped denoiser) and cached in the run
folder; every batch then draws a version and applies tempo, vocal-tract-length (mel warp),
level and SpecAugment perturbations on the fly. The epoch loop, checkpoints, resume and the
``tf.distribute`` strategy are those of :class:`rced.train.ResumableRun`.
"""

from __future__ import annotations

import numpy as np

from grammar.acoustic.features import LOG_FLOOR, log_mel, with_trackers
from grammar.alphabet import normalize_text
from grammar.config import AMConfig, AMTrainConfig
from grammar.errors import GrammarError
from grammar.metrics import char_error_rate
from rced.audio import atomic_save_npz
from rced.corpus import load_utterances, make_babble, mix, train_utterances
from rced.features import Normalizer
from rced.frontend import stft
from rced.train import ResumableRun


def prepare_utterances(audios: list[np.ndarray], texts: list[str], cfg: AMTrainConfig, denoiser,
                       babble_pool: list[np.ndarray], seed: int) -> dict:  # fmt: skip
    """Per utterance: label ids (in the AM's units; an utterance they cannot spell is skipped; an
    empty text is a non-speech negative, all blank) and log-mel of clean, noisy and (for half)
    enhanced versions."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    fe = cfg.am.frontend
    units = cfg.am.unit_set
    out: dict = {"labels": [], "clean": [], "noisy": [], "enhanced": [], "text": []}
    for i, (audio, text) in enumerate(tqdm(list(zip(audios, texts)), desc="AM data", unit="utt")):
        try:
            text = normalize_text(text) if text else ""
            ids = units.encode(units.spell(text)) if text else np.zeros(0, np.int32)
        except GrammarError:
            continue
        noise = make_babble(len(audio), babble_pool, rng)
        noisy = mix(audio, noise, float(rng.uniform(cfg.snr_low, cfg.snr_high)))
        spec = stft(noisy, fe)
        out["labels"].append(ids.astype(np.int32))
        out["text"].append(text)
        out["clean"].append(log_mel(np.abs(stft(audio, fe)), cfg.am).astype(np.float16))
        out["noisy"].append(log_mel(np.abs(spec), cfg.am).astype(np.float16))
        enhanced = None
        if denoiser is not None and i % 2 == 0:
            enhanced = log_mel(np.abs(denoiser.enhance_stft(spec)), cfg.am).astype(np.float16)
        out["enhanced"].append(enhanced)
    return out


def augment(feat: np.ndarray, cfg: AMTrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Tempo (frame resampling), mel-axis warp (VTLP), level offset; log-mel in, log-mel out."""
    t, m = feat.shape
    tempo = rng.uniform(1 - cfg.tempo, 1 + cfg.tempo)
    idx = np.clip(np.round(np.arange(0, t, tempo)).astype(int), 0, t - 1)
    feat = feat[idx].astype(np.float32)
    warp = rng.uniform(1 - cfg.vtlp, 1 + cfg.vtlp)
    src = np.clip(np.arange(m) * warp, 0, m - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, m - 1)
    w = src - lo
    feat = feat[:, lo] * (1 - w) + feat[:, hi] * w
    return feat + rng.uniform(-2.3, 2.3)  # +-10 dB level


def spec_augment(x: np.ndarray, cfg: AMTrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Zero (the normalised mean) a few mel bands and time stretches."""
    t, m = x.shape
    for _ in range(cfg.spec_freq_masks):
        w = int(rng.integers(0, 7))
        f0 = int(rng.integers(0, m - w + 1))
        x[:, f0 : f0 + w] = 0.0
    for _ in range(cfg.spec_time_masks):
        w = int(rng.integers(0, min(20, max(1, t // 8)) + 1))
        t0 = int(rng.integers(0, max(1, t - w + 1)))
        x[t0 : t0 + w] = 0.0
    return x


def pad_batch(feats: list[np.ndarray], labels: list[np.ndarray], am: AMConfig, pad_value: np.ndarray):
    """Stack to (B, T, 1, ``am.input_channels``) with silence padding (T a multiple of the stride) and
    (B, L) labels (0-padded). The AM's level trackers run on each padded row from its first frame, as
    on a stream of the utterance and then silence."""
    t = max(len(f) for f in feats)
    t += (-t) % am.stride
    x = np.broadcast_to(pad_value, (len(feats), t, pad_value.shape[-1])).copy()
    for i, f in enumerate(feats):
        x[i, : len(f)] = f
    x = np.stack([with_trackers(row, am)[0] for row in x]) if am.trackers else x
    y = np.zeros((len(labels), max(len(lab) for lab in labels)), np.int32)
    for i, lab in enumerate(labels):
        y[i, : len(lab)] = lab
    return x[:, :, None, :].astype(np.float32), y


class AMTrainer(ResumableRun):
    """A resumable AM training run; the prepared data are cached in the run folder."""

    config_cls = AMTrainConfig
    val_batch = 16

    def __init__(self, run_dir, cfg: AMTrainConfig | None = None, *, utt_seeds: tuple[int, ...] = (0, 1),
                 n_utts: int = 4000, denoiser_path=None, strategy: str = "default", data: dict | None = None,
                 init_from=None):  # fmt: skip
        super().__init__(run_dir, cfg, strategy=strategy, init_from=init_from)
        self.utt_seeds, self.n_utts, self.denoiser_path = utt_seeds, n_utts, denoiser_path
        self._data = data

    # -- data -----------------------------------------------------------------------------
    def _prepare(self) -> dict:
        from rced.denoiser import Denoiser

        cache = self.dir / "am_data.npz"
        if cache.exists():
            return _load_npz(cache)
        utts = [u for s in self.utt_seeds for u in train_utterances(self.n_utts, s)]
        audios = load_utterances(utts, desc="AM speech")
        pool = load_utterances(train_utterances(200, 777), desc="AM babble")
        from grammar.decoding.recognizer import am_front_end

        den = am_front_end(Denoiser.load(self.denoiser_path), self.cfg.am)  # the floor it will run behind
        data = prepare_utterances(audios, [u.text for u in utts], self.cfg, den, pool, self.cfg.seed)
        _save_npz(cache, data)
        return data

    def _load_data(self) -> None:
        data = self._data if self._data is not None else self._prepare()
        n = len(data["labels"])
        n_val = max(2, n // 40)
        self.data = {k: v[n_val:] for k, v in data.items()}
        val = {k: v[:n_val] for k, v in data.items()}
        norm_path = self.dir / "norm.json"
        if norm_path.exists():
            self.norm = Normalizer.load(norm_path)
        else:
            sample = np.concatenate([f for f in self.data["noisy"][:400]] + [f for f in self.data["clean"][:200]])
            self.norm = Normalizer.fit(sample.astype(np.float32))
            self.norm.save(norm_path)
        self.pad = self.norm.apply(np.full((1, self.cfg.am.n_mels), np.log(LOG_FLOOR), np.float32))[0]
        # validation: the noisy version of every held-out utterance (enhanced where it exists)
        feats = [self.norm.apply((e if e is not None else nz).astype(np.float32))
                 for e, nz in zip(val["enhanced"], val["noisy"])]  # fmt: skip
        self.val_text = val["text"]
        self.val = pad_batch(feats, val["labels"], self.cfg.am, self.pad)

    def _sample(self, rng: np.random.Generator):
        cfg = self.cfg
        idx = rng.integers(0, len(self.data["labels"]), cfg.batch_utts)
        feats, labels = [], []
        for i in idx:
            # half the utterances have an enhanced version: give it twice the share there
            r, enh = rng.random(), self.data["enhanced"][i]
            if r < cfg.p_clean:
                f = self.data["clean"][i]
            elif enh is not None and r < cfg.p_clean + 2 * cfg.p_enhanced:
                f = enh
            else:
                f = self.data["noisy"][i]
            feats.append(self.norm.apply(augment(f, cfg, rng)))
            labels.append(self.data["labels"][i])
        x, y = pad_batch(feats, labels, cfg.am, self.pad)
        for row, f in zip(x, feats):  # SpecAugment masks the bands only: the trackers hear what the device does
            spec_augment(row[: len(f), 0, : cfg.am.n_mels], cfg, rng)
        return x, y

    def _epoch_dataset(self, epoch: int):
        import tensorflow as tf

        def gen():
            rng = np.random.default_rng([self.cfg.seed, epoch])
            for _ in range(self.cfg.steps_per_epoch):
                yield self._sample(rng)

        sig = (tf.TensorSpec((None, None, 1, self.cfg.am.input_channels), tf.float32), tf.TensorSpec((None, None), tf.int32))
        return tf.data.Dataset.from_generator(gen, output_signature=sig).prefetch(4)

    # -- model ----------------------------------------------------------------------------
    def _new_model(self):
        import keras

        from grammar.acoustic.am import build_am

        model = build_am(self.cfg.am)
        model.compile(keras.optimizers.Adam(self.cfg.learning_rate, clipnorm=5.0), loss=keras.losses.CTC())
        return model

    def _extra_metrics(self, model) -> dict:
        """Greedy-decoding character error rate on the held-out utterances."""
        import keras

        logits = np.asarray(model.predict(self.val[0], batch_size=16, verbose=0))
        units = self.cfg.am.unit_set  # val_cer: the unit error rate
        hyps = [units.greedy(np.asarray(keras.ops.log_softmax(lg))) for lg in logits]
        return {"val_cer": round(char_error_rate([units.spell(t) for t in self.val_text], hyps), 4)}

    def _model_config(self):
        return self.cfg.am

    def _inference_model(self):
        from grammar.acoustic.am import build_am

        return build_am(self.cfg.am)


def _save_npz(path, data: dict) -> None:
    """Ragged lists as one flat array plus offsets per field (no pickles)."""
    arrays = {}
    for key in ("labels", "clean", "noisy"):
        arrays[key] = np.concatenate(data[key])
        arrays[f"{key}_len"] = np.array([len(a) for a in data[key]])
    has = np.array([e is not None for e in data["enhanced"]])
    arrays["enhanced"] = np.concatenate([e for e in data["enhanced"] if e is not None] or [np.zeros((0, 40), np.float16)])
    arrays["enhanced_len"] = np.array([len(e) if e is not None else 0 for e in data["enhanced"]])
    arrays["enhanced_has"] = has
    arrays["text"] = np.array(data["text"], dtype=np.str_)
    atomic_save_npz(path, arrays)


def _load_npz(path) -> dict:
    z = np.load(path, allow_pickle=False)
    out = {}
    for key in ("labels", "clean", "noisy", "enhanced"):
        flat = z[key]  # NpzFile reads the whole array on every access: read it once
        offs = np.concatenate([[0], np.cumsum(z[f"{key}_len"])])
        out[key] = [flat[a:b] for a, b in zip(offs[:-1], offs[1:])]
    out["enhanced"] = [e if h else None for e, h in zip(out["enhanced"], z["enhanced_has"])]
    out["text"] = [str(t) for t in z["text"]]
    return out



