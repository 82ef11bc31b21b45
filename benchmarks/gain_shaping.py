"""Choose the listener's gain shaping (mask release and exponent) on TRAIN-voice dev data.

After the network, the denoiser shapes its ratio mask for the ear (``rced.denoiser.shape_gain``):
a one-pole release keeps the mask from falling faster than its running mean (speech offsets are
not cut short), and ``mask ** exponent`` with an exponent below 1 spares the bins the network is
unsure of. Both are causal and cost a few operations per bin on the device. The acoustic model
does not see them (``grammar.decoding.recognizer.am_front_end``), so recognition is unchanged.

Every (release, exponent) pair of the grid is scored at the model's mask floor on both dev sets of
``benchmarks/mask_floor.py`` (as synthesised and MLSA-vocoded; never the test voices). Rule: the
best mean over both sets of dPESQ/0.10 + dSI-SDR/1.5 (the targets as units) among the pairs
whose mean STOI change is at least +0.005 on both sets: a margin, since the half-vocoded
fine-tune (the shipped weights, its model card) lost 0.004 to 0.008 STOI between these dev sets and unseen voices. Writes
benchmarks/results/gain_shaping.{json,md}; --apply writes the choice into the model's config.json.

``--floors F ...`` searches the mask floor jointly with the pair, by the same rule: with the
listener's shaping a lower floor may keep STOI that the plain mask at that floor loses
(mask_floor.py chooses the floor of the plain mask, which is what the acoustic model reads).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mask_floor import DEV_SETS, score_settings  # noqa: E402

from rced.audio import atomic_write_results  # noqa: E402
from rced.config import save_json  # noqa: E402
from rced.denoiser import Denoiser  # noqa: E402
from rced.evaluate import shown_path  # noqa: E402

ROOT = Path(__file__).resolve().parent
RELEASES = (0.0, 0.4, 0.6, 0.8)
EXPONENTS = (0.8, 0.9, 1.0)
STOI_MARGIN = 0.005


def criterion(row: dict) -> float:
    """Mean over the dev sets of dPESQ/0.10 + dSI-SDR/1.5."""
    return sum(row[f"{k}_d_pesq"] / 0.10 + row[f"{k}_d_si_sdr"] / 1.5 for k in DEV_SETS) / len(DEV_SETS)


def worst_stoi(row: dict) -> float:
    return min(row[f"{k}_d_stoi"] for k in DEV_SETS)


def choose(rows: list[dict], margin: float = STOI_MARGIN) -> dict:
    """The rule of the module docstring; with no pair over the margin, the best worst-case STOI."""
    ok = [r for r in rows if worst_stoi(r) >= margin]
    return max(ok, key=criterion) if ok else max(rows, key=worst_stoi)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--apply", action="store_true", help="write the chosen pair (and floor) into the model's config.json")
    ap.add_argument("--out", default=str(ROOT / "results" / "gain_shaping"))
    ap.add_argument("--releases", type=float, nargs="+", default=list(RELEASES))
    ap.add_argument("--exponents", type=float, nargs="+", default=list(EXPONENTS))
    ap.add_argument("--floors", type=float, nargs="+", default=None,
                    help="search the mask floor too, jointly with the pair (default: keep the model's floor)")
    args = ap.parse_args(argv)
    den = Denoiser.load(args.model)
    floors = args.floors or [den.config.mask_floor]
    grid = [{"mask_floor": f, "mask_release": a, "mask_exponent": p}
            for f in floors for p in args.exponents for a in args.releases]  # fmt: skip
    with ProcessPoolExecutor(2) as ex:
        rows, sizes = score_settings(den, grid, ex)
    chosen = choose(rows)
    data = (f"{sizes['dev']} mixtures: 16 TRAIN-voice utterances (seed 555, unused by training) x babble at "
            "-5/0/5/10 dB, as synthesised and MLSA-vocoded (benchmarks/mask_floor.py)")  # fmt: skip
    rule = (f"best mean of dPESQ/0.10 + dSI-SDR/1.5 over both sets among pairs with dSTOI >= +{STOI_MARGIN} "
            "on both; else the best worst-case dSTOI")  # fmt: skip
    keys = ("mask_floor", "mask_release", "mask_exponent") if len(floors) > 1 else ("mask_release", "mask_exponent")
    pick = {k: chosen[k] for k in keys}
    payload = {"model": shown_path(den.path), "mask_floor": floors if len(floors) > 1 else floors[0], "data": data,
               "rule": rule, "rows": [{**r, "criterion": criterion(r)} for r in rows], "chosen": pick}  # fmt: skip
    where = (f"mask floors {', '.join(f'{f:g}' for f in floors)} searched with the pair" if len(floors) > 1
             else f"at mask floor {floors[0]:g}")  # fmt: skip
    names = {"mask_floor": "floor", "mask_release": "release", "mask_exponent": "exponent"}
    md = [f"Listener gain shaping on TRAIN-voice dev data ({data}), {where}; rule: {rule}; chosen: "
          + ", ".join(f"{names[k]} {pick[k]:g}" for k in keys),
          "", "| " + " | ".join(names[k] for k in keys) + " | ΔPESQ | ΔSTOI | ΔSI-SDR dB | vocoded ΔPESQ | "
          "vocoded ΔSTOI | vocoded ΔSI-SDR dB | criterion |", "|---" * (len(keys) + 7) + "|"]  # fmt: skip
    for r in rows:
        cells = " | ".join(f"{r[f'{k}_d_pesq']:+.3f} | {r[f'{k}_d_stoi']:+.3f} | {r[f'{k}_d_si_sdr']:+.2f}"
                           for k in DEV_SETS)  # fmt: skip
        mark = "**" if r is chosen else ""
        md.append("| " + " | ".join(f"{mark}{r[k]:g}{mark}" for k in keys) + f" | {cells} | {criterion(r):.3f} |")
    atomic_write_results(args.out, payload, md, indent=2)
    if args.apply:
        save_json(dataclasses.replace(den.config, **pick), Path(den.path) / "config.json")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
