"""Spellings benchmark (benchmarks/spellings.py): which spelling the dev rule puts first, and its table."""

from __future__ import annotations

import pytest

from benchmarks.spellings import SPELLINGS, first_by_rule, markdown


def entry(rule: tuple[int, int] | None) -> dict:
    counts = {"found": 50, "misclassified": 5, "n_commands": 95, "false_alarms_per_hour": 1.9,
              "natural_found": 9, "natural_commands": 23}  # fmt: skip
    chains = {"float": counts, "int8": counts}
    spot = {"lever": None, "chosen": None} if rule is None else {
        "lever": "2.5-s windows", "chosen": [4, -0.85], "rule": list(rule),
        "dev": chains, "dev scenes": chains, "test": chains}  # fmt: skip
    rec = {"accuracy": 0.6, "mdr": 0.35, "mcr": 0.05, "far": 0.1}
    return {"once": "", "n_expressions": 20, "spotting": spot,
            "recognition": {"threshold": -1.0, "TTS voices": rec, "natural voice": rec}}  # fmt: skip


@pytest.mark.parametrize("rules, first", [
    ({"a": (154, 0), "b": (164, -2), "c": (162, 0)}, "b"),  # most commands found
    ({"a": (164, -3), "b": (164, -1), "c": (164, -1)}, "b"),  # then fewest false alarms, then the first
    ({"a": None, "b": (100, 0), "c": None}, "b"),  # a spelling whose spotter met no bound is out
    ({"a": None, "b": None}, None),
])  # fmt: skip
def test_first_by_rule(rules, first):
    assert first_by_rule({k: entry(r) for k, r in rules.items()}) == first


def test_markdown_names_the_choice_and_whether_it_ships():
    names = list(SPELLINGS)
    payload = {"max_far": 0.1, "window_s": 2.0, "spellings": {n: entry((150 + i, 0)) for i, n in enumerate(names)},
               "chosen_on_dev": names[-1]}  # fmt: skip
    md = markdown(payload)
    assert "`grammar listen`'s 2-s windows" in md  # the listener's window length as measured, not a fixed text
    assert md.count("\n| ") == 1 + len(names)  # the header and a row a spelling
    assert f"first on the development streams: {names[-1]}" in md
    assert "update it" in md  # the last spelling (every letter) is not what ships
    payload["spellings"][names[0]] = entry(None)
    assert "no setting met the rule" in markdown(payload)
