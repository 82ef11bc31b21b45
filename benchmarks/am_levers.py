"""Acoustic-model levers, measured one at a time: AMs compared on the calibration set, the natural voice and real speech.

For each AM folder: the default commands spelled in the AM's units (``Grammar.from_commands(...,
units=)``: the text for characters, every cmudict pronunciation for phonemes), the threshold set on
the calibration set's non-commands to FAR <= ``--max-far`` (5 %), then the share of its commands
right: the number issue 17 ships by (e.g. characters against phonemes). At the same threshold, for
information only (nothing is chosen or calibrated on them): the natural TEST-ONLY voice's test set,
and the real phrases of ``real_commands.py`` (ALSA's speaker test, clean and in babble, with the
two other real recordings as non-commands) under a grammar of their own.
``--rooms``: also the calibration set's clean rows heard in simulated rooms, quiet and in 10 dB babble
(:func:`rooms.heard`: ``rooms.N_ROOMS`` rooms of ``CALIBRATION_ROOM_SEED``, which neither training nor
benchmarks/rooms.py draws), at each AM's threshold from the dry set, with the paired count against the
first row on the same room commands: what an AM chosen for rooms is chosen by (benchmarks/LEVERS.md,
"Rooms for the stage-6 AM").
Data: the calibration set of benchmarks/recognition.py (TEST-ONLY voices, seed 101) behind the
shipped denoiser, at each AM's own input mask floor.
Writes ``--out`` .json and .md (benchmarks/results/units: output units; results/voices: training voices).
An entry ``A+B`` is the ensemble of folders A and B (:class:`recognition.Ensemble`, the mean of their
posteriors frame by frame): how much a teacher made of AMs already trained would know.
Run: python benchmarks/am_levers.py --am grammar/default_am runs/am_phones [--label NAME ...] --out ...
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from grammar.commands import default_commands_path, load_commands  # noqa: E402
from grammar.dataset import load_manifest  # noqa: E402
from grammar.decoding.decoder import Grammar, calibrate_threshold, decode  # noqa: E402
from grammar.decoding.recognizer import Recognizer  # noqa: E402
from grammar.metrics import beats, discordant  # noqa: E402
from rced.audio import atomic_write_results, load_audio  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from real_commands import PHRASES, decide, trials  # noqa: E402
from recognition import Ensemble, accuracy_at, best_and_scores, datasets, natural_dataset  # noqa: E402
from rooms import heard, rooms_and_babble, score  # noqa: E402

#: rooms of the calibration set's room rows: a seed of their own (rooms.py's test rooms are 8,080,808)
CALIBRATION_ROOM_SEED = 7_070_707


def real_speech(rec: Recognizer | Ensemble, threshold: float, score_kind: str, real: list[dict]) -> dict:
    """Accuracy on the real phrases under a grammar of their own at ``threshold``, and the share of
    the other real recordings' trials accepted."""
    g, dec = decide(rec, real, threshold, score_kind)
    cmd = [r["label"] is not None for r in real]
    return {"accuracy": float(np.mean([d.command == r["label"] for d, r, c in zip(dec, real, cmd) if c])),
            "far": float(np.mean([d.accepted for d, c in zip(dec, cmd) if not c])),
            "accuracy_no_rejection": float(np.mean([g.commands[g.command_of[d.expression]] == r["label"]
                                                    for d, r, c in zip(dec, real, cmd) if c])),
            "n_commands": int(sum(cmd)), "n_non_commands": int(len(cmd) - sum(cmd))}  # fmt: skip


def room_rows(calib) -> list[dict]:
    """The calibration set's clean rows heard in rooms, quiet and in babble (:func:`rooms.heard`; the dry
    rows left out: the dry set is measured whole)."""
    rooms, pool = rooms_and_babble(CALIBRATION_ROOM_SEED, 4325)
    items = [(r.label, load_audio(r.path)) for r in calib if r.extra.get("snr") == "clean"]
    return [r for r in heard(items, rooms, pool, CALIBRATION_ROOM_SEED + 10) if r["condition"] != "dry"]


def in_rooms_measure(rec: Recognizer | Ensemble, grammar: Grammar, rows: list[dict], threshold: float) -> dict:
    """Per room condition at ``threshold`` (:func:`rooms.score`), and which room commands are right,
    in the rows' order (the paired comparison's outcomes: every AM hears the same rows)."""
    open_g = grammar.with_threshold(-np.inf)
    decided = [(d.command, d.score) for d in (decode(rec.posteriors(r["audio"], 16000, "room"), open_g) for r in rows)]
    right = [c == r["label"] and s >= threshold for r, (c, s) in zip(rows, decided) if r["label"] is not None]
    return {"conditions": score(rows, decided, threshold), "right": right}


def posterior_tag(name: str) -> str:
    """The posterior-cache tag of a data set (one per set, whatever the AM: the cache key adds the chain)."""
    return f"units_{name}"


def ensemble_losses(ens: Ensemble, grammar: Grammar, rows, mixed: list[str]) -> dict[str, int]:
    """What the ensemble decodes (``mixed``, no rejection) the calibration commands that every member
    gets right and it does not: where averaging the posteriors loses."""
    each = [best_and_scores(m, rows, grammar, posterior_tag("calibration"))[0] for m in ens.members]
    lost = Counter(e for i, (e, r) in enumerate(zip(mixed, rows)) if r.label is not None and e != r.label
                   and all(b[i] == r.label for b in each))  # fmt: skip
    return dict(lost.most_common())


def measure(rec: Recognizer | Ensemble, grammar: Grammar, calib, natural,
            max_far: float) -> tuple[dict, dict, np.ndarray]:  # fmt: skip
    """Calibration accuracy at FAR <= max_far (threshold from its non-commands), and the natural set's at
    it; beside them each set's best commands (no rejection), and which calibration commands are right."""
    out, bests = {}, {}
    thr = right = None
    for name, rows in (("calibration", calib), ("natural", natural)):
        best, scores = best_and_scores(rec, rows, grammar, posterior_tag(name))
        bests[name] = best
        is_cmd = np.array([r.label is not None for r in rows])
        ok = np.array([b == r.label for b, r in zip(best, rows, strict=True)])
        if thr is None:
            thr = calibrate_threshold(scores[~is_cmd], max_far)
            right = ok[is_cmd] & (np.asarray(scores)[is_cmd] >= thr)
        out[name] = accuracy_at(ok, scores, is_cmd, thr)
    out["threshold"] = float(thr)
    return out, bests, right


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--am", nargs="+", required=True,
                    help="acoustic-model folders to compare; A+B+...: the mean of their posteriors (an ensemble)")
    ap.add_argument("--label", nargs="+", default=None, help="a name per folder (default: the folder's)")
    ap.add_argument("--denoiser", default=None, help="denoiser folder (default: the shipped one)")
    ap.add_argument("--max-far", type=float, default=0.05, help="FAR the threshold keeps on the calibration set")
    ap.add_argument("--score-kind", default="len_margin")
    ap.add_argument("--out", required=True, help="results path without suffix, e.g. benchmarks/results/units")
    ap.add_argument("--rooms", action="store_true", help="also the calibration set heard in simulated rooms")
    args = ap.parse_args(argv)
    labels = args.label or [Path(a).name for a in args.am]
    if len(labels) != len(args.am):
        ap.error(f"{len(args.am)} folders but {len(labels)} labels")

    commands = load_commands(default_commands_path())
    calib = load_manifest(datasets(2)[0])
    natural = load_manifest(natural_dataset(2))
    real = trials(5)
    rooms = room_rows(calib) if args.rooms else None
    results, first_right, first_room = [], None, None
    for label, folder in zip(labels, args.am, strict=True):
        members = [Recognizer.load(f, denoiser=args.denoiser, grammar=False) for f in folder.split("+")]
        rec = members[0] if len(members) == 1 else Ensemble(members)
        grammar = Grammar.from_commands(commands, score_kind=args.score_kind, units=rec.config.unit_set.name)
        measured, bests, right = measure(rec, grammar, calib, natural, args.max_far)
        r = {"label": label, "am": str(folder), "units": rec.config.unit_set.name,
             "expressions": len(grammar.expressions), **measured}  # fmt: skip
        if not results:
            first_right = right
        b, c = discordant(right, first_right)  # against the first row, on the same calibration commands
        r["against_first"] = {"only_this": b, "only_first": c, "beats": bool(beats(right, first_right))}
        r["real"] = real_speech(rec, r["threshold"], args.score_kind, real)
        if rooms is not None:
            measured_rooms = in_rooms_measure(rec, grammar, rooms, r["threshold"])
            if first_room is None:
                first_room = measured_rooms["right"]
            b, c = discordant(measured_rooms["right"], first_room)
            r["rooms"] = {**measured_rooms["conditions"], "against_first": {
                "only_this": b, "only_first": c, "beats": bool(beats(measured_rooms["right"], first_room)),
                "worse": bool(beats(first_room, measured_rooms["right"]))}}  # fmt: skip
        if isinstance(rec, Ensemble):
            r["ensemble_losses"] = ensemble_losses(rec, grammar, calib, bests["calibration"])
        results.append(r)
        print(label, {k: r[k]["accuracy"] for k in ("calibration", "natural", "real")}, flush=True)
    best = max(results, key=lambda r: r["calibration"]["accuracy"])["label"]
    winners = [r["label"] for r in results if r["against_first"]["beats"]]
    payload = {"data": "calibration set of benchmarks/recognition.py (TEST-ONLY voices, seed 101); natural "
                       "TEST-ONLY voice test set (hibari heart, seed 202) and the real phrases of "
                       "real_commands.py, information only",
               "max_far": args.max_far, "score_kind": args.score_kind, "chosen": best,
               "beat_first_row": winners, "results": results}  # fmt: skip
    c0, n0, r0 = (results[0][k] for k in ("calibration", "natural", "real"))
    md = [f"AMs on the calibration set ({c0['n_commands']} commands, {c0['n_non_commands']} non-commands; TEST-ONLY "
          f"voices, seed 101): threshold per AM at FAR <= {args.max_far:.0%} on its non-commands, commands right at "
          f"it. At the same threshold, not used for any choice: the natural voice (hibari `heart`, "
          f"{n0['n_commands']} commands, {n0['n_non_commands']} non-commands) and real speech (a grammar of the "
          f"{len(PHRASES)} ALSA speaker-test phrases: {r0['n_commands']} trials, clean and in babble at 20/10/5 dB; "
          f"{r0['n_non_commands']} trials of the two other real recordings as non-commands). "
          f"More commands right on the calibration set: **{best}**. Beyond chance against the first row "
          f"(McNemar's paired test at 5 % on the calibration commands only one of the two gets right, "
          f"b : c): {', '.join(winners) or 'none'}.", "",
          "| AM | units | calibration: accuracy | FAR | no rejection | b : c | natural voice: accuracy | FAR | "
          "no rejection | real phrases: accuracy | FAR | no rejection |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        cells = [f"{r[k][m]:.3f}" for k in ("calibration", "natural", "real")
                 for m in ("accuracy", "far", "accuracy_no_rejection")]  # fmt: skip
        a = r["against_first"]
        cells.insert(3, "" if r is results[0] else f"{a['only_this']} : {a['only_first']}")
        md.append(f"| {r['label']} | {r['units']} | " + " | ".join(cells) + " |")
    if rooms is not None:
        conds = [c for c in results[0]["rooms"] if c != "against_first"]
        md += ["", f"The calibration set's clean rows in simulated rooms (seed {CALIBRATION_ROOM_SEED:,}; RT60 "
                   f"0.2-0.7 s, talker 0.5-3 m away), quiet and with babble in the same rooms at 10 dB, at each AM's "
                   f"threshold from the dry set; b : c against the first row on the same room commands (McNemar "
                   f"at 5 %).", "",
               "| AM | " + " | ".join(f"{c}: accuracy | FAR" for c in conds) + " | b : c | beyond chance |",
               "|---|" + "---|---|" * len(conds) + "---|---|"]  # fmt: skip
        for r in results:
            a = r["rooms"]["against_first"]
            cells = [f"{v:.3f}" if v is not None else "" for c in conds for v in (r["rooms"][c]["accuracy"], r["rooms"][c]["far"])]
            bc = "" if r is results[0] else f"{a['only_this']} : {a['only_first']}"
            verdict = "better" if a["beats"] else "worse" if a["worse"] else ""
            md.append(f"| {r['label']} | " + " | ".join(cells) + f" | {bc} | {verdict} |")
    lost = [r for r in results if "ensemble_losses" in r]
    if lost:
        md += ["", "Ensembles: calibration commands that every member decodes right and the ensemble does not "
                   "(no rejection), by what the ensemble takes them for:", ""]  # fmt: skip
        md += [f"- {r['label']}: {sum(r['ensemble_losses'].values())} "
               f"({', '.join(f'{c} {n}' for c, n in r['ensemble_losses'].items())})" for r in lost]  # fmt: skip
    atomic_write_results(args.out, payload, md, indent=2)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
