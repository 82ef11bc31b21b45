"""``firmware-export`` command line: thin layer over :func:`firmware_export.build_bundle`.

Every command exits non-zero with a one-line ``firmware-export: error: <file>: <problem>``;
a failed verification (TFLM vs LiteRT, an op TFLM lacks) is an error too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware_export.errors import ExportError

PROG = "firmware-export"


def _progress(args: argparse.Namespace):
    def say(msg: str) -> None:
        if not args.quiet:
            print(f"{PROG}: {msg}", file=sys.stderr, flush=True)

    return say


def _calibration(args: argparse.Namespace, say):
    """Calibration from --calibration-audio DIR (every audio file, sorted; the last is held out for the
    goldens) or from the synthetic TRAIN-voice corpus."""
    from firmware_export.convert import Calibration
    from rced.outputs import AUDIO_SUFFIXES

    if args.calibration_audio is None:
        say(f"calibration: the recorded activation ranges of the shipped models (firmware_export/"
            f"calibration_ranges.json); any other model: {args.calibration_utterances} TRAIN-voice utterances, "
            "synthesised when first needed")  # fmt: skip
        return Calibration.from_corpus(args.calibration_utterances)
    from rced.audio import load_audio

    folder = Path(args.calibration_audio)
    if not folder.is_dir():
        raise ExportError(f"{folder}: calibration folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    if len(files) < 2:
        raise ExportError(f"{folder}: need at least two audio files to calibrate on, found {len(files)}")
    return Calibration.from_audio([load_audio(p) for p in files],
                                  description=f"{len(files) - 1} audio files of {folder.name}/ in babble of the same "
                                              "files (one more held out for the golden vectors)")  # fmt: skip


def cmd_build(args: argparse.Namespace) -> int:
    from firmware_export.bundle import build_bundle, check_output
    from firmware_export.convert import check_am_folder_window

    say = _progress(args)
    check_output(Path(args.output))  # before the calibration audio, which may take long; a non-empty folder must hold a bundle
    if not args.no_am:
        check_am_folder_window(args.am, args.am_frames)
    report = build_bundle(args.output, denoiser=args.denoiser, am=args.am, grammar=args.grammar,
                          include_am=not args.no_am, am_frames=args.am_frames, calibration=_calibration(args, say),
                          measure_latency=not args.no_timing, progress=say)  # fmt: skip
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    print(f"bundle written to {report.out_dir}/ ({len(report.files)} files); TFLM == LiteRT bit for bit")
    for m in report.models:
        print(f"  {m.name:8s} flash {m.flash_bytes:,} B  arena {m.arena_bytes:,} B (measured {m.arena_bytes_measured:,})"
              f"  {m.macs_per_inference:,} MAC/inference  {m.macs_per_second / 1e6:.2f} MMAC/s")  # fmt: skip
    return 0


def _check_int8_outputs(args: argparse.Namespace) -> None:
    """Each model folder that gets a model_int8.tflite exists and is writable, before the calibration audio."""
    from grammar.decoding.recognizer import default_am_path
    from rced.denoiser import model_folder
    from rced.int8 import INT8_MODEL_NAME
    from rced.outputs import check_output_file

    folders = {"denoiser": model_folder(args.denoiser), "am": Path(args.am) if args.am else default_am_path()}
    for name in ("denoiser", "am") if args.model == "all" else (args.model,):
        folder = folders[name]
        if not folder.is_dir():
            raise ExportError(f"{folder}: model folder not found")
        check_output_file(folder / INT8_MODEL_NAME)


def cmd_int8(args: argparse.Namespace) -> int:
    """model_int8.tflite beside the float weights of the denoiser, the AM, or both (denoiser first)."""
    from firmware_export.convert import check_am_folder_window, write_am_int8_beside, write_int8_beside

    say = _progress(args)
    _check_int8_outputs(args)
    if args.model in ("am", "all"):
        check_am_folder_window(args.am, args.am_frames)
    cal = _calibration(args, say)
    paths = []
    if args.model in ("denoiser", "all"):
        say("denoiser: int8 conversion")
        paths.append(write_int8_beside(args.denoiser, calibration=cal))
    if args.model in ("am", "all"):
        say("acoustic model: calibration features (enhanced by the float denoiser), int8 conversion")
        paths.append(write_am_int8_beside(args.am, denoiser=args.denoiser, calibration=cal, frames=args.am_frames))
    for path in paths:
        size = path.stat().st_size
        print(json.dumps({"output": str(path), "bytes": size}) if args.json else f"wrote {path} ({size:,} bytes)")
    return 0


def _add_calibration_args(p: argparse.ArgumentParser) -> None:
    """The AM's device window and where int8 calibration audio comes from, as build and int8 take them."""
    from firmware_export.convert import AM_FRAMES
    from rced.cli import positive_int

    p.add_argument("--am-frames", type=positive_int, default=AM_FRAMES,
                   help="fixed AM window in STFT frames (default %(default)s = 1 s)")
    p.add_argument("--calibration-utterances", type=int, default=48,
                   help="TRAIN-voice utterances to calibrate on, in babble (default %(default)s)")
    p.add_argument("--calibration-audio", default=None,
                   help="calibrate on the audio files of this folder instead (the last, sorted, is held out)")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")


def build_parser() -> argparse.ArgumentParser:
    from rced.cli import add_command, add_commands, output_path

    p = argparse.ArgumentParser(prog=PROG, description="int8 conversion, TFLM verification and the C bundle.")
    sub = add_commands(p)

    b = add_command(sub, "build", "convert, verify and write the firmware bundle", [
        f"{PROG} build -o bundle",
        f"{PROG} build -o bundle_denoiser --no-am --no-timing --json"],
        description="Convert the denoiser and the acoustic model to full-integer int8 TFLite, check that TFLM "
                    "runs them bit for bit as LiteRT does, and write the bundle: the models as C arrays, the "
                    "front-end and grammar as C headers, golden vectors and report.json (flash, measured arena, "
                    "MACs). An existing bundle in the folder is replaced whole.")  # fmt: skip
    b.add_argument("-o", "--output", required=True, type=output_path,
                   help="bundle folder: new, empty, or an earlier bundle (replaced whole)")
    b.add_argument("--denoiser", default=None, help="denoiser model folder (default: the shipped model)")
    b.add_argument("--am", default=None, help="acoustic-model folder (default: the shipped model)")
    b.add_argument("--grammar", default=None, help="grammar JSON (default: the shipped grammar)")
    b.add_argument("--no-am", action="store_true", help="export the denoiser alone (no AM, no grammar)")
    b.add_argument("--no-timing", action="store_true", help="skip host latency: the bundle is then byte-identical "
                   "between builds")  # fmt: skip
    _add_calibration_args(b)
    b.add_argument("--json", action="store_true", help="print the report as one JSON line")
    b.set_defaults(func=cmd_build)

    i = add_command(sub, "int8", "write model_int8.tflite beside a model's float weights (for --backend int8)", [
        f"{PROG} int8 all",
        f"{PROG} int8 am --am models/am_small --denoiser models/rced"],
        description="Write model_int8.tflite into the denoiser folder (rced --backend int8), the acoustic-model "
                    "folder (grammar --backend int8), or both. Run it again after retraining a model: "
                    f"`{PROG} int8 am` regenerates the shipped AM's.")  # fmt: skip
    i.add_argument("model", nargs="?", default="denoiser", choices=["denoiser", "am", "all"],
                   help="which model folder gets its int8 model (default: denoiser)")  # fmt: skip
    i.add_argument("--denoiser", default=None, help="denoiser model folder (default: the shipped model); for `am` "
                   "the float denoiser the AM's calibration features go through")  # fmt: skip
    i.add_argument("--am", default=None, help="acoustic-model folder (default: the shipped model)")
    _add_calibration_args(i)
    i.add_argument("--json", action="store_true", help="one JSON line per model written: output, bytes")
    i.set_defaults(func=cmd_int8)
    return p


def main(argv: list[str] | None = None) -> int:
    from grammar.errors import GrammarError
    from rced.cli import quiet_tensorflow
    from rced.errors import run_command

    args = build_parser().parse_args(argv)
    quiet_tensorflow()

    def command() -> int:
        if getattr(args, "calibration_utterances", 2) < 2:
            raise ExportError(f"--calibration-utterances {args.calibration_utterances}: need at least 2")
        return args.func(args)

    return run_command(PROG, command, (ExportError, GrammarError))


if __name__ == "__main__":
    sys.exit(main())
