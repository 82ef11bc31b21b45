"""How much of the denoiser's gain is lost on vocoded speech (the HTS TEST-ONLY voice is vocoded).

The TRAIN-voice dev set of benchmarks/mask_floor.py (16 utterances, babble at -5/0/5/10 dB),
once as synthesised and once after MLSA analysis-synthesis (:func:`rced.corpus.vocode`), both
through the model at its shipped mask floor. Writes benchmarks/results/vocoder_gap.{json,md}.
Run: python benchmarks/vocoder_gap.py [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from rced.audio import atomic_write_results  # noqa: E402
from rced.denoiser import Denoiser  # noqa: E402
from rced.evaluate import shown_path  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from mask_floor import score_settings  # noqa: E402

#: the rows of the table: mask_floor.DEV_SETS keys and how they are named here
LABELS = {"dev": "as synthesised", "vocoded": "vocoded (MLSA)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default=str(ROOT / "results" / "vocoder_gap"))
    args = ap.parse_args(argv)
    den = Denoiser.load(args.model)
    with ProcessPoolExecutor(2) as ex:
        (gains,), sizes = score_settings(den, [{}], ex)  # the model as configured
    rows = [{"speech": label, "n": sizes[key], **{m: gains[f"{key}_{m}"] for m in ("d_pesq", "d_stoi", "d_si_sdr")}}
            for key, label in LABELS.items()]  # fmt: skip
    payload = {"model": shown_path(den.path), "mask_floor": den.config.mask_floor,
               "mask_release": den.config.mask_release, "mask_exponent": den.config.mask_exponent,
               "data": "16 TRAIN-voice utterances (seed 555, unused by training) x babble at -5/0/5/10 dB",
               "rows": rows}  # fmt: skip
    md = [f"Denoiser gain on TRAIN-voice dev speech as synthesised and vocoded ({payload['data']}; "
          f"mask floor {den.config.mask_floor:g}, release {den.config.mask_release:g}, "
          f"exponent {den.config.mask_exponent:g})", "", "| speech | ΔPESQ | ΔSTOI | ΔSI-SDR dB |", "|---|---|---|---|"]  # fmt: skip
    md += [f"| {r['speech']} | {r['d_pesq']:+.3f} | {r['d_stoi']:+.3f} | {r['d_si_sdr']:+.2f} |" for r in rows]
    atomic_write_results(args.out, payload, md, indent=2)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
