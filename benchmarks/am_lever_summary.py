"""What each acoustic-model training lever gained, one row a lever, read from the am_levers tables.

It measures nothing itself: each row names a result file of ``benchmarks/am_levers.py``, the
candidate's row and the row it is measured against (the AM shipped at the time, or a control
trained beside it), and gives the difference in points of commands right at the calibrated
threshold on the calibration set (the rule that ships an AM), the natural voice and the real
phrases, with the counts behind them. The runs are described in ``benchmarks/LEVERS.md``.
Writes benchmarks/results/am_lever_summary.{json,md}.
Run: python benchmarks/am_lever_summary.py
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT))
from targets import load  # noqa: E402

SETS = ("calibration", "natural", "real")


@dataclasses.dataclass(frozen=True)
class Lever:
    """One lever: the candidate ``row`` of ``table`` against its ``base`` row, and what became of it."""

    what: str
    table: str
    row: str
    base: str
    shipped: str


LEVERS = (
    Lever("phoneme output units (a new head, 399 steps)", "units", "phonemes (new head), +399 steps",
          "characters, +399 steps", "no: characters stay (a fair test is two AMs from scratch)"),
    Lever("Kokoro-82M speakers in the data (25 min)", "voices", "3,000 + 1,500 Kokoro, 25 min",
          "control: 4,500 TRAIN-voice utterances, 25 min", "yes, trained longer (stage 4)"),
    Lever("SVOX Pico voices in the data (30 min)", "voices", "3,000 + 1,500 SVOX Pico, 30 min",
          "control: 4,500 TRAIN-voice utterances, 30 min", "in every later pack"),
    Lever("the Kokoro run longer (38 min), merged at 0.3", "am_update", "merge, alpha 0.3",
          "AM shipped before (e10bd08)", "yes (stage 4)"),
    Lever("half the speech in simulated rooms (40 min)", "am_rooms",
          "rooms: + seed-6 utterances, half in rooms, 40 min", "control: + seed-6 utterances, dry, 40 min",
          "no: no candidate beat the shipped AM"),
    Lever("commands in the training texts, with Kokoro (42 min)", "am_commands", "commands + Kokoro data, 42 min",
          "shipped AM", "no: the real phrases went down"),
    Lever("7x faster CPU steps: 85 min (6,838 steps), merged at 0.5", "am_longer", "A merged at 0.5",
          "shipped AM (71b0289)", "yes (stage 5)"),
    Lever("100 more minutes of the same, merged at 0.5", "am_stage6", "A merged 0.5", "stage 5 (shipped)", "no"),
    Lever("non-speech negatives from the start, merged at 0.5", "am_stage7", "C1 merged 0.5", "stage 5 (shipped)",
          "no: real speech's scores fall"),
    Lever("an ensemble of two fine-tunes (mean posteriors; no training)", "am_ensemble", "stage 5 + A",
          "stage 5 (shipped)", "no: not a teacher"),
    Lever("fine-tuned behind today's denoiser, merged at 0.5", "am_newmask", "merged at 0.5", "shipped AM",
          "no: within the spread"),
    Lever("two level trackers of its bands, merged at 0.5", "am_trackers", "trackers, merged at 0.5", "shipped AM",
          "yes (stage 6, shipped now)"),
    Lever("a third, slower tracker, merged at 0.5", "am_long_tracker", "third tracker, merged at 0.5",
          "stage 6 (shipped)", "no"),
    Lever("stage 6 distilled from itself, merged at 0.5", "am_self_distill", "that run merged with stage 6 at 0.5",
          "stage 6 (shipped)", "no"),
    Lever("60 % of the speech in rooms, two runs averaged, merged at 0.5", "am_rooms6",
          "their average merged with stage 6 at 0.5", "stage 6 (shipped)",
          "no: the room gain (19 : 9) is within chance"),
)  # fmt: skip


def right(entry: dict) -> int:
    """Commands right at the threshold, as a count (the tables store the share)."""
    return round(entry["accuracy"] * entry["n_commands"])


def row_of(table: dict, name: str, label: str) -> dict:
    for r in table["results"]:
        if r["label"] == label:
            return r
    raise SystemExit(f"{name}.json: no row {label!r} (rows: {', '.join(r['label'] for r in table['results'])})")


def summarise(lever: Lever, table: dict) -> dict:
    """Per set: (candidate right, base right, commands) and the difference in points."""
    cand, base = row_of(table, lever.table, lever.row), row_of(table, lever.table, lever.base)
    out = {"lever": lever.what, "table": lever.table, "row": lever.row, "against": lever.base, "shipped": lever.shipped}
    for s in SETS:
        n = cand[s]["n_commands"]
        if base[s]["n_commands"] != n:
            raise SystemExit(f"{lever.table}.json: {s} counts differ between {lever.row!r} and {lever.base!r}")
        c, b = right(cand[s]), right(base[s])
        out[s] = {"right": c, "against": b, "n_commands": n, "points": 100.0 * (c - b) / n}
    return out


def markdown(rows: list[dict]) -> str:
    lines = [
        "AM training levers, one at a time (benchmarks/am_lever_summary.py, from the am_levers tables named): "
        "points of commands right at the calibrated threshold (FAR <= 5 % on the calibration set's non-commands) "
        "against the row named, with the counts. Calibration set: 480 commands of the TEST-ONLY TTS voices (seed "
        "101), the set every choice reads; at the same threshold, read by no choice: the natural voice (hibari "
        "`heart`, 160 commands) and the real phrases (ALSA speaker test, 128 trials).",
        "",
        "| lever | against | calibration | natural voice | real phrases | shipped | table |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r[s]['points']:+.1f} ({r[s]['right']} : {r[s]['against']})" for s in SETS]
        lines.append(f"| {r['lever']} | {r['against']} | {' | '.join(cells)} | {r['shipped']} | `{r['table']}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the am_levers result files")
    ap.add_argument("--out", type=Path, default=RESULTS / "am_lever_summary", help="results path without suffix")
    args = ap.parse_args(argv)
    from rced.audio import atomic_write_results

    producer = "python benchmarks/am_levers.py ... (benchmarks/LEVERS.md)"
    tables = {name: load(args.results, name, producer) for name in dict.fromkeys(lv.table for lv in LEVERS)}
    rows = [summarise(lv, tables[lv.table]) for lv in LEVERS]
    text = markdown(rows)
    atomic_write_results(args.out, {"levers": rows}, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
