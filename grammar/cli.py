"""``grammar`` command line: train the AM, transcribe, recognize, evaluate, make data sets.

Every command exits non-zero with a one-line ``grammar: error: <file>: <problem>`` on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grammar.errors import GrammarError
from rced.cli import quiet_tensorflow
from rced.errors import run_command
from rced.outputs import check_output_file, check_output_folder


def _emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    print(json.dumps(payload) if getattr(args, "json", False) else text, flush=True)


def _train_am_config(args: argparse.Namespace):
    from grammar.config import AMConfig, AMTrainConfig

    return AMTrainConfig(am=AMConfig(channels=args.channels, blocks=args.blocks), batch_utts=args.batch_utts,
                         steps_per_epoch=args.steps_per_epoch, epochs=args.epochs, learning_rate=args.lr,
                         seed=args.seed)  # fmt: skip


def cmd_train_am(args: argparse.Namespace) -> int:
    from grammar.train_am import AMTrainer
    from rced.cli import _set_threads, check_run_outputs, config_or_resume, run_and_export

    check_run_outputs(args)
    _set_threads(args.threads)
    cfg = config_or_resume(args, build_parser(), _train_am_config)
    trainer = AMTrainer(args.run_dir, cfg, utt_seeds=tuple(args.utt_seeds), n_utts=args.utterances,
                        denoiser_path=args.denoiser, strategy=args.strategy, init_from=args.init_from)  # fmt: skip
    return run_and_export(trainer, args)


def _recognizer(args: argparse.Namespace, grammar=None):
    from grammar.recognizer import Recognizer

    den = False if getattr(args, "no_denoiser", False) else args.denoiser
    if grammar is None and getattr(args, "grammar", None) is None and getattr(args, "commands", None):
        from grammar.commands import load_commands
        from grammar.decoder import Grammar

        shipped = _default_grammar()
        grammar = Grammar.from_commands(load_commands(args.commands), threshold=shipped.threshold,
                                        score_kind=shipped.score_kind, int8_threshold=shipped.int8_threshold)  # fmt: skip
    if grammar is None:
        grammar = getattr(args, "grammar", None)
    return Recognizer.load(args.am, denoiser=den, grammar=grammar, backend=getattr(args, "backend", "float"))


def _default_grammar():
    """The shipped grammar: a base grammar built on the fly reuses its threshold and score kind."""
    from grammar.decoder import Grammar
    from grammar.recognizer import default_grammar_path

    return Grammar.load(default_grammar_path())


def _load_all(paths: list[str]):
    from rced.audio import load_audio

    return [(p, load_audio(p)) for p in paths]  # validate every input before any work


def cmd_transcribe(args: argparse.Namespace) -> int:
    audios = _load_all(args.audio)
    rec = _recognizer(args, grammar=False)
    for path, audio in audios:
        text = rec.transcribe(audio, 16000, name=path)
        _emit(args, {"path": path, "text": text}, f"{path}\t{text}")
    return 0


def cmd_recognize(args: argparse.Namespace) -> int:
    audios = _load_all(args.audio)
    rec = _recognizer(args)
    for path, audio in audios:
        d = rec.recognize(audio, 16000, name=path)
        payload = {"path": path, "command": d.command, "score": round(float(d.score), 4)}
        print(json.dumps(payload) if args.json else f"{path}\t{d.command or '(rejected)'}\t{d.score:.3f}")
    return 0


def score_manifest(rec, rows) -> list:
    """Decision for every manifest row (with a progress bar)."""
    from tqdm import tqdm

    from rced.audio import load_audio

    return [rec.recognize(load_audio(r.path), 16000, name=str(r.path)) for r in tqdm(rows, desc="recognizing", unit="utt")]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from grammar.dataset import check_labels, load_manifest
    from grammar.metrics import det_curve, metrics_by_group, plot_det

    if args.det:
        check_output_file(args.det, [args.dataset])
    rows = load_manifest(args.dataset)
    rec = _recognizer(args)
    check_labels(rows, rec.grammar.commands, source=args.dataset)
    decisions = score_manifest(rec, rows)
    labels = [r.label for r in rows]
    preds = [d.command for d in decisions]
    groups = [r.extra.get("snr") for r in rows]
    result = metrics_by_group(labels, preds, groups)
    if args.det:
        best = [rec.grammar.commands[rec.grammar.command_of[d.expression]] for d in decisions]
        curve = det_curve(labels, best, [d.score for d in decisions])
        plot_det({"chain": curve}, args.det, operating_points={"threshold": result["all"]})
    if args.json:
        threshold = rec.decoding_grammar().threshold  # the one the decisions used (int8 has its own)
        print(json.dumps({"dataset": str(args.dataset), "threshold": threshold, "metrics": result}))
    else:
        print(f"{'group':>8}  {'n_cmd':>5} {'n_non':>5}  {'MDR':>6} {'MCR':>6} {'FAR':>6} {'accuracy':>8}")
        for g, m in result.items():
            print(f"{g:>8}  {m['n_command']:5d} {m['n_noncommand']:5d}  {m['mdr']:6.3f} {m['mcr']:6.3f} "
                  f"{m['far']:6.3f} {m['accuracy']:8.3f}")  # fmt: skip
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from grammar.dataset import check_labels, load_manifest, n_independent
    from grammar.decoder import calibrate_threshold, far_target_for_bound

    check_output_file(args.output)
    rows = load_manifest(args.dataset)
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
    from grammar.listen import format_detection, open_input_device, run_listen

    if args.input is not None and args.device is not None:
        raise GrammarError("listen: give an INPUT file or --device, not both")
    if args.input is None and args.device is None:
        raise GrammarError("listen: give an INPUT file, or --device to listen to a live microphone")
    for name in ("window_s", "hop_s"):
        v = getattr(args, name)
        if not v > 0:
            raise GrammarError(f"listen: --{name.replace('_', '-')} {v}: must be a positive number of seconds")
    if args.hop_s > args.window_s:
        raise GrammarError(f"listen: --hop-s {args.hop_s} is longer than --window-s {args.window_s}")
    if args.seconds is not None and (args.device is None or not args.seconds > 0):
        raise GrammarError("listen: --seconds needs --device and a positive number of seconds")
    audio = device = None
    if args.input is not None:
        from rced.audio import load_audio

        audio = load_audio(args.input)
    else:
        device = open_input_device(None if args.device == "default" else args.device)
    rec = _recognizer(args)
    if not args.json:
        print(f"{'start':>7}  {'end':>7}  {'score':>8}  command", flush=True)
    n = run_listen(rec, audio=audio, device=device, window_s=args.window_s, hop_s=args.hop_s,
                   emit=lambda d: _emit(args, d.to_json(), format_detection(d)), max_seconds=args.seconds)  # fmt: skip
    if not args.json:
        print(f"{n} detection{'s' if n != 1 else ''}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from grammar.demo import run_demo, table

    if args.output.exists() and not args.output.is_dir():
        raise GrammarError(f"{args.output}: output path exists and is not a folder")
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


def _add_chain_args(p: argparse.ArgumentParser, grammar: bool = True) -> None:
    p.add_argument("--am", default=None, help="acoustic-model folder (default: shipped)")
    p.add_argument("--denoiser", default=None, help="denoiser folder (default: shipped)")
    p.add_argument("--no-denoiser", action="store_true", help="feed the AM the noisy spectrum")
    p.add_argument("--backend", default="float", choices=["float", "int8"],
                   help="float: the Keras models; int8: model_int8.tflite beside the denoiser and the AM through "
                        "LiteRT, the AM in fixed overlapping 1 s windows as on the device (written by "
                        "`firmware-export int8 all`)")  # fmt: skip
    if grammar:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--grammar", default=None, help="grammar JSON (default: shipped, calibrated)")
        g.add_argument("--commands", default=None, help="command file: base grammar, one expression each")
    p.add_argument("--json", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grammar", description="CTC command recognizer with grammar augmentation.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train-am", help="train the CTC acoustic model (resumable)")
    t.add_argument("run_dir", type=Path)
    t.add_argument("--channels", type=int, default=160)
    t.add_argument("--blocks", type=int, default=6)
    t.add_argument("--batch-utts", type=int, default=16)
    t.add_argument("--steps-per-epoch", type=int, default=300)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--utterances", type=int, default=4000, help="utterances per corpus seed")
    t.add_argument("--utt-seeds", type=int, nargs="+", default=[0, 1])
    t.add_argument("--denoiser", default=None, help="denoiser model folder (default: shipped)")
    t.add_argument("--strategy", default="default", choices=["default", "mirrored", "multiworker"])
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--max-epochs-this-run", type=int, default=None)
    t.add_argument("--init-from", type=Path, default=None, help="warm start: weights of this .keras checkpoint")
    t.add_argument("--export", type=Path, default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train_am)

    tr = sub.add_parser("transcribe", help="greedy CTC transcript of audio files")
    tr.add_argument("audio", nargs="+")
    _add_chain_args(tr, grammar=False)
    tr.set_defaults(func=cmd_transcribe)

    rc = sub.add_parser("recognize", help="pick a command or reject, one JSON line per file with --json")
    rc.add_argument("audio", nargs="+")
    _add_chain_args(rc)
    rc.set_defaults(func=cmd_recognize)

    ev = sub.add_parser("evaluate", help="MDR, MCR, FAR, accuracy per SNR on a manifest")
    ev.add_argument("--dataset", required=True, type=Path, help="manifest CSV (path,label,...)")
    ev.add_argument("--det", default=None, help="write a DET-style PNG over the threshold")
    _add_chain_args(ev)
    ev.set_defaults(func=cmd_evaluate)

    ca = sub.add_parser("calibrate", help="set the rejection threshold for a target false-alarm rate")
    ca.add_argument("--dataset", required=True, type=Path)
    ca.add_argument("--target-far", type=float, default=0.05, help="FAR on this data set (the sample quantile)")
    ca.add_argument("--max-far", type=float, default=None,
                    help="instead: keep the true FAR <= this with --confidence (a lower target on small sets)")
    ca.add_argument("--confidence", type=float, default=0.95)
    ca.add_argument("-o", "--output", required=True, type=Path)
    _add_chain_args(ca)
    ca.set_defaults(func=cmd_calibrate)

    md = sub.add_parser("make-dataset", help="synthesize a command / non-command manifest")
    md.add_argument("-o", "--output", required=True, type=Path)
    md.add_argument("--commands", default=None)
    md.add_argument("--voices", default="test", choices=["test", "train"])
    md.add_argument("--reps", type=int, default=2, help="repetitions of each command per voice")
    md.add_argument("--random", type=int, default=10, help="random word sequences per voice")
    md.add_argument("--near-miss", type=int, default=10, help="near misses per voice")
    md.add_argument("--snrs", nargs="+", default=["clean", "20", "10", "5"])
    md.add_argument("--seed", type=int, default=0)
    md.add_argument("--json", action="store_true")
    md.set_defaults(func=cmd_make_dataset)

    li = sub.add_parser("listen", help="streaming command spotting over a long recording (or a live microphone)")
    li.add_argument("input", nargs="?", default=None, help="audio file (any rate/channels libsndfile reads)")
    li.add_argument("--device", nargs="?", const="default", default=None,
                    help="listen to a live input device instead (name or index; needs the sounddevice module)")  # fmt: skip
    li.add_argument("--seconds", type=float, default=None, help="with --device: stop after this much audio "
                    "(default: until Ctrl-C)")  # fmt: skip
    li.add_argument("--window-s", type=float, default=2.0, help="decoding window in seconds (default 2.0)")
    li.add_argument("--hop-s", type=float, default=0.25, help="hop between windows, also the block size (default 0.25)")
    _add_chain_args(li)
    li.set_defaults(func=cmd_listen)

    de = sub.add_parser("demo", help="commands by a TEST-ONLY voice in babble, spotted live; WAVs, picture, index.html")
    de.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    de.add_argument("--snr", type=float, default=20.0,
                    help="speech-to-babble ratio in dB over the speech (default 20: where the shipped AM "
                         "finds most commands; at 5-10 dB it finds few, see the README)")  # fmt: skip
    de.add_argument("--seed", type=int, default=7, help="which commands, sentences and babble (default 7)")
    de.add_argument("--n-commands", type=int, default=4, choices=range(1, 9), metavar="{1..8}",
                    help="commands in the scene (default 4)")  # fmt: skip
    de.add_argument("--window-s", type=float, default=2.0, help="decoding window in seconds (default 2.0)")
    de.add_argument("--hop-s", type=float, default=0.25, help="hop between windows and block size (default 0.25)")
    _add_chain_args(de)
    de.set_defaults(func=cmd_demo)

    from grammar.augment_cli import add_parsers

    add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_tensorflow(keep_onednn=args.command == "train-am")
    return run_command("grammar", lambda: args.func(args), (GrammarError,))


if __name__ == "__main__":
    sys.exit(main())
