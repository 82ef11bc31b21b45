"""Merge fine-tunes of one model by task arithmetic: ``start + alpha * sum_i (tuned_i - start)``.

Ilharco et al., "Editing models with task arithmetic" (2023). Every weight is merged, BatchNorm
statistics included; the folders must hold the same network (same config.json architecture,
same weight shapes). The merged model folder takes ``config.json`` and ``norm.json`` from START
(the fine-tunes must have used the same normalisation: refused otherwise). Works on any Keras
backend; no JAX needed.

Usage (repo root):
    python scripts/gpu/merge_models.py runs/rced_gpu runs/rced_gpu_voc runs/rced_gpu_more -o runs/rced_merge
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import check_output, parser  # noqa: E402


def merge(start: Path, tuned: list[Path], out: Path, alpha: float) -> int:
    """Write the merged model folder ``out``; returns how many weight arrays were merged."""
    from grammar.config import AMConfig
    from rced.config import ModelConfig
    from rced.denoiser import load_model_folder
    from rced.errors import RcedError
    from rced.train import _save_model_atomic

    def load(folder: Path):
        for cls, what in ((ModelConfig, "denoiser folder"), (AMConfig, "acoustic-model folder")):
            try:
                return load_model_folder(folder, cls, what)
            except RcedError as exc:
                err = exc
        raise SystemExit(str(err))

    model, cfg, norm = load(start)
    base = model.get_weights()
    deltas = [np.zeros_like(w) for w in base]
    for t in tuned:
        m, c, n = load(t)
        if c != cfg or n != norm:
            raise SystemExit(f"{t}: config.json or norm.json differs from {start}'s: not a fine-tune of it")
        ws = m.get_weights()
        if [w.shape for w in ws] != [w.shape for w in base]:
            raise SystemExit(f"{t}: weights of another network than {start}'s")
        deltas = [d + (w - b) for d, w, b in zip(deltas, ws, base)]
    model.set_weights([(b + alpha * d).astype(b.dtype) for b, d in zip(base, deltas)])
    out.mkdir(parents=True, exist_ok=True)
    _save_model_atomic(model, out / "model.keras")
    for name in ("config.json", "norm.json"):
        shutil.copyfile(start / name, out / name)
    return len(base)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("start", type=Path, help="model folder the fine-tunes started from")
    ap.add_argument("tuned", type=Path, nargs="+", help="model folders fine-tuned from START")
    ap.add_argument("-o", "--out", type=Path, required=True, help="merged model folder to write")
    ap.add_argument("--alpha", type=float, default=1.0, help="scale of the summed task vectors")
    args = ap.parse_args(argv)
    check_output(args.out, folder=True)
    n = merge(args.start, args.tuned, args.out, args.alpha)
    print(f"{args.out}: {args.start} + {args.alpha:g} x the sum of {len(args.tuned)} task vectors ({n} weight arrays)")


if __name__ == "__main__":
    main()
