"""Choose the denoiser's mask floor on TRAIN-voice development data (never on the test voices).

A floor g_min on the ratio mask limits speech distortion (STOI, SI-SDR) at the cost of some
noise reduction. The dev set is scored twice: as synthesised and MLSA-vocoded (a vocoded voice,
like the HTS test voice, loses more STOI; benchmarks/vocoder_gap.py). Rule: the smallest floor
whose mean STOI change is >= 0 on both (a hearing aid must not cost intelligibility); if none
reaches it, the floor with the best worst-case STOI.
Floors are scored on the plain mask (the listener's release and exponent off; they are chosen
after the floor, by benchmarks/gain_shaping.py).
Writes benchmarks/results/mask_floor.{json,md}; --apply writes the choice into the model's config.json.
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

import numpy as np  # noqa: E402

from rced.audio import atomic_write_results  # noqa: E402
from rced.config import save_json  # noqa: E402
from rced.corpus import EVAL_SNRS, load_utterances, make_babble, mix, rms, train_utterances, vocode  # noqa: E402
from rced.denoiser import PLAIN_GAIN, Denoiser  # noqa: E402
from rced.metrics import all_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parent
FLOORS = tuple(round(0.1 + 0.02 * i, 2) for i in range(11))  # 0.1 to 0.3 in steps of 0.02
#: the dev sets every floor is scored on: TRAIN-voice speech as synthesised and MLSA-vocoded
DEV_SETS = {"dev": None, "vocoded": vocode}


def _score(pair):
    return all_metrics(*pair)


def mean_gains(scores: list[dict], base: list[dict]) -> dict[str, float]:
    """Mean change of each metric over the noisy input (``d_pesq``, ``d_stoi``, ``d_si_sdr``)."""
    return {f"d_{k}": float(np.nanmean([s[k] - b[k] for s, b in zip(scores, base)])) for k in ("pesq", "stoi", "si_sdr")}


def dev_set(n: int = 16, seed: int = 555, transform=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """TRAIN-voice utterances that no training run uses (seed 555), in babble at each eval SNR;
    ``transform`` (e.g. :func:`rced.corpus.vocode`) changes the speech before mixing."""
    audio = load_utterances(train_utterances(n, seed), desc="dev speech")
    if transform is not None:
        audio = [transform(a) for a in audio]
    pool = load_utterances(train_utterances(60, seed + 1), desc="dev babble")
    rng = np.random.default_rng(seed)
    items = []
    for a in audio:
        a = a / rms(a) * 10 ** (rng.uniform(-28, -18) / 20)
        items += [(a, mix(a, make_babble(len(a), pool, rng), snr)) for snr in EVAL_SNRS]
    return items


def score_settings(den: Denoiser, settings: list[dict], ex: ProcessPoolExecutor) -> tuple[list[dict], dict[str, int]]:
    """Mean gains of ``den`` with each gain setting (``Denoiser.with_gain`` keywords) on every set
    of :data:`DEV_SETS`: one row per setting (its keywords plus ``<set>_d_<metric>``), and the
    number of mixtures of each set."""
    rows, sizes = [dict(s) for s in settings], {}
    for key, transform in DEV_SETS.items():
        items = dev_set(transform=transform)
        sizes[key] = len(items)
        base = list(ex.map(_score, items))
        for row, changes in zip(rows, settings):
            d = den.with_gain(**changes)
            sc = list(ex.map(_score, [(c, d.denoise(n, 16000)) for c, n in items]))
            row.update({f"{key}_{k}": v for k, v in mean_gains(sc, base).items()})
            print(key, row, flush=True)
    return rows, sizes


def score_floors(den: Denoiser, floors: list[float], ex: ProcessPoolExecutor) -> tuple[list[dict], dict[str, int]]:
    """:func:`score_settings` over mask floors on the plain mask (no release, exponent 1: the
    floor is chosen first, the listener's shaping then at that floor by gain_shaping.py); rows keyed ``floor``."""
    rows, sizes = score_settings(den, [{"mask_floor": fl, **PLAIN_GAIN} for fl in floors], ex)
    return [{"floor": r.pop("mask_floor"), **{k: v for k, v in r.items() if k not in PLAIN_GAIN}} for r in rows], sizes


def _worst_stoi(row: dict) -> float:
    return min(row[f"{k}_d_stoi"] for k in DEV_SETS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--apply", action="store_true", help="write the chosen floor into the model's config.json")
    ap.add_argument("--out", default=str(ROOT / "results" / "mask_floor"))
    ap.add_argument("--floors", type=float, nargs="+", default=list(FLOORS))
    args = ap.parse_args(argv)
    den = Denoiser.load(args.model)
    with ProcessPoolExecutor(2) as ex:
        rows, _ = score_floors(den, args.floors, ex)
    ok = [r for r in rows if _worst_stoi(r) >= 0]
    chosen = min(ok, key=lambda r: r["floor"]) if ok else max(rows, key=_worst_stoi)
    payload = {"data": "16 TRAIN-voice utterances (seed 555, unused by training) x babble at -5/0/5/10 dB, "
                       "as synthesised and MLSA-vocoded (rced.corpus.vocode; the HTS test voice is vocoded)",
               "rule": "smallest floor with mean dSTOI >= 0 on both dev sets, else the best worst-case dSTOI",
               "rows": rows, "chosen": chosen["floor"]}  # fmt: skip
    md = [f"Mask floor on TRAIN-voice dev data ({payload['data']}); rule: {payload['rule']}; chosen: {chosen['floor']}",
          "", "| floor | ΔPESQ | ΔSTOI | ΔSI-SDR dB | vocoded ΔPESQ | vocoded ΔSTOI | vocoded ΔSI-SDR dB |",
          "|---|---|---|---|---|---|---|"]  # fmt: skip
    md += [f"| {r['floor']:g} | " + " | ".join(f"{r[f'{k}_d_pesq']:+.3f} | {r[f'{k}_d_stoi']:+.3f} | "
                                              f"{r[f'{k}_d_si_sdr']:+.2f}" for k in DEV_SETS) + " |" for r in rows]
    atomic_write_results(args.out, payload, md, indent=2)
    if args.apply:
        save_json(dataclasses.replace(den.config, mask_floor=chosen["floor"]), Path(den.path) / "config.json")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
