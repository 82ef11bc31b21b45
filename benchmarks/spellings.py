"""Doubled letters spelled once: which doubled letters a character grammar also spells single.

A CTC model emits two equal labels in a row only with a blank between them. For a short, weak
sound such as the f of "off" the default AM seldom gives one: it writes "of", and the grammar,
which must explain a second f, prefers "on". Three spellings of the default commands are
measured, the rest of the chain as shipped:

- as written (one expression per command);
- "f" once: "noise reduction of" and "turn of the lights" beside the commands (what
  :data:`grammar.units.SPELLED_ONCE` ships);
- every doubled letter once ("batery level", "cal home", "open the dor", ...).

Isolated commands (``recognition.py``'s sets, the float chain with its denoiser): each spelling's
threshold is calibrated on the calibration set's non-commands as ``recognition.py`` does, then
counted on the TEST-ONLY TTS voices and the natural voice. Spotting (``spotting.py``'s streams):
``grammar listen``'s window length, one threshold or per-command thresholds, the lever and its
setting chosen on the development streams for each spelling by ``spotting.py``'s rule, counted
on the dev and test streams. The spelling to ship is the one the rule puts first on the dev
streams; nothing is chosen on a test set.

Writes benchmarks/results/spellings.{json,md}.
Run: python benchmarks/spellings.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import string
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from recognition import best_and_scores, datasets, natural_dataset  # noqa: E402
from spotting import DEV_SPLITS, LEVERS, Runs, describe, lever_rows, load_streams, rule_key  # noqa: E402

from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.dataset import load_manifest, n_independent  # noqa: E402
from grammar.decoding.decoder import Grammar, calibrate_threshold, far_target_for_bound  # noqa: E402
from grammar.decoding.listen import LISTEN_WINDOW_S  # noqa: E402
from grammar.decoding.recognizer import Recognizer  # noqa: E402
from grammar.metrics import metrics_by_group  # noqa: E402
from grammar.units import SPELLED_ONCE  # noqa: E402
from rced.audio import atomic_write_results  # noqa: E402

SPELLINGS = {"as written": "", '"f" once': "f", "every doubled letter once": string.ascii_lowercase}


def recognition_rows(grammar: Grammar, max_far: float) -> dict:
    """Threshold calibrated on the calibration set's non-commands; accuracy / MDR / MCR / FAR on the
    test set's TTS voices and the natural voice (the float chain, posteriors cached)."""
    rec = Recognizer.load(grammar=grammar)
    calib_m, test_m = datasets(2)
    cal_nc = [r for r in load_manifest(calib_m) if r.label is None]
    _, cal_scores = best_and_scores(rec, cal_nc, grammar, "calib_nc")
    thr = calibrate_threshold(cal_scores, far_target_for_bound(max_far, n_independent(cal_nc)))
    out: dict = {"threshold": round(float(thr), 4)}
    for name, rows, tag in (("TTS voices", load_manifest(test_m), "test"),
                            ("natural voice", load_manifest(natural_dataset(2)), "natural")):  # fmt: skip
        best, scores = best_and_scores(rec, rows, grammar, tag)
        preds = [b if s >= thr else None for b, s in zip(best, scores, strict=True)]
        m = metrics_by_group([r.label for r in rows], preds, [None] * len(rows))["all"]
        out[name] = {k: round(float(m[k]), 4) for k in ("accuracy", "mdr", "mcr", "far")}
    return out


def spotting_rows(runs0: Runs, grammar: Grammar) -> dict:
    """``grammar listen``'s window length with this grammar's expressions (the chains keep their
    thresholds): its levers (one threshold, per-command thresholds) each with its setting chosen on
    the dev streams, the one the rule puts first counted on every stream."""
    grammars = {n: dataclasses.replace(g, expressions=grammar.expressions, command_of=grammar.command_of)
                for n, g in runs0.grammars.items()}  # fmt: skip
    runs = runs0.with_grammars(grammars)
    levers = {k: v for k, v in LEVERS.items() if v[0] == LISTEN_WINDOW_S and not v[1] and not v[2]}
    rows, best, _ = lever_rows(runs, levers)
    if best is None:
        return {"lever": None, "chosen": None}
    row = rows[best]
    return {"lever": best, "rule": list(rule_key({st: row[st] for st in DEV_SPLITS})), **row}


def first_by_rule(spellings: dict) -> str | None:
    """The spelling whose spotter the rule puts first on the dev streams (its ``rule`` key: commands
    found, minus false alarms); ties: the first in ``spellings``; None where none met the rule."""
    ranked = [(tuple(r["spotting"]["rule"]), -i, name) for i, (name, r) in enumerate(spellings.items())
              if r["spotting"]["chosen"] is not None]  # fmt: skip
    return max(ranked)[2] if ranked else None


def markdown(payload: dict) -> str:
    rows = payload["spellings"]
    lines = ["Doubled letters spelled once (`benchmarks/spellings.py`). Isolated commands: the float chain, its "
             "threshold calibrated per spelling on the calibration set's non-commands (FAR bound "
             f"{payload['max_far']:.0%}), on the TEST-ONLY TTS voices and the natural voice; accuracy / "
             f"misclassified / FAR. Spotting: `grammar listen`'s {payload['window_s']:g}-s windows, one threshold or per-command "
             "thresholds, the lever and its setting chosen per spelling on the development streams by `spotting.py`'s rule; dev: commands "
             "found, each stream on its worse chain (conversation + scenes); test conversation (95 commands, "
             "10 dB): found / misclassified / false alarms per hour.", "",
             "| spelling | expressions | threshold | TTS voices | natural voice | chosen on dev | dev found | "
             "test float | test int8 | natural voice, float |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in rows.items():
        rec, sp = r["recognition"], r["spotting"]
        cells = [f"{rec[k]['accuracy']:.3f} / {rec[k]['mcr']:.3f} / {rec[k]['far']:.3f}" for k in ("TTS voices", "natural voice")]
        if sp["chosen"] is None:
            spot = ["no setting met the rule", "-", "-", "-", "-"]
        else:
            dev = [min(sp[st][n]["found"] for n in sp[st]) for st in ("dev", "dev scenes")]
            t = sp["test"]
            lam = f", lambda {sp['per_command']['lambda']:g}" if "per_command" in sp else ""
            spot = [f"{sp['lever']}: {describe(tuple(sp['chosen']))}{lam}", f"{dev[0]} + {dev[1]} = {sum(dev)}",
                    *(f"{t[n]['found']}/{t[n]['n_commands']}, {t[n]['misclassified']}, {t[n]['false_alarms_per_hour']:.1f}"
                      for n in ("float", "int8")),
                    f"{t['float']['natural_found']}/{t['float']['natural_commands']}"]  # fmt: skip
        lines.append(f"| {name} | {r['n_expressions']} | {rec['threshold']:.3f} | " + " | ".join(cells + spot) + " |")
    first = payload["chosen_on_dev"]
    shipped = next((n for n, once in SPELLINGS.items() if once == SPELLED_ONCE), repr(SPELLED_ONCE))
    lines += ["", f"The rule puts first on the development streams: {first}; `grammar.units.SPELLED_ONCE` ships "
              f"{shipped}" + ("." if first == shipped else ": update it.")]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-far", type=float, default=0.10, help="FAR bound of the isolated-command thresholds")
    ap.add_argument("--out", default=str(ROOT / "results" / "spellings"))
    args = ap.parse_args(argv)
    t0 = time.time()
    _, _, _, _, runs0 = load_streams()
    shipped = Recognizer.load().grammar
    commands = load_commands(default_commands_path())
    out: dict = {}
    for name, once in SPELLINGS.items():
        g = Grammar.from_commands(commands, score_kind=shipped.score_kind, once=once)
        out[name] = {"once": once, "n_expressions": len(g.expressions),
                     "recognition": recognition_rows(g, args.max_far), "spotting": spotting_rows(runs0, g)}  # fmt: skip
        print(name, json.dumps(out[name]["recognition"]), out[name]["spotting"].get("rule"), flush=True)
    first = first_by_rule(out)
    payload = {"max_far": args.max_far, "window_s": LISTEN_WINDOW_S, "spellings": out, "chosen_on_dev": first,
               "seconds": round(time.time() - t0, 1)}  # fmt: skip
    md = markdown(payload)
    atomic_write_results(args.out, payload, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
