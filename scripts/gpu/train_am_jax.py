"""Train the CTC acoustic model on a GPU machine in pure JAX + optax, for a fixed wall time.

Why a second trainer: the lent GPU machines carry JAX and optax but not TensorFlow, and the
working tree that travels is capped at 64 MiB. This is the same network as
:func:`grammar.am.build_am` (same layer names and weight layouts, so
``scripts/gpu/import_am.py`` loads the result into Keras and checks parity on a probe), fed by
the packed features of ``scripts/gpu/pack_am_data.py``. Every batch is augmented on the GPU:
7-bit dequantisation dither, babble mixed into clean utterances in the mel-power domain
(SNR 0-25 dB), tempo 1 +- 0.1, vocal-tract-length warp 1 +- 0.1, level +-10 dB, SpecAugment.
Two things differ from the Keras trainer, both deliberate: BatchNorm statistics and the CTC
loss see only the real frames of each utterance, not the padding of the fixed-shape batch.

Usage (device): python scripts/gpu/train_am_jax.py --pack .gpu/am_pack.npz [MORE.npz ...] --out DIR --minutes 7
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from npz_io import save_npz_atomic  # noqa: E402
from pack_am_data import decode  # noqa: E402

from grammar.alphabet import NUM_SYMBOLS, greedy_decode  # noqa: E402
from grammar.metrics import char_error_rate  # noqa: E402

EPS, MOMENTUM = 1e-3, 0.99  # keras BatchNormalization defaults
# grammar.features.LOG_FLOOR, in log: importing that module pulls in soundfile, absent on the GPU machine
LOG_FLOOR = math.log(1e-6)


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


def load_packs(paths: list[Path], frames: int, max_label: int) -> dict:
    """The first pack gives validation set, babble and quantiser; every pack adds training utterances.

    A pack that is missing (a stash on the device machine that did not survive) is skipped with
    a warning, so one lost transfer costs data, not the run.
    """
    found = [p for p in paths if p.exists()]
    for p in paths:
        if not p.exists():
            print(f"warning: pack {p} not found, training without it", flush=True)
    d = load_pack(found[0], frames, max_label)
    for p in found[1:]:
        more = load_pack(p, frames, max_label, with_val=False)
        if (more["lo"], more["step"], more["n_mels"]) != (d["lo"], d["step"], d["n_mels"]):
            raise SystemExit(f"{p}: quantiser differs from {found[0]}")
        for k in ("x", "lens", "kinds", "y"):
            d[k] = np.concatenate([d[k], more[k]])
    return d


# ----------------------------------------------------------------------------- model
def init_params(key, cfg: dict, n_mels: int) -> tuple[dict, dict]:
    """Glorot-uniform kernels in Keras layouts (HWIO; depthwise (k, 1, C, 1)), BN at identity."""
    import jax

    c, k = cfg["channels"], cfg["kernel"]

    def glorot(key, shape, fan_in, fan_out):
        lim = math.sqrt(6.0 / (fan_in + fan_out))
        return jax.random.uniform(key, shape, minval=-lim, maxval=lim)

    keys = iter(jax.random.split(key, 4 + 2 * cfg["blocks"]))
    p, s = {}, {}

    def bn(name):
        p[f"{name}/gamma"], p[f"{name}/beta"] = np.ones(c, np.float32), np.zeros(c, np.float32)
        s[f"{name}/moving_mean"], s[f"{name}/moving_variance"] = np.zeros(c, np.float32), np.ones(c, np.float32)

    p["in_conv/kernel"] = glorot(next(keys), (5, 1, n_mels, c), 5 * n_mels, 5 * c)
    bn("in_bn")
    for b in range(cfg["blocks"]):
        p[f"b{b}_dw/kernel"] = glorot(next(keys), (k, 1, c, 1), k * c, k)
        bn(f"b{b}_dw_bn")
        p[f"b{b}_pw/kernel"] = glorot(next(keys), (1, 1, c, c), c, c)
        bn(f"b{b}_pw_bn")
    p["logits/kernel"] = glorot(next(keys), (1, 1, c, NUM_SYMBOLS), c, NUM_SYMBOLS)
    p["logits/bias"] = np.zeros(NUM_SYMBOLS, np.float32)
    return p, s


def forward(p: dict, s: dict, x, mask, cfg: dict, train: bool, precision=None):
    """(B, T, 1, M) -> (B, T/stride, 29) logits and new BN state; ``mask`` (B, T/stride) marks real frames.

    ``precision=lax.Precision.HIGHEST`` turns off TF32 on GPUs (used for the parity probe).
    """
    import jax.numpy as jnp
    from jax import lax

    dn = ("NHWC", "HWIO", "NHWC")
    stride = cfg["stride"]
    new_s = dict(s)
    m = mask[:, :, None, None]
    count = jnp.maximum(m.sum(), 1.0)

    def bn(h, name):
        if train:
            mean = (h * m).sum((0, 1, 2)) / count
            var = (jnp.square(h - mean) * m).sum((0, 1, 2)) / count
            new_s[f"{name}/moving_mean"] = MOMENTUM * s[f"{name}/moving_mean"] + (1 - MOMENTUM) * mean
            new_s[f"{name}/moving_variance"] = MOMENTUM * s[f"{name}/moving_variance"] + (1 - MOMENTUM) * var
        else:
            mean, var = s[f"{name}/moving_mean"], s[f"{name}/moving_variance"]
        return (h - mean) * lax.rsqrt(var + EPS) * p[f"{name}/gamma"] + p[f"{name}/beta"]

    h = jnp.pad(x, ((0, 0), (5 - stride, 0), (0, 0), (0, 0)))
    h = lax.conv_general_dilated(h, p["in_conv/kernel"], (stride, 1), "VALID", dimension_numbers=dn, precision=precision)
    h = jnp.maximum(bn(h, "in_bn"), 0.0)
    left = cfg["kernel"] - 1 - cfg["lookahead"]
    for b in range(cfg["blocks"]):
        y = jnp.pad(h, ((0, 0), (left, cfg["lookahead"]), (0, 0), (0, 0)))
        # depthwise (k, 1) convolution as k shifted products: XLA's grouped convolution
        # gradient is slow on GPUs, this form fuses into one elementwise kernel
        w = p[f"b{b}_dw/kernel"][:, 0, :, 0]  # (k, C)
        frames = y.shape[1] - cfg["kernel"] + 1
        y = sum(y[:, j : j + frames] * w[j] for j in range(cfg["kernel"]))
        y = jnp.maximum(bn(y, f"b{b}_dw_bn"), 0.0)
        y = lax.conv_general_dilated(y, p[f"b{b}_pw/kernel"], (1, 1), "VALID", dimension_numbers=dn, precision=precision)
        y = jnp.maximum(bn(y, f"b{b}_pw_bn"), 0.0)
        h = h + y
    out = lax.conv_general_dilated(h, p["logits/kernel"], (1, 1), "VALID", dimension_numbers=dn, precision=precision) + p["logits/bias"]
    return out[:, :, 0, :], new_s


# ----------------------------------------------------------------------------- augmentation
def make_batch_fn(d: dict, mean: np.ndarray, std: np.ndarray, args, frames: int):
    """A jittable key -> (x, frame mask, labels, label paddings) sampler over GPU-resident data."""
    import jax
    import jax.numpy as jnp

    X = jnp.asarray(d["x"])
    lens = jnp.asarray(d["lens"])
    kinds = jnp.asarray(d["kinds"])
    Y = jnp.asarray(d["y"])
    babble = jnp.asarray(d["babble"])
    lo, step, m = d["lo"], d["step"], d["n_mels"]
    pad = jnp.asarray(normalise(np.full_like(mean, LOG_FLOOR), mean, std))
    mean, std = jnp.asarray(mean), jnp.asarray(std)
    n, nb, bsz, stride = X.shape[0], babble.shape[0], args.batch, args.stride
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
        return x[:, :, None, :], mask, y, (y == 0).astype(jnp.float32)

    return sample


# ----------------------------------------------------------------------------- training
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pack", type=Path, nargs="+", required=True, help="one or more packs; the first holds the validation set")
    ap.add_argument("--norm", type=Path, default=ROOT / "grammar" / "default_am" / "norm.json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tag", default="am")
    ap.add_argument("--init", type=Path, default=None, help="*_best.npz of an earlier run to start from")
    ap.add_argument("--minutes", type=float, default=7.0, help="training wall time (after compilation)")
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--channels", type=int, default=144)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--kernel", type=int, default=9)
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--lookahead", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--frames", type=int, default=640)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--eval-every-s", type=float, default=40.0)
    ap.add_argument("--snr-low", type=float, default=0.0)
    ap.add_argument("--snr-high", type=float, default=25.0)
    ap.add_argument("--p-noise", type=float, default=0.6, help="share of clean utterances mixed with babble")
    ap.add_argument("--tempo", type=float, default=0.1)
    ap.add_argument("--vtlp", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import optax

    t_start = time.time()
    cfg = {"channels": args.channels, "blocks": args.blocks, "kernel": args.kernel, "stride": args.stride,
           "lookahead": args.lookahead}  # fmt: skip
    norm = json.loads(args.norm.read_text())
    d = load_packs(args.pack, args.frames, max_label=96)
    print(f"[{args.tag}] {jax.devices()[0]} | {len(d['lens'])} utts, {int(d['lens'].sum())} frames, "
          f"{len(d['val_lens'])} val | load {time.time() - t_start:.1f}s", flush=True)  # fmt: skip
    mean, std = (np.asarray(norm[k], np.float32) for k in ("mean", "std"))
    sample = make_batch_fn(d, mean, std, args, args.frames)
    params, state = init_params(jax.random.PRNGKey(args.seed), cfg, d["n_mels"])
    if args.init is not None:  # warm start from an earlier run's best weights (same shapes)
        z = np.load(args.init, allow_pickle=False)
        params = {k: z[k].astype(np.float32) for k in params}
        state = {k: z[k].astype(np.float32) for k in state}
    params = jax.tree.map(jnp.asarray, params)
    state = jax.tree.map(jnp.asarray, state)
    tx = optax.chain(optax.clip_by_global_norm(5.0), optax.scale_by_adam())
    opt_state = tx.init(params)

    def loss_fn(p, s, x, mask, y, ypad):
        logits, s = forward(p, s, x, mask, cfg, train=True)
        per = optax.ctc_loss(logits, 1.0 - mask, y, ypad, blank_id=0)
        return per.mean(), s

    @jax.jit
    def train_step(p, s, o, key, lr):
        x, mask, y, ypad = sample(key)
        (loss, s), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, x, mask, y, ypad)
        upd, o = tx.update(g, o, p)
        p = jax.tree.map(lambda w, u: w - lr * (u + args.weight_decay * w), p, upd)
        return p, s, o, loss

    vmask = (np.arange(d["val_frames"] // args.stride)[None, :]
             < ((d["val_lens"] + args.stride - 1) // args.stride)[:, None]).astype(np.float32)  # fmt: skip
    val_x = normalise(d["val_x"].astype(np.float32) * d["step"] + d["lo"], mean, std)
    val_x = np.where((np.arange(d["val_frames"])[None, :] < d["val_lens"][:, None])[:, :, None], val_x,
                     normalise(np.full_like(mean, LOG_FLOOR), mean, std))  # fmt: skip
    val_x = jnp.asarray(val_x[:, :, None, :])

    @jax.jit
    def predict(p, s, x):
        logits, _ = forward(p, s, x, jnp.ones(x.shape[:2]), cfg, train=False)
        return jax.nn.log_softmax(logits)

    @jax.jit
    def predict_exact(p, s, x):  # full float32 (no TF32): the reference Keras must reproduce
        logits, _ = forward(p, s, x, jnp.ones(x.shape[:2]), cfg, train=False, precision=jax.lax.Precision.HIGHEST)
        return jax.nn.log_softmax(logits)

    def val_cer(p, s) -> float:
        lp = np.asarray(predict(p, s, val_x))
        hyps = [greedy_decode(lp[i, : int(vmask[i].sum())]) for i in range(len(lp))]
        return char_error_rate(d["val_text"], hyps)

    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"{args.tag}_log.csv"
    best = {"cer": float("inf"), "step": -1}

    def save_best(p, s, step, cer):
        arrays = {k: np.asarray(v) for k, v in {**p, **s}.items()}
        probe = np.asarray(val_x[:2])
        arrays["probe/x"] = probe
        arrays["probe/logp"] = np.asarray(predict_exact(p, s, jnp.asarray(probe)))
        meta = {**cfg, "n_mels": d["n_mels"], "step": step, "val_cer": cer, "args": {k: str(v) for k, v in vars(args).items()}}
        arrays["meta"] = np.array(json.dumps(meta))
        save_npz_atomic(args.out / f"{args.tag}_best.npz", arrays)

    key = jax.random.PRNGKey(args.seed + 1)
    t0 = time.time()
    p, s, o, _ = train_step(params, state, opt_state, key, 0.0)  # compile (the update is a no-op at lr 0)
    jax.block_until_ready(p)
    print(f"[{args.tag}] compiled in {time.time() - t0:.1f}s", flush=True)
    budget = args.minutes * 60.0
    t0 = last_eval = time.time()
    step, losses = 0, []
    with log_path.open("w", newline="") as fh:
        log = csv.writer(fh)
        log.writerow(["step", "seconds", "utterances", "lr", "train_loss", "val_cer"])
        while step < args.max_steps:
            elapsed = time.time() - t0
            if elapsed >= budget:
                break
            frac = min(1.0, elapsed / budget)
            lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * frac))
            key, sub = jax.random.split(key)
            p, s, o, loss = train_step(p, s, o, sub, lr)
            losses.append(loss)
            step += 1
            if time.time() - last_eval >= args.eval_every_s or time.time() - t0 >= budget or step >= args.max_steps:
                train_loss = float(np.mean([float(v) for v in losses]))
                losses = []
                cer = val_cer(p, s)
                if cer < best["cer"]:
                    best = {"cer": cer, "step": step}
                    save_best(p, s, step, cer)
                log.writerow([step, round(time.time() - t0, 1), step * args.batch, f"{lr:.2e}", round(train_loss, 3), round(cer, 4)])
                fh.flush()
                print(f"[{args.tag}] step {step} {time.time() - t0:.0f}s loss {train_loss:.2f} val_cer {cer:.4f} "
                      f"(best {best['cer']:.4f} @ {best['step']})", flush=True)  # fmt: skip
                last_eval = time.time()
    print(f"[{args.tag}] done: {step} steps, {step * args.batch} utterances, best val CER {best['cer']:.4f} at step {best['step']}, "
          f"{(time.time() - t_start) / 60:.1f} min total", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
