"""Choose the acoustic model's input mask floor on the calibration set (never on the test set).

The listener hears the denoiser at its own floor (chosen for STOI by benchmarks/mask_floor.py);
the AM may read the same mask with a higher one (AMConfig.input_mask_floor): a gentler mask in
front of an AM trained behind an earlier denoiser keeps its confidence scores apart. For each
floor: the base grammar's threshold is calibrated on the calibration set's non-commands to the
shipped FAR target (grammar.decoding.decoder.far_target_for_bound, one sample per text), then the
accuracy on its commands is measured; the best floor wins (the smaller one on a tie).
Data: the calibration set of benchmarks/recognition.py (TEST-ONLY voices, seed 101).
Writes benchmarks/results/am_floor.{json,md}; --apply writes the choice into the AM's config.json.
Run: python benchmarks/am_floor.py
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.config import AMConfig  # noqa: E402
from grammar.dataset import load_manifest, n_independent  # noqa: E402
from grammar.decoding.decoder import Grammar, calibrate_threshold, far_target_for_bound  # noqa: E402
from grammar.decoding.recognizer import Recognizer  # noqa: E402
from rced.audio import atomic_write_results  # noqa: E402
from rced.config import load_json, save_json  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from recognition import accuracy_at, best_and_scores, datasets  # noqa: E402

FLOORS = (0.18, 0.22, 0.26, 0.30, 0.34, 0.42, 0.50)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--am", default=None, help="acoustic-model folder (default: the shipped one)")
    ap.add_argument("--denoiser", default=None, help="denoiser folder (default: the shipped one)")
    ap.add_argument("--floors", type=float, nargs="+", default=list(FLOORS))
    ap.add_argument("--max-far", type=float, default=0.10)
    ap.add_argument("--score-kind", default="len_margin")
    ap.add_argument("--apply", action="store_true", help="write the chosen floor into the AM's config.json")
    ap.add_argument("--out", default=str(ROOT / "results" / "am_floor"))
    args = ap.parse_args(argv)

    base = Grammar.from_commands(load_commands(default_commands_path()), score_kind=args.score_kind)
    rec = Recognizer.load(args.am, denoiser=args.denoiser, grammar=False)
    rows = load_manifest(datasets(2)[0])
    is_cmd = np.array([r.label is not None for r in rows])
    target = far_target_for_bound(args.max_far, n_independent([r for r in rows if r.label is None]))
    cfg0 = rec.config
    results = []
    for f in args.floors:
        rec.config = dataclasses.replace(cfg0, input_mask_floor=f)
        # the posterior cache key includes the AM front-end's floor; the tag names the runs
        best, scores = best_and_scores(rec, rows, base, f"calib_amfloor_{f:.3f}")
        ok = np.array([b == r.label for b, r in zip(best, rows)])
        thr = calibrate_threshold(scores[~is_cmd], target)
        r = accuracy_at(ok, scores, is_cmd, thr)
        results.append({"floor": f, **{k: r[k] for k in ("accuracy", "far", "accuracy_no_rejection")}})
    chosen = max(results, key=lambda r: (r["accuracy"], -r["floor"]))["floor"]
    payload = {"data": "calibration set of benchmarks/recognition.py (TEST-ONLY voices, seed 101)",
               "n_commands": int(is_cmd.sum()), "n_non_commands": int((~is_cmd).sum()), "far_target": target,
               "denoiser_floor": rec.denoiser.config.mask_floor if rec.denoiser is not None else None,
               "chosen": chosen, "results": results}  # fmt: skip
    md = [f"AM input mask floor on the calibration set ({payload['n_commands']} commands, "
          f"{payload['n_non_commands']} non-commands; TEST-ONLY voices, seed 101); threshold per floor at "
          f"FAR {target:.1%}; the denoiser's own floor: {payload['denoiser_floor']}; chosen: {chosen}", "",
          "| AM input floor | accuracy | FAR | accuracy, no rejection |", "|---|---|---|---|"]  # fmt: skip
    md += [f"| {r['floor']:g} | {r['accuracy']:.3f} | {r['far']:.3f} | {r['accuracy_no_rejection']:.3f} |"
           for r in results]  # fmt: skip
    atomic_write_results(args.out, payload, md, indent=2)
    print("\n".join(md))
    if args.apply:
        path = Path(rec.path) / "config.json"
        save_json(dataclasses.replace(load_json(AMConfig, path), input_mask_floor=chosen), path)
        print(f"wrote input_mask_floor {chosen} into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
