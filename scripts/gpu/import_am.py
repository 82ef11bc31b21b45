"""Turn a GPU-trained AM (``*_best.npz`` of ``train_am_jax.py``) into a shippable model folder.

Builds :func:`grammar.am.build_am` in Keras, copies every weight by layer name, and refuses
(non-zero exit) unless the Keras model reproduces the JAX log-posteriors stored with the
weights on the probe utterances within 1e-3: the two implementations must be one network.

Usage: python scripts/gpu/import_am.py OUT/am_best.npz grammar/default_am [--log OUT/am_log.csv]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from npz_io import assign_npz_weights  # noqa: E402

PARITY_BOUND = 1e-3


def import_weights(npz_path: Path, out_dir: Path, norm_path: Path, log_path: Path | None = None,
                   bound: float = PARITY_BOUND) -> dict:  # fmt: skip
    import keras

    from grammar.am import build_am
    from grammar.config import AMConfig
    from rced.config import save_json
    from rced.features import Normalizer
    from rced.train import _save_model_atomic

    z = np.load(npz_path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    cfg = AMConfig(n_mels=meta["n_mels"], channels=meta["channels"], blocks=meta["blocks"], kernel=meta["kernel"],
                   stride=meta["stride"], lookahead=meta["lookahead"])  # fmt: skip
    model = build_am(cfg)
    n_weights = assign_npz_weights(model, z, npz_path)
    probe = z["probe/x"].astype(np.float32)
    logp = np.asarray(keras.ops.log_softmax(model.predict(probe, verbose=0)))
    diff = float(np.max(np.abs(logp - z["probe/logp"])))
    if not diff <= bound:
        raise SystemExit(f"{npz_path}: Keras and JAX disagree on the probe by {diff:.2e} (bound {bound})")
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_model_atomic(model, out_dir / "model.keras")
    save_json(cfg, out_dir / "config.json")
    Normalizer.load(norm_path).save(out_dir / "norm.json")
    if log_path is not None:
        shutil.copyfile(log_path, out_dir / "training_log.csv")
    return {"weights": n_weights, "probe_max_abs_diff": diff, "val_cer": meta["val_cer"], "step": meta["step"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("npz", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--norm", type=Path, default=ROOT / "grammar" / "default_am" / "norm.json")
    ap.add_argument("--log", type=Path, default=None)
    ap.add_argument("--bound", type=float, default=PARITY_BOUND,
                    help="probe tolerance; the first GPU run (before the probe ran at full precision) "
                         "stored TF32 log-posteriors: 2.2e-2 off, while the same weights in JAX on a CPU "
                         "agree with Keras to 2.6e-5")  # fmt: skip
    args = ap.parse_args()
    print(json.dumps(import_weights(args.npz, args.out_dir, args.norm, args.log, args.bound)))


if __name__ == "__main__":
    main()
