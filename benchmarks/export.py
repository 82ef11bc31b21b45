"""int8 export benchmark: the int8 models against the float ones, and the device bundle's numbers.

1. Denoiser quality parity: PESQ-wb, STOI and SI-SDR of the float and the int8 denoiser (LiteRT
   reference kernels, bit-exact with TFLM) on the evaluation set (TEST-ONLY voices and the real
   recordings in babble), per SNR, plus the per-utterance int8 - float differences.
2. Recognition-chain parity (optional, ``--manifest``): MDR/MCR/FAR/accuracy of the float chain and
   of the device chain (int8 denoiser, int8 AM in fixed overlapping windows, grammar decoder) on a
   dataset manifest, and how often the two decide alike. Each chain decides at its own calibrated
   threshold; beside that, for comparison only, the int8 chain at the threshold that accepts as many
   of these test non-commands as the float chain does (equal test FAR), which takes the calibration
   set's sampling noise out of the parity. Between the two, one factor at a time at the float
   threshold: the float AM run as the device runs the int8 one (the same fixed windows), and the
   float AM behind the int8 denoiser; what is left of the gap is the int8 AM's own rounding.

Writes benchmarks/results/export.{json,md}. Run: python benchmarks/export.py [--model DIR]
[--manifest CSV --am DIR --grammar G.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from firmware_export.convert import (  # noqa: E402
    AM_FRAMES,
    Calibration,
    am_int8,
    denoiser_int8,
)
from rced.audio import atomic_write_results  # noqa: E402
from rced.evaluate import METRICS, run_systems, shown_path, summarize, to_markdown  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # the sibling benchmarks (listening.windowed_float_chain)


def int8_denoiser(model_dir=None, calibration: Calibration | None = None):
    """The int8 denoiser of a model folder: its model_int8.tflite, or converted now (not written)."""
    from rced.denoiser import Denoiser
    from rced.int8 import INT8_MODEL_NAME, Int8Denoiser

    den = Denoiser.load(model_dir, backend="keras")  # the weights, for a conversion
    if (Path(den.path) / INT8_MODEL_NAME).exists():
        return Int8Denoiser.load(den.path, exact=True)  # the device's numbers, bit for bit
    data = denoiser_int8(den, calibration)
    return Int8Denoiser(data, den.config, den.norm, den.path, source="denoiser int8 (converted in memory)")


def denoiser_parity(model_dir=None, items=None, n_per_voice: int = 6, calibration: Calibration | None = None,
                    workers: int = 2) -> dict:  # fmt: skip
    """Float vs int8 denoiser on ``items`` (default: ``rced.corpus.eval_set(n_per_voice)``).

    Returns ``rows`` (rced.evaluate.summarize: per SNR, all test voices, real recordings; systems
    noisy / float / int8) and ``int8_minus_float``: per metric the mean, mean absolute and worst
    per-utterance difference.
    """
    from rced.corpus import eval_set
    from rced.denoiser import Denoiser

    fl = Denoiser.load(model_dir)
    q = int8_denoiser(model_dir, calibration)
    items = items if items is not None else eval_set(n_per_voice=n_per_voice)
    sr = fl.sample_rate
    systems = {"noisy": lambda it: it.noisy, "float": lambda it: fl.denoise(it.noisy, sr),
               "int8": lambda it: q.denoise(it.noisy, sr)}  # fmt: skip
    results = run_systems(items, systems, workers=workers)
    diffs = {}
    for m in METRICS:
        d = np.array([b[m] - a[m] for a, b in zip(results["float"], results["int8"])], np.float64)
        d = d[np.isfinite(d)]
        diffs[m] = ({"mean": float(d.mean()), "mean_abs": float(np.abs(d).mean()), "worst": float(d.min())}
                    if d.size else {})  # fmt: skip
    return {"model": shown_path(fl.path), "n_items": len(items), "rows": summarize(results), "int8_minus_float": diffs}


def accepted_at_far(labels: list, best: list, scores: list, n_false_alarms: int) -> list:
    """Each utterance's best command where its score clears the threshold that accepts
    ``n_false_alarms`` of the non-commands (label None; fewer on ties), else None."""
    from grammar.decoding.decoder import calibrate_threshold

    non = np.array([s for s, lab in zip(scores, labels) if lab is None], np.float64)
    thr = calibrate_threshold(non, n_false_alarms / len(non))
    return [b if s >= thr else None for b, s in zip(best, scores)]


def factor_chains(rec, am_bytes: bytes, den_q) -> dict:
    """The steps between the float chain ``rec`` and the device chain, one at a time, each deciding
    at the float threshold: the float AM in the int8 AM's fixed windows
    (:func:`listening.windowed_float_chain`), and the float AM behind the int8 denoiser ``den_q``."""
    from listening import windowed_float_chain

    from grammar.acoustic.int8 import Int8AM
    from grammar.decoding.recognizer import Recognizer

    return {"float AM in the device's windows": windowed_float_chain(rec, Int8AM(am_bytes, rec.config, rec.norm)),
            "float AM, int8 denoiser": Recognizer(rec.model, rec.config, rec.norm, den_q, rec.grammar, rec.path)}  # fmt: skip


def chain_accuracy(manifest, am_dir=None, denoiser_dir=None, grammar=None, am_frames: int = AM_FRAMES,
                   calibration: Calibration | None = None) -> dict:  # fmt: skip
    """Float chain vs device chain (int8 denoiser + int8 AM in ``am_frames`` windows) on a manifest.

    Returns recognition metrics (grammar.metrics.recognition_metrics) of both chains and the share
    of utterances on which they decide alike.
    """
    from tqdm import tqdm

    from grammar.acoustic.int8 import int8_recognizer
    from grammar.dataset import check_labels, load_manifest
    from grammar.decoding.recognizer import Recognizer
    from grammar.metrics import recognition_metrics
    from rced.audio import load_audio
    from rced.int8 import Int8Denoiser

    rows = load_manifest(manifest)
    rec = Recognizer.load(am_dir, denoiser=denoiser_dir, grammar=grammar, backend="keras")  # weights to convert
    check_labels(rows, rec.grammar.commands, source=manifest)
    cal = calibration or Calibration.from_corpus()
    den_bytes = denoiser_int8(rec.denoiser, cal)
    den_q = Int8Denoiser(den_bytes, rec.denoiser.config, rec.denoiser.norm, rec.denoiser.path, source="denoiser int8")
    am_bytes = am_int8(rec.model, rec.config, rec.norm, rec.denoiser, cal, am_frames, what=str(rec.path))
    rec_q = int8_recognizer(am_bytes, rec, den_q)
    g = rec.grammar
    factors = factor_chains(rec, am_bytes, den_q)
    labels, pf, pq, best_q, score_q = [], [], [], [], []
    pfac: dict[str, list] = {k: [] for k in factors}
    for r in tqdm(rows, desc="float vs int8 chain", unit="utt"):
        audio = load_audio(r.path)
        labels.append(r.label)
        pf.append(rec.recognize(audio, 16000, name=str(r.path)).command)
        for k, chain in factors.items():
            pfac[k].append(chain.recognize(audio, 16000, name=str(r.path)).command)
        d = rec_q.recognize(audio, 16000, name=str(r.path))
        pq.append(d.command)
        best_q.append(g.commands[g.command_of[d.expression]] if np.isfinite(d.log_likelihoods[d.expression]) else None)
        score_q.append(d.score)
    thresholds = {"float": g.threshold, "int8": g.for_backend("int8").threshold}
    m_float = recognition_metrics(labels, pf)
    equal_far = accepted_at_far(labels, best_q, score_q, m_float["n_false_alarm"])
    return {"manifest": str(manifest), "n": len(rows), "am_frames": am_frames, "thresholds": thresholds,
            "float": m_float, "int8": recognition_metrics(labels, pq),
            "int8_at_float_far": recognition_metrics(labels, equal_far),
            "factors": {k: recognition_metrics(labels, v) for k, v in pfac.items()},
            "agreement": float(np.mean([a == b for a, b in zip(pf, pq)]))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="denoiser model folder (default: shipped)")
    ap.add_argument("--n-per-voice", type=int, default=6)
    ap.add_argument("--manifest", default=None, help="command dataset manifest: adds the chain comparison")
    ap.add_argument("--am", default=None, help="acoustic-model folder (default: shipped)")
    ap.add_argument("--grammar", default=None, help="grammar JSON (default: shipped)")
    ap.add_argument("--out", default=str(ROOT / "results" / "export"))
    args = ap.parse_args(argv)

    t0 = time.time()
    cal = Calibration.from_corpus()
    payload = {"denoiser": denoiser_parity(args.model, n_per_voice=args.n_per_voice, calibration=cal)}
    if args.manifest:
        payload["chain"] = chain_accuracy(args.manifest, args.am, args.model, args.grammar, calibration=cal)
    payload["seconds"] = round(time.time() - t0, 1)
    d = payload["denoiser"]
    lines = ["# int8 vs float", "", f"Denoiser {d['model']}, {d['n_items']} mixtures; int8 = LiteRT reference "
             "kernels (bit-exact with TFLM).", "", to_markdown(d["rows"]), "Per-utterance int8 - float:", ""]  # fmt: skip
    for m, v in d["int8_minus_float"].items():
        if v:
            lines.append(f"- {m}: mean {v['mean']:+.4f}, mean |diff| {v['mean_abs']:.4f}, worst {v['worst']:+.4f}")
    if "chain" in payload:
        c = payload["chain"]
        lines += ["", f"## Recognition chain ({c['n']} utterances, AM window {c['am_frames']} frames)", "",
                  "| chain | MDR | MCR | FAR | accuracy |", "|---|---|---|---|---|"]  # fmt: skip
        names = {"float": "float", "int8": "int8", "int8_at_float_far": "int8 at the float chain's test FAR"}
        rows = [(name, c[k]) for k, name in names.items() if k in c]
        rows[1:1] = [(f"{name} (float threshold)", r) for name, r in c.get("factors", {}).items()]
        for name, r in rows:
            lines.append(f"| {name} | {r['mdr']:.3f} | {r['mcr']:.3f} | {r['far']:.3f} | {r['accuracy']:.3f} |")
        lines.append(f"\nSame decision on {100 * c['agreement']:.1f} % of the utterances.")
        if "thresholds" in c:
            t = c["thresholds"]
            lines.append(f"Thresholds: float {t['float']:.4f}, int8 {t['int8']:.4f} (the grammar's `int8_threshold` "
                         "when it has one, from `grammar calibrate --backend int8`); the last row's threshold "
                         "accepts as many of these test non-commands as the float chain's, for comparison only.")
    atomic_write_results(args.out, payload, lines, indent=2)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
