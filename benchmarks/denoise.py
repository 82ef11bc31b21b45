"""Denoising benchmark: the shipped model against noisy input, spectral subtraction, the oracle
ideal ratio mask and the DTLN and GTCRN peers, on TEST-ONLY voices, two real recordings (their
mean and each apart) and the natural TEST-ONLY voice (its own group) in babble.

Writes benchmarks/results/denoise.{json,md}. Run: python benchmarks/denoise.py [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from rced.corpus import eval_set  # noqa: E402
from rced.denoiser import Denoiser  # noqa: E402
from rced.evaluate import run_systems, standard_systems, summarize, write_results  # noqa: E402
from rced.models import build_model, count_params, macs_per_frame  # noqa: E402

ROOT = Path(__file__).resolve().parent
PEERS = ROOT.parent.parent / "shared" / "peers"
DTLN_DIR, GTCRN_DIR = PEERS / "dtln", PEERS / "gtcrn"


def update_card(card: Path, table: str) -> None:
    """Replace the metrics block of a model card (between the two markers) with ``table``."""
    from rced.audio import atomic_write_text

    start, end = "<!-- metrics:start -->", "<!-- metrics:end -->"
    text = card.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{card}: no metrics markers to fill")
    head, rest = text.split(start, 1)
    atomic_write_text(card, head + start + "\n" + table + rest[rest.index(end):])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None, help="model folder (default: shipped)")
    ap.add_argument("--n-per-voice", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "results" / "denoise"))
    ap.add_argument("--card", action="store_true", help="copy the table into the model folder's MODEL_CARD.md")
    args = ap.parse_args(argv)

    den = Denoiser.load(args.model)
    model = build_model(den.config)
    params, macs = count_params(model), macs_per_frame(model)
    items = eval_set(n_per_voice=args.n_per_voice, include_natural=True)
    dtln = DTLN_DIR if DTLN_DIR.exists() else None
    gtcrn = GTCRN_DIR if GTCRN_DIR.exists() else None
    t0 = time.time()
    results = run_systems(items, standard_systems(den, dtln, gtcrn))
    rows = summarize(results, per_recording=True)
    model_name = next(k for k in results if k.startswith("R-CED"))
    allrow = {r["system"]: r for r in rows if r["group"] == "all (test voices)"}
    oracle = allrow["oracle IRM"]
    share = {s: {m: allrow[s][f"d_{m}"] / oracle[f"d_{m}"] for m in ("pesq", "stoi", "si_sdr")}
             for s in allrow if s not in ("noisy", "oracle IRM")}  # fmt: skip
    payload = {
        "model": str(den.path), "arch": den.config.arch, "params": params, "macs_per_frame": macs,
        "mmac_per_second": macs * den.config.frontend.frame_rate / 1e6,
        "data": f"TEST-ONLY voices (flite rms, festival ked_diphone, festival cmu_us_slt_arctic_hts), "
                f"{args.n_per_voice} sentences each, plus the pysptk and amfm-decompy real recordings "
                f"(their mean, then each) and, as a group of its own, the natural TEST-ONLY voice hibari heart "
                f"({args.n_per_voice} sentences); babble of 3-8 TRAIN-voice talkers at -5/0/5/10 dB",
        "n_items": len(items), "share_of_oracle_gain": share, "seconds": round(time.time() - t0, 1),
        "dtln_params_approx": 1_000_000, "gtcrn_params": 48_245, "gtcrn_mmac_per_second": 33.0,
    }  # fmt: skip
    lines = [
        f"Model: {den.config.arch}, {params:,} parameters, {macs / 1e6:.2f} MMAC per frame "
        f"({payload['mmac_per_second']:.0f} MMAC/s at {den.config.frontend.frame_rate:g} frames/s).",
        f"Data: {payload['data']}; {len(items)} mixtures.",
        "Share of the oracle IRM's gain (all test voices): "
        + "; ".join(f"{s}: PESQ {v['pesq']:.0%}, STOI {v['stoi']:.0%}, SI-SDR {v['si_sdr']:.0%}" for s, v in share.items()),
        "",
    ]
    write_results(args.out, payload, rows, preamble="\n\n".join(lines) + "\n")
    if args.card:
        update_card(Path(den.path) / "MODEL_CARD.md", Path(args.out).with_suffix(".md").read_text())
    print(Path(args.out).with_suffix(".md").read_text())
    print(f"model row: {model_name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
