"""Train the R-CED / CR-CED / band-compressed (bced) denoiser with JAX on a GPU (or a CPU), for a fixed wall time.

The network is :func:`rced.models.build_model`'s Keras model, run by Keras 3 on its JAX backend:
each step calls ``model.stateless_call`` inside one jitted function that also makes the batch on
the accelerator, so training is not held up by the host. What it writes is a model folder
(``model.keras``, ``config.json``, ``norm.json``, ``training_log.csv``) that ``rced`` loads like
any other, on the TensorFlow backend included; ``checkpoint.npz`` beside it lets the same
command resume a run that was stopped (see ``common.py``).

Recipe (``rced.train``'s): features of ``rced.features`` / ``rced.frontend`` (log(|Y| + 1e-5),
per-bin normalisation with ``norm.json``, the current and the context-1 past frames as input
channels, oldest first); phase-sensitive target |S|cos(θS - θY) clipped to [0, |Y|]; MSE of
magnitudes compressed by ``--loss-compress``; Adam, linear warm-up then cosine decay to 5 % over
the time budget, per-weight gradient clipping at 5 (Keras ``clipnorm``); SNR uniform in
[-5, 15] dB, level uniform in [-12, +6] dB. Every batch is made on the device from the clean
speech of the packs of ``pack_rced_data.py``: random segments, babble of 3-8 random other
training utterances (each at unit RMS, as ``rced.corpus.make_babble``), mixed in the waveform,
STFT on the device. Each segment has ``--frames`` output frames, each with its real past frames.
``--sisdr-weight W`` adds -W * SI-SDR (dB) of the masked noisy-phase resynthesis (weighted
overlap-add of the output frames) against the clean segment. ``--resample`` and ``--eq-db``
perturb speed/vocal-tract length and colour the channel; ``--reverb-share`` hears that share of the
speech and of the babble in simulated rooms (:func:`room_bank`, ``rced.rooms``), the target then
the speech's direct sound and early reflections. ``--trackers`` adds level-tracker input
channels (``ModelConfig.trackers``, ``rced.features.track``: per-bin one-pole followers of the
features, e.g. a running mean and a noise floor); each segment then starts ``--history-s`` earlier
so that they have settled, and with ``--init`` the new channels start at zero weight (an init's
own trackers come first and keep theirs). ``--cold-share P``: for P of the segments the trackers
start later, on a random frame of the history or context, as on a stream's first frames.

Distillation (``--teacher FOLDER``): a larger denoiser's output on the same noisy batch is a second
target. The loss is (1 - a) * MSE(target) + a * MSE(teacher's output), both on magnitudes compressed
by ``--loss-compress`` (a = ``--distill-weight``), plus the SI-SDR term. The teacher reads its own
features (its norm.json) of the same spectra; it needs the student's front-end and trackers.

Validation: a fixed set of dry mixtures of the packs' validation utterances (fixed seed, the same
for every run), babble from validation utterances too; logs the compressed MSE and the SI-SDR gain
over the noisy input (mask floor 0 and 0.3). The model folder keeps the weights that
``--select`` rates best, the start included (``--select last``: the last ones).

Usage (repo root; ``pip install -e '.[gpu]'`` on a CUDA machine):
    python scripts/gpu/train_rced_jax.py --pack rced_pack.npz --init rced/default_model \\
        --out runs/rced_gpu --minutes 10 --sisdr-weight 0.02 --select sisdr --lr 5e-4
    python scripts/gpu/train_rced_jax.py --pack rced_pack.npz --arch crced --out runs/crced --minutes 30
    python scripts/gpu/train_rced_jax.py --pack rced_pack.npz --arch bced --width-mult 2 --context 16 \
        --out runs/bced_w2 --minutes 10 --frames 64 --sisdr-weight 0.02 --select sisdr --resample 0.05
Run one trainer per GPU: on one H200, four side by side each ran at a quarter of the speed of one
alone (bced width 2, 128 x 64 frames a step: 2.0 steps/s each against 8.4 alone).
The result is a model folder: ``rced denoise in.wav -o out.wav --model runs/rced_gpu``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    ROOT,
    Loop,
    RunFolder,
    add_run_arguments,
    check_inputs,
    check_model_folder,
    keras_on_jax,
    load_teacher_folder,
    lr_schedule,
    network,
    parser,
    track_scan,
    train,
)
from pack_rced_data import decode  # noqa: E402

DEFAULT_MODEL = ROOT / "rced" / "default_model"
SR = 16000  # the packs' rate
CLIPNORM = 5.0
VAL_SEED = 12345
RIR_TAPS = 12288  # room responses cut at 0.77 s: 45 dB down at the longest RT60 drawn (0.7 s)


# ----------------------------------------------------------------------------- signal
def make_dsp(cfg, mean: np.ndarray, std: np.ndarray, frames: int, history: int = 0):
    """STFT, features, target and resynthesis on the device for segments of ``frames`` output frames,
    as ``rced.frontend`` / ``rced.features`` compute them for the model config ``cfg`` (n_fft = 2 x hop).
    ``history`` frames come before the first context frame: the level trackers of ``cfg.trackers``
    (``rced.features.track``, started on the segment's first frame or a later one) run over them first."""
    import jax.numpy as jnp

    from rced.features import LOG_EPS, tracker_gains
    from rced.frontend import ola_norm, window

    fe = cfg.frontend
    n_fft, hop, ctx, bins = fe.n_fft, fe.hop, fe.context, fe.n_bins
    gains = jnp.asarray(tracker_gains(cfg))  # (trackers, 2)
    lead = history + ctx - 1  # frames of the segment before the first output frame
    t_all = frames + lead
    n_samples = (t_all - 1) * hop + n_fft
    win = jnp.asarray(window(fe).astype(np.float32))
    ola = jnp.asarray(ola_norm(fe).astype(np.float32))
    idx = jnp.asarray(np.arange(t_all)[:, None] * hop + np.arange(n_fft)[None, :])
    mean, std = jnp.asarray(mean), jnp.asarray(std)

    def stft(x):  # (B, n_samples) -> (B, t_all, bins): frame t covers [t*hop, t*hop + n_fft)
        return jnp.fft.rfft(x[:, idx] * win, axis=-1)

    def features(spec, start):
        """(B, t_all, bins) -> (B * frames, bins, channels): current + past, oldest first; then the
        trackers, started on frame ``start`` (B,) of each segment (0: the first; at most ``lead``)."""
        f = (jnp.log(jnp.abs(spec) + LOG_EPS) - mean) / std
        ch = [f[:, history + j : history + j + frames] for j in range(ctx)]
        if gains.shape[0]:
            tr = track_scan(f, gains, start)[:, lead:]
            ch += [tr[:, :, i] for i in range(gains.shape[0])]
        return jnp.stack(ch, axis=-1).reshape(-1, bins, len(ch))

    def resynth(spec_out):
        """(B, frames, bins) enhanced spectra of the output frames -> waveform of the samples
        [(lead + 1) * hop, t_all * hop) of the segment (every sample there has both of its frames)."""
        fr = jnp.fft.irfft(spec_out, n=n_fft, axis=-1) * win
        out = fr[:, 1:, :hop] + fr[:, :-1, hop:]
        return (out / ola).reshape(out.shape[0], -1)

    return stft, features, resynth, lead, ((lead + 1) * hop, t_all * hop), n_samples


def si_sdr(est, ref):
    """Per-row SI-SDR in dB (zero-mean, scale-invariant)."""
    import jax.numpy as jnp

    est = est - est.mean(-1, keepdims=True)
    ref = ref - ref.mean(-1, keepdims=True)
    a = (est * ref).sum(-1, keepdims=True) / ((ref * ref).sum(-1, keepdims=True) + 1e-8)
    t = a * ref
    return 10 * jnp.log10(((t * t).sum(-1) + 1e-8) / (((est - t) ** 2).sum(-1) + 1e-8))


# ----------------------------------------------------------------------------- data
def to_device_pool(utts: list[np.ndarray], n_samples: int) -> dict:
    """Flat clean stream (TTS level), the same at unit RMS per utterance (babble), segment starts."""
    import jax.numpy as jnp

    lens = np.array([len(u) for u in utts], np.int64)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]])
    flat = np.concatenate(utts).astype(np.float32)
    unit = np.concatenate([u / np.sqrt(np.mean(np.square(u, dtype=np.float64)) + 1e-20) for u in utts]).astype(
        np.float32
    )
    ok = lens >= n_samples
    if not ok.any():
        raise SystemExit(f"no utterance has {n_samples} samples")
    return {"flat": jnp.asarray(flat), "unit": jnp.asarray(unit), "off": jnp.asarray(offs[ok].astype(np.int32)),
            "room": jnp.asarray((lens[ok] - n_samples + 1).astype(np.int32)), "total": int(len(flat))}  # fmt: skip


def random_eq(key, n: int, db: float, taps: int = 256):
    """(n, taps) linear-phase FIRs of random smooth responses: gain in dB a cosine series of
    order 3 over 0-8 kHz with N(0, (db/2)^2) coefficients (a channel or vocal-tract colouring)."""
    import jax
    import jax.numpy as jnp

    f = jnp.linspace(0.0, jnp.pi, taps // 2 + 1)
    a = jax.random.normal(key, (n, 4)) * (db / 2)
    gain_db = (a[:, :, None] * jnp.cos(jnp.arange(4)[None, :, None] * f[None, None, :])).sum(1)
    h = jnp.fft.irfft(10 ** (gain_db / 20), n=taps)
    return jnp.roll(h, taps // 2, axis=-1) * jnp.hanning(taps + 1)[:taps]


def fir(x, h):
    """Filter rows of ``x`` (B, n) with rows of ``h`` (B, taps), delay of taps // 2 removed."""
    n, taps = x.shape[-1], h.shape[-1]
    return fft_convolve(x, h)[..., taps // 2 : taps // 2 + n]


def room_bank(n: int, seed: int, taps: int = RIR_TAPS) -> dict:
    """``n`` simulated rooms (``rced.rooms.room_responses``, the seed derived as ``rced.train``'s),
    as device arrays: ``rir_full`` (n, taps), the whole response cut at ``taps`` samples, and
    ``rir_early`` (n, taps), its direct sound and early reflections, zero-padded."""
    import jax.numpy as jnp

    from rced.rooms import room_responses

    rooms = room_responses(n, SR, seed=int(np.random.default_rng([seed, 5]).integers(2**31)))
    full, early = np.zeros((n, taps), np.float32), np.zeros((n, taps), np.float32)
    for i, r in enumerate(rooms):
        full[i, : min(taps, len(r.full))] = r.full[:taps]
        early[i, : min(taps, len(r.early))] = r.early[:taps]
    return {"rir_full": jnp.asarray(full), "rir_early": jnp.asarray(early)}


def fft_convolve(x, h):
    """Full linear convolution of rows of ``x`` with rows of ``h`` (broadcast), by FFT; a row of
    ``x`` shared by several filters (a size-1 axis) is transformed once."""
    import jax.numpy as jnp

    n = x.shape[-1] + h.shape[-1] - 1
    nfft = 1 << n.bit_length()
    return jnp.fft.irfft(jnp.fft.rfft(x, nfft) * jnp.fft.rfft(h, nfft), nfft)[..., :n]


def convolve_valid(x, h):
    """Rows of ``x`` (..., taps - 1 + n) through rows of ``h`` (..., taps): the n outputs whose
    whole input window lies inside ``x`` (the first taps - 1 samples of ``x`` are the pre-roll)."""
    return fft_convolve(x, h)[..., h.shape[-1] - 1 : x.shape[-1]]


def make_sampler(pool: dict, n_samples: int, batch: int, snr: tuple[float, float], level_db=(-12.0, 6.0),
                 resample: float = 0.0, eq_db: float = 0.0, reverb_share: float = 0.0):  # fmt: skip
    """Jittable (key, device_arrays(pool)) -> (noisy, clean) segments (B, n_samples) like
    rced.train.sample_batch. The pool goes in as an argument, not a closure: captured, its
    gigabytes became constants of the compiled step (60 s to compile for 6.4 h of speech).

    ``resample`` r: the speech and each babble talker are read at a rate drawn from [1-r, 1+r]
    (linear interpolation: pitch, formants and tempo move together, a vocal-tract-length and
    speed perturbation); the pool must then hold segments of ``read_length(n_samples, r)``.
    ``eq_db``: the speech and the babble each get their own random smooth colouring
    (:func:`random_eq`); the clean target is the coloured speech. ``reverb_share`` s: s of the
    segments' speech, and s of their babble, are heard through a room of the data's
    :func:`room_bank` (``rced.train``'s rule: the target is the speech's direct sound and early
    reflections, the SNR is that of the reverberant speech); each segment reads ``RIR_TAPS - 1``
    samples before it so that its tail is whole, and the speech's are silent before its utterance."""
    import jax
    import jax.numpy as jnp

    pre = RIR_TAPS - 1 if reverb_share > 0 else 0  # samples read before each segment for the room's tail
    t = jnp.arange(-pre, n_samples, dtype=jnp.float32)
    n_ok, total = pool["off"].shape[0], pool["total"]
    n_read = read_length(n_samples, resample)
    b_pre = read_length(pre, resample) if pre else 0
    if total - n_read <= b_pre:
        raise SystemExit(f"the packs hold {total} samples of speech: too few for babble segments of {b_pre + n_read}")

    def read(stream, start, rate, first=None):  # start (...,) int, rate (...,) -> (..., pre + n_samples)
        pos = rate[..., None] * t
        i0 = jnp.floor(pos).astype(jnp.int32)
        w = pos - i0
        base = start[..., None] + i0
        x = stream[jnp.maximum(base, 0)] * (1 - w) + stream[jnp.maximum(base + 1, 0)] * w
        return x if first is None else x * (base >= first[..., None])  # silence before the utterance

    def sample(key, data):
        ks = jax.random.split(key, 10)
        i = jax.random.randint(ks[0], (batch,), 0, n_ok)
        start = data["off"][i] + jnp.floor(jax.random.uniform(ks[1], (batch,)) * data["room"][i]).astype(jnp.int32)
        rate = jax.random.uniform(ks[6], (batch,), minval=1 - resample, maxval=1 + resample)
        s = read(data["flat"], start, rate, data["off"][i])
        # babble: 3-8 talkers, each a random stretch of the unit-RMS stream (runs of utterances)
        k = jax.random.randint(ks[2], (batch,), 3, 9)
        b0 = jax.random.randint(ks[3], (batch, 8), b_pre, total - n_read)
        brate = jax.random.uniform(ks[7], (batch, 8), minval=1 - resample, maxval=1 + resample)
        talk = read(data["unit"], b0, brate)
        n = (talk * (jnp.arange(8)[None, :] < k[:, None])[:, :, None]).sum(1)
        if reverb_share > 0:
            n_rooms = data["rir_full"].shape[0]
            kr, kw = jax.random.split(jax.random.fold_in(key, 2))  # a dry run draws what it always drew
            r = jax.random.randint(kr, (2, batch), 0, n_rooms)
            wet = jax.random.uniform(kw, (2, batch)) < reverb_share
            dry_s, dry_n = s[:, pre:], n[:, pre:]
            rirs = jnp.stack([data["rir_early"][r[0]], data["rir_full"][r[0]]], 1)  # one FFT of the speech
            early, full = jnp.moveaxis(convolve_valid(s[:, None], rirs), 1, 0)
            tgt = jnp.where(wet[0][:, None], early, dry_s)
            s = jnp.where(wet[0][:, None], full, dry_s)
            n = jnp.where(wet[1][:, None], convolve_valid(n, data["rir_full"][r[1]]), dry_n)
        else:
            tgt = s
        if eq_db > 0:
            h = random_eq(ks[8], batch, eq_db)
            s, tgt = fir(s, h), fir(tgt, h)
            n = fir(n, random_eq(ks[9], batch, eq_db))
        n = n / jnp.sqrt(jnp.mean(n * n, -1, keepdims=True) + 1e-20)
        snr_db = jax.random.uniform(ks[4], (batch,), minval=snr[0], maxval=snr[1])
        es, en = (s * s).sum(-1), (n * n).sum(-1) + 1e-12
        g = jnp.where(es > 0, jnp.sqrt(es / en / 10 ** (snr_db / 10)), 1.0)
        level = 10 ** (jax.random.uniform(ks[5], (batch,), minval=level_db[0], maxval=level_db[1]) / 20)
        return level[:, None] * (s + g[:, None] * n), level[:, None] * tgt

    return sample


def device_arrays(pool: dict) -> dict:
    """The pool's arrays (what a jitted sampler takes as its second argument)."""
    return {k: v for k, v in pool.items() if k != "total"}


def read_length(n_samples: int, resample: float) -> int:
    """Stream samples one segment reads at rates up to 1 + ``resample`` (with the interpolation's +1)."""
    return int(math.ceil(n_samples * (1 + resample))) + 2 if resample > 0 else n_samples


# ----------------------------------------------------------------------------- training
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = parser(__doc__)
    add_run_arguments(ap, "packs of pack_rced_data.py; validation utterances are those flagged in any of them",
                      DEFAULT_MODEL.relative_to(ROOT))
    ap.add_argument("--arch", choices=("rced", "crced", "bced"), default=None,
                    help="network when starting from scratch (default rced); config.json otherwise from "
                         "rced/default_model")  # fmt: skip
    ap.add_argument("--width-mult", type=float, default=None, help="from scratch: filters x this (default 1)")
    ap.add_argument("--n-bands", type=int, default=None, help="from scratch, bced: bands the spectrum is compressed to")
    ap.add_argument("--context", type=int, default=None, help="from scratch: input frames (default the shipped 8)")
    ap.add_argument("--batch", type=int, default=128, help="segments per step")
    ap.add_argument("--frames", type=int, default=64, help="output frames per segment (CPU trainer: 32)")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (Adam)")
    ap.add_argument("--warmup", type=int, default=200, help="steps of linear learning-rate warm-up")
    ap.add_argument("--loss-compress", type=float, default=0.5, help="MSE of magnitudes raised to this power")
    ap.add_argument("--sisdr-weight", type=float, default=0.0, help="W of -W * SI-SDR(dB); try 0.003-0.02")
    ap.add_argument("--mask-floor", type=float, default=0.0, help="lower bound on the mask inside the loss")
    ap.add_argument("--snr-low", type=float, default=-5.0, help="lowest mixing SNR (dB)")
    ap.add_argument("--snr-high", type=float, default=15.0, help="highest mixing SNR (dB)")
    ap.add_argument("--val-segments", type=int, default=1024, help="validation mixtures (in batches of --batch)")
    ap.add_argument("--select", choices=("loss", "sisdr", "last"), default="loss",
                    help="weights kept: best validation compressed MSE, best SI-SDR gain at mask floor 0.3, "
                         "or the last ones (when the validation speech is not what the run adapts to)")  # fmt: skip
    ap.add_argument("--eval-every-s", type=float, default=30.0, help="seconds between validations")
    ap.add_argument("--seed", type=int, default=0, help="initial weights (from scratch) and batches")
    ap.add_argument("--resample", type=float, default=0.0, help="speed/VTL perturbation: rate in [1-r, 1+r]")
    ap.add_argument("--eq-db", type=float, default=0.0, help="random smooth colouring of speech and babble (dB scale)")
    ap.add_argument("--trackers", nargs="+", default=None, metavar="RISE,FALL",
                    help="add level-tracker input channels (rced.features.track), each its rise and fall time "
                         "constants in seconds, e.g. 0.5,0.5 2,0.05; with --init the new channels start at zero "
                         "weight, so training starts from the folder's model")  # fmt: skip
    ap.add_argument("--history-s", type=float, default=None,
                    help="seconds of each segment before its context, for the trackers to settle (default 1 when "
                         "the network has trackers, its --init's own included, else 0)")  # fmt: skip
    ap.add_argument("--cold-share", type=float, default=0.0,
                    help="share of segments whose trackers start cold, on a random frame of the history and "
                         "context (as at a stream's start), in training and validation alike")  # fmt: skip
    ap.add_argument("--reverb-share", type=float, default=0.0,
                    help="share of the segments' speech, and of their babble, heard in a simulated room "
                         "(target: direct sound and early reflections, as rced train --reverb-share); "
                         "validation stays dry")  # fmt: skip
    ap.add_argument("--rooms", type=int, default=48, help="simulated rooms drawn from (with --reverb-share)")
    ap.add_argument("--teacher", type=Path, default=None,
                    help="denoiser model folder whose output is a second target (same front-end and trackers)")
    ap.add_argument("--distill-weight", type=float, default=None,
                    help="a of (1 - a) * MSE(target) + a * MSE(teacher) (with --teacher; default 0.5)")
    args = ap.parse_args(argv)
    if args.teacher is None and args.distill_weight is not None:
        ap.error("--distill-weight needs --teacher")
    if args.teacher is not None:
        args.distill_weight = 0.5 if args.distill_weight is None else args.distill_weight
        if not 0 <= args.distill_weight <= 1:
            ap.error("--distill-weight must be in [0, 1]")
    if not 0 <= args.reverb_share <= 1 or args.rooms < 1:
        ap.error("--reverb-share must be in [0, 1] and --rooms positive")
    if not 0 <= args.cold_share <= 1:
        ap.error("--cold-share must be in [0, 1]")
    if args.trackers is not None:
        from rced.config import parse_tracker
        from rced.errors import RcedError

        try:
            args.trackers = tuple(parse_tracker(t) for t in args.trackers)
        except RcedError as exc:
            ap.error(f"--trackers: {exc}")
    if args.history_s is not None and not (math.isfinite(args.history_s) and 0 <= args.history_s <= 30):
        ap.error("--history-s must be in [0, 30] seconds")
    if args.init is not None and args.arch is not None:
        ap.error("--arch is for a start from scratch; with --init the network is the folder's")
    shape = {"--width-mult": args.width_mult, "--n-bands": args.n_bands, "--context": args.context}
    if args.init is not None and any(v is not None for v in shape.values()):
        ap.error("--width-mult, --n-bands and --context are for a start from scratch; with --init the network is the folder's")
    if args.n_bands is not None and args.arch != "bced":
        ap.error("--n-bands needs --arch bced")
    if any(v is not None and v <= 0 for v in shape.values()):
        ap.error("--width-mult, --n-bands and --context must be positive")
    if min(args.batch, args.frames, args.val_segments, args.warmup) < 1 or args.minutes < 0 or args.max_steps < 0:
        ap.error("--batch, --frames, --val-segments and --warmup must be positive, --minutes and --max-steps >= 0")
    if not (0 <= args.resample < 0.5 and args.eq_db >= 0 and 0 <= args.mask_floor < 1 and args.snr_low <= args.snr_high):
        ap.error("need 0 <= --resample < 0.5, --eq-db >= 0, 0 <= --mask-floor < 1, --snr-low <= --snr-high")
    return args


def model_config(args):
    """The network's ModelConfig: --init's, else the shipped model's with ``--arch``; refuses what
    the on-device features here do not implement. Also whether ``--trackers`` adds input channels
    to the ``--init`` network (its weights then grow: ``common.load_init_weights``); the init's own
    trackers, if any, must come first."""
    from rced.config import ModelConfig, load_json

    cfg = load_json(ModelConfig, (args.init or DEFAULT_MODEL) / "config.json")
    if args.init is None:
        bands = args.n_bands or (48 if args.arch == "bced" else None)  # the bced preset's 48
        shape = {"width_mult": args.width_mult, "n_bands": bands}
        cfg = dataclasses.replace(cfg, arch=args.arch or "rced", **{k: v for k, v in shape.items() if v is not None})
        if args.context is not None:
            cfg = dataclasses.replace(cfg, frontend=dataclasses.replace(cfg.frontend, context=args.context))
        cfg = dataclasses.replace(cfg, trackers=None)  # from scratch: only the trackers --trackers names
    grows = False
    if args.trackers is not None:
        have = cfg.trackers or ()
        if args.trackers[: len(have)] != have:
            raise SystemExit(f"{args.init}: the model has trackers {cfg.trackers}; --trackers must begin with them")
        grows = args.init is not None and len(args.trackers) > len(have)
        cfg = dataclasses.replace(cfg, trackers=args.trackers)
    fe = cfg.frontend
    if cfg.output != "mask" or cfg.input_feature != "log" or fe.sample_rate != SR or fe.n_fft != 2 * fe.hop:
        raise SystemExit(f"{args.init}: this trainer needs a mask output, log features, {SR} Hz and "
                         "n_fft = 2 x hop (the shipped front-end)")  # fmt: skip
    return cfg, grows


def load_teacher(folder: Path, student_cfg):
    """The teacher's (model, mean, std): a mask denoiser folder with the student's front-end and trackers,
    so that its features come from the same spectra over the same frames."""
    from rced.config import ModelConfig
    from rced.errors import RcedError

    model, cfg, mean, std = load_teacher_folder(folder, ModelConfig, "denoiser folder", RcedError)
    if cfg.output != "mask" or cfg.input_feature != "log":
        raise SystemExit(f"{folder}: the teacher must output a mask from log features")
    if (cfg.frontend, cfg.trackers) != (student_cfg.frontend, student_cfg.trackers):
        raise SystemExit(f"{folder}: front-end {cfg.frontend} and trackers {cfg.trackers}; the student has "
                         f"{student_cfg.frontend} and {student_cfg.trackers}")  # fmt: skip
    return model, cfg, mean, std


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_inputs(args.pack, args.out, [args.norm], args.init)
    if args.teacher is not None:
        check_model_folder(args.teacher)
    keras_on_jax()
    import jax
    import jax.numpy as jnp
    import optax

    from rced.models import build_model

    cfg, grow = model_config(args)
    if args.teacher is not None:  # refused before the packs are read
        teacher, t_cfg, t_mean, t_std = load_teacher(args.teacher, cfg)
    if args.cold_share and not cfg.trackers:  # --trackers' or the --init model's own
        raise SystemExit("--cold-share needs a network with trackers (--trackers, or an --init model that has them)")
    if args.history_s is None:  # the trackers' settling time: --trackers' or the --init model's own
        args.history_s = 1.0 if cfg.trackers else 0.0
    bins, channels = cfg.frontend.n_bins, cfg.input_channels
    net = network(build_model, cfg, args, DEFAULT_MODEL, bins, grow_inputs=grow)
    model = net.model
    mean, std = net.mean_std()

    utts, is_val = [], []
    for path in args.pack:
        z = np.load(path, allow_pickle=False)
        utts += decode(z)
        is_val += [bool(v) for v in z["is_val"]]
    train_utts = [u for u, v in zip(utts, is_val) if not v]
    val_utts = [u for u, v in zip(utts, is_val) if v]
    if not train_utts or not val_utts:
        raise SystemExit(f"{args.pack[0]}: the packs need training and validation utterances "
                         f"({len(train_utts)} and {len(val_utts)} here)")  # fmt: skip
    history = int(round(args.history_s * cfg.frontend.frame_rate))
    stft, features, resynth, lead, region, n_samples = make_dsp(cfg, mean, std, args.frames, history)
    pool = to_device_pool(train_utts, read_length(n_samples, args.resample))
    if args.reverb_share > 0:
        pool |= room_bank(args.rooms, args.seed)
    vpool = to_device_pool(val_utts, n_samples)
    hours = sum(len(u) for u in train_utts) / SR / 3600
    print(f"[{args.out.name}] {cfg.arch} on {jax.devices()[0]} | {len(train_utts)} train utts ({hours:.2f} h), "
          f"{len(val_utts)} val | segment {n_samples} samples, {args.batch * args.frames} frames/step", flush=True)  # fmt: skip
    snr = (args.snr_low, args.snr_high)
    sample = make_sampler(pool, n_samples, args.batch, snr, resample=args.resample, eq_db=args.eq_db,
                          reverb_share=args.reverb_share)  # fmt: skip
    tx = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7)  # keras Adam defaults
    c, w_sisdr, floor = args.loss_compress, args.sisdr_weight, args.mask_floor
    a_kd = args.distill_weight or 0.0
    if args.teacher is not None:
        t_features = make_dsp(t_cfg, t_mean, t_std, args.frames, history)[1]
        t_vars = ([v.value for v in teacher.trainable_variables], [v.value for v in teacher.non_trainable_variables])
        t_channels = t_cfg.input_channels

    def cold_starts(key):  # (B,) frame each segment's trackers start on: 0, or cold for --cold-share of them
        k1, k2 = jax.random.split(key)
        cold = jax.random.uniform(k1, (args.batch,)) < args.cold_share
        return jnp.where(cold, jax.random.randint(k2, (args.batch,), 0, lead + 1), 0)

    def losses(tv, ntv, y, clean, start, train: bool, floor: float):
        spec = stft(y)
        m, ntv = model.stateless_call(tv, ntv, features(spec, start).reshape(-1, bins, 1, channels), training=train)
        yo = spec[:, lead:]
        ay = jnp.abs(yo)
        m = jnp.maximum(m.reshape(ay.shape), floor)
        so = stft(clean)[:, lead:]
        tgt = jnp.clip(jnp.real(so * jnp.conj(yo)) / jnp.maximum(ay, 1e-12), 0.0, ay)
        mse = jnp.mean(jnp.square(jnp.power(m * ay + 1e-8, c) - jnp.power(tgt + 1e-8, c)))
        ref = clean[:, region[0] : region[1]]
        speech = (jnp.sqrt(jnp.mean(ref * ref, -1)) > 1e-3).astype(jnp.float32)
        est = resynth(yo * m)
        sdr = (si_sdr(est, ref) * speech).sum() / jnp.maximum(speech.sum(), 1.0)
        if a_kd and train:  # the teacher's output magnitude as a second target
            x_t = t_features(spec, start).reshape(-1, bins, 1, t_channels)
            m_t, _ = teacher.stateless_call(*t_vars, x_t, training=False)
            m_t = jax.lax.stop_gradient(m_t.reshape(ay.shape))
            kd = jnp.mean(jnp.square(jnp.power(m * ay + 1e-8, c) - jnp.power(m_t * ay + 1e-8, c)))
            mse = (1 - a_kd) * mse + a_kd * kd
        return mse, sdr, ntv, (m, yo, ref, speech)

    def loss_fn(tv, ntv, y, clean, start):
        mse, sdr, ntv, _ = losses(tv, ntv, y, clean, start, True, floor)
        loss = mse - w_sisdr * sdr if w_sisdr else mse
        return loss, (ntv, mse)

    def clip(g):  # keras clipnorm: every weight's gradient to norm <= 5 on its own
        return jax.tree.map(lambda v: v * (CLIPNORM / jnp.maximum(jnp.sqrt(jnp.sum(v * v)), CLIPNORM)), g)

    @jax.jit
    def train_step(tv, ntv, o, key, lr, data):
        y, clean = sample(key, data)
        start = cold_starts(jax.random.fold_in(key, 1))
        (loss, (ntv, mse)), g = jax.value_and_grad(loss_fn, has_aux=True)(tv, ntv, y, clean, start)
        upd, o = tx.update(clip(g), o, tv)
        tv = jax.tree.map(lambda w, u: w - lr * u, tv, upd)
        return tv, ntv, o, (loss, mse)

    # fixed validation mixtures (same seed for every run), in chunks of the training batch
    vsample = jax.jit(make_sampler(vpool, n_samples, args.batch, snr))
    vkeys = jax.random.split(jax.random.PRNGKey(VAL_SEED), max(1, args.val_segments // args.batch))
    val = [(*vsample(k, device_arrays(vpool)), cold_starts(jax.random.fold_in(k, 1))) for k in vkeys]

    @jax.jit
    def val_step(tv, ntv, y, clean, start):
        mse, _, _, (m, yo, ref, speech) = losses(tv, ntv, y, clean, start, False, floor)
        base = si_sdr(y[:, region[0] : region[1]], ref)
        g0 = si_sdr(resynth(yo * m), ref) - base
        g3 = si_sdr(resynth(yo * jnp.maximum(m, 0.3)), ref) - base
        n = jnp.maximum(speech.sum(), 1.0)
        return mse, (g0 * speech).sum() / n, (g3 * speech).sum() / n

    def evaluate(tv, ntv) -> dict:
        r = np.array([[float(v) for v in val_step(tv, ntv, *batch)] for batch in val]).mean(0)
        return {"mse": float(r[0]), "dsisdr_f0": float(r[1]), "dsisdr_f03": float(r[2])}

    data = device_arrays(pool)
    loop = Loop(net=net, tx=tx, step=lambda tv, ntv, o, k, lr: train_step(tv, ntv, o, k, lr, data),
                evaluate=evaluate, score=SELECT[args.select],
                lr=lr_schedule(args.lr, args.warmup, 0.05), train_names=("loss", "mse"),
                unit=("frames", args.batch * args.frames))  # fmt: skip
    train(loop, RunFolder(args.out, args), args.seed, args.minutes, args.max_steps, args.eval_every_s)


#: --select: the kept weights minimise this (validation metrics, step)
SELECT = {"loss": lambda m, step: m["mse"], "sisdr": lambda m, step: -m["dsisdr_f03"], "last": lambda m, step: -step}


if __name__ == "__main__":
    main()
