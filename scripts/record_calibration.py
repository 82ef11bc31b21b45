"""Record the calibration ranges of int8 models, so that a rebuild reproduces them byte for byte.

An int8 graph depends on its calibration samples only through each activation tensor's range (the
converter's calibrator keeps a running min and max), and the samples come from audio synthesised
by this machine's TTS engines, whose builds differ between machines. So the ranges are recorded:
for each model this reads its ``model_int8.tflite``, recovers every activation tensor's range from
the file's scale and zero point (the range that the converter turns into exactly that scale and
zero point), converts the float model again with those ranges (``firmware_export.convert.
convert_recorded``: no audio), and requires the same bytes. It then writes
``firmware_export/calibration_ranges.json`` (atomically), keyed by digests of each model's weights,
config and normalisation (and the denoiser in front of an AM) and by the default calibration set.
``firmware-export int8`` (and ``firmware_export.convert.denoiser_int8`` / ``am_int8``) use a record
whenever its key matches; other models are calibrated on synthesised audio, with a warning.

Run (from the repository root) after ``firmware-export int8 ...`` has written the int8 files:

    python scripts/record_calibration.py                      # the shipped models (below)
    python scripts/record_calibration.py --denoiser DIR ... --am DIR ... [--am-denoiser DIR]
    python scripts/record_calibration.py --update --am grammar/default_am   # only the AM's record

The file holds exactly the models of the run (default: rced/default_model, every rced/presets/*
folder with an int8 file, and grammar/default_am behind the shipped denoiser). With ``--update`` it
keeps the file's other records and records only the folders named (``--am`` alone: no denoiser),
for a model converted again while the others stay as shipped (a converter on another CPU may not
rebuild them byte for byte). Exits 1 with a one-line error, writing nothing, if a model's rebuild
differs from its int8 file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from firmware_export.convert import (  # noqa: E402
    RANGES_FILE,
    SHIPPED_CORPUS,
    Calibration,
    am_key,
    convert_recorded,
    denoiser_key,
    device_am,
    device_denoiser,
    load_records,
)
from firmware_export.errors import ExportError  # noqa: E402
from firmware_export.flatbuffer import inspect  # noqa: E402

INT8 = 9  # tflite TensorType.INT8
ULP_STEPS = 16  # float32 steps tried around each recovered range end


def quant_params(lo: np.float32, hi: np.float32) -> tuple[np.float32, int]:
    """(scale, zero point) that the converter gives an int8 activation calibrated to [lo, hi]
    (TensorFlow 2.21's quantizer, legacy float scale: the range widened to hold 0, float32
    arithmetic, the zero point rounded half away from zero and clamped; checked on every activation
    of the shipped models, where double arithmetic misses the AM's logits by one float32 step)."""
    lo, hi = min(np.float32(lo), np.float32(0)), max(np.float32(hi), np.float32(0))
    scale = np.float32(hi - lo) / np.float32(255)
    zp = float(np.float32(-128) - lo / scale)
    return scale, int(min(127, max(-128, math.copysign(math.floor(abs(zp) + 0.5), zp))))


def _steps(x: np.float32) -> list[np.float32]:
    """``x`` and its float32 neighbours, nearest first."""
    out, up, down = [x], x, x
    for _ in range(ULP_STEPS):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))
        out += [up, down]
    return out


def range_for(scale: np.float32, zp: int) -> tuple[float, float]:
    """A float32 range [lo, hi] that :func:`quant_params` turns into exactly (scale, zp)."""
    lo0 = np.float32((-128 - zp) * np.float64(scale))
    hi0 = np.float32((127 - zp) * np.float64(scale))
    for lo in _steps(lo0) if lo0 != 0 else [lo0]:
        for hi in _steps(hi0):
            if quant_params(lo, hi) == (scale, zp):
                return float(lo), float(hi)
    raise ExportError(f"no float32 range gives scale {scale!r} and zero point {zp}")


def recover_ranges(int8: bytes) -> dict[str, list[float]]:
    """{tensor name: [min, max]} for every int8 activation tensor (no constant data) of a flatbuffer."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(int8)
    out = {}
    for t in (t for g in model.subgraphs for t in g.tensors):
        q, data = t.quantization, model.buffers[t.buffer].data
        if t.type != INT8 or q is None or q.scale is None or len(q.scale) != 1 or data is not None and len(data):
            continue
        out[t.name.decode()] = list(range_for(np.float32(q.scale[0]), int(q.zeroPoint[0])))
    return out


def record(name: str, keras_model, key: dict, int8_path: Path) -> dict:
    """The record of one model: its ranges, checked by rebuilding ``int8_path`` byte for byte."""
    try:
        shipped = int8_path.read_bytes()
    except OSError as exc:
        raise ExportError(f"{int8_path}: cannot read the int8 model ({exc.strerror or exc})") from None
    ranges = recover_ranges(shipped)
    rec = {"name": name, "key": key, "int8_bytes": len(shipped),
           "int8_sha256": hashlib.sha256(shipped).hexdigest(), "ranges": ranges}  # fmt: skip
    rebuilt = convert_recorded(keras_model, rec, "am" if key["kind"] == "am" else "denoiser")
    if rebuilt != shipped:
        n = sum(a != b for a, b in zip(rebuilt, shipped)) + abs(len(rebuilt) - len(shipped))
        raise ExportError(f"{int8_path}: a rebuild with the recovered ranges differs in {n} of {len(shipped)} bytes")
    print(f"{name}: {len(ranges)} tensor ranges; rebuild identical ({len(shipped):,} bytes)", file=sys.stderr)
    return rec


def _name(folder: Path) -> str:
    """``folder`` relative to the working directory where it lies below it (the file is read anywhere)."""
    try:
        return folder.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return folder.as_posix()


def main(argv: list[str] | None = None) -> int:
    from grammar.decoding.recognizer import Recognizer, default_am_path
    from grammar.errors import GrammarError
    from rced.audio import atomic_write_text
    from rced.denoiser import Denoiser, default_model_path
    from rced.errors import RcedError
    from rced.int8 import INT8_MODEL_NAME

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--denoiser", action="append", type=Path, help="denoiser folder to record (repeatable; default: "
                    "the shipped model and every preset with an int8 file)")  # fmt: skip
    ap.add_argument("--am", action="append", type=Path, help="acoustic-model folder (repeatable; default: shipped)")
    ap.add_argument("--am-denoiser", type=Path, default=None, help="the float denoiser in front of the AMs, as in "
                    "`firmware-export int8 am --denoiser` (default: the shipped model)")  # fmt: skip
    ap.add_argument("-o", "--output", type=Path, default=RANGES_FILE, help=f"default: {RANGES_FILE}")
    ap.add_argument("--update", action="store_true", help="keep the output file's records of other models and "
                    "record only the folders named")  # fmt: skip
    args = ap.parse_args(argv)
    if args.update:
        if not (args.denoiser or args.am):
            ap.error("--update: name the folders to record (--denoiser, --am)")
        args.denoiser, args.am = args.denoiser or [], args.am or []
    if args.denoiser is None:
        presets = sorted(p.parent for p in (default_model_path().parent / "presets").glob(f"*/{INT8_MODEL_NAME}"))
        args.denoiser = [default_model_path(), *presets]
    args.am = args.am or [default_am_path()]
    cal = Calibration.from_corpus()  # the shipped set (SHIPPED_CORPUS): never synthesised here
    assert cal.corpus == SHIPPED_CORPUS
    try:
        import tensorflow as tf

        records = []
        for folder in args.denoiser:
            den = Denoiser.load(folder, backend="keras")
            records.append(record(_name(folder), device_denoiser(den), denoiser_key(den, cal), folder / INT8_MODEL_NAME))
        for folder in args.am:
            rec = Recognizer.load(folder, denoiser=args.am_denoiser, grammar=False, backend="keras")
            frames = inspect((folder / INT8_MODEL_NAME).read_bytes(), str(folder)).inputs[0].shape[1]
            key = am_key(rec.model, rec.config, rec.norm, rec.denoiser, cal, frames=frames)
            records.append(record(_name(folder), device_am(rec.model, rec.config, frames), key, folder / INT8_MODEL_NAME))
        if args.update:
            names = {r["name"] for r in records}
            records = [r for r in load_records(args.output)["records"] if r.get("name") not in names] + records
    except (ExportError, GrammarError, RcedError) as exc:
        print(f"record_calibration: error: {exc}", file=sys.stderr)
        return 1
    doc = {"about": "Activation ranges (min, max per tensor) of int8 models, keyed by the float model's weights, "
                    "config and normalisation and the calibration set; written by scripts/record_calibration.py, "
                    "read by firmware_export.convert (a rebuild with them reproduces int8_sha256)",
           "tensorflow": tf.__version__, "records": records}  # fmt: skip
    atomic_write_text(args.output, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.output} ({len(records)} models, {args.output.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
