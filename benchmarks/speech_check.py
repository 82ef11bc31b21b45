"""The speech check: its floor, chosen on the calibration set, and what it costs on speech.

The shipped AM was trained on speech alone and takes hum, noise and steady tones for a command
(nearly always "mute"; benchmarks/nonspeech.py). Speech rises and falls at the syllable rate; those
sounds do not. The check (``Recognizer.speech_floor``) rejects an accepted command whose input has
a modulation (:func:`grammar.acoustic.features.speech_modulation` of the AM's features) below a floor.

The rule: two thirds of the lowest modulation among the calibration set's commands that the float
chain gets right at the shipped grammar's threshold (TEST-ONLY TTS voices, seed 101, clean and in
babble), rounded down to 0.01: below every command the chain gets right there, with room for
voices and rooms the set lacks. Nothing else is chosen here.

Reported for the float and int8 chains, at each chain's shipped threshold, with and without the
check: on the calibration and test sets (seeds 101 and 202), the natural TEST-ONLY voice and the
real phrases of benchmarks/real_commands.py (a grammar of the 8 ALSA phrases at the shipped
threshold; the two other real recordings as non-commands), the commands right, how many of them
the check rejects, the non-commands accepted and how many the check rejects, and the lowest
modulation of a command right; and the non-speech clips of benchmarks/nonspeech.py accepted.
Writes benchmarks/results/speech_check.{json,md}.
Run: python benchmarks/speech_check.py [--per-kind 40] [--draws 5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from grammar.dataset import load_manifest  # noqa: E402
from grammar.decoding.decoder import Grammar  # noqa: E402
from grammar.decoding.recognizer import SPEECH_FLOOR, Recognizer, default_grammar_path  # noqa: E402
from rced.audio import atomic_write_text, load_audio  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from nonspeech import clips  # noqa: E402
from real_commands import PHRASES, trials  # noqa: E402
from recognition import datasets, natural_dataset  # noqa: E402

MARGIN = 2 / 3  # of the lowest modulation of a calibration command the chain gets right


def choose_floor(right_modulations) -> float:
    """The rule: ``MARGIN`` of the lowest modulation of the commands right, rounded down to 0.01."""
    values = np.asarray(right_modulations, np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise SystemExit("speech_check: no finite modulation of a command right to choose the floor from")
    return math.floor(MARGIN * float(values.min()) * 100 + 1e-9) / 100


def measure(rec: Recognizer, items: list[tuple[str | None, np.ndarray, int]], grammar: Grammar, desc: str) -> list[dict]:
    """Each item's label, decision at the grammar's threshold and speech modulation."""
    out = []
    for label, audio, sr in tqdm(items, desc=desc, unit="utt"):
        d = rec.recognize(audio, sr, grammar=grammar, speech_check=False)
        out.append({"label": label, "command": d.command, "modulation": d.speech_modulation})
    return out


def summary(rows: list[dict], floor: float) -> dict:
    """Commands right and non-commands accepted, without the check and how many the floor rejects."""
    right = [r for r in rows if r["label"] is not None and r["command"] == r["label"]]
    false = [r for r in rows if r["label"] is None and r["command"] is not None]
    return {"commands": sum(r["label"] is not None for r in rows), "non_commands": sum(r["label"] is None for r in rows),
            "right": len(right), "right_rejected": sum(r["modulation"] < floor for r in right),
            "false_alarms": len(false), "false_alarms_rejected": sum(r["modulation"] < floor for r in false),
            "lowest_right": min((r["modulation"] for r in right), default=None)}  # fmt: skip


def speech_sets(draws: int) -> dict[str, list[tuple[str | None, np.ndarray, int]]]:
    """(label, audio, rate) of every utterance of each speech set."""
    calib, test = datasets(2)
    sets = {}
    for name, manifest in (("calibration set", calib), ("test set", test), ("natural voice", natural_dataset(2))):
        sets[name] = [(r.label, load_audio(r.path), 16000) for r in load_manifest(manifest)]
    sets["real phrases"] = [(t["label"], t["audio"], 16000) for t in trials(draws)]
    return sets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=40, help="non-speech clips of each kind (benchmarks/nonspeech.py)")
    ap.add_argument("--draws", type=int, default=5, help="babble draws per real recording and condition")
    ap.add_argument("--out", default=str(ROOT / "results" / "speech_check"))
    args = ap.parse_args(argv)
    shipped = Grammar.load(default_grammar_path())
    sets = speech_sets(args.draws)
    ns = clips(args.per_kind)
    sets["non-speech clips"] = [(None, r["audio"], 16000) for r in ns]
    measured: dict[str, dict[str, list[dict]]] = {}
    for backend in ("float", "int8"):
        rec = Recognizer.load(backend=backend, grammar=False)
        g = shipped.for_backend(backend)
        phrases = Grammar.from_commands(PHRASES, g.threshold, score_kind=g.score_kind, units=g.units)
        measured[backend] = {name: measure(rec, items, phrases if name == "real phrases" else g, f"{backend}: {name}")
                             for name, items in sets.items()}  # fmt: skip
    floor = choose_floor([r["modulation"] for r in measured["float"]["calibration set"]
                          if r["label"] is not None and r["command"] == r["label"]])  # fmt: skip
    results = {b: {name: summary(rows, floor) for name, rows in m.items()} for b, m in measured.items()}
    for b, m in measured.items():  # non-speech: accepted per condition
        conds = [r["condition"] for r in ns]
        results[b]["non-speech clips"]["by_condition"] = {
            c: {"clips": conds.count(c),
                "accepted": sum(r["command"] is not None for r, cc in zip(m["non-speech clips"], conds) if cc == c),
                "accepted_with_check": sum(r["command"] is not None and r["modulation"] >= floor
                                           for r, cc in zip(m["non-speech clips"], conds) if cc == c)}
            for c in sorted(set(conds))}  # fmt: skip
    payload = {"floor": floor, "shipped_floor": SPEECH_FLOOR, "margin": MARGIN, "results": results}
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(payload, indent=1) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(payload))
    print(markdown(payload))
    return 0


def markdown(p: dict) -> str:
    shipped = "the floor `grammar` ships" if p["floor"] == p["shipped_floor"] else \
        f"**not** the floor `grammar` ships ({p['shipped_floor']}): update SPEECH_FLOOR"  # fmt: skip
    lines = [f"The speech check (benchmarks/speech_check.py): floor **{p['floor']}**, {p['margin']:.3g} of the lowest "
             "modulation among the calibration set's commands the float chain gets right, rounded down to 0.01; "
             f"{shipped}. Each chain at its shipped threshold (the real phrases: a grammar of their own at it). "
             "Commands right without the check / rejected by it; non-commands accepted without it / rejected by it; "
             "the lowest modulation of a command right.", "",
             "| chain | set | commands right | check rejects | non-commands accepted | check rejects | lowest right |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for b, sets in p["results"].items():
        for i, (name, s) in enumerate(sets.items()):
            low = "" if s["lowest_right"] is None else f"{s['lowest_right']:.3f}"
            right = "" if not s["commands"] else f"{s['right']}/{s['commands']}"
            right_rej = "" if not s["commands"] else str(s["right_rejected"])
            lines.append(f"| {b if i == 0 else ''} | {name} | {right} | {right_rej} | "
                         f"{s['false_alarms']}/{s['non_commands']} | {s['false_alarms_rejected']} | {low} |")  # fmt: skip
    lines += ["", "Non-speech clips (benchmarks/nonspeech.py's) accepted as a command, without / with the check:", ""]
    for b, sets in p["results"].items():
        cells = "; ".join(f"{c} {v['accepted']}/{v['clips']} -> {v['accepted_with_check']}/{v['clips']}"
                          for c, v in sets["non-speech clips"]["by_condition"].items())  # fmt: skip
        lines.append(f"- {b}: {cells}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
