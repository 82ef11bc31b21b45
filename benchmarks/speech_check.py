"""The speech check: its floor and ceiling, chosen on the calibration set, and what they cost on speech.

The shipped AM was trained on speech alone and takes hum, noise and steady tones for a command
(nearly always "mute"; benchmarks/nonspeech.py). Speech rises and falls at the syllable rate; those
sounds do not. The check rejects an accepted command whose input has a modulation
(:func:`grammar.acoustic.features.speech_modulation` of the AM's features) below a floor
(``Recognizer.speech_floor``), or a tonality (:func:`grammar.acoustic.features.tonality`: the
largest share, in any second, of frames where three adjacent mel bands hold 90 % of their power)
above a ceiling (``Recognizer.tonal_ceiling``): beeps, whistles and sirens rise and fall too, but
put their power into one frequency; speech spreads it over many bands.

The rules, on the calibration set's commands that the float chain gets right at the shipped
grammar's threshold (TEST-ONLY TTS voices, seed 101, clean and in babble): the floor is two thirds
of their lowest modulation, rounded down to 0.01; the ceiling one and a half times their highest
tonality (the same margin, inverted), rounded up to 0.01. Both pass every command the chain gets
right there, with room for voices and rooms the set lacks. Nothing else is chosen here: no
non-speech sound takes part in either choice.

Reported for the float and int8 chains, at each chain's shipped threshold, with and without the
check: on the calibration and test sets (seeds 101 and 202), the natural TEST-ONLY voice and the
real phrases of benchmarks/real_commands.py (a grammar of the 8 ALSA phrases at the shipped
threshold; the two other real recordings as non-commands), the commands right, how many of them
the check rejects (and how many of those the ceiling), the non-commands accepted and how many the
check rejects, and the lowest modulation and highest tonality of a command right; and the
non-speech clips of benchmarks/nonspeech.py accepted, without the check, with its floor alone and
with both tests.
Writes benchmarks/results/speech_check.{json,md}.
Run: python benchmarks/speech_check.py [--per-kind 40] [--draws 5]
"""

from __future__ import annotations

import argparse
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
from grammar.decoding.recognizer import (  # noqa: E402
    SPEECH_FLOOR,
    TONAL_CEILING,
    Recognizer,
    default_grammar_path,
    passes_speech_check,
)
from rced.audio import atomic_write_results, load_audio  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from nonspeech import clips  # noqa: E402
from real_commands import PHRASES, trials  # noqa: E402
from recognition import datasets, natural_dataset  # noqa: E402

MARGIN = 2 / 3  # of the lowest modulation of a calibration command the chain gets right; the ceiling: 1 / MARGIN


def choose_floor(right_modulations) -> float:
    """The rule: ``MARGIN`` of the lowest modulation of the commands right, rounded down to 0.01."""
    values = np.asarray(right_modulations, np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise SystemExit("speech_check: no finite modulation of a command right to choose the floor from")
    return math.floor(MARGIN * float(values.min()) * 100 + 1e-9) / 100


def choose_ceiling(right_tonalities) -> float:
    """The rule: the highest tonality of the commands right over ``MARGIN``, rounded up to 0.01 (at most 1)."""
    values = np.asarray(right_tonalities, np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise SystemExit("speech_check: no finite tonality of a command right to choose the ceiling from")
    return min(1.0, math.ceil(float(values.max()) / MARGIN * 100 - 1e-9) / 100)


def measure(rec: Recognizer, items: list[tuple[str | None, np.ndarray, int]], grammar: Grammar, desc: str) -> list[dict]:
    """Each item's label, decision at the grammar's threshold, speech modulation and tonality."""
    out = []
    for label, audio, sr in tqdm(items, desc=desc, unit="utt"):
        d = rec.recognize(audio, sr, grammar=grammar, speech_check=False)
        out.append({"label": label, "command": d.command, "modulation": d.speech_modulation, "tonality": d.tonality})
    return out


def fails(r: dict, floor: float | None, ceiling: float | None) -> bool:
    """Whether the check with this floor and ceiling (None: no such test) rejects a measured item."""
    return not passes_speech_check(r["modulation"], r["tonality"], floor, ceiling)


def summary(rows: list[dict], floor: float, ceiling: float) -> dict:
    """Commands right and non-commands accepted, without the check, and how many the check rejects
    (of the commands right also how many the ceiling alone)."""
    right = [r for r in rows if r["label"] is not None and r["command"] == r["label"]]
    false = [r for r in rows if r["label"] is None and r["command"] is not None]
    return {"commands": sum(r["label"] is not None for r in rows), "non_commands": sum(r["label"] is None for r in rows),
            "right": len(right), "right_rejected": sum(fails(r, floor, ceiling) for r in right),
            "right_rejected_by_ceiling": sum(fails(r, None, ceiling) for r in right),
            "false_alarms": len(false), "false_alarms_rejected": sum(fails(r, floor, ceiling) for r in false),
            "lowest_right": min((r["modulation"] for r in right), default=None),
            "highest_tonality_right": max((r["tonality"] for r in right), default=None)}  # fmt: skip


def speech_sets(draws: int) -> dict[str, list[tuple[str | None, np.ndarray, int]]]:
    """(label, audio, rate) of every utterance of each speech set."""
    calib, test = datasets(2)
    sets = {}
    for name, manifest in (("calibration set", calib), ("test set", test), ("natural voice", natural_dataset(2))):
        sets[name] = [(r.label, load_audio(r.path), 16000) for r in load_manifest(manifest)]
    sets["real phrases"] = [(t["label"], t["audio"], 16000) for t in trials(draws)]
    return sets


def by_condition(rows: list[dict], conds: list[str], floor: float, ceiling: float) -> dict[str, dict]:
    """Per condition, the clips and those accepted: without the check, with its floor alone, with both tests."""

    def accepted(c: str, ceil: float | None, check: bool = True) -> int:
        return sum(r["command"] is not None and not (check and fails(r, floor, ceil))
                   for r, cc in zip(rows, conds) if cc == c)  # fmt: skip

    return {c: {"clips": conds.count(c), "accepted": accepted(c, None, check=False),
                "accepted_floor_only": accepted(c, None), "accepted_with_check": accepted(c, ceiling)}
            for c in sorted(set(conds))}  # fmt: skip


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
    right = [r for r in measured["float"]["calibration set"] if r["label"] is not None and r["command"] == r["label"]]
    floor = choose_floor([r["modulation"] for r in right])
    ceiling = choose_ceiling([r["tonality"] for r in right])
    results = {b: {name: summary(rows, floor, ceiling) for name, rows in m.items()} for b, m in measured.items()}
    conds = [r["condition"] for r in ns]
    for b, m in measured.items():  # non-speech: accepted per condition
        results[b]["non-speech clips"]["by_condition"] = by_condition(m["non-speech clips"], conds, floor, ceiling)
    payload = {"floor": floor, "shipped_floor": SPEECH_FLOOR, "ceiling": ceiling, "shipped_ceiling": TONAL_CEILING,
               "margin": MARGIN, "results": results}  # fmt: skip
    atomic_write_results(args.out, payload, markdown(payload))
    print(markdown(payload))
    return 0


def markdown(p: dict) -> str:
    def shipped(what: str, chosen: float, ships: float, name: str) -> str:
        return f"the {what} `grammar` ships" if chosen == ships else f"**not** the {what} `grammar` ships ({ships}): update {name}"

    lines = [f"The speech check (benchmarks/speech_check.py): modulation floor **{p['floor']}**, {p['margin']:.3g} of the "
             "lowest modulation among the calibration set's commands the float chain gets right, rounded down to 0.01 "
             f"({shipped('floor', p['floor'], p['shipped_floor'], 'SPEECH_FLOOR')}); tonal ceiling **{p['ceiling']}**, "
             f"their highest tonality over {p['margin']:.3g}, rounded up to 0.01 "
             f"({shipped('ceiling', p['ceiling'], p['shipped_ceiling'], 'TONAL_CEILING')}). Each chain at its shipped "
             "threshold (the real phrases: a grammar of their own at it). Commands right without the check / rejected "
             "by it (by the ceiling); non-commands accepted without it / rejected by it; the lowest modulation and "
             "the highest tonality of a command right.", "",
             "| chain | set | commands right | check rejects (ceiling) | non-commands accepted | check rejects | "
             "lowest modulation right | highest tonality right |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for b, sets in p["results"].items():
        for i, (name, s) in enumerate(sets.items()):
            low = "" if s["lowest_right"] is None else f"{s['lowest_right']:.3f}"
            high = "" if s["highest_tonality_right"] is None else f"{s['highest_tonality_right']:.3f}"
            right = "" if not s["commands"] else f"{s['right']}/{s['commands']}"
            right_rej = "" if not s["commands"] else f"{s['right_rejected']} ({s['right_rejected_by_ceiling']})"
            lines.append(f"| {b if i == 0 else ''} | {name} | {right} | {right_rej} | "
                         f"{s['false_alarms']}/{s['non_commands']} | {s['false_alarms_rejected']} | {low} | {high} |")  # fmt: skip
    lines += ["", "Non-speech clips (benchmarks/nonspeech.py's) accepted as a command, without the check -> with its "
              "floor alone -> with both tests:", ""]  # fmt: skip
    for b, sets in p["results"].items():
        cells = "; ".join(f"{c} {v['accepted']} -> {v['accepted_floor_only']} -> {v['accepted_with_check']} of {v['clips']}"
                          for c, v in sets["non-speech clips"]["by_condition"].items())  # fmt: skip
        lines.append(f"- {b}: {cells}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
