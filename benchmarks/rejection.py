"""Rejection-score benchmark: which confidence separates commands from non-commands best.

The same data as benchmarks/recognition.py (TEST-ONLY voices; calibration set seed 101, test
set seed 202; clean, 20, 10, 5 dB babble; the shipped chain: denoiser -> AM -> base grammar).
The chain's log-posteriors are computed once and cached; every score kind of
:data:`grammar.decoding.decoder.SCORE_KINDS` is then calibrated on the calibration set's non-commands
to each target FAR and measured on the test set. Writes benchmarks/results/rejection.{json,md}.
Run: python benchmarks/rejection.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from recognition import cached_posteriors, datasets  # noqa: E402

from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.dataset import load_manifest  # noqa: E402
from grammar.decoding.decoder import SCORE_KINDS, Grammar, calibrate_threshold, decode  # noqa: E402
from grammar.decoding.recognizer import Recognizer  # noqa: E402
from grammar.metrics import metrics_by_group  # noqa: E402
from rced.audio import atomic_write_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--am", default=None)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--target-fars", type=float, nargs="+", default=[0.03, 0.05, 0.08, 0.10])
    ap.add_argument("--out", default=str(ROOT / "results" / "rejection"))
    ap.add_argument("--spot-target-far", type=float, default=0.05)
    ap.add_argument("--write-spot-threshold", default=None, metavar="GRAMMAR_JSON",
                    help="store the spotting threshold (len_norm, --spot-target-far) in this grammar file")  # fmt: skip
    args = ap.parse_args(argv)
    if args.spot_target_far not in args.target_fars:
        args.target_fars.append(args.spot_target_far)
    t0 = time.time()
    base = Grammar.from_commands(load_commands(default_commands_path()))
    rec = Recognizer.load(args.am, grammar=base)
    calib_m, test_m = datasets(args.reps)
    calib, test = load_manifest(calib_m), load_manifest(test_m)
    cal_nc = [r for r in calib if r.label is None]
    cal_p = cached_posteriors(rec, cal_nc, "calib_nc")
    test_p = cached_posteriors(rec, test, "test")
    labels = [r.label for r in test]
    groups = [r.extra.get("snr") for r in test]
    rows, spot_thr = [], None
    for kind, spot in [(k, False) for k in SCORE_KINDS] + [("len_norm", True)]:
        cal_scores = np.array([decode(p, base, kind, spot=spot).score for p in cal_p])
        decisions = [decode(p, base, kind, spot=spot) for p in test_p]
        best = [base.commands[base.command_of[d.expression]] for d in decisions]
        scores = np.array([d.score for d in decisions])
        for far in args.target_fars:
            thr = calibrate_threshold(cal_scores, far)
            preds = [b if s >= thr else None for b, s in zip(best, scores)]
            m = metrics_by_group(labels, preds, groups)
            if spot and far == args.spot_target_far:
                spot_thr = thr
            rows.append({"score": kind + (", spotting" if spot else ""), "target_far": far, "threshold": thr,
                         **{f"{g}_{k}": m[g][k] for g in m for k in ("accuracy", "far")}})  # fmt: skip
    payload = {"data": {"calibration": str(calib_m), "test": str(test_m), "n_test": len(test),
                        "n_calibration_non_commands": len(cal_nc)},
               "rows": rows, "seconds": round(time.time() - t0, 1)}  # fmt: skip
    md = [f"Rejection scores on TEST-ONLY voices, shipped chain (denoiser -> AM -> base grammar): threshold "
          f"calibrated on {len(cal_nc)} calibration non-commands to each target FAR, measured on {len(test)} test "
          "utterances (clean, 20, 10, 5 dB in equal parts). Score kinds are those of `grammar.decoding.decoder.SCORE_KINDS`; spotting decodes "
          "with a filler path (`decode(..., spot=True)`: the command anywhere in the window, a best-path filler "
          "around it; a lever of the spotting section, which `grammar listen` does not use).",
          "", "| score | target FAR | accuracy | FAR | accuracy clean | 20 dB | 10 dB | 5 dB |",
          "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        md.append(f"| {r['score']} | {r['target_far']:.2f} | {r['all_accuracy']:.3f} | {r['all_far']:.3f} | "
                  + " | ".join(f"{r.get(f'{g}_accuracy', float('nan')):.3f}" for g in ("clean", "20", "10", "5"))
                  + " |")  # fmt: skip
    atomic_write_results(args.out, payload, md, indent=2, default=float)
    if args.write_spot_threshold:
        Grammar.load(args.write_spot_threshold).with_spot_threshold(spot_thr).save(args.write_spot_threshold)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
