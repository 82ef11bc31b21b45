"""The AM lever summary (benchmarks/am_lever_summary.py) and the copy of results into the docs (readme.py)."""

from __future__ import annotations

import json

import pytest

from benchmarks import readme
from benchmarks.am_lever_summary import LEVERS, Lever, main, summarise


def entry(right: int, n: int) -> dict:
    return {"accuracy": right / n, "far": 0.05, "accuracy_no_rejection": 1.0, "n_commands": n, "n_non_commands": 10}


def table(rows: dict[str, tuple[int, int, int]]) -> dict:
    """An am_levers result with, per label, commands right on (calibration, natural, real) of 480, 160, 128."""
    return {"results": [{"label": label, "calibration": entry(c, 480), "natural": entry(n, 160), "real": entry(r, 128)}
                        for label, (c, n, r) in rows.items()]}  # fmt: skip


def test_a_lever_is_its_rows_difference_in_points_with_the_counts():
    t = table({"base": (300, 80, 100), "cand": (312, 76, 100)})
    out = summarise(Lever("x", "t", "cand", "base", "no"), t)
    assert (out["calibration"]["right"], out["calibration"]["against"]) == (312, 300)
    assert out["calibration"]["points"] == pytest.approx(2.5)  # 12 of 480
    assert out["natural"]["points"] == pytest.approx(-2.5)  # 4 of 160
    assert out["real"]["points"] == 0.0


def test_a_row_that_is_not_there_is_named():
    with pytest.raises(SystemExit, match="t.json: no row 'gone'"):
        summarise(Lever("x", "t", "gone", "base", "no"), table({"base": (1, 1, 1)}))


def test_every_lever_reads_rows_the_committed_tables_hold(tmp_path):
    assert main(["--out", str(tmp_path / "s")]) == 0
    rows = json.loads((tmp_path / "s.json").read_text())["levers"]
    assert [r["lever"] for r in rows] == [lv.what for lv in LEVERS]
    assert (tmp_path / "s.md").read_text().count("\n| ") == len(LEVERS) + 1  # the header, a row a lever


def test_fill_replaces_what_lies_between_a_sections_markers_only(tmp_path):
    (tmp_path / "speed.md").write_text("new table\n")
    text = "a\n<!-- speed:start -->\nold\n<!-- speed:end -->\nb\n<!-- denoise:start -->\nkept\n<!-- denoise:end -->\n"
    out = readme.fill(text, tmp_path)
    assert out == text.replace("old", "new table")
    assert readme.fill(out, tmp_path) == out  # idempotent
