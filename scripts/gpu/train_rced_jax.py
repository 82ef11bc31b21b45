"""Train the R-CED denoiser on a GPU machine in pure JAX + optax, for a fixed wall time.

Why a second trainer: the lent GPU machines carry JAX and optax but not TensorFlow, and the
working tree that travels is capped at 64 MiB. This is exactly the network of
:func:`rced.models.build_model` for ``arch="rced"`` (``--arch crced``: CR-CED, 15 such layers
with additive skips), width 1 (Conv(w x 1, no bias) -> BatchNorm(eps 1e-3, momentum 0.99) ->
ReLU, nine times for R-CED, 15 for CR-CED, then Conv(129 x 1, bias) -> sigmoid mask), with Keras weight names and layouts so ``scripts/gpu/import_rced.py`` loads the result
into Keras and checks parity on a probe. Features are those of ``rced.features`` /
``rced.frontend`` (periodic sqrt-Hann 256, hop 128, log(|Y| + 1e-5), per-bin normalisation
with ``norm.json``, the current and 7 past frames as input channels, oldest first), and the
recipe is ``rced.train``'s: phase-sensitive target |S|cos(θS - θY) clipped to [0, |Y|], MSE
of magnitudes compressed by ``--loss-compress``, Adam, cosine decay to 5 %, per-weight
gradient clipping at 5 (Keras ``clipnorm``), SNR uniform in [-5, 15] dB, level uniform in
[-12, +6] dB. Every batch is made on the device from the packed clean speech of
``scripts/gpu/pack_rced_data.py``: random segments, babble of 3-8 random other training
utterances (each at unit RMS, as ``rced.corpus.make_babble``), mixed in the waveform, STFT
on the device. Each segment has ``--frames`` output frames, each with 7 real past frames.
Optional ``--sisdr-weight W`` adds -W * SI-SDR (dB) of the masked noisy-phase resynthesis
(weighted overlap-add of the output frames) against the clean segment.

Validation: a fixed set of mixtures of the pack's validation utterances (fixed seed, the same
for every run), babble from validation utterances too; logs the compressed MSE and the SI-SDR
gain over the noisy input (mask floor 0 and 0.3); ``$OUT/<tag>_best.npz`` keeps the best
weights by ``--select``.

Usage (device): python scripts/gpu/train_rced_jax.py --pack .gpu/rced_pack.npz --out DIR --minutes 7
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from npz_io import save_npz_atomic  # noqa: E402
from pack_rced_data import decode  # noqa: E402

# rced.models / rced.config / rced.features, repeated here: importing rced pulls in Keras
FILTERS = (12, 16, 20, 24, 32, 24, 20, 16, 12)
WIDTHS = (13, 11, 9, 7, 7, 7, 9, 11, 13)
CRCED_BLOCK = ((18, 9), (30, 5), (8, 9))
CRCED_REPEATS = 5
ARCHES = ("rced", "crced")
N_FFT, HOP, CTX, SR = 256, 128, 8, 16000
BINS = N_FFT // 2 + 1
LOG_EPS = 1e-5
EPS, MOMENTUM = 1e-3, 0.99  # keras BatchNormalization defaults
CLIPNORM = 5.0
VAL_SEED = 12345
PARITY_BOUND = 1e-4


def window() -> np.ndarray:
    """rced.frontend.window for sqrt_hann (periodic)."""
    n = np.arange(N_FFT)
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)


# ----------------------------------------------------------------------------- model
def layer_specs(arch: str = "rced") -> list[tuple[str, int, int, str | None]]:
    """(Keras layer-name prefix, filters, width, name of the layer whose output is added or None)
    per Conv-BN-ReLU layer, as :func:`rced.models.build_model` builds them."""
    if arch == "rced":
        return [(f"l{i + 1}", f, w, None) for i, (f, w) in enumerate(zip(FILTERS, WIDTHS))]
    if arch == "crced":
        return [(f"b{b + 1}_{j + 1}", f, w, f"b{b}_{j + 1}" if b else None)
                for b in range(CRCED_REPEATS) for j, (f, w) in enumerate(CRCED_BLOCK)]  # fmt: skip
    raise SystemExit(f"unknown architecture {arch!r} (choose from {', '.join(ARCHES)})")


def arch_of(weights) -> str:
    """The architecture whose weight names a params dict or npz holds."""
    names = set(weights.files if hasattr(weights, "files") else weights)
    for arch in ARCHES:
        if f"{layer_specs(arch)[0][0]}_conv/kernel" in names:
            return arch
    raise SystemExit("weights: neither an R-CED nor a CR-CED (no l1_conv or b1_1_conv kernel)")


def init_params(key, arch: str = "rced") -> tuple[dict, dict]:
    """Glorot-uniform kernels in Keras layout (w, 1, C_in, C_out), zero bias, BN at identity."""
    import jax

    specs = layer_specs(arch)
    keys = iter(jax.random.split(key, len(specs) + 1))
    p, s = {}, {}

    def glorot(k, shape):
        fan_in, fan_out = shape[0] * shape[1] * shape[2], shape[0] * shape[1] * shape[3]
        lim = math.sqrt(6.0 / (fan_in + fan_out))
        return np.asarray(jax.random.uniform(k, shape, minval=-lim, maxval=lim), np.float32)

    c_in = CTX
    for name, f, w, _ in specs:
        p[f"{name}_conv/kernel"] = glorot(next(keys), (w, 1, c_in, f))
        p[f"{name}_bn/gamma"], p[f"{name}_bn/beta"] = np.ones(f, np.float32), np.zeros(f, np.float32)
        s[f"{name}_bn/moving_mean"], s[f"{name}_bn/moving_variance"] = np.zeros(f, np.float32), np.ones(f, np.float32)
        c_in = f
    p["out_conv/kernel"] = glorot(next(keys), (BINS, 1, c_in, 1))
    p["out_conv/bias"] = np.zeros(1, np.float32)
    return p, s


def forward(p: dict, s: dict, x, train: bool, precision=None):
    """(N, 129, 1, 8) or (N, 129, 8) normalised features -> (N, 129) sigmoid mask, new BN state.

    The architecture follows the weight names (:func:`arch_of`); CR-CED adds the output of
    the matching layer of the previous block after the ReLU, as Keras' ``Add`` does.
    Convolution along frequency only ('same' padding); BatchNorm uses the batch statistics
    over frames and bins when ``train`` (biased variance, as Keras) and updates the moving
    ones, else the moving ones. ``precision=lax.Precision.HIGHEST`` turns off TF32 on GPUs.
    """
    import jax.numpy as jnp
    from jax import lax

    dn = ("NWC", "WIO", "NWC")
    h = x.reshape(x.shape[0], BINS, -1)
    new_s = dict(s)

    def conv(h, k):
        w = k.shape[0]
        pad = ((w - 1) // 2, w - 1 - (w - 1) // 2)
        return lax.conv_general_dilated(h, k[:, 0], (1,), [pad], dimension_numbers=dn, precision=precision)

    outs = {}
    for name, _, _, skip in layer_specs(arch_of(p)):
        h = conv(h, p[f"{name}_conv/kernel"])
        bn = f"{name}_bn"
        if train:
            mean = h.mean((0, 1))
            var = jnp.square(h - mean).mean((0, 1))
            new_s[f"{bn}/moving_mean"] = MOMENTUM * s[f"{bn}/moving_mean"] + (1 - MOMENTUM) * mean
            new_s[f"{bn}/moving_variance"] = MOMENTUM * s[f"{bn}/moving_variance"] + (1 - MOMENTUM) * var
        else:
            mean, var = s[f"{bn}/moving_mean"], s[f"{bn}/moving_variance"]
        h = (h - mean) * lax.rsqrt(var + EPS) * p[f"{bn}/gamma"] + p[f"{bn}/beta"]
        h = jnp.maximum(h, 0.0)
        if skip is not None:
            h = h + outs[skip]
        outs[name] = h
    out = conv(h, p["out_conv/kernel"]) + p["out_conv/bias"]
    return 1.0 / (1.0 + jnp.exp(-out[:, :, 0])), new_s


def split_npz(z) -> tuple[dict, dict]:
    """(params, BN state) of a flat weights npz in the layout of :func:`init_params`."""
    p0, s0 = init_params_shapes(arch_of(z))
    for k in list(p0) + list(s0):
        if k not in z:
            raise SystemExit(f"weights npz lacks {k}")
        want = p0[k] if k in p0 else s0[k]
        if tuple(z[k].shape) != want:
            raise SystemExit(f"weights npz: {k} has shape {z[k].shape}, the model wants {want}")
    return {k: z[k].astype(np.float32) for k in p0}, {k: z[k].astype(np.float32) for k in s0}


def init_params_shapes(arch: str = "rced") -> tuple[dict, dict]:
    p, s, c_in = {}, {}, CTX
    for name, f, w, _ in layer_specs(arch):
        p[f"{name}_conv/kernel"] = (w, 1, c_in, f)
        p[f"{name}_bn/gamma"] = p[f"{name}_bn/beta"] = (f,)
        s[f"{name}_bn/moving_mean"] = s[f"{name}_bn/moving_variance"] = (f,)
        c_in = f
    p["out_conv/kernel"], p["out_conv/bias"] = (BINS, 1, c_in, 1), (1,)
    return p, s


def predict_exact(p: dict, s: dict, x: np.ndarray) -> np.ndarray:
    """Inference-mode mask at full float32 precision (the parity reference for Keras)."""
    import jax
    import jax.numpy as jnp

    p = {k: jnp.asarray(v) for k, v in p.items()}
    s = {k: jnp.asarray(v) for k, v in s.items()}
    m, _ = forward(p, s, jnp.asarray(x, jnp.float32), train=False, precision=jax.lax.Precision.HIGHEST)
    return np.asarray(m)


# ----------------------------------------------------------------------------- signal
def make_dsp(mean: np.ndarray, std: np.ndarray, frames: int):
    """STFT, features, target and resynthesis on the device for segments of ``frames`` output frames."""
    import jax.numpy as jnp

    t_all = frames + CTX - 1  # frames of the segment; the first CTX-1 are context only
    n_samples = (t_all - 1) * HOP + N_FFT
    win = jnp.asarray(window())
    ola = jnp.asarray((window() ** 2).reshape(-1, HOP).sum(0))
    idx = jnp.asarray(np.arange(t_all)[:, None] * HOP + np.arange(N_FFT)[None, :])
    mean, std = jnp.asarray(mean), jnp.asarray(std)

    def stft(x):  # (B, n_samples) -> (B, t_all, 129): frame t covers [t*HOP, t*HOP + N_FFT)
        return jnp.fft.rfft(x[:, idx] * win, axis=-1)

    def features(spec):  # (B, t_all, 129) -> (B * frames, 129, 8): current + 7 past, oldest first
        f = (jnp.log(jnp.abs(spec) + LOG_EPS) - mean) / std
        ctx = jnp.stack([f[:, j : j + frames] for j in range(CTX)], axis=-1)
        return ctx.reshape(-1, BINS, CTX)

    def resynth(spec_out):
        """(B, frames, 129) enhanced spectra of the output frames -> waveform of the samples
        [CTX * HOP, t_all * HOP) of the segment (every sample there has both of its frames)."""
        fr = jnp.fft.irfft(spec_out, n=N_FFT, axis=-1) * win
        out = fr[:, 1:, :HOP] + fr[:, :-1, HOP:]
        return (out / ola).reshape(out.shape[0], -1)

    region = (CTX * HOP, t_all * HOP)
    return stft, features, resynth, region, n_samples


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
    import jax.numpy as jnp

    n, taps = x.shape[-1], h.shape[-1]
    nfft = 1 << (n + taps - 1).bit_length()
    y = jnp.fft.irfft(jnp.fft.rfft(x, nfft) * jnp.fft.rfft(h, nfft), nfft)
    return y[..., taps // 2 : taps // 2 + n]


def make_sampler(pool: dict, n_samples: int, batch: int, snr: tuple[float, float], level_db=(-12.0, 6.0),
                 resample: float = 0.0, eq_db: float = 0.0):  # fmt: skip
    """Jittable (key, device_arrays(pool)) -> (noisy, clean) segments (B, n_samples) like
    rced.train.sample_batch. The pool goes in as an argument, not a closure: captured, its
    gigabytes became constants of the compiled step (60 s to compile for 6.4 h of speech).

    ``resample`` r: the speech and each babble talker are read at a rate drawn from [1-r, 1+r]
    (linear interpolation: pitch, formants and tempo move together, a vocal-tract-length and
    speed perturbation); the pool must then hold segments of ``read_length(n_samples, r)``.
    ``eq_db``: the speech and the babble each get their own random smooth colouring
    (:func:`random_eq`); the clean target is the coloured speech."""
    import jax
    import jax.numpy as jnp

    t = jnp.arange(n_samples, dtype=jnp.float32)
    n_ok, total = pool["off"].shape[0], pool["total"]
    n_read = read_length(n_samples, resample)

    def read(stream, start, rate):  # start (...,) int, rate (...,) -> (..., n_samples)
        pos = rate[..., None] * t
        i0 = jnp.floor(pos).astype(jnp.int32)
        w = pos - i0
        base = start[..., None] + i0
        return stream[base] * (1 - w) + stream[base + 1] * w

    def sample(key, data):
        ks = jax.random.split(key, 10)
        i = jax.random.randint(ks[0], (batch,), 0, n_ok)
        start = data["off"][i] + jnp.floor(jax.random.uniform(ks[1], (batch,)) * data["room"][i]).astype(jnp.int32)
        rate = jax.random.uniform(ks[6], (batch,), minval=1 - resample, maxval=1 + resample)
        s = read(data["flat"], start, rate)
        # babble: 3-8 talkers, each a random stretch of the unit-RMS stream (runs of utterances)
        k = jax.random.randint(ks[2], (batch,), 3, 9)
        b0 = jax.random.randint(ks[3], (batch, 8), 0, total - n_read)
        brate = jax.random.uniform(ks[7], (batch, 8), minval=1 - resample, maxval=1 + resample)
        talk = read(data["unit"], b0, brate)
        n = (talk * (jnp.arange(8)[None, :] < k[:, None])[:, :, None]).sum(1)
        if eq_db > 0:
            s = fir(s, random_eq(ks[8], batch, eq_db))
            n = fir(n, random_eq(ks[9], batch, eq_db))
        n = n / jnp.sqrt(jnp.mean(n * n, -1, keepdims=True) + 1e-20)
        snr_db = jax.random.uniform(ks[4], (batch,), minval=snr[0], maxval=snr[1])
        es, en = (s * s).sum(-1), (n * n).sum(-1) + 1e-12
        g = jnp.where(es > 0, jnp.sqrt(es / en / 10 ** (snr_db / 10)), 1.0)
        level = 10 ** (jax.random.uniform(ks[5], (batch,), minval=level_db[0], maxval=level_db[1]) / 20)
        return level[:, None] * (s + g[:, None] * n), level[:, None] * s

    return sample


def device_arrays(pool: dict) -> dict:
    """The pool's arrays (what a jitted sampler takes as its second argument)."""
    return {k: v for k, v in pool.items() if k != "total"}


def read_length(n_samples: int, resample: float) -> int:
    """Stream samples one segment reads at rates up to 1 + ``resample`` (with the interpolation's +1)."""
    return int(math.ceil(n_samples * (1 + resample))) + 2 if resample > 0 else n_samples


# ----------------------------------------------------------------------------- training
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pack", type=Path, nargs="+", required=True,
                    help="packs of pack_rced_data.py; validation utterances are those flagged in any of them")
    ap.add_argument("--norm", type=Path, default=ROOT / "rced" / "default_model" / "norm.json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tag", default="rced")
    ap.add_argument("--init", type=Path, default=None, help="weights npz (import_rced.py export, or a *_best.npz)")
    ap.add_argument("--arch", choices=ARCHES, default="rced", help="without --init (with it: the npz's)")
    ap.add_argument("--minutes", type=float, default=7.0, help="training wall time (after compilation)")
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--batch", type=int, default=128, help="segments per step")
    ap.add_argument("--frames", type=int, default=64, help="output frames per segment (CPU trainer: 32)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--loss-compress", type=float, default=0.5)
    ap.add_argument("--sisdr-weight", type=float, default=0.0, help="W of -W * SI-SDR(dB); try 0.003-0.02")
    ap.add_argument("--mask-floor", type=float, default=0.0, help="lower bound on the mask inside the loss")
    ap.add_argument("--snr-low", type=float, default=-5.0)
    ap.add_argument("--snr-high", type=float, default=15.0)
    ap.add_argument("--val-segments", type=int, default=1024)
    ap.add_argument("--select", choices=("loss", "sisdr", "last"), default="loss",
                    help="checkpoint kept: best validation compressed MSE, best SI-SDR gain at mask floor 0.3, "
                         "or the last one (when the validation speech is not what the run adapts to)")  # fmt: skip
    ap.add_argument("--eval-every-s", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resample", type=float, default=0.0, help="speed/VTL perturbation: rate in [1-r, 1+r]")
    ap.add_argument("--eq-db", type=float, default=0.0, help="random smooth colouring of speech and babble (dB scale)")
    args = ap.parse_args()

    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.3")  # instances share the GPU
    import jax
    import jax.numpy as jnp
    import optax

    t_start = time.time()
    norm = json.loads(args.norm.read_text())
    mean, std = (np.asarray(norm[k], np.float32) for k in ("mean", "std"))
    utts, is_val = [], []
    for path in args.pack:
        z = np.load(path, allow_pickle=False)
        utts += decode(z)
        is_val += [bool(v) for v in z["is_val"]]
    train_utts = [u for u, v in zip(utts, is_val) if not v]
    val_utts = [u for u, v in zip(utts, is_val) if v]
    stft, features, resynth, region, n_samples = make_dsp(mean, std, args.frames)
    pool = to_device_pool(train_utts, read_length(n_samples, args.resample))
    vpool = to_device_pool(val_utts, n_samples)
    hours = sum(len(u) for u in train_utts) / SR / 3600
    print(f"[{args.tag}] {jax.devices()[0]} | {len(train_utts)} train utts ({hours:.2f} h), {len(val_utts)} val | "
          f"segment {n_samples} samples, {args.batch * args.frames} frames/step | load {time.time() - t_start:.1f}s",
          flush=True)  # fmt: skip
    snr = (args.snr_low, args.snr_high)
    sample = make_sampler(pool, n_samples, args.batch, snr, resample=args.resample, eq_db=args.eq_db)

    params, state = init_params(jax.random.PRNGKey(args.seed), args.arch)
    if args.init is not None:
        zi = np.load(args.init, allow_pickle=False)
        params, state = split_npz(zi)
        if "probe/mask_keras" in zi.files:  # exported from Keras: the two must be one network
            diff = float(np.max(np.abs(predict_exact(params, state, zi["probe/x"]) - zi["probe/mask_keras"])))
            print(f"[{args.tag}] init {args.init}: JAX vs Keras max abs mask diff {diff:.2e}", flush=True)
            if not diff <= PARITY_BOUND:
                raise SystemExit(f"{args.init}: parity {diff:.2e} above {PARITY_BOUND}")
    params = jax.tree.map(jnp.asarray, params)
    state = jax.tree.map(jnp.asarray, state)
    tx = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7)  # keras Adam defaults
    opt_state = tx.init(params)
    c, w_sisdr, floor = args.loss_compress, args.sisdr_weight, args.mask_floor

    def losses(p, s, y, clean, train: bool, floor: float):
        spec = stft(y)
        m, s = forward(p, s, features(spec), train=train)
        yo = spec[:, CTX - 1 :]
        ay = jnp.abs(yo)
        m = jnp.maximum(m.reshape(ay.shape), floor)
        so = stft(clean)[:, CTX - 1 :]
        tgt = jnp.clip(jnp.real(so * jnp.conj(yo)) / jnp.maximum(ay, 1e-12), 0.0, ay)
        mse = jnp.mean(jnp.square(jnp.power(m * ay + 1e-8, c) - jnp.power(tgt + 1e-8, c)))
        ref = clean[:, region[0] : region[1]]
        speech = (jnp.sqrt(jnp.mean(ref * ref, -1)) > 1e-3).astype(jnp.float32)
        est = resynth(yo * m)
        sdr = (si_sdr(est, ref) * speech).sum() / jnp.maximum(speech.sum(), 1.0)
        return mse, sdr, s, (m, yo, ref, speech)

    def loss_fn(p, s, y, clean):
        mse, sdr, s, _ = losses(p, s, y, clean, True, floor)
        loss = mse - w_sisdr * sdr if w_sisdr else mse
        return loss, (s, mse)

    def clip(g):  # keras clipnorm: every weight's gradient to norm <= 5 on its own
        return jax.tree.map(lambda v: v * (CLIPNORM / jnp.maximum(jnp.sqrt(jnp.sum(v * v)), CLIPNORM)), g)

    @jax.jit
    def train_step(p, s, o, key, lr, data):
        y, clean = sample(key, data)
        (loss, (s, mse)), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, y, clean)
        upd, o = tx.update(clip(g), o, p)
        p = jax.tree.map(lambda w, u: w - lr * u, p, upd)
        return p, s, o, loss, mse

    # fixed validation mixtures (same seed for every run), in chunks of the training batch
    vsample = make_sampler(vpool, n_samples, args.batch, snr)
    vkeys = jax.random.split(jax.random.PRNGKey(VAL_SEED), max(1, args.val_segments // args.batch))
    vsample = jax.jit(vsample)
    val = [vsample(k, device_arrays(vpool)) for k in vkeys]

    @jax.jit
    def val_step(p, s, y, clean):
        mse, _, _, (m, yo, ref, speech) = losses(p, s, y, clean, False, floor)
        noisy = y[:, region[0] : region[1]]
        base = si_sdr(noisy, ref)
        g0 = si_sdr(resynth(yo * m), ref) - base
        g3 = si_sdr(resynth(yo * jnp.maximum(m, 0.3)), ref) - base
        n = jnp.maximum(speech.sum(), 1.0)
        return mse, (g0 * speech).sum() / n, (g3 * speech).sum() / n

    def evaluate(p, s) -> tuple[float, float, float]:
        r = np.array([[float(v) for v in val_step(p, s, y, cl)] for y, cl in val])
        return tuple(float(v) for v in r.mean(0))

    probe_x = np.asarray(features(stft(val[0][0][:1])))[:: max(1, args.frames // 16)][:16, :, None, :]

    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / f"{args.tag}_log.csv"

    def save_best(p, s, step, metrics):
        arrays = {k: np.asarray(v) for k, v in {**p, **s}.items()}
        arrays["probe/x"] = probe_x
        arrays["probe/mask"] = predict_exact(p, s, probe_x)
        meta = {"arch": arch_of(p), "width_mult": 1.0, "step": step, **metrics, "mask_floor_train": floor,
                "args": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
        arrays["meta"] = np.array(json.dumps(meta))
        save_npz_atomic(args.out / f"{args.tag}_best.npz", arrays)

    key = jax.random.PRNGKey(args.seed + 1)
    t0 = time.time()
    data = device_arrays(pool)
    jax.block_until_ready(train_step(params, state, opt_state, key, 0.0, data))  # compile; result discarded
    v_mse, v_g0, v_g3 = evaluate(params, state)
    print(f"[{args.tag}] compiled in {time.time() - t0:.1f}s | start: val mse {v_mse:.5f} "
          f"dSI-SDR {v_g0:+.2f} dB (floor 0.3: {v_g3:+.2f})", flush=True)  # fmt: skip
    best = {"score": {"loss": v_mse, "sisdr": -v_g3, "last": 0}[args.select], "step": 0}  # never worse than the start
    save_best(params, state, 0, {"val_mse": v_mse, "val_dsisdr_f0": v_g0, "val_dsisdr_f03": v_g3})
    p, s, o = params, state, opt_state
    budget = args.minutes * 60.0
    t0 = last_eval = time.time()
    step, last_step, tr_loss, tr_mse = 0, 0, [], []
    with log_path.open("w", newline="") as fh:
        log = csv.writer(fh)
        log.writerow(["step", "seconds", "frames", "lr", "steps_per_s", "train_loss", "train_mse", "val_mse",
                      "val_dsisdr_f0", "val_dsisdr_f03"])  # fmt: skip
        fh.flush()
        while step < args.max_steps:
            elapsed = time.time() - t0
            if elapsed >= budget:
                break
            frac = min(1.0, elapsed / budget)
            lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
            key, sub = jax.random.split(key)
            p, s, o, loss, mse = train_step(p, s, o, sub, lr, data)
            tr_loss.append(loss)
            tr_mse.append(mse)
            step += 1
            now = time.time()
            if now - last_eval >= args.eval_every_s or now - t0 >= budget or step >= args.max_steps:
                train_loss = float(np.mean([float(v) for v in tr_loss]))
                train_mse = float(np.mean([float(v) for v in tr_mse]))
                rate = (step - last_step) / (time.time() - last_eval)
                tr_loss, tr_mse, last_step = [], [], step
                v_mse, v_g0, v_g3 = evaluate(p, s)
                score = {"loss": v_mse, "sisdr": -v_g3, "last": -step}[args.select]
                if score < best["score"]:
                    best = {"score": score, "step": step}
                    save_best(p, s, step, {"val_mse": v_mse, "val_dsisdr_f0": v_g0, "val_dsisdr_f03": v_g3})
                log.writerow([step, round(time.time() - t0, 1), step * args.batch * args.frames, f"{lr:.2e}",
                              round(rate, 2), round(train_loss, 5), round(train_mse, 5), round(v_mse, 5),
                              round(v_g0, 3), round(v_g3, 3)])  # fmt: skip
                fh.flush()
                print(f"[{args.tag}] step {step} {time.time() - t0:.0f}s {rate:.1f} steps/s lr {lr:.1e} "
                      f"loss {train_loss:.5f} mse {train_mse:.5f} | val mse {v_mse:.5f} dSI-SDR {v_g0:+.2f} dB "
                      f"(floor 0.3: {v_g3:+.2f}) | best @ {best['step']}", flush=True)  # fmt: skip
                last_eval = time.time()
    print(f"[{args.tag}] done: {step} steps, {step * args.batch * args.frames / 1e6:.1f} M frames, best at step "
          f"{best['step']}, {(time.time() - t_start) / 60:.1f} min total", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
