"""``grammar`` command line: train the AM, transcribe, recognize, evaluate, make data sets.

Every command exits non-zero with a one-line ``grammar: error: <file>: <problem>`` on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from grammar.decoding.listen import (
    LISTEN_BEST_OFFSET,
    LISTEN_HOP_S,
    LISTEN_MIN_WINDOWS,
    LISTEN_THRESHOLD_OFFSET,
    LISTEN_VOTE,
    LISTEN_WINDOW_S,
)
from grammar.errors import GrammarError
from grammar.units import UNIT_SETS
from rced.cli import quiet_tensorflow
from rced.errors import run_command
from rced.outputs import check_output_file, check_output_folder


def _emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    print(json.dumps(payload) if getattr(args, "json", False) else text, flush=True)


def _train_am_config(args: argparse.Namespace):
    from grammar.config import AMConfig, AMTrainConfig

    trackers = tuple(args.trackers) or None
    am = AMConfig(channels=args.channels, blocks=args.blocks, units=args.units, trackers=trackers,
                  tracker_bands=args.tracker_bands if trackers else None)  # fmt: skip
    return AMTrainConfig(am=am, batch_utts=args.batch_utts,
                         steps_per_epoch=args.steps_per_epoch, epochs=args.epochs, learning_rate=args.lr,
                         seed=args.seed)  # fmt: skip


def cmd_train_am(args: argparse.Namespace) -> int:
    from grammar.acoustic.train_am import AMTrainer
    from rced.cli import _set_threads, check_run_outputs, config_or_resume, run_and_export

    check_run_outputs(args)
    _set_threads(args.threads)
    cfg = config_or_resume(args, build_parser(), _train_am_config)
    trainer = AMTrainer(args.run_dir, cfg, utt_seeds=tuple(args.utt_seeds), n_utts=args.utterances,
                        denoiser_path=args.denoiser, strategy=args.strategy, init_from=args.init_from)  # fmt: skip
    return run_and_export(trainer, args)


def _recognizer(args: argparse.Namespace, grammar=None):
    from grammar.decoding.recognizer import Recognizer

    den = False if getattr(args, "no_denoiser", False) else args.denoiser
    commands = grammar is None and getattr(args, "grammar", None) is None and getattr(args, "commands", None)
    if grammar is None:
        grammar = False if commands else getattr(args, "grammar", None)
    rec = Recognizer.load(args.am, denoiser=den, grammar=grammar, backend=getattr(args, "backend", "float"))
    if getattr(args, "no_speech_check", False):
        rec.no_speech_check()
    if commands:  # spelled in the AM's units, with the shipped grammar's threshold and score kind
        from grammar.commands import load_commands
        from grammar.decoding.decoder import Grammar

        shipped = _default_grammar()
        rec.grammar = Grammar.from_commands(load_commands(args.commands), threshold=shipped.threshold,
                                            score_kind=shipped.score_kind, int8_threshold=shipped.int8_threshold,
                                            units=rec.config.unit_set.name)  # fmt: skip
    return rec


def _default_grammar():
    """The shipped grammar: a base grammar built on the fly reuses its threshold and score kind."""
    from grammar.decoding.decoder import Grammar
    from grammar.decoding.recognizer import default_grammar_path

    return Grammar.load(default_grammar_path())


def _load_all(paths: list[str]):
    from rced.audio import load_audio

    return [(p, load_audio(p)) for p in paths]  # validate every input before any work


def cmd_transcribe(args: argparse.Namespace) -> int:
    from rced.cli import AudioProgress

    audios = _load_all(args.audio)
    rec = _recognizer(args, grammar=False)
    units = rec.config.unit_set
    with AudioProgress([len(a) / 16000 for _, a in audios], "transcribing") as bar:
        for path, audio in audios:  # Recognizer.transcribe, with the progress hook
            text = units.show(units.greedy(rec.posteriors(audio, 16000, name=path, progress=bar.file(len(audio) / 16000))))
            bar.write(json.dumps({"path": path, "text": text}) if args.json else f"{path}\t{text}")
    return 0


MAX_UTTERANCE_S = 20.0
"""Longest input ``grammar recognize`` takes. Its score rates one command against the whole input, so
a long recording gets a meaningless one (a 10-minute file scored -652). The default commands last up
to 3.0 s as synthesised, the non-commands of the data sets up to 4.2 s (padding included): 20 s
leaves room for a recording with silence around one utterance; longer ones are for ``grammar listen``."""


def cmd_recognize(args: argparse.Namespace) -> int:
    from rced.cli import AudioProgress

    audios = _load_all(args.audio)
    for path, audio in audios:  # before any model loads
        if len(audio) > MAX_UTTERANCE_S * 16000:
            raise GrammarError(f"{path}: {len(audio) / 16000:.1f} s of audio, but recognize expects one utterance "
                               f"(at most {MAX_UTTERANCE_S:g} s); to spot commands in a long recording use "
                               f"`grammar listen {path}`")  # fmt: skip
    rec = _recognizer(args)
    with AudioProgress([len(a) / 16000 for _, a in audios], "recognizing") as bar:
        for path, audio in audios:
            d = rec.recognize(audio, 16000, name=path, progress=bar.file(len(audio) / 16000))
            score = round(float(d.score), 4) if math.isfinite(d.score) else None  # -inf is not JSON: null
            payload = {"path": path, "command": d.command, "score": score}
            bar.write(json.dumps(payload) if args.json else f"{path}\t{d.command or '(rejected)'}\t{d.score:.3f}")
    return 0


def score_manifest(rec, rows) -> list:
    """Decision for every manifest row (with a progress bar, closed before an error is printed)."""
    from tqdm import tqdm

    from rced.audio import load_audio

    with tqdm(rows, desc="recognizing", unit="utt") as bar:
        return [rec.recognize(load_audio(r.path), 16000, name=str(r.path)) for r in bar]


def check_rate(option: str, value: float | None, closed: bool = True) -> None:
    """A rate option (``--target-far``...) lies in [0, 1] (``closed``) or in (0, 1): one line naming
    the option, before any work; None (not given) passes."""
    if value is not None and not (0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0):
        raise GrammarError(f"--{option} must lie in {'[0, 1]' if closed else '(0, 1)'}, got {value}")


def checked_manifest(args: argparse.Namespace, output: Path | None, updates_grammar: bool = False) -> list:
    """The rows of ``--dataset``, before any model loads: ``output`` (when given) is checked and may be
    none of the inputs (the manifest, --commands, --grammar, the audio it lists), and every audio file
    passes the checks ``load_audio`` makes (read once, not kept). ``updates_grammar``: the output is a
    grammar, which may be --grammar itself (``calibrate --grammar g.json -o g.json`` sets a threshold
    in place: the file is read whole before the new one is renamed over it)."""
    from grammar.dataset import load_manifest
    from rced.audio import AudioBlocks

    rows = load_manifest(args.dataset)
    if output is not None:
        grammar_in = None if updates_grammar else args.grammar
        given = [p for p in (args.dataset, args.commands, grammar_in) if p]
        check_output_file(output, [*given, *(r.path for r in rows)])
    for r in rows:
        AudioBlocks(r.path)
    return rows


def cmd_evaluate(args: argparse.Namespace) -> int:
    from grammar.dataset import check_labels
    from grammar.metrics import det_curve, metrics_by_group, plot_det

    rows = checked_manifest(args, args.det)
    rec = _recognizer(args)
    check_labels(rows, rec.grammar.commands, source=args.dataset)
    decisions = score_manifest(rec, rows)
    labels = [r.label for r in rows]
    preds = [d.command for d in decisions]
    groups = [r.extra.get("snr") for r in rows]
    result = metrics_by_group(labels, preds, groups)
    if args.det:
        # an utterance the speech check rejects is accepted at no threshold
        best = [rec.grammar.commands[rec.grammar.command_of[d.expression]]
                if rec.sounds_like_speech(d.speech_modulation, d.tonality) else None for d in decisions]  # fmt: skip
        curve = det_curve(labels, best, [d.score for d in decisions])
        plot_det({"chain": curve}, args.det, operating_points={"threshold": result["all"]})
    if args.json:
        threshold = rec.decoding_grammar().threshold  # the one the decisions used (int8 has its own)
        undefined = {g: {k: None if isinstance(v, float) and v != v else v for k, v in m.items()}  # NaN: null
                     for g, m in result.items()}  # fmt: skip
        print(json.dumps({"dataset": str(args.dataset), "threshold": threshold, "metrics": undefined}))
    else:
        print(f"{'group':>8}  {'n_cmd':>5} {'n_non':>5}  {'MDR':>6} {'MCR':>6} {'FAR':>6} {'accuracy':>8}")
        for g, m in result.items():
            print(f"{g:>8}  {m['n_command']:5d} {m['n_noncommand']:5d}  {m['mdr']:6.3f} {m['mcr']:6.3f} "
                  f"{m['far']:6.3f} {m['accuracy']:8.3f}")  # fmt: skip
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from grammar.dataset import check_labels, n_independent
    from grammar.decoding.decoder import calibrate_threshold, far_target_for_bound

    check_rate("target-far", args.target_far)
    check_rate("max-far", args.max_far, closed=False)
    check_rate("confidence", args.confidence, closed=False)
    rows = checked_manifest(args, args.output, updates_grammar=True)
    rec = _recognizer(args)
    check_labels(rows, rec.grammar.commands, source=args.dataset)
    non = [r for r in rows if r.label is None]
    if not non:
        raise GrammarError(f"{args.dataset}: no non-command utterances to calibrate the false-alarm rate on")
    scores = [d.score for d in score_manifest(rec, non)]
    target = args.target_far
    if args.max_far is not None:
        n_ind = n_independent(non)
        target = far_target_for_bound(args.max_far, n_ind, args.confidence)
        print(f"grammar calibrate: FAR <= {args.max_far:g} with {args.confidence:.0%} confidence on "
              f"{len(non)} non-commands ({n_ind} independent texts): calibrating to {target:.4f}", file=sys.stderr)  # fmt: skip
    thr = calibrate_threshold(scores, target)
    import dataclasses

    key = "int8_threshold" if rec.backend == "int8" else "threshold"  # the int8 chain gets its own
    g = dataclasses.replace(rec.grammar, **{key: thr}, provenance={**rec.grammar.provenance, key: {
        "target_far": target, "max_far": args.max_far, "dataset": str(args.dataset), "n_noncommand": len(non),
        **({"n_independent": n_ind} if args.max_far is not None else {})}})  # fmt: skip
    g.save(args.output)
    _emit(args, {"output": str(args.output), "threshold": thr, "field": key}, f"{key} {thr:.4f} -> {args.output}")
    return 0


def cmd_make_dataset(args: argparse.Namespace) -> int:
    from grammar.commands import default_commands_path, load_commands
    from grammar.dataset import make_dataset
    from rced.tts import test_voices, train_voices

    check_output_folder(args.output)
    voices = {"test": test_voices(), "train": [v for v in train_voices() if v.engine != "espeak"]}[args.voices]
    commands = load_commands(args.commands or default_commands_path())
    snrs = [None if s == "clean" else float(s) for s in args.snrs]
    path = make_dataset(args.output, commands, voices, n_command_reps=args.reps, n_random=args.random,
                        n_near_miss=args.near_miss, snrs=snrs, seed=args.seed)  # fmt: skip
    _emit(args, {"manifest": str(path)}, f"manifest written to {path}")
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    from grammar.decoding import listen

    if args.input is not None and args.device is not None:
        raise GrammarError("listen: give an INPUT file or --device, not both")
    if args.input is None and args.device is None:
        raise GrammarError("listen: give an INPUT file (- for standard input), or --device to listen to a live "
                           "microphone")  # fmt: skip
    listen.check_windows(args.window_s, args.hop_s, "--window-s", "--hop-s")  # before the table header prints
    listen.check_min_windows(args.min_windows, "--min-windows")
    listen.check_offset(args.threshold_offset, "--threshold-offset")
    if not args.no_best_check and args.best_offset is not None:  # None: the shipped setting has no such check
        listen.check_offset(args.best_offset, "--best-offset")
    if args.seconds is not None and (args.device is None or not args.seconds > 0):
        raise GrammarError("listen: --seconds needs --device and a positive number of seconds")
    if args.device is not None:  # every input is checked before the models load
        device = listen.open_input_device(None if args.device == "default" else args.device)
        source = listen.device_source(device, args.seconds)
    else:
        source = listen.stdin_source() if args.input == listen.STDIN else listen.file_source(args.input)
    rec = _recognizer(args)
    if args.device is not None:
        print(f"grammar: listening on {source.name} "
              f"({'Ctrl-C stops' if args.seconds is None else f'{args.seconds:g} s'})", file=sys.stderr, flush=True)  # fmt: skip
    if not args.json:
        print(f"{'start':>7}  {'end':>7}  {'score':>8}  command", flush=True)
    n, interrupted = listen.run_listen(rec, source, window_s=args.window_s, hop_s=args.hop_s, progress=True,
                                       min_windows=args.min_windows, threshold_offset=args.threshold_offset,
                                       offsets=None if args.no_command_offsets else listen.LISTEN_COMMAND_OFFSETS,
                                       best_offset=None if args.no_best_check else args.best_offset, vote=args.vote,
                                       emit=lambda d: _emit(args, d.to_json(), listen.format_detection(d)))  # fmt: skip
    count = f"{n} detection{'s' if n != 1 else ''}"
    if not args.json:
        print(count, flush=True)
    elif interrupted:
        print(f"grammar: listen: {count} before the interrupt", file=sys.stderr, flush=True)
    if interrupted:  # what was heard is reported; exit as every command does on Ctrl-C
        raise KeyboardInterrupt
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from grammar.decoding.demo import run_demo, table
    from grammar.decoding.listen import check_windows

    check_output_folder(args.output)  # before the models load and the scene is synthesised
    check_windows(args.window_s, args.hop_s, "--window-s", "--hop-s")
    rec = _recognizer(args)  # fails fast when --backend int8 finds no model_int8.tflite

    def say(msg: str) -> None:
        if not args.json:
            print(f"grammar demo: {msg}", file=sys.stderr, flush=True)

    res = run_demo(args.output, rec, snr=args.snr, seed=args.seed, n_commands=args.n_commands,
                   window_s=args.window_s, hop_s=args.hop_s, backend=args.backend, progress=say)  # fmt: skip
    if args.json:
        keep = ("output", "files", "voice", "snr", "seed", "backend", "chain", "seconds_of_audio", "truth",
                "detections", "summary", "timings")  # fmt: skip
        print(json.dumps({k: res[k] for k in keep}))
        return 0
    s = res["summary"]
    print(f"{res['voice']} speaking {s['n_commands']} commands among other speech, babble at {res['snr']:g} dB; "
          f"{res['chain']}")  # fmt: skip
    print(table(res["rows"]))
    print(f"hits: {s['hits']}/{s['n_commands']}  (wrong command {s['wrong']}, missed {s['missed']}, "
          f"false alarms {s['false_alarms']})")  # fmt: skip
    print(f"{res['seconds_of_audio']:.1f} s of audio; chain {res['timings']['chain_s']:.1f} s, total "
          f"{res['timings']['total_s']:.1f} s; open {Path(res['output']) / res['files']['index']}")  # fmt: skip
    return 0


def _add_chain_args(p: argparse.ArgumentParser, grammar: bool = True, backend: bool = True, speech_check: bool = True,
                    json_help: str = "machine-readable JSON on stdout instead of text") -> None:  # fmt: skip
    """The recognition chain's options (models, backend, grammar, the speech check) shared by the commands that run it."""
    p.add_argument("--am", default=None, help="acoustic-model folder (default: the shipped one, grammar/default_am)")
    p.add_argument("--denoiser", default=None, help="denoiser model folder or shipped preset name (default: the shipped one)")
    p.add_argument("--no-denoiser", action="store_true", help="feed the AM the noisy spectrum (no denoiser)")
    if backend:
        p.add_argument("--backend", default="float", choices=["float", "int8"],
                       help="float: each model folder's model_float.tflite; int8: its model_int8.tflite, the "
                            "device graphs (the AM in fixed overlapping 1 s windows as on the device; within one LSB "
                            "of it). All run on LiteRT; `firmware-export int8 all` writes them (default %(default)s)")  # fmt: skip
    if grammar:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--grammar", default=None, metavar="G.json",
                       help="grammar JSON, from `grammar augment` or `grammar calibrate` (default: the shipped, "
                            "calibrated grammar/data/grammar_default.json)")  # fmt: skip
        g.add_argument("--commands", default=None, metavar="FILE",
                       help="your own commands, one a line (# starts a comment): a base grammar, one expression "
                            "per command, at the shipped grammar's threshold")  # fmt: skip
    if speech_check:
        p.add_argument("--no-speech-check", action="store_true",
                       help="accept commands in sounds whose level does not rise and fall as speech does (hum, "
                            "fans, noise, steady tones; default: such a command is rejected, "
                            "grammar.decoding.recognizer.SPEECH_FLOOR)")  # fmt: skip
    p.add_argument("--json", action="store_true", help=json_help)


def _shipped_am_config():
    """The shipped acoustic model's configuration: ``train-am`` defaults to its architecture."""
    from grammar.config import AMConfig
    from grammar.decoding.recognizer import default_am_path
    from rced.config import load_json

    return load_json(AMConfig, default_am_path() / "config.json")


def build_parser() -> argparse.ArgumentParser:
    from grammar.config import AMTrainConfig
    from rced.cli import add_command, add_commands, add_run_args, add_schedule_args, output_path, tracker_arg

    p = argparse.ArgumentParser(prog="grammar", description="CTC command recognizer with grammar augmentation.")
    sub = add_commands(p)
    am, tc = _shipped_am_config(), AMTrainConfig()

    t = add_command(sub, "train-am", "train the CTC acoustic model (resumable)", [
        "grammar train-am runs/am --threads 2        # run the same line again to resume",
        "grammar train-am runs/am_small --channels 96 --epochs 10 --export models/am_small"],
        description="Train the pure-convolution CTC acoustic model on synthetic TRAIN-voice speech (clean, in "
                    "babble, and behind the denoiser; prepared on first use in the run folder), with checkpoints "
                    "after every epoch; rerunning resumes. The architecture defaults to the shipped model's "
                    f"(grammar/default_am/config.json: {am.channels} channels, {am.blocks} blocks), which was "
                    "trained on a GPU with scripts/gpu/train_am_jax.py (see its MODEL_CARD.md).")  # fmt: skip
    t.add_argument("run_dir", type=output_path, help="run folder: prepared data, checkpoints, log.csv; rerun to resume")
    t.add_argument("--channels", type=int, default=am.channels,
                   help="channels of every convolution (default %(default)s, as the shipped AM)")
    t.add_argument("--blocks", type=int, default=am.blocks,
                   help="residual depthwise-separable blocks (default %(default)s, as the shipped AM)")
    t.add_argument("--units", choices=UNIT_SETS, default="chars",
                   help="output units: characters, or ARPAbet phonemes from cmudict (default %(default)s)")
    shipped_trackers = " ".join(f"{r:g},{f:g}" for r, f in am.trackers or ()) or "none"
    t.add_argument("--trackers", nargs="*", type=tracker_arg, default=list(am.trackers or ()), metavar="RISE,FALL",
                   help="level trackers as more input channels (grammar.acoustic.features.with_trackers), each its "
                        f"rise and fall time in seconds; --trackers alone: none (default {shipped_trackers}, as the "
                        "shipped AM)")  # fmt: skip
    t.add_argument("--tracker-bands", type=int, default=am.tracker_bands or 4,
                   help="adjacent mel bands each tracker follows (default %(default)s, as the shipped AM)")
    t.add_argument("--batch-utts", type=int, default=tc.batch_utts, help="utterances per batch (default %(default)s)")
    add_schedule_args(t, tc)
    t.add_argument("--utterances", type=int, default=4000, help="utterances per corpus seed (default %(default)s)")
    t.add_argument("--utt-seeds", type=int, nargs="+", default=[0, 1],
                   help="corpus seeds: each adds --utterances different utterances (default: 0 1)")
    t.add_argument("--denoiser", default=None,
                   help="denoiser model folder the enhanced training features go through (default: the shipped one)")
    add_run_args(t)
    t.set_defaults(func=cmd_train_am)

    tr = add_command(sub, "transcribe", "greedy CTC transcript of audio files", [
        "grammar transcribe utterance.wav",
        "grammar transcribe recordings/*.wav --backend int8 --json"],
        description="Print the acoustic model's greedy CTC transcript of each file (letters, space and "
                    "apostrophe; no grammar): what the AM hears, e.g. to see why a command was missed.")  # fmt: skip
    tr.add_argument("audio", nargs="+", help="audio files (any rate/channels libsndfile reads)")
    _add_chain_args(tr, grammar=False, speech_check=False, json_help="one JSON line per file: path, text")
    tr.set_defaults(func=cmd_transcribe)

    rc = add_command(sub, "recognize", "pick a command or reject, one JSON line per file with --json", [
        "grammar recognize utterance.wav",
        "grammar recognize a.wav b.wav --commands my_commands.txt --json"],
        description="Pick one command for each file, or reject it (printed as (rejected)). Each file is one "
                    "utterance: for a long recording with several commands use `grammar listen`.\n\n"
                    "The default commands are listed in grammar/data/commands_default.txt (one a line) and "
                    "decoded with grammar/data/grammar_default.json, which holds them with a calibrated "
                    "rejection threshold (both in the installed grammar package). To use your own: --commands "
                    "FILE (a text file, one command a line) or --grammar G.json (a grammar from `grammar "
                    "augment` or `grammar calibrate`).")  # fmt: skip
    rc.add_argument("audio", nargs="+", help="audio files, one utterance each (any rate/channels libsndfile reads)")
    _add_chain_args(rc, json_help="one JSON line per file: path, command (null when rejected), score")
    rc.set_defaults(func=cmd_recognize)

    ev = add_command(sub, "evaluate", "MDR, MCR, FAR, accuracy per SNR on a manifest", [
        "grammar make-dataset -o data/test && grammar evaluate --dataset data/test/manifest.csv",
        "grammar evaluate --dataset data/test/manifest.csv --grammar my_grammar.json --det det.png --json"],
        description="Recognize every utterance of a manifest and report, per SNR group and overall, the "
                    "mis-detection rate (commands rejected), mis-classification rate (commands taken for "
                    "another), false-alarm rate (non-commands accepted) and accuracy = 1 - MDR - MCR.")  # fmt: skip
    ev.add_argument("--dataset", required=True, type=Path,
                    help="manifest CSV with path,label columns (paths relative to it; empty label = non-command; "
                         "an snr column groups the results)")  # fmt: skip
    ev.add_argument("--det", default=None, type=output_path, help="also write a DET-style PNG: FAR against MDR + MCR over the threshold")
    _add_chain_args(ev, json_help="print the metrics as one JSON object")
    ev.set_defaults(func=cmd_evaluate)

    ca = add_command(sub, "calibrate", "set the rejection threshold for a target false-alarm rate", [
        "grammar calibrate --dataset data/cal/manifest.csv -o my_grammar.json",
        "grammar calibrate --dataset data/cal/manifest.csv --max-far 0.05 --commands my_commands.txt -o g.json"],
        description="Score the non-command utterances of a manifest and write the grammar with the rejection "
                    "threshold that accepts the target fraction of them (with --backend int8, the int8 chain's "
                    "own threshold).")  # fmt: skip
    ca.add_argument("--dataset", required=True, type=Path,
                    help="manifest CSV with path,label columns; its non-commands (empty label) set the threshold")
    ca.add_argument("--target-far", type=float, default=0.05,
                    help="false-alarm rate on this data set, the sample quantile (default %(default)s)")
    ca.add_argument("--max-far", type=float, default=None,
                    help="instead: keep the true FAR <= this with --confidence (a lower target on small sets)")
    ca.add_argument("--confidence", type=float, default=0.95,
                    help="confidence of the --max-far bound (default %(default)s)")
    ca.add_argument("-o", "--output", required=True, type=output_path, help="grammar JSON to write")
    _add_chain_args(ca, speech_check=False, json_help="print output, threshold and field as one JSON object")
    ca.set_defaults(func=cmd_calibrate)

    md = add_command(sub, "make-dataset", "synthesize a command / non-command manifest", [
        "grammar make-dataset -o data/test",
        "grammar make-dataset -o data/mine --commands my_commands.txt --voices train --snrs clean 10"],
        description="Synthesize each command and non-command speech (random word sequences and near misses of "
                    "the commands) with every voice of a split, mixed with babble at each SNR, and write the WAVs "
                    "and manifest.csv (path,label,snr,...) into the output folder.")  # fmt: skip
    md.add_argument("-o", "--output", required=True, type=output_path, help="output folder (manifest.csv and the WAVs)")
    md.add_argument("--commands", default=None,
                    help="command file, one a line (default: grammar/data/commands_default.txt)")
    md.add_argument("--voices", default="test", choices=["test", "train"],
                    help="test: the TEST-ONLY voices; train: TRAIN voices other than espeak-ng (default %(default)s)")
    md.add_argument("--reps", type=int, default=2, help="repetitions of each command per voice (default %(default)s)")
    md.add_argument("--random", type=int, default=10, help="random word sequences per voice (default %(default)s)")
    md.add_argument("--near-miss", type=int, default=10,
                    help="near misses per voice: phrases close to a command (default %(default)s)")
    md.add_argument("--snrs", nargs="+", default=["clean", "20", "10", "5"],
                    help="conditions: clean and/or speech-to-babble ratios in dB (default: clean 20 10 5)")
    md.add_argument("--seed", type=int, default=0, help="texts, prosody and babble (default %(default)s)")
    md.add_argument("--json", action="store_true", help="print the manifest's path as one JSON object")
    md.set_defaults(func=cmd_make_dataset)

    li = add_command(sub, "listen", "streaming command spotting over a long recording (or a live microphone)", [
        "grammar listen meeting.wav --json              # one JSON line per detection, as soon as it is final",
        "grammar listen - --backend int8     # a WAV stream on stdin, e.g. from `arecord -f S16_LE -r 16000 -t wav`"],
        description="Spot the grammar's commands in a long recording, streamed through the chain in blocks of "
                    "--hop-s, as a device listens: every --hop-s the last --window-s of speech is decoded against "
                    "the grammar, and each detection is printed as soon as it is final (start and end in seconds, "
                    "score, command). Files are read block by block with a progress bar on a terminal; Ctrl-C "
                    "keeps every detection printed so far. For one utterance per file use `grammar recognize`.")  # fmt: skip
    li.add_argument("input", nargs="?", default=None,
                    help="audio file (any rate/channels libsndfile reads), read block by block; - reads a WAV "
                         "stream from standard input (e.g. `arecord -f S16_LE -r 16000 | grammar listen -`)")  # fmt: skip
    li.add_argument("--device", nargs="?", const="default", default=None,
                    help="listen to a live input device instead (name or index; needs the sounddevice module)")  # fmt: skip
    li.add_argument("--seconds", type=float, default=None, help="with --device: stop after this much audio "
                    "(default: until Ctrl-C)")  # fmt: skip
    li.add_argument("--window-s", type=float, default=LISTEN_WINDOW_S,
                    help=f"decoding window in seconds (default {LISTEN_WINDOW_S})")
    li.add_argument("--hop-s", type=float, default=LISTEN_HOP_S,
                    help=f"hop between windows, also the block size (default {LISTEN_HOP_S})")
    li.add_argument("--min-windows", type=int, default=LISTEN_MIN_WINDOWS,
                    help="fewest windows that must accept a command before it is reported (default %(default)s; "
                         "1 reports every accepted event)")  # fmt: skip
    li.add_argument("--threshold-offset", type=float, default=LISTEN_THRESHOLD_OFFSET,
                    help="added to the grammar's threshold for each window (default %(default)s; negative: each "
                         "window accepts more readily)")  # fmt: skip
    li.add_argument("--best-offset", type=float, default=LISTEN_BEST_OFFSET,
                    help="a second, stricter check: an event is reported only if its best window reaches the "
                         "grammar's threshold plus this (default %(default)s; None: no such check)")  # fmt: skip
    li.add_argument("--no-best-check", action="store_true", help="no stricter check of an event's best window")
    li.add_argument("--vote", action=argparse.BooleanOptionalAction, default=LISTEN_VOTE,
                    help="an event names the command most of its accepted windows name, not its best window's "
                         "(default: %(default)s, grammar.decoding.listen.LISTEN_VOTE)")  # fmt: skip
    li.add_argument("--no-command-offsets", action="store_true",
                    help="one threshold for every command (default: the per-command offsets of "
                         "grammar.decoding.listen.LISTEN_COMMAND_OFFSETS, where benchmarks/spotting.py puts them; "
                         "commands not named there get 0)")  # fmt: skip
    _add_chain_args(li)
    li.set_defaults(func=cmd_listen)

    de = add_command(sub, "demo", "commands by a TEST-ONLY voice in babble, spotted live; WAVs, picture, index.html", [
        "grammar demo -o demo_out/commands --backend int8    # the device chain (scripts/demo.sh, part 2)",
        "grammar demo -o scene_10db --snr 10 --seed 3 --n-commands 6"],
        description="Synthesise a scene (commands spoken by a TEST-ONLY voice among other sentences in continuous "
                    "babble), stream it through the chain as `grammar listen` does, and print each detection "
                    "against the truth; writes the clean, noisy and enhanced WAVs, a spectrogram with the "
                    "detections marked, result.json and index.html.")  # fmt: skip
    de.add_argument("-o", "--output", required=True, type=output_path, help="output folder")
    de.add_argument("--snr", type=float, default=20.0,
                    help="speech-to-babble ratio in dB over the speech (default 20: where the shipped AM "
                         "finds most commands; at 5-10 dB it finds few, see the README)")  # fmt: skip
    de.add_argument("--seed", type=int, default=7, help="which commands, sentences and babble (default 7)")
    de.add_argument("--n-commands", type=int, default=4, choices=range(1, 9), metavar="{1..8}",
                    help="commands in the scene (default 4)")  # fmt: skip
    de.add_argument("--window-s", type=float, default=LISTEN_WINDOW_S,
                    help=f"decoding window in seconds (default {LISTEN_WINDOW_S})")
    de.add_argument("--hop-s", type=float, default=LISTEN_HOP_S,
                    help=f"hop between windows and block size (default {LISTEN_HOP_S})")
    _add_chain_args(de)
    de.set_defaults(func=cmd_demo)

    from grammar.augment.cli import add_parsers

    add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_tensorflow(keep_onednn=args.command == "train-am")
    return run_command("grammar", lambda: args.func(args), (GrammarError,))


if __name__ == "__main__":
    sys.exit(main())
