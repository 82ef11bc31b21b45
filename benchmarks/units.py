"""Output units, measured: acoustic models of different units (characters, phonemes) on the calibration set.

For each AM folder: the default commands spelled in the AM's units (``Grammar.from_commands(...,
units=)``: the text for characters, every cmudict pronunciation for phonemes), the threshold set on
the calibration set's non-commands to FAR <= ``--max-far`` (5 %), then the share of its commands
right. The AM with more commands right is the one to ship (issue 17's rule). The natural TEST-ONLY
voice's test set is reported beside it at the same threshold, for information only: nothing is
chosen or calibrated on it.
Data: the calibration set of benchmarks/recognition.py (TEST-ONLY voices, seed 101) behind the
shipped denoiser, at each AM's own input mask floor.
Writes benchmarks/results/units.{json,md}.
Run: python benchmarks/units.py --am grammar/default_am runs/am_phones [--label NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.dataset import load_manifest  # noqa: E402
from grammar.decoding.decoder import Grammar, calibrate_threshold  # noqa: E402
from grammar.decoding.recognizer import Recognizer  # noqa: E402
from rced.audio import atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from recognition import best_and_scores, datasets, natural_dataset  # noqa: E402


def measure(rec: Recognizer, grammar: Grammar, calib, natural, max_far: float) -> dict:
    """Calibration accuracy at FAR <= max_far (threshold from its non-commands), and the natural set's at it."""
    out = {}
    thr = None
    for name, rows in (("calibration", calib), ("natural", natural)):
        best, scores = best_and_scores(rec, rows, grammar, f"units_{name}")
        is_cmd = np.array([r.label is not None for r in rows])
        ok = np.array([b == r.label for b, r in zip(best, rows, strict=True)])
        if thr is None:
            thr = calibrate_threshold(scores[~is_cmd], max_far)
        out[name] = {"accuracy": float(np.mean(ok[is_cmd] & (scores[is_cmd] >= thr))),
                     "far": float(np.mean(scores[~is_cmd] >= thr)),
                     "accuracy_no_rejection": float(np.mean(ok[is_cmd])),
                     "n_commands": int(is_cmd.sum()), "n_non_commands": int((~is_cmd).sum())}  # fmt: skip
    out["threshold"] = float(thr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--am", nargs="+", required=True, help="acoustic-model folders to compare")
    ap.add_argument("--label", nargs="+", default=None, help="a name per folder (default: the folder's)")
    ap.add_argument("--denoiser", default=None, help="denoiser folder (default: the shipped one)")
    ap.add_argument("--max-far", type=float, default=0.05, help="FAR the threshold keeps on the calibration set")
    ap.add_argument("--score-kind", default="len_margin")
    ap.add_argument("--out", default=str(ROOT / "results" / "units"))
    args = ap.parse_args(argv)
    labels = args.label or [Path(a).name for a in args.am]
    if len(labels) != len(args.am):
        ap.error(f"{len(args.am)} folders but {len(labels)} labels")

    commands = load_commands(default_commands_path())
    calib = load_manifest(datasets(2)[0])
    natural = load_manifest(natural_dataset(2))
    results = []
    for label, folder in zip(labels, args.am, strict=True):
        rec = Recognizer.load(folder, denoiser=args.denoiser, grammar=False)
        grammar = Grammar.from_commands(commands, score_kind=args.score_kind, units=rec.config.unit_set.name)
        results.append({"label": label, "am": str(folder), "units": rec.config.unit_set.name,
                        "expressions": len(grammar.expressions),
                        **measure(rec, grammar, calib, natural, args.max_far)})  # fmt: skip
    best = max(results, key=lambda r: r["calibration"]["accuracy"])["label"]
    payload = {"data": "calibration set of benchmarks/recognition.py (TEST-ONLY voices, seed 101); natural "
                       "TEST-ONLY voice test set (hibari heart, seed 202), information only",
               "max_far": args.max_far, "score_kind": args.score_kind, "chosen": best, "results": results}  # fmt: skip
    atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(payload, indent=2) + "\n")
    c0 = results[0]["calibration"]
    md = [f"Output units on the calibration set ({c0['n_commands']} commands, {c0['n_non_commands']} non-commands; "
          f"TEST-ONLY voices, seed 101): threshold per AM at FAR <= {args.max_far:.0%} on its non-commands, "
          f"commands right at it; the natural voice (hibari `heart`, {results[0]['natural']['n_commands']} commands, "
          f"{results[0]['natural']['n_non_commands']} non-commands) at the same threshold, not used for the choice. "
          f"More commands right on the calibration set: **{best}**.", "",
          "| AM | units | expressions | calibration: accuracy | FAR | no rejection | natural voice: accuracy | FAR | "
          "no rejection |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        c, n = r["calibration"], r["natural"]
        md.append(f"| {r['label']} | {r['units']} | {r['expressions']} | {c['accuracy']:.3f} | {c['far']:.3f} | "
                  f"{c['accuracy_no_rejection']:.3f} | {n['accuracy']:.3f} | {n['far']:.3f} | "
                  f"{n['accuracy_no_rejection']:.3f} |")  # fmt: skip
    atomic_write_text(Path(args.out).with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
