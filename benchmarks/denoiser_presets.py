"""Denoiser presets: quality against compute, so every microcontroller class has an option.

For each model folder: parameters (BatchNorm folded), MACs per frame and MMAC/s at the model's
frame rate (rced.models), int8 flatbuffer bytes (firmware_export.convert.convert_denoiser, the
bundle's own conversion), estimated load on each core of firmware_export.report.CORES (the same
clock and MAC/cycle assumptions as the build report), and quality on the TRAIN-voice dev set of
benchmarks/mask_floor.py (utterances no training run uses): mean ΔPESQ, ΔSTOI, ΔSI-SDR vs the
noisy input at each mask floor.

Run: python benchmarks/denoiser_presets.py --model LABEL=DIR ... (default: the shipped default
and every folder under rced/presets/). Writes benchmarks/results/denoiser_presets.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mask_floor import dev_set  # noqa: E402

from firmware_export.convert import Calibration, convert_denoiser, device_denoiser  # noqa: E402
from firmware_export.report import CORES, core_loads  # noqa: E402
from firmware_export.verify import zero_input_arena  # noqa: E402
from rced.audio import atomic_write_results, atomic_write_text  # noqa: E402
from rced.config import ModelConfig, load_json  # noqa: E402
from rced.corpus import cache_dir  # noqa: E402
from rced.denoiser import PLAIN_GAIN, Denoiser, default_model_path  # noqa: E402
from rced.metrics import all_metrics  # noqa: E402
from rced.models import count_params, macs_per_frame  # noqa: E402

ROOT = Path(__file__).resolve().parent
PRESETS_DIR = ROOT.parent / "rced" / "presets"
METRICS = ("pesq", "stoi", "si_sdr")
# Share of a core the denoiser may take: the rest is left to the FFT and features, the
# recognizer's acoustic model and the hearing-aid firmware itself.
BUDGET_PERCENT = 50.0
# The shipped default's training is described in rced/default_model/MODEL_CARD.md (several stages).
DEFAULT_STEPS = 5650


def _score(pair):
    return all_metrics(*pair)


def training_steps(folder: Path) -> int | None:
    """Steps of 512 frames that made the model: its run's train_config.json (beside it or one up)."""
    if folder.resolve() == default_model_path().resolve():
        return DEFAULT_STEPS
    for d in (folder, folder.parent):
        cfg = d / "train_config.json"
        if cfg.exists():
            c = json.loads(cfg.read_text())
            state = d / "state.json"
            epochs = json.loads(state.read_text())["epochs_done"] if state.exists() else c["epochs"]
            return int(epochs * c["steps_per_epoch"])
    return None


def fits(loads) -> str:
    """Smallest core (CORES order) whose worst-case load is within the budget; '(best case)' if only then."""
    for load in loads:
        if load.load_percent[1] <= BUDGET_PERCENT:
            return load.core
    for load in loads:
        if load.load_percent[0] <= BUDGET_PERCENT:
            return f"{load.core} (best case)"
    return "none"


def compute_row(label: str, folder: Path, cal: Calibration) -> dict:
    den = Denoiser.load(folder, backend="keras")  # the weights, for the conversion
    dev = device_denoiser(den)
    macs = macs_per_frame(dev)
    rate = den.config.frontend.frame_rate
    flat, _ = convert_denoiser(den, cal)
    loads = core_loads(macs * rate)
    return {"label": label, "folder": str(folder), "arch": den.config.arch, "context": den.config.frontend.context,
            "n_bands": den.config.n_bands, "width_mult": den.config.width_mult, "tflm_arena_bytes": zero_input_arena(flat, label),
            "training_steps": training_steps(folder), "params": count_params(dev), "macs_per_frame": macs,
            "frames_per_second": rate, "mmac_per_second": round(macs * rate / 1e6, 2), "int8_flash_bytes": len(flat),
            "mcu_load_percent": {c.core: list(c.load_percent) for c in loads}, "fits": fits(loads)}  # fmt: skip


def _key(folder: Path, floor: float, n_dev: int, dev_digest: str) -> str:
    """The cache name of one model's scores: its bytes, the floor and the dev set's audio (a speech
    cache that synthesised other audio must not reuse another's scores)."""
    h = hashlib.sha256()
    for name in ("model.keras", "config.json", "norm.json"):  # config: input feature, output kind, front-end
        h.update((Path(folder) / name).read_bytes())
    return f"{h.hexdigest()[:20]}_floor{floor:g}_dev{n_dev}_{dev_digest}"


def audio_digest(items) -> str:
    h = hashlib.sha256()
    for clean, noisy in items:
        h.update(np.ascontiguousarray(clean, np.float32).tobytes())
        h.update(np.ascontiguousarray(noisy, np.float32).tobytes())
    return h.hexdigest()[:12]


def quality(rows: list[dict], floors, n_dev: int, workers: int) -> dict:
    """Mean metric changes vs noisy per model and floor; cached by model bytes under the corpus cache."""
    cache = cache_dir() / "denoiser_presets"
    cache.mkdir(parents=True, exist_ok=True)
    items = dev_set(n_dev)
    digest = audio_digest(items)
    out = {}
    with ProcessPoolExecutor(workers) as ex:
        base = list(ex.map(_score, items))
        for row in rows:
            den = Denoiser.load(row["folder"])
            out[row["label"]] = {}
            for fl in floors:
                hit = cache / f"{_key(row['folder'], fl, n_dev, digest)}.json"
                if hit.exists():
                    q = json.loads(hit.read_text())
                else:
                    d = den.with_gain(mask_floor=fl, **PLAIN_GAIN)
                    sc = list(ex.map(_score, [(c, d.denoise(n, 16000)) for c, n in items]))
                    q = {f"d_{k}": float(np.nanmean([s[k] - b[k] for s, b in zip(sc, base)])) for k in METRICS}
                    atomic_write_text(hit, json.dumps(q) + "\n")
                out[row["label"]][f"{fl:g}"] = q
                print(row["label"], fl, q, flush=True)
    return {"noisy": {k: float(np.nanmean([b[k] for b in base])) for k in METRICS}, "delta": out}


def arena_text(row: dict) -> str:
    return f"{row['tflm_arena_bytes'] / 1024:.1f} KiB" if row.get("tflm_arena_bytes") else "?"


def network(row: dict) -> str:
    """'rced w0.5', 'bced w0.5, 48 bands, 32 frames': what the row's network is."""
    text = f"{row.get('arch', 'rced')} w{row['width_mult']:g}"
    if row.get("n_bands"):
        text += f", {row['n_bands']} bands"
    return text + (f", {row['context']} frames" if row.get("context", 8) != 8 else "")


def to_markdown(payload: dict) -> str:
    cores = [c for c, *_ in CORES]
    floors = payload["floors"]
    own = payload.get("default_floor", floors[-1])  # results written before the key: the default's floor
    whose = "the shipped default's" if floors[-1] == own else f"every row's; the shipped default's own is {own:g}"
    lines = [f"Dev set: {payload['data']}. Noisy input: PESQ {payload['noisy']['pesq']:.3f}, "
             f"STOI {payload['noisy']['stoi']:.3f}, SI-SDR {payload['noisy']['si_sdr']:.2f} dB. "
             f"Quality of the plain mask (no listener release or exponent) at mask floor {floors[-1]:g} ({whose})"
             + (f"; floors {', '.join(f'{f:g}' for f in floors[:-1])} in the JSON." if len(floors) > 1 else "."), "",
             "| model | network | training steps | params | MMAC/frame | MMAC/s | int8 flash | TFLM arena | "
             + " | ".join(f"{c} load" for c in cores) + " | fits | ΔPESQ | ΔSTOI | ΔSI-SDR dB |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(cores) + "---|---|---|---|"]  # fmt: skip
    for r in payload["rows"]:
        q = payload["quality"][r["label"]][f"{floors[-1]:g}"]
        loads = " | ".join(f"{lo:.0f}-{hi:.0f}%" for lo, hi in (r["mcu_load_percent"][c] for c in cores))
        steps = f"{r['training_steps']:,}" if r["training_steps"] else "?"
        lines.append(f"| {r['label']} | {network(r)} | {steps} | {r['params']:,} | {r['macs_per_frame'] / 1e6:.2f} | "
                     f"{r['mmac_per_second']:.0f} | {r['int8_flash_bytes'] / 1024:.1f} KiB | "
                     f"{arena_text(r)} | {loads} | {r['fits']} | "
                     f"{q['d_pesq']:+.3f} | {q['d_stoi']:+.3f} | {q['d_si_sdr']:+.2f} |")  # fmt: skip
    lines += ["", "Load = MMAC/s / (int8 MAC/cycle x clock), best-worst case, from firmware_export.report: "
              + "; ".join(f"{c} {f / 1e6:g} MHz, {lo:g}-{hi:g} MAC/cycle" for c, f, (lo, hi), _ in CORES)
              + f". 'fits' = the smallest core whose worst-case load is at most {BUDGET_PERCENT:g}% (the rest "
              "of the core for FFT, features, the recognizer and the firmware); FFT and activations not counted. "
              f"Training steps are batches of 512 frames; {payload['note']}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def merged(old: dict, new: dict) -> dict:
    """``new`` with the rows of ``old`` it did not measure, in ``old``'s order, then its own new rows;
    refused when the two differ in floors or dev set (their numbers would not compare)."""
    if old["floors"] != new["floors"] or old["data"] != new["data"]:
        raise SystemExit("--update: the earlier results used other floors or another dev set; rerun every model")
    fresh = {r["label"]: r for r in new["rows"]}
    rows = [fresh.pop(r["label"], r) for r in old["rows"]] + list(fresh.values())
    quality = {r["label"]: new["quality"].get(r["label"], old["quality"].get(r["label"])) for r in rows}
    return {**new, "rows": rows, "quality": quality}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=None, metavar="LABEL=DIR",
                    help="model folder to measure (repeat); default: shipped default and rced/presets/*")  # fmt: skip
    ap.add_argument("--floors", type=float, nargs="+", default=None,
                    help="mask floors to score; the last is the table's (default: 0 and the shipped default's floor)")
    ap.add_argument("--dev-utterances", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--note", default="", help="sentence appended to the table's notes (how the runs were trained)")
    ap.add_argument("--out", default=str(ROOT / "results" / "denoiser_presets"))
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of --out's JSON for models not measured in this run (same floors and dev set)")
    args = ap.parse_args(argv)
    default_floor = load_json(ModelConfig, default_model_path() / "config.json").mask_floor
    if args.floors is None:
        args.floors = [0.0, default_floor]
    if args.model:
        models = [(s.split("=", 1)[0], Path(s.split("=", 1)[1])) for s in args.model]
    else:
        models = [("default (shipped)", default_model_path())]
        models += [(f"presets/{p.parent.name}", p.parent) for p in sorted(PRESETS_DIR.glob("*/model.keras"))]
    t0 = time.time()
    cal = Calibration.from_corpus()
    rows = [compute_row(label, folder, cal) for label, folder in models]
    q = quality(rows, args.floors, args.dev_utterances, args.workers)
    payload = {"data": f"{args.dev_utterances} TRAIN-voice utterances (seed 555, unused by training) x babble at "
                       "-5/0/5/10 dB (benchmarks/mask_floor.py dev_set)",
               "floors": args.floors, "budget_percent": BUDGET_PERCENT, "note": args.note,
               "default_floor": default_floor,
               "assumptions": [{"core": c, "clock_mhz": f / 1e6, "int8_macs_per_cycle": list(r)} for c, f, r, _ in CORES],
               "calibration": cal.description, "rows": rows, "noisy": q["noisy"], "quality": q["delta"],
               "seconds": round(time.time() - t0, 1)}  # fmt: skip
    out = Path(args.out)
    if args.update and out.with_suffix(".json").exists():
        payload = merged(json.loads(out.with_suffix(".json").read_text()), payload)
    md = to_markdown(payload)
    atomic_write_results(out, payload, md, indent=2)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
