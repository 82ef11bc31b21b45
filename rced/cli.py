"""``rced`` command line: thin layer over the Python API.

Every command exits non-zero with a one-line ``rced: error: <file>: <problem>`` on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

from rced.errors import RcedError, run_command


def quiet_tensorflow(keep_onednn: bool = False) -> None:
    """Keep TensorFlow's start-up chatter off stderr, where our one-line errors go.

    oneDNN's notice cannot be silenced by log level; turning oneDNN off (inference only: it
    is fast either way for these tiny models) removes it and makes results reproducible.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not keep_onednn:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def _number(text: str, kind: type, positive: bool) -> float | int:
    """``text`` as a finite ``kind`` (and > 0 when ``positive``), or argparse's one-line error."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {'integer' if kind is int else 'number'}: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number")
    if positive and value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number (nan and inf are refused when the arguments are parsed)."""
    return _number(text, float, positive=False)


def positive_float(text: str) -> float:
    """argparse type: a finite number above zero."""
    return _number(text, float, positive=True)


def positive_int(text: str) -> int:
    """argparse type: an integer above zero."""
    return _number(text, int, positive=True)


def output_path(text: str) -> Path:
    """argparse type of an output path: an empty one (``-o ''``, which would mean the current folder) is refused."""
    from rced.outputs import given_path

    try:
        return given_path(text)
    except RcedError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _set_threads(n: int | None) -> None:
    if n:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)


def tracker_arg(text: str) -> tuple[float, float]:
    """``RISE,FALL`` seconds of one level tracker (argparse type)."""
    from rced.config import parse_tracker

    try:
        return parse_tracker(text)
    except RcedError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _width_mult(args: argparse.Namespace) -> float:
    """``--size NAME`` (rced.models.SIZES) or ``--width-mult W``; both only when they agree."""
    from rced.models import SIZES

    width = args.width_mult
    if args.size is not None:
        if width is not None and width != SIZES[args.size]:
            raise RcedError(f"--size {args.size} means --width-mult {SIZES[args.size]:g}, not {width:g}")
        width = SIZES[args.size]
    return 1.0 if width is None else width


def _frontend(args: argparse.Namespace):
    from rced.config import FrontendConfig

    fe = FrontendConfig.preset(args.preset)
    return fe if args.context is None else dataclasses.replace(fe, context=args.context)


def _train_config(args: argparse.Namespace):
    from rced.config import ModelConfig, TrainConfig

    return TrainConfig(
        model=ModelConfig(arch=args.arch, frontend=_frontend(args),
                          input_feature=args.input_feature, width_mult=_width_mult(args),
                          n_bands=args.n_bands if args.n_bands is not None or args.arch != "bced" else 48,
                          trackers=args.trackers),
        target=args.target, loss_compress=args.loss_compress, batch_frames=args.batch_frames,
        reverb_share=args.reverb_share, tracker_history_s=args.tracker_history,
        steps_per_epoch=args.steps_per_epoch, epochs=args.epochs, learning_rate=args.lr, seed=args.seed,
    )  # fmt: skip


def config_or_resume(args: argparse.Namespace, parser: argparse.ArgumentParser, make_config):
    """The configuration the flags give, or None (the run folder's own) when no flag changes a default.

    So rerunning ``train RUN_DIR`` alone resumes a run whatever configuration started it.
    """
    cfg = make_config(args)
    if (Path(args.run_dir) / "train_config.json").exists():
        defaults = parser.parse_args([args.command, str(args.run_dir)])
        if cfg == make_config(defaults):
            return None
    return cfg


def check_run_outputs(args: argparse.Namespace) -> None:
    """A training command's run folder and ``--export`` folder, checked before any data is made."""
    from rced.outputs import check_output_folder

    for folder in (args.run_dir, args.export):
        if folder is not None:
            check_output_folder(folder)


def cmd_train(args: argparse.Namespace) -> int:
    from rced.train import Trainer

    check_run_outputs(args)
    _set_threads(args.threads)
    cfg = config_or_resume(args, build_parser(), _train_config)
    trainer = Trainer(args.run_dir, cfg, n_utts=args.utterances, data_seed=args.data_seed,
                      pico_utterances=args.pico_utterances, strategy=args.strategy,
                      init_from=args.init_from)  # fmt: skip
    return run_and_export(trainer, args)


def run_and_export(trainer, args: argparse.Namespace) -> int:
    """Run (or resume) a training run; export the model folder once every epoch is done."""
    state = trainer.run(max_epochs_this_run=args.max_epochs_this_run, verbose=0 if args.json else 1)
    out = None
    if state["epochs_done"] >= trainer.cfg.epochs:
        out = str(trainer.export(args.export or Path(args.run_dir) / "model"))
    _emit(args, {"run_dir": str(args.run_dir), **state, "exported": out},
          f"{state['epochs_done']}/{trainer.cfg.epochs} epochs done; best val loss {state['best_val']}"
          + (f"; model written to {out}" if out else "; run again to resume"))  # fmt: skip
    return 0


def _resolve_outputs(inputs: list[Path], given: str) -> list[Path]:
    """Output path for each input, every one checked before any work: OUT itself for one input (a
    .wav name), or OUT/<input name>.wav when OUT is a folder (an existing one, a path ending in
    ``/``; with several inputs also a new path without an audio suffix)."""
    from rced.outputs import check_output_file, check_output_folder, output_is_folder

    out = Path(given)
    if output_is_folder(given, len(inputs)):
        check_output_folder(out)
        outs = [out / p.with_suffix(".wav").name for p in inputs]
        dup = sorted({o for o in outs if outs.count(o) > 1})
        if dup:
            raise RcedError(f"{dup[0]}: several inputs would write this output (same name before the extension)")
    elif out.suffix.lower() != ".wav":
        raise RcedError(f"{given}: outputs are written as WAV; name the output file with a .wav suffix "
                        "(or end a folder name with /)")  # fmt: skip
    else:
        outs = [out]
    for dst in outs:
        check_output_file(dst, inputs)
    return outs


LONG_WORK_S = 60.0
"""Off a terminal, a progress bar only for at least this much audio in all (or MANY_FILES files)."""
MANY_FILES = 20


class AudioProgress:
    """One progress bar on stderr over the seconds of audio a command works through, file by file,
    fed by the runtime's ``progress(done_frames, total_frames)`` hooks.

    On a terminal it appears once the work has lasted half a second; elsewhere (a log, a pipe) only
    for long work (LONG_WORK_S of audio or MANY_FILES files), so short runs leave stderr empty.
    stdout, where --json lines go, never carries it: print results with :meth:`write`.

    ``with AudioProgress(seconds, "denoising") as bar: den.denoise(x, sr, progress=bar.file(s))``
    """

    def __init__(self, seconds: list[float], desc: str):
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        show = tty or sum(seconds) >= LONG_WORK_S or len(seconds) >= MANY_FILES
        self._bar = tqdm(total=sum(seconds), desc=desc, file=sys.stderr, disable=not show, delay=0.5 if tty else 0,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio "
                                    "[{elapsed}<{remaining}]")  # fmt: skip
        self._end = 0.0

    def _to(self, position: float) -> None:
        self._bar.update(position - self._bar.n)

    def file(self, seconds: float):
        """The progress hook of the next file (the previous one counts as done)."""
        self._to(self._end)
        start, self._end = self._end, self._end + seconds
        return lambda done, total: self._to(start + seconds * min(done, total) / max(total, 1))

    def write(self, line: str) -> None:
        """Print a result line on stdout without breaking the bar."""
        self._bar.write(line, file=sys.stdout)
        sys.stdout.flush()

    def __enter__(self) -> AudioProgress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._to(self._end)
        self._bar.close()


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """--model and --backend, as denoise, stream and evaluate take them."""
    p.add_argument("--model", default=None, help="denoiser model folder, or the name of a shipped preset (rced/presets: lite, bced) "
                        "(default: the shipped model)")  # fmt: skip
    p.add_argument("--backend", default="float", choices=["float", "int8"],
                   help="float: model_float.tflite; int8: model_int8.tflite, the device graph (LiteRT's optimised "
                        "kernels, within one LSB of the device). Both are in the model folder, written by "
                        "`firmware-export int8` (default %(default)s)")  # fmt: skip


def _load_denoiser(args: argparse.Namespace):
    from rced.denoiser import Denoiser

    if getattr(args, "backend", "float") == "int8":
        from rced.int8 import Int8Denoiser

        return Int8Denoiser.load(args.model)
    return Denoiser.load(args.model)


def cmd_denoise(args: argparse.Namespace) -> int:
    from rced.audio import load_audio, write_audio

    inputs = [Path(p) for p in args.inputs]
    outs = _resolve_outputs(inputs, args.output)
    audios = [load_audio(p) for p in inputs]  # validate every input before writing anything
    den = _load_denoiser(args)
    seconds = [len(a) / 16000 for a in audios]
    with AudioProgress(seconds, "denoising") as bar:
        for src, dst, audio, sec in zip(inputs, outs, audios, seconds):
            write_audio(dst, den.denoise(audio, 16000, progress=bar.file(sec)), den.sample_rate)
            payload = {"input": str(src), "output": str(dst), "seconds": round(sec, 3)}
            bar.write(json.dumps(payload) if args.json else f"{src} -> {dst}")
    return 0


class LatencyHistogram:
    """Per-block latencies counted per whole microsecond: median and p99 in memory that does not grow with the input.

    :meth:`percentile` interpolates as ``numpy.percentile`` does over the recorded (microsecond) values.
    """

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.n = 0

    def add(self, seconds: float) -> None:
        self.counts[round(seconds * 1e6)] += 1
        self.n += 1

    def percentile(self, q: float) -> float:
        """The q-th percentile in milliseconds (0.0 when nothing was recorded)."""
        import numpy as np

        if not self.n:
            return 0.0
        keys = np.array(sorted(self.counts))
        cum = np.cumsum([self.counts[k] for k in keys])
        h = (self.n - 1) * q / 100
        lo = int(np.floor(h))
        v_lo, v_hi = (float(keys[np.searchsorted(cum, r, side="right")]) for r in (lo, min(lo + 1, self.n - 1)))
        return (v_lo + (h - lo) * (v_hi - v_lo)) / 1000


def cmd_stream(args: argparse.Namespace) -> int:
    import time

    from rced.audio import AudioBlocks, AudioWriter, rechunk

    src = Path(args.input)
    (dst,) = _resolve_outputs([src], args.output)  # a folder gets the input's name, as for `denoise`
    reader = AudioBlocks(src)  # file-level checks before the model loads; samples are read block by block
    den = _load_denoiser(args)
    reader.sr = den.sample_rate  # read (and resampled) at the model's rate, as `denoise` does
    block = max(1, int(round(args.block_ms * den.sample_rate / 1000)))
    lat = LatencyHistogram()  # per block: time from handing it in until the stream asks for the next
    n_in = 0

    def blocks():
        nonlocal n_in
        for x in rechunk(reader, block):
            n_in += len(x)
            t = time.perf_counter()
            yield x
            lat.add(time.perf_counter() - t)

    t0 = time.perf_counter()
    with AudioWriter(dst, den.sample_rate) as out:
        for y in den.stream(blocks()):
            out.write(y)
    wall = time.perf_counter() - t0
    fe = den.config.frontend
    stats = {"input": str(src), "output": str(dst), "block_ms": args.block_ms, "blocks": lat.n,
             "block_latency_ms_median": round(lat.percentile(50), 3),
             "block_latency_ms_p99": round(lat.percentile(99), 3),
             "real_time_factor": round(wall / (n_in / den.sample_rate), 4),
             "algorithmic_latency_ms": fe.latency_ms}  # fmt: skip
    _emit(args, stats, f"{src} -> {dst}: {stats['blocks']} blocks of {args.block_ms:g} ms; per-block latency "
          f"median {stats['block_latency_ms_median']} ms, p99 {stats['block_latency_ms_p99']} ms; real-time factor "
          f"{stats['real_time_factor']}; algorithmic latency {fe.latency_ms:g} ms (+ block buffering)")  # fmt: skip
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rced.corpus import eval_set
    from rced.evaluate import run_systems, standard_systems, summarize, to_markdown, write_results
    from rced.outputs import check_output_file

    if args.output:  # write_results writes <stem>.json and <stem>.md
        for suffix in (".json", ".md"):
            check_output_file(Path(args.output).with_suffix(suffix))
    den = _load_denoiser(args)
    items = eval_set(n_per_voice=args.n_per_voice, snrs=tuple(args.snrs))
    results = run_systems(items, standard_systems(den, args.dtln))
    rows = summarize(results)
    if args.output:
        write_results(args.output, {"model": str(den.path), "n_items": len(items)}, rows)
    print(json.dumps({"rows": rows}) if args.json else to_markdown(rows), end="" if not args.json else "\n")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rced.demo import run_demo
    from rced.outputs import check_output_folder

    out = check_output_folder(args.output)
    den = _load_denoiser(args)

    def say(msg: str) -> None:
        if not args.json:
            print(f"rced demo: {msg}", file=sys.stderr, flush=True)

    r = run_demo(out, den, snr=args.snr, seed=args.seed, progress=say)
    _emit(args, r, f"'{r['text']}' ({r['voice']}, a TEST-ONLY voice) in babble at {r['snr']:g} dB, streamed in "
          f"{r['block_ms']:g} ms blocks (real-time factor {r['real_time_factor']:.2f}, compute per block median "
          f"{r['block_latency_ms_median']:.2f} ms, algorithmic latency {r['algorithmic_latency_ms']:g} ms)\n"
          + "\n".join(f"  {k:7s} noisy {r['noisy'][k]:7.3f}  enhanced {r['enhanced'][k]:7.3f}" for k in r["noisy"])
          + f"\nopen {out / r['files']['index']}")  # fmt: skip
    return 0


def _emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    print(json.dumps(payload) if getattr(args, "json", False) else text)


def add_command(sub, name: str, help: str, examples: list[str], description: str = "") -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` ends with worked examples, kept line for line (every CLI of the project).

    The formatter keeps the description as written too, so it is wrapped here, paragraph by paragraph
    (``description`` defaults to ``help``)."""
    import shutil
    import textwrap

    width = min(shutil.get_terminal_size().columns, 100) - 2
    text = description or f"{help[:1].upper()}{help[1:]}."
    desc = "\n\n".join(textwrap.fill(" ".join(par.split()), width) for par in text.split("\n\n"))
    return sub.add_parser(name, help=help, description=desc, epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip


def add_commands(parser: argparse.ArgumentParser):
    """The sub-command action of a console script (``<prog> COMMAND --help`` for each one's options)."""
    return parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                 help=f"one of the commands below; `{parser.prog} COMMAND --help` shows its options "
                                      "and examples")  # fmt: skip


def add_schedule_args(p: argparse.ArgumentParser, tc) -> None:
    """The training schedule every trainer's command takes, defaults from its train config ``tc``."""
    p.add_argument("--steps-per-epoch", type=positive_int, default=tc.steps_per_epoch, help="batches per epoch (default %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=tc.epochs, help="epochs in all (default %(default)s)")
    p.add_argument("--lr", type=positive_float, default=tc.learning_rate, help="Adam learning rate (default %(default)s)")
    p.add_argument("--seed", type=int, default=tc.seed, help="weights and batch order (default %(default)s)")


def add_run_args(p: argparse.ArgumentParser) -> None:
    """How a training run is carried out and exported (every trainer's command takes the same)."""
    p.add_argument("--strategy", default="default", choices=["default", "mirrored", "multiworker"],
                   help="tf.distribute strategy: default (one device), mirrored (the GPUs of this machine), "
                        "multiworker (several machines, TF_CONFIG) (default %(default)s)")  # fmt: skip
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for TensorFlow (default: all cores)")
    p.add_argument("--max-epochs-this-run", type=positive_int, default=None,
                   help="stop after N epochs; run again to resume (default: until --epochs)")
    p.add_argument("--init-from", type=Path, default=None, help="warm start: weights of this .keras checkpoint")
    p.add_argument("--export", type=output_path, default=None,
                   help="model folder to write when training ends (default: RUN_DIR/model)")
    p.add_argument("--json", action="store_true", help="print the run's state as one JSON line")


def build_parser() -> argparse.ArgumentParser:
    from rced.config import ModelConfig, TrainConfig

    p = argparse.ArgumentParser(prog="rced", description="R-CED babble-noise denoiser for hearing aids.")
    sub = add_commands(p)
    tc, mc = TrainConfig(), ModelConfig()  # one place for the defaults: the configuration dataclasses

    t = add_command(sub, "train", "train a denoiser on the synthetic corpus (resumable)", [
        "rced train runs/rced --threads 2          # run the same line again to resume",
        "rced train runs/lite --size lite --epochs 20 --export models/lite"],
        description="Train a denoiser on babble mixtures of synthetic TRAIN-voice speech (made on first use in "
                    "the run folder), with checkpoints after every epoch; rerunning the command resumes the run "
                    "with the configuration it started with. The model folder (config.json, norm.json, "
                    "model.keras) is written when the last epoch ends; give it to --model of denoise, stream "
                    "and evaluate.")  # fmt: skip
    t.add_argument("run_dir", type=output_path, help="run folder: prepared data, checkpoints, log.csv; rerun to resume")
    t.add_argument("--arch", default=mc.arch, choices=["rced", "crced", "bced"],
                   help="rced: the R-CED network (shipped); crced: its cascaded variant; bced: R-CED on bands "
                        "(see --n-bands) (default %(default)s)")  # fmt: skip
    t.add_argument("--n-bands", type=int, default=None,
                   help="bced only: bands the input spectrum is compressed to, identity below 300 Hz and "
                        "ERB-like triangles above (default 48 with --arch bced)")  # fmt: skip
    t.add_argument("--preset", default="default", choices=["default", "paper"],
                   help="front-end: default 16 kHz, 256-point sqrt-Hann, hop 128; paper: the R-CED paper's "
                        "8 kHz, 256-point Hamming, hop 64 (default %(default)s)")  # fmt: skip
    t.add_argument("--context", type=int, default=None,
                   help="causal STFT frames the denoiser sees per output frame, the current one included "
                        "(default 8, the paper's; 32 is 256 ms at the default front-end)")  # fmt: skip
    t.add_argument("--input-feature", default=mc.input_feature,
                   help="compression of the noisy magnitude the network reads: log, or pow<exponent> such as "
                        "pow0.3 (default %(default)s)")  # fmt: skip
    t.add_argument("--width-mult", type=float, default=None,
                   help=f"scales every filter count (default {mc.width_mult:g}); or use --size")
    t.add_argument("--size", default=None, choices=["full", "lite", "micro", "nano"],  # rced.models.SIZES (no TF here)
                   help="named width: full 1, lite 0.5, micro 0.35, nano 0.25 (the microcontroller classes of the "
                        "README); or use --width-mult")  # fmt: skip
    t.add_argument("--target", default=tc.target, choices=["psa", "irm", "mag"],
                   help="training target: psa phase-sensitive, irm ideal ratio mask, mag clean magnitude "
                        "(default %(default)s)")  # fmt: skip
    t.add_argument("--loss-compress", type=float, default=tc.loss_compress,
                   help="MSE on magnitudes raised to this power, 1 = plain MSE (default %(default)s)")
    t.add_argument("--batch-frames", type=int, default=tc.batch_frames, help="STFT frames per batch (default %(default)s)")
    t.add_argument("--reverb-share", type=float, default=tc.reverb_share,
                   help="share of utterances and babble tracks heard in simulated rooms, RT60 0.2-0.7 s; the "
                        "target keeps the direct sound and 50 ms of early reflections (default %(default)s)")  # fmt: skip
    t.add_argument("--trackers", nargs="+", type=tracker_arg, default=None, metavar="RISE,FALL",
                   help="level trackers as more input channels: per bin, one-pole followers of the features with "
                        "these rise and fall time constants in seconds, e.g. 0.5,0.5 (a running mean) 2,0.05 "
                        "(a noise floor), carried from a stream's first frame")  # fmt: skip
    t.add_argument("--tracker-history", type=float, default=tc.tracker_history_s, metavar="S",
                   help="with --trackers: seconds of each training segment before its context, for the trackers "
                        "to settle (default %(default)s)")  # fmt: skip
    add_schedule_args(t, tc)
    t.add_argument("--utterances", type=int, default=None,
                   help="synthetic TRAIN-voice utterances (default 4000; a resumed run keeps its own)")
    t.add_argument("--data-seed", type=int, default=None,
                   help="which utterances: texts, voices, prosody (default 0; a resumed run keeps its own)")
    t.add_argument("--pico-utterances", type=int, default=None,
                   help="more utterances from the SVOX Pico TRAIN voices en-US and en-GB, planned apart "
                        "(default 0; a resumed run keeps its own)")  # fmt: skip
    add_run_args(t)
    t.set_defaults(func=cmd_train)

    d = add_command(sub, "denoise", "denoise audio files", [
        "rced denoise noisy.wav -o clean.wav",
        "rced denoise recordings/*.flac -o enhanced --backend int8   # writes enhanced/<name>.wav"],
        description="Denoise whole audio files (any rate and channel count libsndfile reads; written as 16-bit "
                    "mono WAV at the model's rate). Every input and output is checked before the model loads; "
                    "a failed run leaves no partial file.")  # fmt: skip
    d.add_argument("inputs", nargs="+", help="audio files (any rate/channels libsndfile reads)")
    d.add_argument("-o", "--output", required=True,
                   help="output .wav file for one input; or a folder (existing, a name ending in /, or for several "
                        "inputs a new name without an audio suffix): each output takes its input's name, as .wav")  # fmt: skip
    _add_model_args(d)
    d.add_argument("--json", action="store_true", help="one JSON line per file: input, output, seconds")
    d.set_defaults(func=cmd_denoise)

    st = add_command(sub, "stream", "causal block-streaming denoise of a file (reports latency)", [
        "rced stream noisy.wav -o clean.wav",
        "rced stream noisy.wav -o out --block-ms 16 --json    # writes out/noisy.wav"],
        description="Denoise a file block by block through the causal streaming path, as a device would, and "
                    "report per-block compute latency, real-time factor and algorithmic latency. The file is read "
                    "block by block, so memory does not grow with its length.")  # fmt: skip
    st.add_argument("input", help="audio file (any rate/channels libsndfile reads)")
    st.add_argument("-o", "--output", required=True,
                    help="output .wav file, or a folder: an existing one or a name ending in / (the output then "
                         "takes the input's name, as .wav)")  # fmt: skip
    st.add_argument("--block-ms", type=positive_float, default=8.0, help="block size in milliseconds (default %(default)s)")
    _add_model_args(st)
    st.add_argument("--json", action="store_true", help="print the latency report as one JSON line")
    st.set_defaults(func=cmd_stream)

    e = add_command(sub, "evaluate", "PESQ/STOI/SI-SDR table on TEST-ONLY voices in babble", [
        "rced evaluate -o results/rced              # writes results/rced.json and results/rced.md",
        "rced evaluate --n-per-voice 2 --snrs 0 5 --backend int8 --json"],
        description="Synthesize utterances of the TEST-ONLY voices, mix them with babble at each SNR, and print "
                    "PESQ, STOI and SI-SDR (improvement over the noisy input) for the noisy input, spectral "
                    "subtraction, the oracle ideal ratio mask, the model and, with --dtln, the DTLN peer.")  # fmt: skip
    _add_model_args(e)
    e.add_argument("--n-per-voice", type=int, default=6, help="utterances per TEST-ONLY voice (default %(default)s)")
    e.add_argument("--snrs", type=finite_float, nargs="+", default=[-5.0, 0.0, 5.0, 10.0],
                   help="speech-to-babble ratios in dB (default: -5 0 5 10)")
    e.add_argument("--dtln", default=None, help="folder of the DTLN peer models (adds a peer row)")
    e.add_argument("-o", "--output", default=None, type=output_path, help="also write the table as <OUTPUT>.json and <OUTPUT>.md")
    e.add_argument("--json", action="store_true", help="print the rows as one JSON line instead of a table")
    e.set_defaults(func=cmd_evaluate)

    m = add_command(sub, "demo", "denoise a TEST-ONLY voice in babble as a stream; WAVs, spectrograms, index.html", [
        "rced demo -o demo_out/denoise",
        "rced demo -o demo_0db --snr 0 --seed 3 --backend int8"],
        description="Synthesize a sentence spoken by a TEST-ONLY voice in babble of TRAIN-voice talkers, stream "
                    "it through the denoiser one STFT hop per block (8 ms for the shipped model), and write into "
                    "the output folder clean/noisy/enhanced WAVs, spectrograms before and after, result.json and "
                    "index.html: a page with players and the numbers (PESQ, STOI and SI-SDR before and after, "
                    "real-time factor, per-block compute time, algorithmic latency).")  # fmt: skip
    m.add_argument("-o", "--output", default="demo_out", type=output_path,
                   help="output folder; open its index.html in a browser (default %(default)s)")
    _add_model_args(m)
    m.add_argument("--snr", type=float, default=5.0, help="speech-to-babble ratio in dB (default %(default)s)")
    m.add_argument("--seed", type=int, default=7, help="which sentence and babble (default %(default)s)")
    m.add_argument("--json", action="store_true", help="print the result (what result.json holds) as one JSON line")
    m.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_tensorflow(keep_onednn=args.command == "train")
    return run_command("rced", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
