"""How much the acoustic model loses when a voice's formants sit elsewhere, and whether reading an
utterance at several frequency scales (test-time vocal-tract-length normalisation) wins it back.

A natural voice differs from the TRAIN voices first in its vocal tract: the same vowel has its
formants a few percent higher or lower. The AM was trained with a vocal-tract-length warp of its mel
axis (1 +- 0.1, ``scripts/gpu/train_am_jax.py --vtlp``), so it should not care. Here the float chain
reads the calibration set, the test set and the natural TEST-ONLY voice with every utterance's
enhanced spectrum scaled in frequency (:func:`grammar.acoustic.features.log_mel`'s ``warp``: a
formant at f reads as one at ``scale * f``), each scale with its own threshold at FAR <= 5 % on the
calibration set's non-commands (the rule of benchmarks/am_levers.py), and the other sets at it. The
last rows read every utterance at three or five scales and keep the best-scoring decision (the
threshold again set on the calibration set): test-time normalisation, as speaker-adaptive systems
do it without adaptation data. Nothing here changes the shipped chain.

Writes benchmarks/results/warp_sensitivity.{json,md}.
Run: python benchmarks/warp_sensitivity.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from recognition import datasets, natural_dataset  # noqa: E402

from grammar.acoustic.features import log_mel  # noqa: E402
from grammar.dataset import load_manifest  # noqa: E402
from grammar.decoding.decoder import calibrate_threshold, decode  # noqa: E402
from grammar.decoding.recognizer import Recognizer  # noqa: E402
from rced.audio import atomic_write_results, load_audio  # noqa: E402

SCALES = (0.88, 0.94, 1.0, 1.06, 1.12)
BEST_OF = {"best of 0.94 / 1 / 1.06": (0.94, 1.0, 1.06), "best of all five": SCALES}
TARGET_FAR = 0.05
SETS = ("calibration set", "test set", "natural voice")


def decisions(rec: Recognizer, manifest: Path, name: str, scales=SCALES) -> list[dict]:
    """Per utterance: its label and, per scale, the grammar's best (score, command) on the chain's
    enhanced spectrum read at that frequency scale."""
    g = rec.decoding_grammar()
    cfg = rec.config
    out = []
    for r in tqdm(load_manifest(manifest), desc=name, unit="utt"):
        mag = np.abs(rec.enhanced_spectrum(load_audio(r.path), 16000, str(r.path)))
        per = {}
        for s in scales:
            d = decode(rec.posteriors_of(rec.norm.apply(log_mel(mag, cfg, s))), g)
            per[s] = (float(d.score), g.commands[g.command_of[d.expression]])
        out.append({"label": r.label, "per": per})
    return out


def best(per: dict, scales) -> tuple[float, str]:
    """The best-scoring decision among these scales (ties: the first)."""
    return max((per[s] for s in scales), key=lambda d: d[0])


def counts(items: list[dict], threshold: float, scales) -> dict:
    """Commands right and non-commands accepted when each utterance takes its best decision among ``scales``."""
    picked = [(it["label"], best(it["per"], scales)) for it in items]
    right = sum(lab is not None and s >= threshold and cmd == lab for lab, (s, cmd) in picked)
    fa = sum(lab is None and s >= threshold for lab, (s, _) in picked)
    n_cmd = sum(lab is not None for lab, _ in picked)
    return {"right": right, "commands": n_cmd, "accuracy": round(right / max(1, n_cmd), 4),
            "false_alarms": fa, "far": round(fa / max(1, len(picked) - n_cmd), 4)}  # fmt: skip


def rows_of(measured: dict[str, list[dict]]) -> list[dict]:
    """One row per scale and per best-of reading: its threshold (calibration non-commands, FAR <= 5 %)
    and every set's counts at it."""
    readings = {f"formants x {s:g}": (s,) for s in SCALES} | BEST_OF
    rows = []
    for name, scales in readings.items():
        non = [best(it["per"], scales)[0] for it in measured["calibration set"] if it["label"] is None]
        thr = calibrate_threshold(np.asarray(non), TARGET_FAR)
        rows.append({"reading": name, "scales": list(scales), "threshold": round(float(thr), 4),
                     **{k: counts(v, thr, scales) for k, v in measured.items()}})  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> list[str]:
    lines = ["Frequency-scale sensitivity of the float chain (benchmarks/warp_sensitivity.py): every utterance's "
             "enhanced spectrum read with its formants scaled (a vocal tract shorter or longer than the voice's), "
             f"each reading with its own threshold at FAR <= {TARGET_FAR:.0%} on the calibration set's non-commands "
             "(TEST-ONLY TTS voices, seed 101), the test set (seed 202) and the natural voice (hibari `heart`) at it. "
             "Best of: each utterance read at those scales, its best-scoring decision kept.", "",
             "| reading | calibration: commands right | test set: right | FAR | natural voice: right | FAR |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        c, t, n = (r[k] for k in SETS)
        lines.append(f"| {r['reading']} | {c['accuracy']:.1%} ({c['right']}/{c['commands']}) | {t['accuracy']:.1%} | "
                     f"{t['far']:.1%} | {n['accuracy']:.1%} ({n['right']}/{n['commands']}) | {n['far']:.1%} |")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--am", default=None, help="acoustic-model folder (default: the shipped one)")
    ap.add_argument("--reps", type=int, default=2, help="command repetitions of the datasets (as recognition.py)")
    ap.add_argument("--out", default=str(ROOT / "results" / "warp_sensitivity"))
    args = ap.parse_args(argv)
    rec = Recognizer.load(args.am)
    calib, test = datasets(args.reps)
    manifests = dict(zip(SETS, (calib, test, natural_dataset(args.reps)), strict=True))
    measured = {name: decisions(rec, m, name) for name, m in manifests.items()}
    rows = rows_of(measured)
    md = markdown(rows)
    atomic_write_results(args.out, {"scales": list(SCALES), "target_far": TARGET_FAR, "rows": rows}, md, indent=1)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
