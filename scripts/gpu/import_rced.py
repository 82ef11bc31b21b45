"""Move R-CED weights between Keras model folders and the JAX trainer's flat npz, with parity checks.

``export``: a model folder (``rced.denoiser.Denoiser.load``) -> npz for ``train_rced_jax.py
--init``: every weight as ``<layer>/<weight>`` in Keras layout, plus a probe input and the
Keras mask on it (``probe/x``, ``probe/mask_keras``). The JAX forward of the npz (inference
BatchNorm, full float32) must match that mask within ``--bound``; it runs in-process when
JAX is importable, else in the interpreter given by ``--jax-python`` / ``$JAX_PYTHON``
(``check``); the GPU trainer repeats the check when it loads ``--init``.

``import``: a ``*_best.npz`` of ``train_rced_jax.py`` -> a model folder that
``Denoiser.load(folder)`` reads (model.keras via the project's own save, config.json of the
base folder with ``--mask-floor``, norm.json), refused unless Keras reproduces the JAX mask
stored with the weights (``probe/mask``) within ``--bound``; then denoises a test signal.

``merge``: task arithmetic over fine-tunes of one start (Ilharco et al., "Editing models with
task arithmetic", 2023): ``start + sum_i alpha * (tuned_i - start)`` for every float weight,
BatchNorm statistics included; the probe mask is recomputed by the JAX forward (needs JAX), so
``import`` checks the merge like any trained npz.

Usage (this machine, repo root):
    JAX_PYTHON=/tmp/jaxenv/bin/python python scripts/gpu/import_rced.py export rced/default_model .gpu/rced_init.npz
    /tmp/jaxenv/bin/python scripts/gpu/import_rced.py check .gpu/rced_init.npz
    python scripts/gpu/import_rced.py import OUT/c05_best.npz runs/rced_gpu_c05 [--log OUT/c05_log.csv] [--mask-floor 0.3]
    /tmp/jaxenv/bin/python scripts/gpu/import_rced.py merge .gpu/rced_init3.npz .gpu/rced_init_voc.npz \
        .gpu/rced_init_more.npz -o .gpu/rced_merge.npz
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from npz_io import assign_npz_weights, save_npz_atomic  # noqa: E402

PARITY_BOUND = 1e-4


def _keras_weights(model) -> dict:
    return {
        f"{layer.name}/{w.name}": np.asarray(w.numpy(), np.float32) for layer in model.layers for w in layer.weights
    }


def _probe(cfg, norm) -> np.ndarray:
    """(48, 129, 1, 8) model inputs: 32 frames of a harmonic-plus-noise signal, 16 of N(0, 1)."""
    from rced.features import model_inputs
    from rced.frontend import stft

    rng = np.random.default_rng(0)
    sr = cfg.frontend.sample_rate
    t = np.arange(int(0.4 * sr)) / sr
    f0 = 140 + 40 * t
    sig = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / sr) / k for k in range(1, 20)) * 0.05
    sig = sig * (1 + 0.8 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))
    x = model_inputs(np.abs(stft(sig, cfg.frontend)), cfg, norm)[8:40]
    extra = rng.standard_normal((16,) + x.shape[1:]).astype(np.float32)
    return np.concatenate([x, extra]).astype(np.float32)


def check(npz: Path, bound: float) -> float:
    """JAX forward of the npz's weights on its probe vs the Keras mask stored by ``export``."""
    from train_rced_jax import predict_exact, split_npz

    z = np.load(npz, allow_pickle=False)
    p, s = split_npz(z)
    ref = z["probe/mask_keras"] if "probe/mask_keras" in z.files else z["probe/mask"]
    diff = float(np.max(np.abs(predict_exact(p, s, z["probe/x"]) - ref)))
    print(f"{npz}: JAX vs Keras max abs mask difference on {len(ref)} probe frames: {diff:.2e} (bound {bound})")
    if not diff <= bound:
        raise SystemExit(f"{npz}: parity {diff:.2e} above {bound}")
    return diff


def export(model_dir: Path, out: Path, bound: float, jax_python: str | None) -> None:
    from rced.denoiser import Denoiser

    d = Denoiser.load(model_dir)
    if d.config.arch not in ("rced", "crced") or d.config.width_mult != 1.0 or d.config.output != "mask":
        raise SystemExit(f"{model_dir}: not an R-CED or CR-CED of width 1 with mask output")
    arrays = _keras_weights(d.model)
    probe = _probe(d.config, d.norm)
    arrays["probe/x"] = probe
    arrays["probe/mask_keras"] = np.asarray(d.model(probe, training=False), np.float32)
    arrays["meta"] = np.array(json.dumps({"source": str(model_dir), "mask_floor": d.config.mask_floor}))
    save_npz_atomic(out, arrays)
    print(f"{out}: {len(arrays) - 3} weights from {model_dir}, {out.stat().st_size / 1e3:.0f} kB")
    try:
        import jax  # noqa: F401
    except ImportError:
        if not jax_python:
            print("JAX not importable here: run `check` with a JAX interpreter (or pass --jax-python)")
            return
        subprocess.run([jax_python, __file__, "check", str(out), "--bound", str(bound)], check=True)
        return
    check(out, bound)


def import_npz(npz: Path, out_dir: Path, base: Path, mask_floor: float | None, log: Path | None, bound: float) -> dict:
    import dataclasses

    from train_rced_jax import arch_of  # no JAX needed for the names

    from rced.config import ModelConfig, load_json, save_json
    from rced.denoiser import Denoiser
    from rced.features import Normalizer
    from rced.models import build_model, count_params
    from rced.train import _save_model_atomic

    z = np.load(npz, allow_pickle=False)
    meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
    cfg = load_json(ModelConfig, base / "config.json")
    arch = arch_of(z)
    if arch != cfg.arch:
        cfg = dataclasses.replace(cfg, arch=arch)
    if mask_floor is not None:
        cfg = dataclasses.replace(cfg, mask_floor=mask_floor)
    if cfg.mask_floor < float(meta.get("mask_floor_train", 0.0)):
        print(f"warning: mask floor {cfg.mask_floor} below the floor the loss used ({meta['mask_floor_train']})")
    model = build_model(cfg)
    n = assign_npz_weights(model, z, npz)
    probe = z["probe/x"].astype(np.float32)
    ref = z["probe/mask"] if "probe/mask" in z.files else z["probe/mask_keras"]
    diff = float(np.max(np.abs(np.asarray(model(probe, training=False)) - ref)))
    print(f"{npz}: Keras vs JAX max abs mask difference on {len(probe)} probe frames: {diff:.2e} (bound {bound})")
    if not diff <= bound:
        raise SystemExit(f"{npz}: Keras and JAX disagree on the probe by {diff:.2e} (bound {bound})")
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_model_atomic(model, out_dir / "model.keras")
    save_json(cfg, out_dir / "config.json")
    Normalizer.load(base / "norm.json").save(out_dir / "norm.json")
    if log is not None:
        shutil.copyfile(log, out_dir / "training_log.csv")
    # the folder must load and denoise through the project's own code
    den = Denoiser.load(out_dir)
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    x = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.03 * rng.standard_normal(len(t))).astype(np.float32)
    y = den.denoise(x, 16000)
    if y.shape != x.shape or not np.all(np.isfinite(y)):
        raise SystemExit(f"{out_dir}: denoise of a test signal failed")
    again = np.asarray(den.model(probe, training=False))
    return {"weights": n, "params": count_params(model), "probe_max_abs_diff": diff,
            "reload_max_abs_diff": float(np.max(np.abs(again - ref))), "mask_floor": cfg.mask_floor,
            "test_in_rms": float(np.sqrt(np.mean(x**2))), "test_out_rms": float(np.sqrt(np.mean(y**2))),
            **{k: meta[k] for k in ("step", "val_mse", "val_dsisdr_f0", "val_dsisdr_f03") if k in meta}}  # fmt: skip


def merge(start: Path, tuned: list[Path], out: Path, alpha: float) -> None:
    """``start + alpha * sum(tuned_i - start)`` over the float weights; probe mask by the JAX forward."""
    from train_rced_jax import predict_exact, split_npz

    base = dict(np.load(start, allow_pickle=False))
    runs = [dict(np.load(t, allow_pickle=False)) for t in tuned]
    for t, z in zip(tuned, runs):
        if set(z) != set(base):
            raise SystemExit(f"{t}: weights differ from {start}'s: {sorted(set(z) ^ set(base))[:5]}")
    merged = {}
    for k, w in base.items():
        if k.startswith("probe/") or w.dtype.kind != "f":
            merged[k] = w
        else:
            merged[k] = (w + alpha * sum(z[k] - w for z in runs)).astype(w.dtype)
    merged.pop("probe/mask_keras", None)
    p, s = split_npz(merged)
    merged["probe/mask"] = np.asarray(predict_exact(p, s, merged["probe/x"]), np.float32)
    metas = [json.loads(str(z["meta"])) for z in runs if "meta" in z]
    floors = [m["mask_floor_train"] for m in metas if "mask_floor_train" in m]
    merged["meta"] = np.asarray(json.dumps({"merge": {"start": str(start), "tuned": [str(t) for t in tuned], "alpha": alpha},
                                            **({"mask_floor_train": max(floors)} if floors else {})}))  # fmt: skip
    save_npz_atomic(out, merged)
    print(f"{out}: {start} + {alpha:g} x sum of {len(runs)} task vectors")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="model folder -> npz for train_rced_jax.py --init")
    e.add_argument("model_dir", type=Path, nargs="?", default=ROOT / "rced" / "default_model")
    e.add_argument("out", type=Path, nargs="?", default=ROOT / ".gpu" / "rced_init.npz")
    e.add_argument("--jax-python", default=os.environ.get("JAX_PYTHON"))
    c = sub.add_parser("check", help="JAX forward of an exported npz vs its stored Keras mask")
    c.add_argument("npz", type=Path)
    i = sub.add_parser("import", help="*_best.npz -> model folder")
    i.add_argument("npz", type=Path)
    i.add_argument("out_dir", type=Path)
    i.add_argument(
        "--base", type=Path, default=ROOT / "rced" / "default_model", help="config.json and norm.json from here"
    )
    i.add_argument("--mask-floor", type=float, default=None, help="default: the base config's")
    i.add_argument("--log", type=Path, default=None)
    m = sub.add_parser("merge", help="task arithmetic: start + alpha * sum(tuned - start) -> npz (needs JAX)")
    m.add_argument("start", type=Path)
    m.add_argument("tuned", type=Path, nargs="+")
    m.add_argument("-o", "--out", type=Path, required=True)
    m.add_argument("--alpha", type=float, default=1.0)
    for p in (e, c, i):
        p.add_argument("--bound", type=float, default=PARITY_BOUND)
    args = ap.parse_args()
    if args.cmd == "export":
        export(args.model_dir, args.out, args.bound, args.jax_python)
    elif args.cmd == "check":
        check(args.npz, args.bound)
    elif args.cmd == "merge":
        merge(args.start, args.tuned, args.out, args.alpha)
    else:
        print(json.dumps(import_npz(args.npz, args.out_dir, args.base, args.mask_floor, args.log, args.bound)))


if __name__ == "__main__":
    main()
