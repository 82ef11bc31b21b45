"""Write a trainer run's latest weights (its ``checkpoint.npz``, not the kept ones) as a model folder.

A run's ``--select`` keeps the weights with the best validation metric; when the validation set
is not the target (TRAIN voices, while the product is judged on the calibration set), the last
weights of the cosine schedule are the ones to measure. This writes them beside the run's
``config.json``, ``norm.json`` and ``training_log.csv``, for ``benchmarks/am_levers.py``,
``merge_models.py`` or ``ship_am.sh``. Works for both trainers: the network is the run's own
``model.keras`` (safe mode), whose weights are replaced. Works on any Keras backend.

Usage (repo root):
    python scripts/gpu/last_weights.py runs/am_long -o runs/am_long_last
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import check_model_folder, check_output, parser, restore  # noqa: E402

COPIED = ("config.json", "norm.json", "training_log.csv")


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("run", type=Path, help="a trainer's --out folder (checkpoint.npz, config.json, norm.json)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="model folder to write (must not exist)")
    args = ap.parse_args(argv)
    ckpt = args.run / "checkpoint.npz"
    if not ckpt.is_file():
        raise SystemExit(f"{ckpt}: no such file (not a trainer's run folder)")
    check_model_folder(args.run)
    if args.out.exists():
        raise SystemExit(f"{args.out}: already exists (the folder is written whole, never over another)")
    check_output(args.out, folder=True)
    try:
        z = dict(np.load(ckpt, allow_pickle=False))
        step = json.loads(str(z.pop("meta")))["step"]
    except Exception as exc:  # a damaged file: say which, do not guess
        raise SystemExit(f"{ckpt}: cannot read the checkpoint ({str(exc).splitlines()[0][:120]})") from None
    import keras

    model = keras.saving.load_model(args.run / "model.keras", compile=False, safe_mode=True)
    tv, ntv = restore(model, z)
    for v, a in zip(model.trainable_variables + model.non_trainable_variables, tv + ntv):
        v.assign(np.asarray(a))
    part = args.out.with_name(args.out.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    model.save(part / "model.keras")
    for name in COPIED:
        if (args.run / name).exists():
            shutil.copy(args.run / name, part / name)
    part.rename(args.out)
    print(f"{args.out}: the weights of step {step} of {args.run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
