"""Train the CTC acoustic model with JAX on a GPU (or a CPU), for a fixed wall time.

The network is :func:`grammar.acoustic.am.build_am`'s Keras model, run by Keras 3 on its JAX backend
inside one jitted step that also augments the batch on the accelerator. It is fed by the packed
features of ``pack_am_data.py``; every batch is augmented there: 7-bit dequantisation dither,
babble mixed into clean utterances in the mel-power domain (SNR 0-25 dB), tempo 1 +- 0.1,
vocal-tract-length warp 1 +- 0.1, level +-10 dB, SpecAugment. Batches have a fixed shape
(``--frames``, mostly padding for short commands), so BatchNorm statistics and the CTC loss see
only the real frames of each utterance (``common.masked_bn_call``; ``grammar train-am``, which
pads each batch to its longest utterance, lets the padding into the statistics). What it writes
is a model folder (``model.keras``, ``config.json``, ``norm.json``, ``training_log.csv``) that
``grammar --am`` loads like any other, on the TensorFlow backend included, with the weights of
the best validation CER (the start included; ``--select last``: the last ones);
``checkpoint.npz`` beside it lets the same command resume a run that was stopped.

Output units (``--units phones``): the packs' character transcripts are respelled in ARPAbet
phonemes (:mod:`grammar.units`; utterances with a word outside the lexicon are dropped) and, from an
``--init`` folder of other units, every layer but the output projection starts from its weights
(a new head, drawn from ``--seed``). Validation then reports the unit error rate in ``cer``.

Distillation (``--teacher FOLDER``): a larger AM's posteriors on the same augmented batch are soft
targets. The loss is (1 - a) * CTC + a * T^2 * KL(teacher || student) at temperature T, the KL
averaged over the real output frames (a = ``--distill-weight``, T = ``--temperature``). The teacher
runs in inference mode on the batch's bands renormalised to its own ``norm.json`` (SpecAugment
included), with its own level trackers on them if it has any; it must have the student's stride and
output symbols.

Level trackers (``--trackers 0.5,0.5 2,0.05``): input channels after the bands that follow the
normalised log-mel's means over ``--tracker-bands`` adjacent bands with one-pole trackers
(``AMConfig.trackers``, ``grammar.acoustic.features.with_trackers``): the level and noise floor of the
last seconds, as the denoiser's trackers give it. They run on each augmented utterance from its first
frame, before SpecAugment; an ``--init`` network without them grows zero weights for them, so it
starts as it was.

Usage (repo root; ``pip install -e '.[gpu]'`` on a CUDA machine):
    python scripts/gpu/train_am_jax.py --pack am_pack.npz am_pack_b.npz --init grammar/default_am \\
        --out runs/am_gpu --minutes 10 --lr 5e-4 --warmup 100
    python scripts/gpu/train_am_jax.py --pack am_pack.npz --channels 384 --blocks 8 --out runs/am_teacher --minutes 20
    python scripts/gpu/train_am_jax.py --pack am_pack.npz --init grammar/default_am --teacher runs/am_teacher \\
        --distill-weight 0.5 --temperature 2 --out runs/am_student --minutes 10 --lr 5e-4 --warmup 100
The result is an acoustic-model folder: ``grammar recognize in.wav --am runs/am_gpu``.
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
    masked_bn_call,
    network,
    parser,
    track_scan,
    train,
)
from pack_am_data import decode  # noqa: E402

from grammar.units import UNIT_SETS  # noqa: E402

DEFAULT_AM = ROOT / "grammar" / "default_am"
MAX_LABEL = 96  # characters per transcript in a batch
ARCH_FIELDS = ("channels", "blocks", "kernel", "stride", "lookahead")


def normalise(logmel: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """As rced.features.Normalizer.apply (norm.json's per-band mean and std)."""
    return (logmel - mean) / std


# ----------------------------------------------------------------------------- data
def _pad_ragged(flat: np.ndarray, lens: np.ndarray, width: int, fill=0) -> np.ndarray:
    out = np.full((len(lens), width) + flat.shape[1:], fill, flat.dtype)
    offs = np.concatenate([[0], np.cumsum(lens)])
    for i, (a, b) in enumerate(zip(offs[:-1], offs[1:])):
        out[i, : b - a] = flat[a:b]
    return out


def load_pack(path: Path, frames: int, max_label: int, with_val: bool = True) -> dict:
    z = np.load(path, allow_pickle=False)
    lo, hi, levels, n_mels = z["quant"]
    n_mels = int(n_mels)
    if z["lens"].max(initial=0) > frames or z["label_lens"].max(initial=0) > max_label:
        raise SystemExit(f"{path}: utterances of up to {z['lens'].max()} frames and {z['label_lens'].max()} "
                         f"characters; --frames {frames} and {max_label} characters are the limits")  # fmt: skip
    d = {"lo": float(lo), "step": float((hi - lo) / (levels - 1)), "n_mels": n_mels}
    d["x"] = _pad_ragged(decode(z["feats"].tobytes(), n_mels), z["lens"], frames)
    d["lens"] = z["lens"].astype(np.int32)
    d["kinds"] = z["kinds"].astype(np.int32)
    d["y"] = _pad_ragged(z["labels"].astype(np.int32), z["label_lens"], max_label)
    if not with_val:
        return d
    d["babble"] = decode(z["babble"].tobytes(), n_mels)
    vlen = z["val_lens"].astype(np.int32)
    d["val_frames"] = int(math.ceil(vlen.max() / 64) * 64)
    d["val_x"] = _pad_ragged(decode(z["val_feats"].tobytes(), n_mels), vlen, d["val_frames"])
    d["val_lens"] = vlen
    d["val_text"] = [str(t) for t in z["val_text"]]
    return d


def relabel(d: dict, units) -> dict:
    """A character pack's labels and validation references in ``units`` (a :class:`grammar.units.Units`);
    utterances with a word the lexicon cannot spell are dropped."""
    from grammar.errors import GrammarError
    from grammar.units import CHARS

    def spell(text: str):
        try:
            return units.spell(text)
        except GrammarError:
            return None

    d = dict(d)
    d["val_ref"] = [spell(t) if units != CHARS else t for t in d["val_text"]]
    if units == CHARS:
        return d
    spelled = [spell(CHARS.decode(row)) for row in d["y"]]
    keep = np.array([u is not None for u in spelled])
    width = d["y"].shape[1]
    ys = [units.encode(u) for u in spelled if u is not None]
    if max(map(len, ys), default=0) > width:
        raise SystemExit(f"a respelled transcript is longer than {width} symbols")
    for k in ("x", "lens", "kinds"):
        d[k] = d[k][keep]
    d["y"] = _pad_ragged(np.concatenate(ys).astype(np.int32), np.array([len(y) for y in ys]), width)
    vkeep = np.array([r is not None for r in d["val_ref"]])
    d["val_x"], d["val_lens"] = d["val_x"][vkeep], d["val_lens"][vkeep]
    d["val_ref"] = [r for r in d["val_ref"] if r is not None]
    print(f"respelled in {units.name}: kept {int(keep.sum())} of {len(keep)} utterances, "
          f"{int(vkeep.sum())} of {len(vkeep)} for validation", flush=True)  # fmt: skip
    return d


def load_packs(paths: list[Path], frames: int, max_label: int) -> dict:
    """The first pack gives validation set, babble and quantiser; every pack adds training utterances."""
    d = load_pack(paths[0], frames, max_label)
    if d["babble"].shape[0] <= frames:
        raise SystemExit(f"{paths[0]}: {d['babble'].shape[0]} babble frames, need more than --frames {frames}")
    for p in paths[1:]:
        more = load_pack(p, frames, max_label, with_val=False)
        if (more["lo"], more["step"], more["n_mels"]) != (d["lo"], d["step"], d["n_mels"]):
            raise SystemExit(f"{p}: quantiser differs from {paths[0]}")
        for k in ("x", "lens", "kinds", "y"):
            d[k] = np.concatenate([d[k], more[k]])
    return d


# ----------------------------------------------------------------------------- augmentation
def tracker_fn(cfg):
    """A jittable (B, frames, n_mels) normalised log-mel -> (B, frames, trackers x groups) channels, as
    ``grammar.acoustic.features.with_trackers`` appends them (none without trackers)."""
    import jax.numpy as jnp

    from rced.features import tracker_gains

    gains, g, k = jnp.asarray(tracker_gains(cfg)), cfg.tracker_groups, len(cfg.trackers or ()) * cfg.tracker_groups

    def channels(x):
        if not k:
            return x[..., :0]
        groups = x.reshape(x.shape[0], x.shape[1], g, cfg.tracker_bands).mean(-1)
        return track_scan(groups, gains).reshape(x.shape[0], x.shape[1], k)

    return channels


def make_batch_fn(d: dict, mean: np.ndarray, std: np.ndarray, args, cfg, log_floor: float):
    """A jittable key -> (x, output-frame mask, labels, label paddings) sampler over device-resident
    data; ``log_floor`` is the log-mel of silence (what padding frames hold)."""
    import jax
    import jax.numpy as jnp

    stride, trackers_of = cfg.stride, tracker_fn(cfg)

    X = jnp.asarray(d["x"])
    lens = jnp.asarray(d["lens"])
    kinds = jnp.asarray(d["kinds"])
    Y = jnp.asarray(d["y"])
    babble = jnp.asarray(d["babble"])
    lo, step, m = d["lo"], d["step"], d["n_mels"]
    pad = jnp.asarray(normalise(np.full_like(mean, log_floor), mean, std))
    mean, std = jnp.asarray(mean), jnp.asarray(std)
    frames, n, nb, bsz = args.frames, X.shape[0], babble.shape[0], args.batch
    t = jnp.arange(frames)

    def sample(key):
        ks = jax.random.split(key, 16)
        idx = jax.random.randint(ks[0], (bsz,), 0, n)
        x = X[idx].astype(jnp.float32) * step + lo
        x = x + jax.random.uniform(ks[1], x.shape, minval=-step / 2, maxval=step / 2)
        ln, kind = lens[idx], kinds[idx]
        valid = t[None, :] < ln[:, None]
        # babble into clean utterances, mel-power domain, SNR from the frame powers
        start = jax.random.randint(ks[2], (bsz,), 0, nb - frames)
        nz = babble[start[:, None] + t[None, :]].astype(jnp.float32) * step + lo
        pc = (jnp.exp(x).sum(-1) * valid).sum(-1)
        pn = (jnp.exp(nz).sum(-1) * valid).sum(-1)
        snr = jax.random.uniform(ks[3], (bsz,), minval=args.snr_low, maxval=args.snr_high)
        gain = jnp.log(pc / (pn * 10 ** (snr / 10)))
        noisy = jnp.logaddexp(x, nz + gain[:, None, None])
        use_noise = (kind == 0) & (jax.random.uniform(ks[4], (bsz,)) < args.p_noise)
        x = jnp.where(use_noise[:, None, None], noisy, x)
        # tempo: output frame j reads input frame round(j * r)
        r = jax.random.uniform(ks[5], (bsz,), minval=1 - args.tempo, maxval=1 + args.tempo)
        src = jnp.round(t[None, :] * r[:, None]).astype(jnp.int32)
        valid = src < ln[:, None]
        x = jnp.take_along_axis(x, jnp.clip(src, 0, frames - 1)[:, :, None], axis=1)
        new_len = valid.sum(-1)
        # vocal-tract-length warp along the mel axis
        w = jax.random.uniform(ks[6], (bsz,), minval=1 - args.vtlp, maxval=1 + args.vtlp)
        pos = jnp.clip(jnp.arange(m)[None, :] * w[:, None], 0, m - 1)
        lo_i = jnp.floor(pos).astype(jnp.int32)
        hi_i = jnp.minimum(lo_i + 1, m - 1)
        frac = (pos - lo_i)[:, None, :]
        x = jnp.take_along_axis(x, lo_i[:, None, :], axis=2) * (1 - frac) + jnp.take_along_axis(x, hi_i[:, None, :], axis=2) * frac
        x = x + jax.random.uniform(ks[7], (bsz, 1, 1), minval=-2.3, maxval=2.3)
        x = (x - mean) / std
        x = jnp.where(valid[:, :, None], x, pad)
        tr = trackers_of(x)  # on what the device hears: SpecAugment masks only the bands
        # SpecAugment: two mel bands and two time stretches set to the normalised mean (0)
        for j in range(2):
            fw = jax.random.randint(ks[8 + j], (bsz,), 0, 7)
            f0 = jax.random.randint(ks[10 + j], (bsz,), 0, m - fw + 1)
            band = (jnp.arange(m)[None, :] >= f0[:, None]) & (jnp.arange(m)[None, :] < (f0 + fw)[:, None])
            x = jnp.where(band[:, None, :], 0.0, x)
            tw = jnp.floor(jax.random.uniform(ks[12 + j], (bsz,)) * (jnp.minimum(20, new_len // 8) + 1)).astype(jnp.int32)
            t0 = jnp.floor(jax.random.uniform(ks[14 + j], (bsz,)) * jnp.maximum(1, new_len - tw + 1)).astype(jnp.int32)
            span = (t[None, :] >= t0[:, None]) & (t[None, :] < (t0 + tw)[:, None])
            x = jnp.where(span[:, :, None], 0.0, x)
        out_len = (new_len + stride - 1) // stride
        mask = (jnp.arange(frames // stride)[None, :] < out_len[:, None]).astype(jnp.float32)
        y = Y[idx]
        return jnp.concatenate([x, tr], axis=-1)[:, :, None, :], mask, y, (y == 0).astype(jnp.float32)

    return sample


# ----------------------------------------------------------------------------- training
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = parser(__doc__)
    add_run_arguments(ap, "packs of pack_am_data.py; the first holds the validation set and the babble",
                      DEFAULT_AM.relative_to(ROOT))
    for name, what in (("channels", "channels of every layer"), ("blocks", "depthwise-separable blocks"),
                       ("kernel", "depthwise kernel (frames)"), ("stride", "input stride (frames)"),
                       ("lookahead", "right context of each block (output frames)")):  # fmt: skip
        ap.add_argument(f"--{name}", type=int, default=None,
                        help=f"{what} when starting from scratch (default: the shipped AM's)")
    ap.add_argument("--batch", type=int, default=128, help="utterances per step")
    ap.add_argument("--frames", type=int, default=640, help="input frames per utterance slot (at least the packs' longest utterance)")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (Adam)")
    ap.add_argument("--warmup", type=int, default=300, help="steps of linear learning-rate warm-up")
    ap.add_argument("--weight-decay", type=float, default=0.0, help="decoupled weight decay (x lr)")
    ap.add_argument("--eval-every-s", type=float, default=40.0, help="seconds between validations")
    ap.add_argument("--select", choices=("cer", "last"), default="cer",
                    help="weights kept: best validation CER (the start included), or the last ones")
    ap.add_argument("--snr-low", type=float, default=0.0, help="lowest babble SNR (dB)")
    ap.add_argument("--snr-high", type=float, default=25.0, help="highest babble SNR (dB)")
    ap.add_argument("--p-noise", type=float, default=0.6, help="share of clean utterances mixed with babble")
    ap.add_argument("--tempo", type=float, default=0.1, help="tempo perturbation: rate in [1-t, 1+t]")
    ap.add_argument("--vtlp", type=float, default=0.1, help="mel-axis warp in [1-v, 1+v]")
    ap.add_argument("--seed", type=int, default=0, help="initial weights (from scratch) and batches")
    ap.add_argument("--units", choices=UNIT_SETS, default=None,
                    help="output units (default: the --init folder's, else the shipped AM's); other units than "
                         "--init's: its trunk with a new output head")  # fmt: skip
    ap.add_argument("--teacher", type=Path, default=None, help="AM model folder whose posteriors are soft targets")
    ap.add_argument("--distill-weight", type=float, default=None,
                    help="a of (1 - a) * CTC + a * T^2 * KL (with --teacher; default 0.5)")  # fmt: skip
    ap.add_argument("--temperature", type=float, default=None, help="T of the soft targets (with --teacher; default 2)")
    ap.add_argument("--trackers", nargs="+", default=None, metavar="RISE,FALL",
                    help="level-tracker input channels (AMConfig.trackers), each its rise and fall time in seconds, "
                         "e.g. 0.5,0.5 2,0.05; an --init network without them grows zero weights for them")  # fmt: skip
    ap.add_argument("--tracker-bands", type=int, default=None,
                    help="adjacent mel bands each tracker channel averages (with --trackers; default 4)")
    args = ap.parse_args(argv)
    if args.trackers is not None:
        from rced.config import parse_tracker
        from rced.errors import RcedError

        try:
            args.trackers = tuple(parse_tracker(t) for t in args.trackers)
        except RcedError as exc:
            ap.error(f"--trackers: {exc}")
        args.tracker_bands = 4 if args.tracker_bands is None else args.tracker_bands
    elif args.tracker_bands is not None:
        ap.error("--tracker-bands needs --trackers")
    if args.teacher is None and (args.distill_weight is not None or args.temperature is not None):
        ap.error("--distill-weight and --temperature need --teacher")
    if args.teacher is not None:
        args.distill_weight = 0.5 if args.distill_weight is None else args.distill_weight
        args.temperature = 2.0 if args.temperature is None else args.temperature
        if not (0 <= args.distill_weight <= 1 and args.temperature > 0):
            ap.error("need 0 <= --distill-weight <= 1 and --temperature > 0")
    given = [f"--{k}" for k in ARCH_FIELDS if getattr(args, k) is not None]
    if args.init is not None and given:
        ap.error(f"{', '.join(given)}: for a start from scratch; with --init the network is the folder's")
    if min(args.batch, args.frames, args.warmup) < 1 or args.minutes < 0 or args.max_steps < 0:
        ap.error("--batch, --frames and --warmup must be positive, --minutes and --max-steps >= 0")
    if not (0 <= args.p_noise <= 1 and 0 <= args.tempo < 0.5 and 0 <= args.vtlp < 0.5 and args.snr_low <= args.snr_high):
        ap.error("need 0 <= --p-noise <= 1, 0 <= --tempo < 0.5, 0 <= --vtlp < 0.5, --snr-low <= --snr-high")
    return args


def distill_kl(student_logits, teacher_logits, mask, temperature: float):
    """T^2 * KL(teacher || student) of the posteriors at temperature T, mean over frames where mask is 1."""
    import jax
    import jax.numpy as jnp

    lt = jax.nn.log_softmax(teacher_logits / temperature)
    ls = jax.nn.log_softmax(student_logits / temperature)
    kl = jnp.sum(jnp.exp(lt) * (lt - ls), -1)
    return temperature**2 * jnp.sum(kl * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def load_teacher(folder: Path, student_cfg, n_symbols: int):
    """The teacher's (model, config, mean, std): an AM folder with the student's stride, mel bands and symbols."""
    from grammar.config import AMConfig
    from grammar.errors import GrammarError

    model, cfg, mean, std = load_teacher_folder(folder, AMConfig, "acoustic-model folder", GrammarError)
    if (cfg.stride, cfg.n_mels) != (student_cfg.stride, student_cfg.n_mels):
        raise SystemExit(f"{folder}: stride {cfg.stride} and {cfg.n_mels} mel bands; the student has "
                         f"{student_cfg.stride} and {student_cfg.n_mels}")  # fmt: skip
    if model.output_shape[-1] != n_symbols:
        raise SystemExit(f"{folder}: {model.output_shape[-1]} output symbols, the student has {n_symbols}")
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

    from grammar.acoustic.am import build_am
    from grammar.acoustic.features import LOG_FLOOR
    from grammar.config import AMConfig
    from grammar.errors import GrammarError
    from grammar.metrics import char_error_rate
    from rced.config import load_json

    cfg = load_json(AMConfig, (args.init or DEFAULT_AM) / "config.json")
    init_units = cfg.unit_set
    if args.init is None:
        cfg = dataclasses.replace(cfg, **{k: getattr(args, k) for k in ARCH_FIELDS if getattr(args, k) is not None})
    if args.units is not None:
        cfg = dataclasses.replace(cfg, units=args.units)
    grow = False
    if args.trackers is not None:
        have = (cfg.trackers, cfg.tracker_bands)
        if cfg.trackers is not None and have != (args.trackers, args.tracker_bands):
            raise SystemExit(f"{args.init}: the network has trackers {cfg.trackers} over {cfg.tracker_bands} bands; "
                             "--trackers and --tracker-bands must name the same")  # fmt: skip
        grow = args.init is not None and cfg.trackers is None
        try:
            cfg = dataclasses.replace(cfg, trackers=args.trackers, tracker_bands=args.tracker_bands)
        except GrammarError as exc:
            raise SystemExit(f"--tracker-bands: {exc}") from None
    # a new network is read as it is until benchmarks/decoding_levers.py --apply chooses its own readout
    cfg = cfg.without_readout()
    units = cfg.unit_set
    d = relabel(load_packs(args.pack, args.frames, MAX_LABEL), units)
    if d["n_mels"] != cfg.n_mels:
        raise SystemExit(f"{args.pack[0]}: {d['n_mels']} mel bands, the network reads {cfg.n_mels}")
    if args.frames % cfg.stride:
        raise SystemExit(f"--frames {args.frames} must be a multiple of the stride {cfg.stride}")
    net = network(build_am, cfg, args, DEFAULT_AM, cfg.n_mels, new_head="logits" if units != init_units else None,
                  grow_inputs=grow)  # fmt: skip
    model = net.model
    mean, std = net.mean_std()
    print(f"[{args.out.name}] {cfg.channels} channels x {cfg.blocks} blocks on {jax.devices()[0]} | "
          f"{len(d['lens'])} utts, {int(d['lens'].sum())} frames, {len(d['val_lens'])} val", flush=True)  # fmt: skip
    silence = math.log(LOG_FLOOR)
    sample = make_batch_fn(d, mean, std, args, cfg, silence)
    tx = optax.chain(optax.clip_by_global_norm(5.0), optax.scale_by_adam())

    if args.teacher is not None:
        teacher, t_cfg, t_mean, t_std = load_teacher(args.teacher, cfg, model.output_shape[-1])
        teacher_trackers = tracker_fn(t_cfg)
        t_vars = ([v.value for v in teacher.trainable_variables], [v.value for v in teacher.non_trainable_variables])
        to_teacher = (jnp.asarray(std / t_std), jnp.asarray((mean - t_mean) / t_std))  # x * a + b
    else:
        t_vars = None
    a, temp = args.distill_weight or 0.0, args.temperature or 1.0

    def loss_fn(tv, ntv, x, mask, y, ypad, t_vars):
        logits, ntv = masked_bn_call(model, tv, ntv, x, mask[:, :, None], training=True)
        ctc = optax.ctc_loss(logits, 1.0 - mask, y, ypad, blank_id=0).mean()
        if t_vars is None:
            return ctc, (ntv, ctc, 0.0)
        t_x = x[:, :, 0, : cfg.n_mels] * to_teacher[0] + to_teacher[1]  # the bands, renormalised
        t_x = jnp.concatenate([t_x, teacher_trackers(t_x)], axis=-1)[:, :, None, :]  # and the teacher's trackers
        t_logits, _ = masked_bn_call(teacher, *t_vars, t_x, None, training=False)
        kl = distill_kl(logits, jax.lax.stop_gradient(t_logits), mask, temp)
        return (kl if a == 1 else (1 - a) * ctc + a * kl), (ntv, ctc, kl)  # a CTC of inf must not make NaN

    @jax.jit
    def train_step(tv, ntv, o, key, lr, t_vars):
        x, mask, y, ypad = sample(key)
        (loss, (ntv, ctc, kl)), g = jax.value_and_grad(loss_fn, has_aux=True)(tv, ntv, x, mask, y, ypad, t_vars)
        upd, o = tx.update(g, o, tv)
        tv = jax.tree.map(lambda w, u: w - lr * (u + args.weight_decay * w), tv, upd)
        return tv, ntv, o, (loss, ctc, kl) if t_vars is not None else (loss,)

    out_len = (d["val_lens"] + cfg.stride - 1) // cfg.stride
    real = (np.arange(d["val_frames"])[None, :] < d["val_lens"][:, None])[:, :, None]
    val_x = normalise(d["val_x"].astype(np.float32) * d["step"] + d["lo"], mean, std)
    val_x = jnp.asarray(np.where(real, val_x, normalise(np.full_like(mean, silence), mean, std)))
    val_x = jnp.concatenate([val_x, tracker_fn(cfg)(val_x)], axis=-1)[:, :, None, :]

    @jax.jit
    def predict(tv, ntv, x):
        logits, _ = masked_bn_call(model, tv, ntv, x, None, training=False)  # the fast depthwise path
        return jax.nn.log_softmax(logits)

    def evaluate(tv, ntv) -> dict:
        lp = np.asarray(predict(tv, ntv, val_x))
        hyps = [units.greedy(lp[i, : out_len[i]]) for i in range(len(lp))]
        return {"cer": char_error_rate(d["val_ref"], hyps)}

    loop = Loop(net=net, tx=tx, step=lambda tv, ntv, o, k, lr: train_step(tv, ntv, o, k, lr, t_vars),
                evaluate=evaluate, score=SELECT[args.select], lr=lr_schedule(args.lr, args.warmup, 0.0),
                train_names=("loss", "ctc", "kl") if t_vars is not None else ("loss",),
                unit=("utterances", args.batch))  # fmt: skip
    train(loop, RunFolder(args.out, args), args.seed, args.minutes, args.max_steps, args.eval_every_s)


#: --select: the kept weights minimise this (validation metrics, step)
SELECT = {"cer": lambda m, step: m["cer"], "last": lambda m, step: -step}


if __name__ == "__main__":
    main()
