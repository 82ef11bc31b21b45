import math

import numpy as np
import pytest

from grammar.errors import GrammarError
from grammar.metrics import beats, clustered_mcnemar, det_curve, metrics_by_group, plot_det, recognition_metrics

A, B, C = "volume up", "mute", "call home"


def _close(got, want):
    if isinstance(want, float) and math.isnan(want):
        return math.isnan(got)
    return got == pytest.approx(want)


@pytest.mark.parametrize(
    "labels, predictions, want",
    [
        # all correct, no non-commands: FAR undefined
        ([A, B], [A, B], {"mdr": 0.0, "mcr": 0.0, "far": math.nan, "accuracy": 1.0, "n_command": 2, "n_noncommand": 0}),
        # one missed, one wrong, two right; one false alarm out of two non-commands
        ([A, A, B, C, None, None], [A, None, A, C, B, None],
         {"mdr": 0.25, "mcr": 0.25, "far": 0.5, "accuracy": 0.5, "n_command": 4, "n_noncommand": 2}),
        # only non-commands: command rates undefined
        ([None, None, None, None], [None, A, None, None],
         {"mdr": math.nan, "mcr": math.nan, "far": 0.25, "accuracy": math.nan, "n_command": 0, "n_noncommand": 4}),
        # everything rejected
        ([A, B, None], [None, None, None], {"mdr": 1.0, "mcr": 0.0, "far": 0.0, "accuracy": 0.0}),
        # everything accepted as A
        ([A, B, C, None], [A, A, A, A], {"mdr": 0.0, "mcr": 2 / 3, "far": 1.0, "accuracy": 1 / 3}),
        # empty input
        ([], [], {"mdr": math.nan, "mcr": math.nan, "far": math.nan, "accuracy": math.nan, "n_command": 0}),
    ],
)  # fmt: skip
def test_recognition_metrics(labels, predictions, want):
    got = recognition_metrics(labels, predictions)
    for key, value in want.items():
        assert _close(got[key], value), (key, got[key], value)
    if got["n_command"]:
        assert got["accuracy"] == pytest.approx(1 - got["mdr"] - got["mcr"])


def test_length_mismatch():
    with pytest.raises(GrammarError, match="length"):
        recognition_metrics([A, B], [A])
    with pytest.raises(GrammarError, match="length"):
        metrics_by_group([A], [A], ["x", "y"])
    with pytest.raises(GrammarError, match="length"):
        det_curve([A], [A, B], [0.1, 0.2])


def test_metrics_by_group():
    labels = [A, B, None, A, None, B]
    preds = [A, None, None, B, A, B]
    groups = ["clean", "clean", "clean", "5", "5", "5"]
    out = metrics_by_group(labels, preds, groups)
    assert list(out) == ["clean", "5", "all"]
    assert out["clean"]["mdr"] == 0.5 and out["clean"]["far"] == 0.0 and out["clean"]["mcr"] == 0.0
    assert out["5"]["mcr"] == 0.5 and out["5"]["far"] == 1.0 and out["5"]["mdr"] == 0.0
    assert out["all"] == recognition_metrics(labels, preds)
    assert out["all"]["n_command"] == 4 and out["all"]["n_noncommand"] == 2


def test_metrics_by_group_none_counts_in_all_only():
    labels, preds = [A, B, None], [A, None, A]
    out = metrics_by_group(labels, preds, [None, "5", None])
    assert list(out) == ["5", "all"] and out["5"]["n_command"] == 1
    assert out["all"] == recognition_metrics(labels, preds)


def test_metrics_by_group_reserved_name():
    with pytest.raises(GrammarError, match="reserved"):
        metrics_by_group([A], [A], ["all"])


def _brute_force(labels, best, scores, thresholds):
    rows = []
    for t in thresholds:
        preds = [b if (b is not None and s >= t) else None for b, s in zip(best, scores)]
        m = recognition_metrics(labels, preds)
        rows.append((m["far"], m["mdr"], m["mcr"], m["accuracy"]))
    return np.array(rows)


def test_det_curve_end_points():
    labels = [A, B, None, C, None]
    best = [A, A, B, C, C]
    scores = [0.9, 0.3, 0.5, -1.0, 0.2]
    c = det_curve(labels, best, scores)
    assert c["threshold"][0] == -np.inf and c["threshold"][-1] == np.inf
    assert np.all(np.diff(c["threshold"]) > 0)
    assert len(c["threshold"]) == len(set(scores)) + 2
    # everything accepted
    assert c["mdr"][0] == 0.0 and c["far"][0] == 1.0
    assert c["mcr"][0] == pytest.approx(1 / 3) and c["accuracy"][0] == pytest.approx(2 / 3)
    # above every score: nothing accepted
    assert c["far"][-1] == 0.0 and c["mdr"][-1] == 1.0 and c["mcr"][-1] == 0.0 and c["accuracy"][-1] == 0.0
    # MDR never falls and FAR never rises as the threshold rises
    assert np.all(np.diff(c["mdr"]) >= 0) and np.all(np.diff(c["far"]) <= 0)
    assert c["n_command"] == 3 and c["n_noncommand"] == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_det_curve_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 200
    cmds = [A, B, C]
    labels = [None if rng.random() < 0.4 else cmds[rng.integers(3)] for _ in range(n)]
    best = [None if rng.random() < 0.05 else cmds[rng.integers(3)] for _ in range(n)]
    scores = np.round(rng.normal(size=n), 1)  # rounding makes ties
    scores[:3] = [-np.inf, np.inf, -np.inf]
    c = det_curve(labels, best, list(scores))
    want = _brute_force(labels, best, scores, c["threshold"])
    got = np.stack([c["far"], c["mdr"], c["mcr"], c["accuracy"]], axis=1)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_det_curve_no_noncommands_gives_nan_far():
    c = det_curve([A, B], [A, A], [0.1, 0.2])
    assert np.all(np.isnan(c["far"]))
    assert c["mdr"][0] == 0.0 and c["mcr"][0] == 0.5


def test_det_curve_rejects_nan():
    with pytest.raises(GrammarError, match="NaN"):
        det_curve([A], [A], [float("nan")])


def test_plot_det(tmp_path):
    rng = np.random.default_rng(0)
    labels = [A, B, None, None] * 10
    best = [A, B, A, B] * 10
    c1 = det_curve(labels, best, list(rng.normal(size=40)))
    c2 = det_curve(labels, best, list(rng.normal(size=40)))
    op = recognition_metrics(labels, [A, None, None, B] * 10)
    out = tmp_path / "plots" / "det.png"
    plot_det({"baseline": c1, "augmented": c2}, out, operating_points={"default": op, "pair": (0.1, 0.2)})
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert [p.name for p in out.parent.iterdir()] == ["det.png"]  # no temporary file left


def test_plot_det_nothing(tmp_path):
    with pytest.raises(GrammarError, match="nothing to plot"):
        plot_det({}, tmp_path / "x.png")


@pytest.mark.parametrize(("only_candidate", "only_shipped", "replaces"),
                         [(10, 2, True),  # (10 - 2 - 1)^2 / 12 = 4.08 > 3.84
                          (9, 3, False),  # 25 / 12 = 2.08
                          (40, 33, False),  # ahead by 7 commands of 480, as two mixings once differed
                          (2, 10, False)])  # fmt: skip
def test_a_candidate_beats_the_shipped_only_beyond_chance(only_candidate, only_shipped, replaces):
    both, neither = 300, 480 - 300 - only_candidate - only_shipped
    cand = [True] * both + [True] * only_candidate + [False] * only_shipped + [False] * neither
    ship = [True] * both + [False] * only_candidate + [True] * only_shipped + [False] * neither
    assert beats(cand, ship) is replaces
    assert not beats(ship, ship)


def test_clustered_mcnemar_reduces_to_the_plain_statistic_for_singletons():
    cand = [True] * 12 + [False] * 3 + [True] * 5
    ship = [False] * 12 + [True] * 3 + [True] * 5
    assert clustered_mcnemar(cand, ship, list(range(20))) == pytest.approx((12 - 3) ** 2 / (12 + 3))


def test_clustered_mcnemar_counts_a_cluster_once():
    # the same 12 : 3 discordance, but 3 clusters of 4 move together: (4+4+4-3)^2 / (16+16+16+9)
    cand = [True] * 12 + [False] * 3
    ship = [False] * 12 + [True] * 3
    clusters = [0] * 4 + [1] * 4 + [2] * 4 + [3] * 3
    assert clustered_mcnemar(cand, ship, clusters) == pytest.approx(81 / 57)
    # within one cluster a win and a loss cancel
    assert clustered_mcnemar([True, False], [False, True], ["a", "a"]) == 0.0
    with pytest.raises(ValueError, match="items"):
        clustered_mcnemar([True], [False], [0, 1])
