"""Non-speech sounds taken for commands: hum, noise, beeps, sweeps, clicks and simple music.

A hearing aid hears its wearer's fridge, a fan, a kettle's beep and the radio far more often than
a command; each acceptance there is a false alarm. The clips are :func:`rced.nonspeech.nonspeech_clip`
of seeds 5,000,000 on (2 s each; training's negatives draw seeds below 1,000,000), alone (clean)
and in TRAIN-voice babble at 10 dB as the recognition benchmark mixes it. Each chain decides with
the default grammar at its shipped threshold (as calibrated on the calibration set, as
``benchmarks/real_commands.py`` does for other AMs); the shipped chain's int8 device graph runs
with the grammar's int8 threshold. Reported: the share of clips accepted as some command, per kind.

Writes benchmarks/results/nonspeech.{json,md}.
Run: python benchmarks/nonspeech.py [--am FOLDER ... --label NAME ...] [--per-kind 40]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.decoding.decoder import Grammar, decode  # noqa: E402
from grammar.decoding.recognizer import Recognizer, default_grammar_path  # noqa: E402
from rced.audio import atomic_write_text  # noqa: E402
from rced.corpus import load_utterances, make_babble, mix, train_utterances  # noqa: E402
from rced.nonspeech import KINDS, nonspeech_clip  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from real_commands import shipped_threshold  # noqa: E402

SEED0 = 5_000_000
SNR = 10.0


def clips(per_kind: int) -> list[dict]:
    """Every clip, clean and in babble: {kind, condition, audio}."""
    pool = load_utterances(train_utterances(60, 4323), desc="babble")
    rng = np.random.default_rng(SEED0)
    out = []
    for k, kind in enumerate(KINDS):
        for i in range(per_kind):
            x, _ = nonspeech_clip(SEED0 + 1000 * k + i, kind=kind)
            out.append({"kind": kind, "condition": "clean", "audio": x})
            out.append({"kind": kind, "condition": f"{SNR:g} dB babble",
                        "audio": mix(x, make_babble(len(x), pool, rng), SNR)})  # fmt: skip
    return out


def accepted(rec: Recognizer, rows: list[dict], grammar: Grammar) -> list[str | None]:
    return [decode(rec.posteriors(r["audio"], 16000, r["kind"]), grammar).command for r in rows]


def table(rows: list[dict], preds: list[str | None]) -> dict:
    """Share accepted per kind and condition, overall, and the commands they were taken for."""
    out: dict = {}
    for cond in sorted({r["condition"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["condition"] == cond]
        out[cond] = {kind: float(np.mean([preds[i] is not None for i in idx if rows[i]["kind"] == kind]))
                     for kind in KINDS}  # fmt: skip
        out[cond]["all"] = float(np.mean([preds[i] is not None for i in idx]))
    taken = [p for p in preds if p is not None]
    out["taken_for"] = {c: taken.count(c) for c in sorted(set(taken), key=lambda c: -taken.count(c))}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--am", nargs="+", default=None, help="acoustic-model folders to compare (default: the shipped chain)")
    ap.add_argument("--label", nargs="+", default=None, help="a name per folder")
    ap.add_argument("--per-kind", type=int, default=40, help="clips of each kind")
    ap.add_argument("--max-far", type=float, default=0.10, help="FAR bound of the thresholds of --am folders")
    ap.add_argument("--out", default=str(ROOT / "results" / "nonspeech"))
    args = ap.parse_args(argv)
    rows = clips(args.per_kind)
    results = {}
    g = Grammar.load(default_grammar_path())
    if args.am is None:
        for backend in ("float", "int8"):
            rec = Recognizer.load(backend=backend, grammar=False)
            results[f"stapes {backend}"] = table(rows, accepted(rec, rows, g.for_backend(backend)))
            print(backend, results[f"stapes {backend}"], flush=True)
    else:
        names = args.label or [Path(a).name for a in args.am]
        if len(names) != len(args.am):
            ap.error(f"{len(args.am)} folders but {len(names)} labels")
        for name, folder in zip(names, args.am):
            rec = Recognizer.load(folder, grammar=False)
            thr = shipped_threshold(rec, g.score_kind, args.max_far)
            base = Grammar.from_commands(load_commands(default_commands_path()), thr, score_kind=g.score_kind,
                                         units=rec.config.unit_set.name)  # fmt: skip
            results[name] = table(rows, accepted(rec, rows, base))
            print(name, results[name], flush=True)
    conds = sorted({r["condition"] for r in rows})
    payload = {"per_kind": args.per_kind, "kinds": list(KINDS), "seconds": 2.0, "seed0": SEED0, "results": results}
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(payload, indent=1) + "\n")
    md = [f"Non-speech sounds (benchmarks/nonspeech.py): {args.per_kind} clips of 2 s of each kind "
          f"({', '.join(KINDS)}; rced.nonspeech, seeds no training drew), clean and in TRAIN-voice babble at "
          f"{SNR:g} dB; the share the default grammar accepts as some command, at each chain's shipped threshold.",
          "", "| chain | condition | " + " | ".join(KINDS) + " | all | taken for |",
          "|---|---|" + "---|" * (len(KINDS) + 2)]  # fmt: skip
    for name, t in results.items():
        top = ", ".join(f"{c} {n}" for c, n in list(t["taken_for"].items())[:3]) or "-"
        for i, cond in enumerate(conds):
            cells = " | ".join(f"{t[cond][k]:.0%}" for k in (*KINDS, "all"))
            md.append(f"| {name if i == 0 else ''} | {cond} | {cells} | {top if i == 0 else ''} |")
    atomic_write_text(out.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
