"""What the JAX trainers share: Keras on its JAX backend, the run folder, and the training loop.

The networks are the project's own Keras models (:func:`rced.models.build_model`,
:func:`grammar.acoustic.am.build_am`); Keras 3 runs them on JAX, so a trainer calls
``model.stateless_call`` inside a jitted step of its own (batches made on the accelerator,
optax updates) and writes the result as a model folder (``model.keras``, ``config.json``,
``norm.json``, ``training_log.csv``) that ``rced.Denoiser.load`` / ``grammar`` load on any
backend, TensorFlow included. The run folder also holds ``checkpoint.npz`` (the latest state:
weights, optimiser, random key, step, training time, the kept weights and the log) and
``run.json`` (the arguments and the kept checkpoint): running the same command again resumes.

Nothing here imports Keras or JAX at module level, so the pack scripts and the argument checks
work without them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rced.audio import atomic_save_npz, atomic_write_text  # noqa: E402

INSTALL_HINT = "pip install -e '.[gpu]' (CUDA 12) or '.[train-jax]' (CPU)"
#: arguments that may change when a run is resumed (how long it runs, how often it reports, where)
RESUMABLE_ARGS = ("minutes", "max_steps", "eval_every_s", "out")


def parser(doc: str) -> argparse.ArgumentParser:
    """A script's argument parser: its docstring's first line, and its ``Usage`` lines as the examples."""
    usage = doc[doc.index("Usage") :] if "Usage" in doc else None
    return argparse.ArgumentParser(description=doc.split("\n")[0], epilog=usage,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip


def add_run_arguments(ap: argparse.ArgumentParser, pack_help: str, init_example: Path) -> None:
    """The arguments every trainer has: its packs, run folder, start, normalisation and length."""
    ap.add_argument("--pack", type=Path, nargs="+", required=True, help=pack_help)
    ap.add_argument("--out", type=Path, required=True,
                    help="run folder: the model folder, its log and checkpoint (the same command resumes)")
    ap.add_argument("--init", type=Path, default=None,
                    help=f"model folder to start from (its network, weights and norm.json), e.g. {init_example}")
    ap.add_argument("--norm", type=Path, default=None, help=f"norm.json (default: --init's, else {init_example}'s)")
    ap.add_argument("--minutes", type=float, default=7.0, help="training wall time (after compilation)")
    ap.add_argument("--max-steps", type=int, default=10**9, help="stop after this many steps")


def keras_on_jax():
    """Keras on its JAX backend (the trainers' only backend), or a one-line exit saying what is missing."""
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != "jax":
        raise SystemExit("Keras was imported on another backend before the trainer set KERAS_BACKEND=jax")
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Keras' model.save imports TensorFlow where installed
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"the JAX trainers need {exc.name}: {INSTALL_HINT}") from None
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit(f"Keras runs on {keras.backend.backend()!r}, not JAX")
    return keras


def seed_initializers(seed: int) -> None:
    """Make the initial weights of a network built next a function of ``seed``: Keras draws its
    initializers' seeds from Python's ``random`` (``keras.utils.set_random_seed`` would do it too,
    but also imports TensorFlow where it is installed)."""
    random.seed(seed)


def check_output(path: Path, folder: bool = False) -> None:
    """``path`` (a file, or a folder) can be written, before any work (``rced.outputs``; one-line exit)."""
    from rced.errors import RcedError
    from rced.outputs import check_output_file, check_output_folder

    try:
        (check_output_folder if folder else check_output_file)(path)
    except RcedError as exc:
        raise SystemExit(str(exc)) from None


def check_inputs(packs: list[Path], out: Path, files: list[Path | None], init: Path | None) -> None:
    """Every input exists and the run folder can be written, before any work (one-line exits)."""
    for p in packs:
        if not p.is_file():
            raise SystemExit(f"{p}: pack not found")
    for f in files:
        if f is not None and not f.is_file():
            raise SystemExit(f"{f}: file not found")
    if init is not None:
        check_model_folder(init)
    check_output(out, folder=True)


def check_model_folder(folder: Path) -> None:
    """One-line exit unless ``folder`` holds a model folder's three files."""
    for name in ("model.keras", "config.json", "norm.json"):
        if not (folder / name).is_file():
            raise SystemExit(f"{folder}: not a model folder (no {name})")


def load_teacher_folder(folder: Path, config_cls: type, what: str, error: type[Exception]):
    """A teacher's (model, config, mean, std) from its model folder; a one-line exit when it is not ``what``
    (e.g. "denoiser folder": the config of another kind of model fails ``config_cls``)."""
    from rced.denoiser import load_model_folder

    try:
        model, cfg, norm = load_model_folder(folder, config_cls, what, error)
    except error as exc:  # e.g. an acoustic model's folder given as a denoiser
        article = "an" if what[0] in "aeiou" else "a"
        raise SystemExit(f"{folder}: not {article} {what} ({str(exc).splitlines()[0][:120]})") from None
    return model, cfg, np.asarray(norm.mean, np.float32), np.asarray(norm.std, np.float32)


def load_init_weights(model, init: Path, new_head: str | None = None, grow_inputs: bool = False) -> None:
    """Weights of ``init/model.keras`` into ``model`` (built from the same config); one-line exit if they differ.

    ``new_head``: the name of a layer whose shape differs (an output projection to other units), left
    as initialised; every other layer takes the weights of the layer of its name. ``grow_inputs``: the
    model has more input channels (a denoiser given level trackers): a kernel with more input channels
    keeps the old ones' weights and gets zeros for the new, so the model starts as ``init`` computes."""
    try:
        if new_head is None and not grow_inputs:
            model.load_weights(init / "model.keras")
            return
        import keras

        src = keras.saving.load_model(init / "model.keras", compile=False, safe_mode=True)
        for layer in model.layers:
            if layer.name != new_head and layer.weights:
                old = src.get_layer(layer.name).get_weights()
                layer.set_weights([grown(w, v.shape) if grow_inputs else w for w, v in zip(old, layer.weights)])
    except Exception as exc:  # keras raises many types for a file of another network
        raise SystemExit(f"{init / 'model.keras'}: cannot load into the network of its config.json "
                         f"({str(exc).splitlines()[0][:160]})") from None  # fmt: skip


def track_scan(f, gains, start=None):
    """(B, frames, C) -> (B, frames, trackers, C) in JAX, as ``rced.features.track`` computes it: each
    row's trackers start on its frame ``start`` (B,) (None: the first) and hold that frame before it."""
    import jax
    import jax.numpy as jnp

    start = jnp.zeros(f.shape[0], jnp.int32) if start is None else start

    def step(s, xt):
        x, t = xt
        d = x[:, None, :] - s
        s = s + jnp.where(d > 0, gains[None, :, :1], gains[None, :, 1:]) * d
        s = jnp.where((t <= start)[:, None, None], x[:, None, :], s)  # not started: the frame itself
        return s, s

    s0 = jnp.repeat(f[:, :1], gains.shape[0], axis=1)
    return jax.lax.scan(step, s0, (jnp.swapaxes(f, 0, 1), jnp.arange(f.shape[1])))[1].swapaxes(0, 1)


def grown(w: np.ndarray, shape: tuple) -> np.ndarray:
    """A conv kernel ``w`` (kh, kw, in, out) zero-padded to ``shape``'s larger input-channel count."""
    shape = tuple(int(v) for v in shape)
    if w.shape == shape:
        return w
    if w.ndim != 4 or w.shape[:2] + w.shape[3:] != shape[:2] + shape[3:] or w.shape[2] > shape[2]:
        raise ValueError(f"weights {w.shape} do not grow to {shape}")
    return np.concatenate([w, np.zeros((*w.shape[:2], shape[2] - w.shape[2], w.shape[3]), w.dtype)], axis=2)


def masked_bn_call(model, trainable: list, non_trainable: list, x, bn_mask, training: bool):
    """``model.stateless_call`` whose BatchNormalization layers take ``bn_mask`` (their input's
    shape less the channels): statistics over the real frames only, not a batch's padding.

    A functional model does not carry a mask through convolutions, so this runs the model's
    graph itself (Keras' own ``Functional.call`` does the same) and hands the mask to every
    BatchNormalization; the mask is not passed on to later layers. The acoustic model's depthwise
    convolutions run as shifted products (:func:`_depthwise_by_shifts`). Keras 3.15 API.
    """
    import keras
    from keras.src.backend import set_keras_mask

    def wrap(op):
        def call(*a, **kw):
            if _time_depthwise(op):
                return _depthwise_by_shifts(op, a[0])
            if training is not None and "training" in getattr(op, "_call_context_args", {}):
                kw["training"] = training
            if bn_mask is not None and isinstance(op, keras.layers.BatchNormalization):
                out = op(*a, **{**kw, "mask": bn_mask})
                set_keras_mask(out, None)
                return out
            return op(*a, **kw)

        return call

    mapping = list(zip(model.trainable_variables, trainable)) + list(zip(model.non_trainable_variables, non_trainable))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        out = model._run_through_graph([x], operation_fn=wrap)
    out = out[0] if isinstance(out, (list, tuple)) else out
    return out, [scope.get_current_value(v) for v in model.non_trainable_variables]


def _time_depthwise(op) -> bool:
    """A bias-free DepthwiseConv2D of kernel (k, 1), stride 1, undilated, 'valid', multiplier 1: the
    acoustic model's blocks."""
    import keras

    return (isinstance(op, keras.layers.DepthwiseConv2D) and not op.use_bias and op.depth_multiplier == 1
            and op.kernel.shape[1] == 1 and tuple(op.strides) == (1, 1) and tuple(op.dilation_rate) == (1, 1)
            and op.padding == "valid" and op.data_format == "channels_last")  # fmt: skip


def _depthwise_by_shifts(op, x):
    """The same layer as a sum of k shifted, per-channel scaled copies of ``x`` (batch, time, 1,
    channels). XLA's CPU backend computes a grouped convolution and its gradient ~10x slower
    (421 against 44 ms for one 144-channel block of a 32 x 320-frame batch, forward and backward)."""
    w = op.kernel  # (k, 1, channels, 1); inside a StatelessScope: the mapped value
    k = w.shape[0]
    steps = x.shape[1] - k + 1
    return sum(x[:, i : i + steps] * w[i, 0, :, 0] for i in range(k))


@dataclasses.dataclass(frozen=True)
class Network:
    """A Keras network of the project with what its model folder holds beside ``model.keras``."""

    model: Any  # keras.Model (rced.models.build_model / grammar.acoustic.am.build_am)
    config: Any  # its ModelConfig / AMConfig: config.json
    norm: Any  # rced.features.Normalizer of its input features: norm.json

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.norm.mean, np.float32), np.asarray(self.norm.std, np.float32)

    def write_folder(self, folder: Path) -> None:
        """config.json and norm.json of the model folder."""
        from rced.config import save_json

        save_json(self.config, folder / "config.json")
        self.norm.save(folder / "norm.json")


def network(build: Callable, config, args: argparse.Namespace, default: Path, n_features: int,
            new_head: str | None = None, grow_inputs: bool = False) -> Network:  # fmt: skip
    """``build(config)`` with ``--init``'s weights (else initial ones drawn from ``--seed``; the layer
    ``new_head`` always those) and the normalisation of ``--norm`` (else ``--init``'s, else the shipped
    ``default`` folder's)."""
    from rced.errors import RcedError
    from rced.features import Normalizer

    path = args.norm or (args.init or default) / "norm.json"
    try:
        norm = Normalizer.load(path)
    except RcedError as exc:
        raise SystemExit(str(exc)) from None
    if len(norm.mean) != n_features:
        raise SystemExit(f"{path}: {len(norm.mean)} features, the network reads {n_features}")
    seed_initializers(args.seed)
    model = build(config)
    if args.init is not None:
        load_init_weights(model, args.init, new_head, grow_inputs)
    return Network(model, config, norm)


@dataclasses.dataclass(frozen=True)
class Loop:
    """What a trainer hands :func:`train`: its network, jitted step, evaluation and reporting."""

    net: Network  # whose model's variables are trained
    tx: Any  # optax GradientTransformation (its state is checkpointed)
    step: Callable  # (trainable, non_trainable, opt_state, key, lr) -> (same three, (train metric, ...))
    evaluate: Callable  # (trainable, non_trainable) -> {name: float}
    score: Callable  # (val metrics, step) -> float, lower is better: the kept checkpoint's criterion
    lr: Callable  # (step, fraction of the time budget used) -> learning rate
    train_names: tuple[str, ...]
    unit: tuple[str, int]  # (what a step consumes, how many): the log's third column


class RunFolder:
    """``OUT``: the kept model folder, ``training_log.csv``, ``checkpoint.npz`` and ``run.json``."""

    def __init__(self, out: Path, args: argparse.Namespace):
        self.out = out
        self.args = {k: _plain(v) for k, v in sorted(vars(args).items())}
        self.ckpt = out / "checkpoint.npz"

    def fixed_args(self) -> dict:
        return {k: v for k, v in self.args.items() if k not in RESUMABLE_ARGS}

    def load(self) -> dict | None:
        """The checkpoint's arrays and meta, or None for a new run; refuses a run of other arguments."""
        if not self.ckpt.exists():
            return None
        try:
            z = dict(np.load(self.ckpt, allow_pickle=False))
            meta = json.loads(str(z.pop("meta")))
        except Exception as exc:  # a damaged file: say which, do not guess
            raise SystemExit(f"{self.ckpt}: cannot read the checkpoint ({str(exc).splitlines()[0][:120]})") from None
        # an option the run's checkpoint does not name (added since) counts as unset: None
        fixed, now = {k: v for k, v in meta["args"].items() if k not in RESUMABLE_ARGS}, self.fixed_args()
        diff = sorted(k for k in set(fixed) | set(now) if fixed.get(k) != now.get(k))
        if diff:
            raise SystemExit(f"{self.out}: holds a run with other arguments ({', '.join(diff)}); "
                             "resume it with the same ones or choose another --out")  # fmt: skip
        return {"arrays": z, "meta": meta}

    def save(self, model, st: dict, rows: list[dict], best: dict) -> None:
        """The latest state and the kept weights, atomically (the resume point)."""
        import jax

        arrays = {}
        for prefix, tv, ntv in (("", st["tv"], st["ntv"]), ("best_", best["tv"], best["ntv"])):
            for v, a in zip(model.trainable_variables, tv):
                arrays[f"{prefix}trainable/{v.path}"] = np.asarray(a)
            for v, a in zip(model.non_trainable_variables, ntv):
                arrays[f"{prefix}non_trainable/{v.path}"] = np.asarray(a)
        for i, leaf in enumerate(jax.tree.leaves(st["opt"])):
            arrays[f"opt/{i:04d}"] = np.asarray(leaf)
        arrays["key"] = np.asarray(jax.random.key_data(st["key"]))
        meta = {"step": st["step"], "elapsed_s": st["elapsed"], "rows": rows, "args": self.args,
                "best": {k: best[k] for k in ("score", "step", "metrics")}}  # fmt: skip
        arrays["meta"] = np.array(json.dumps(meta))
        atomic_save_npz(self.ckpt, arrays)
        atomic_write_text(self.out / "run.json", json.dumps(
            {"args": self.args, "steps": st["step"], "training_s": round(st["elapsed"], 1),
             "kept": {"step": best["step"], **best["metrics"]}}, indent=2) + "\n")  # fmt: skip

    def write_log(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.out / "training_log.csv", buf.getvalue())

    def write_model(self, loop: Loop, tv: list, ntv: list) -> None:
        """The model folder: these weights as ``model.keras`` (saved through a temporary name)."""
        from rced.train import _save_model_atomic

        model = loop.net.model
        for v, a in zip(model.trainable_variables, tv):
            v.assign(a)
        for v, a in zip(model.non_trainable_variables, ntv):
            v.assign(a)
        _save_model_atomic(model, self.out / "model.keras")
        loop.net.write_folder(self.out)


def restore(model, z: dict, prefix: str = "") -> tuple[list, list]:
    """(trainable, non_trainable) weights from a checkpoint's arrays; exits if they are another network's."""
    import jax.numpy as jnp

    def take(kind: str, variables) -> list:
        out = []
        for v in variables:
            a = z.get(f"{prefix}{kind}/{v.path}")
            if a is None or tuple(a.shape) != tuple(v.shape):
                raise SystemExit(f"checkpoint: {v.path} missing or of another shape: a run of another network")
            out.append(jnp.asarray(a))
        return out

    return take("trainable", model.trainable_variables), take("non_trainable", model.non_trainable_variables)


def restore_opt(tx, tv: list, z: dict):
    """The optimiser state saved beside ``tv`` (same tree as ``tx.init(tv)``)."""
    import jax
    import jax.numpy as jnp

    leaves, tree = jax.tree.flatten(tx.init(tv))
    saved = [z.get(f"opt/{i:04d}") for i in range(len(leaves))]
    if any(a is None or a.shape != np.shape(b) for a, b in zip(saved, leaves)) or f"opt/{len(leaves):04d}" in z:
        raise SystemExit("checkpoint: the optimiser state is of another optimiser")
    return jax.tree.unflatten(tree, [jnp.asarray(a) for a in saved])


def lr_schedule(base: float, warmup: int, floor: float) -> Callable[[int, float], float]:
    """Linear warm-up over ``warmup`` steps, then cosine decay over the time budget to ``floor`` x base."""

    def lr(step: int, frac: float) -> float:
        cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        return base * min(1.0, (step + 1) / max(1, warmup)) * (floor + (1 - floor) * cos)

    return lr


def train(loop: Loop, run: RunFolder, seed: int, minutes: float, max_steps: int, eval_every_s: float) -> dict:
    """Train for ``minutes`` of wall time (after compilation) or ``max_steps``, resuming ``run`` when it
    holds a checkpoint; evaluates every ``eval_every_s`` and at the end, keeps the weights that
    ``loop.score`` rates best (the start included) as the model folder. Returns the kept checkpoint."""
    import jax

    name = run.out.name
    run.out.mkdir(parents=True, exist_ok=True)
    model, budget = loop.net.model, minutes * 60.0
    saved = run.load()
    if saved is None:
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        st = {"tv": tv, "ntv": ntv, "opt": loop.tx.init(tv), "key": jax.random.PRNGKey(seed + 1), "step": 0,
              "elapsed": 0.0}  # fmt: skip
        metrics = loop.evaluate(tv, ntv)
        best = {"score": loop.score(metrics, 0), "step": 0, "metrics": metrics, "tv": tv, "ntv": ntv}
        rows = [_row(loop, 0, 0.0, 0.0, float("nan"), {}, metrics)]
        print(f"[{name}] start: {_fmt(metrics)}", flush=True)
        run.write_model(loop, tv, ntv)
        run.write_log(rows)
        run.save(model, st, rows, best)
    else:
        z, meta = saved["arrays"], saved["meta"]
        tv, ntv = restore(model, z)
        opt = restore_opt(loop.tx, tv, z)
        btv, bntv = restore(model, z, "best_")
        st = {"tv": tv, "ntv": ntv, "opt": opt, "key": jax.random.wrap_key_data(z["key"]), "step": meta["step"],
              "elapsed": meta["elapsed_s"]}  # fmt: skip
        best = {**meta["best"], "tv": btv, "ntv": bntv}
        rows = meta["rows"]
        run.write_model(loop, btv, bntv)  # the kept folder is the checkpoint's, whatever a kill left
        run.write_log(rows)
        print(f"[{name}] resumed at step {st['step']} ({st['elapsed'] / 60:.1f} of {minutes:g} min), "
              f"kept step {best['step']}", flush=True)  # fmt: skip
    if st["elapsed"] >= budget or st["step"] >= max_steps:
        print(f"[{name}] nothing to do: the run has used its --minutes / --max-steps", flush=True)
        return best

    t0 = time.time()
    jax.block_until_ready(loop.step(st["tv"], st["ntv"], st["opt"], st["key"], 0.0))  # compile; result discarded
    print(f"[{name}] compiled in {time.time() - t0:.1f}s", flush=True)
    t0 = time.time() - st["elapsed"]
    last_eval, last_step, sums = time.time(), st["step"], []
    while st["step"] < max_steps and time.time() - t0 < budget:
        lr = loop.lr(st["step"], (time.time() - t0) / budget)
        st["key"], sub = jax.random.split(st["key"])
        st["tv"], st["ntv"], st["opt"], tm = loop.step(st["tv"], st["ntv"], st["opt"], sub, lr)
        sums.append(tm)
        st["step"] += 1
        now = time.time()
        if now - last_eval >= eval_every_s or now - t0 >= budget or st["step"] >= max_steps:
            train_m = {k: float(np.mean([float(t[i]) for t in sums])) for i, k in enumerate(loop.train_names)}
            rate = (st["step"] - last_step) / max(now - last_eval, 1e-9)
            metrics = loop.evaluate(st["tv"], st["ntv"])
            st["elapsed"] = time.time() - t0
            score = loop.score(metrics, st["step"])
            if score < best["score"]:
                best = {"score": score, "step": st["step"], "metrics": metrics, "tv": st["tv"], "ntv": st["ntv"]}
                run.write_model(loop, st["tv"], st["ntv"])
            rows.append(_row(loop, st["step"], st["elapsed"], lr, rate, train_m, metrics))
            run.write_log(rows)
            run.save(model, st, rows, best)
            print(f"[{name}] step {st['step']} {st['elapsed']:.0f}s {rate:.1f} steps/s lr {lr:.1e} | train "
                  f"{_fmt(train_m)} | val {_fmt(metrics)} | kept step {best['step']}", flush=True)  # fmt: skip
            sums, last_step, last_eval = [], st["step"], time.time()
    print(f"[{name}] done: {st['step']} steps ({st['step'] * loop.unit[1]:,} {loop.unit[0]}), kept step "
          f"{best['step']} ({_fmt(best['metrics'])}), {st['elapsed'] / 60:.1f} min training", flush=True)  # fmt: skip
    return best


def _row(loop: Loop, step: int, secs: float, lr: float, rate: float, train_m: dict, val_m: dict) -> dict:
    row = {"step": step, "seconds": round(secs, 1), loop.unit[0]: step * loop.unit[1], "lr": f"{lr:.2e}",
           "steps_per_s": round(rate, 2) if math.isfinite(rate) else ""}  # fmt: skip
    row.update({f"train_{k}": round(train_m[k], 5) if k in train_m else "" for k in loop.train_names})
    row.update({f"val_{k}": round(v, 5) for k, v in val_m.items()})
    return row


def _plain(v):
    """An argument as JSON: paths as strings, lists element by element."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return str(v) if isinstance(v, Path) else v


def _fmt(metrics: dict) -> str:
    return " ".join(f"{k} {v:.5g}" for k, v in metrics.items())
