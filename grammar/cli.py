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
from rced.errors import RcedError


def _emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    print(json.dumps(payload) if getattr(args, "json", False) else text, flush=True)


def cmd_train_am(args: argparse.Namespace) -> int:
    from grammar.config import AMConfig, AMTrainConfig
    from grammar.train_am import AMTrainer
    from rced.cli import _set_threads

    _set_threads(args.threads)
    cfg = AMTrainConfig(am=AMConfig(channels=args.channels, blocks=args.blocks), batch_utts=args.batch_utts,
                        steps_per_epoch=args.steps_per_epoch, epochs=args.epochs, learning_rate=args.lr,
                        seed=args.seed)  # fmt: skip
    trainer = AMTrainer(args.run_dir, cfg, utt_seeds=tuple(args.utt_seeds), n_utts=args.utterances,
                        denoiser_path=args.denoiser, strategy=args.strategy)  # fmt: skip
    state = trainer.run(max_epochs_this_run=args.max_epochs_this_run, verbose=0 if args.json else 1)
    out = None
    if state["epochs_done"] >= trainer.cfg.epochs:
        out = str(trainer.export(args.export or Path(args.run_dir) / "model"))
    _emit(args, {"run_dir": str(args.run_dir), **state, "exported": out},
          f"{state['epochs_done']}/{trainer.cfg.epochs} epochs done; best val loss {state['best_val']}"
          + (f"; model written to {out}" if out else "; run again to resume"))  # fmt: skip
    return 0


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
    t.add_argument("--export", type=Path, default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train_am)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_tensorflow(keep_onednn=args.command == "train-am")
    try:
        return args.func(args)
    except (GrammarError, RcedError) as exc:
        print(f"grammar: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grammar: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
