"""Command-recognition metrics (DESIGN.md "Metrics") and the DET-style threshold sweep.

On command utterances (label = a command): mis-detection rate MDR (rejected) and
mis-classification rate MCR (accepted as another command); on non-command utterances
(label None): false-alarm rate FAR (accepted as any command). Accuracy = 1 - MDR - MCR.
A prediction of None means "rejected". Rates whose denominator is 0 are NaN.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from grammar.errors import GrammarError

ALL = "all"


def _ratio(num: float, den: int) -> float:
    return float(num) / den if den else math.nan


def _check_lengths(**seqs: Sequence) -> int:
    lengths = {name: len(s) for name, s in seqs.items()}
    if len(set(lengths.values())) > 1:
        raise GrammarError(
            "metrics: inputs differ in length (" + ", ".join(f"{k}={v}" for k, v in lengths.items()) + ")"
        )
    return next(iter(lengths.values()), 0)


def recognition_metrics(labels: Sequence[str | None], predictions: Sequence[str | None]) -> dict:
    """``mdr``, ``mcr``, ``far``, ``accuracy`` (floats, NaN when undefined) and the counts
    ``n_command``, ``n_noncommand``, ``n_missed``, ``n_misclassified``, ``n_false_alarm``."""
    _check_lengths(labels=labels, predictions=predictions)
    n_cmd = n_non = missed = wrong = fa = 0
    for label, pred in zip(labels, predictions):
        if label is None:
            n_non += 1
            fa += pred is not None
        else:
            n_cmd += 1
            if pred is None:
                missed += 1
            elif pred != label:
                wrong += 1
    mdr, mcr = _ratio(missed, n_cmd), _ratio(wrong, n_cmd)
    return {
        "mdr": mdr,
        "mcr": mcr,
        "far": _ratio(fa, n_non),
        "accuracy": 1.0 - mdr - mcr if n_cmd else math.nan,
        "n_command": n_cmd,
        "n_noncommand": n_non,
        "n_missed": missed,
        "n_misclassified": wrong,
        "n_false_alarm": fa,
    }


def metrics_by_group(labels: Sequence[str | None], predictions: Sequence[str | None],
                     groups: Sequence[Hashable]) -> dict:  # fmt: skip
    """:func:`recognition_metrics` per group (in order of first appearance), plus ``"all"``.

    A ``None`` group (e.g. a manifest row without an ``snr`` column) counts in ``"all"`` only."""
    _check_lengths(labels=labels, predictions=predictions, groups=groups)
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        if g is not None:
            members.setdefault(g, []).append(i)
    if ALL in members:
        raise GrammarError(f"metrics: a group is named {ALL!r}, which is reserved for the overall result")
    out = {
        g: recognition_metrics([labels[i] for i in idx], [predictions[i] for i in idx]) for g, idx in members.items()
    }
    out[ALL] = recognition_metrics(labels, predictions)
    return out


def det_curve(labels: Sequence[str | None], best_commands: Sequence[str | None], scores: Sequence[float]) -> dict:
    """Sweep the rejection threshold over every distinct score (accept iff score >= threshold).

    Each utterance has its best command (None: no candidate, never accepted) and that
    command's score. Returns numpy arrays ``threshold`` (ascending: -inf, each distinct
    score, +inf), ``far``, ``mdr``, ``mcr``, ``accuracy`` (one value per threshold), and the
    counts ``n_command``, ``n_noncommand``. O(n log n): one sort per outcome class.
    """
    _check_lengths(labels=labels, best_commands=best_commands, scores=scores)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if np.isnan(s).any():
        raise GrammarError("det_curve: a score is NaN")
    is_cmd = np.array([lab is not None for lab in labels], dtype=bool)
    has_best = np.array([b is not None for b in best_commands], dtype=bool)
    right = np.array([lab is not None and lab == b for lab, b in zip(labels, best_commands)], dtype=bool)
    n_cmd, n_non = int(is_cmd.sum()), int((~is_cmd).sum())

    thresholds = np.concatenate([[-np.inf], np.unique(s[np.isfinite(s)]), [np.inf]])

    def accepted(mask: np.ndarray) -> np.ndarray:
        """How many utterances of ``mask`` have score >= each threshold."""
        sc = np.sort(s[mask & has_best])
        return len(sc) - np.searchsorted(sc, thresholds, side="left")

    acc_right = accepted(is_cmd & right)
    acc_wrong = accepted(is_cmd & ~right)
    acc_non = accepted(~is_cmd)
    with np.errstate(invalid="ignore", divide="ignore"):
        den_c = n_cmd if n_cmd else np.nan
        den_n = n_non if n_non else np.nan
        mdr = 1.0 - (acc_right + acc_wrong) / den_c
        mcr = acc_wrong / den_c
        far = acc_non / den_n
        accuracy = acc_right / den_c
    return {"threshold": thresholds, "far": far, "mdr": mdr, "mcr": mcr, "accuracy": accuracy,
            "n_command": n_cmd, "n_noncommand": n_non}  # fmt: skip


def _point(value) -> tuple[float, float]:
    """(FAR, MDR + MCR) of an operating point given as a metrics dict or an (far, error) pair."""
    if isinstance(value, Mapping):
        return float(value["far"]), float(value["mdr"]) + float(value["mcr"])
    far, err = value
    return float(far), float(err)


def plot_det(curves: Mapping[str, Mapping], path: str | os.PathLike,
             operating_points: Mapping[str, object] | None = None, title: str | None = None) -> None:  # fmt: skip
    """Write a PNG: x = FAR, y = MDR + MCR (error on commands), one line per system.

    ``curves``: name -> :func:`det_curve` output. ``operating_points``: name -> a metrics dict
    (:func:`recognition_metrics`) or a ``(far, error)`` pair, drawn as markers. Written atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from rced.audio import atomic_save_png

    if not curves and not operating_points:
        raise GrammarError(f"{path}: nothing to plot (no curves, no operating points)")
    fig = Figure(figsize=(6, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, c in curves.items():
        far = np.asarray(c["far"], np.float64)
        err = np.asarray(c["mdr"], np.float64) + np.asarray(c["mcr"], np.float64)
        ax.plot(far, err, label=str(name))
    for name, value in (operating_points or {}).items():
        far, err = _point(value)
        ax.plot([far], [err], marker="o", linestyle="none", label=f"{name} ({far:.3f}, {err:.3f})")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false-alarm rate (non-commands accepted)")
    ax.set_ylabel("error on commands (MDR + MCR)")
    ax.set_title(title or "Command recognition: rejection-threshold sweep")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    atomic_save_png(path, fig)


def char_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Character edit distance summed over utterances / reference characters."""
    errs = sum(_edit_distance(r, h) for r, h in zip(refs, hyps))
    return errs / max(1, sum(len(r) for r in refs))


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


#: McNemar's chi-square (one degree of freedom, continuity-corrected) at 5 %, two-sided.
MCNEMAR_CHI2 = 3.841


def discordant(candidate: Sequence[bool], shipped: Sequence[bool]) -> tuple[int, int]:
    """(b, c): the commands only ``candidate`` gets right, and those only ``shipped`` does."""
    cand, ship = np.asarray(candidate, bool), np.asarray(shipped, bool)
    return int(np.sum(cand & ~ship)), int(np.sum(ship & ~cand))


def beats(candidate: Sequence[bool], shipped: Sequence[bool]) -> bool:
    """Whether ``candidate`` gets more of the same commands right than ``shipped`` beyond chance:
    McNemar's test on the :func:`discordant` commands, (|b - c| - 1)^2 / (b + c) above
    :data:`MCNEMAR_CHI2`, and b > c."""
    b, c = discordant(candidate, shipped)
    return b > c and (b - c - 1) ** 2 / (b + c) > MCNEMAR_CHI2


def clustered_mcnemar(candidate: Sequence[bool], shipped: Sequence[bool], clusters: Sequence) -> float:
    """McNemar's chi-square when the paired outcomes come in clusters (Durkalski et al., 2003): one
    text of one voice in four conditions is right or wrong together more often than four independent
    trials. (sum_k d_k)^2 / sum_k d_k^2 with d_k = b_k - c_k the :func:`discordant` difference in
    cluster k (no continuity correction); 0 when no cluster has a difference. Against
    :data:`MCNEMAR_CHI2` like :func:`beats`; singletons give (b - c)^2 / (b + c)."""
    cand, ship = np.asarray(candidate, bool), np.asarray(shipped, bool)
    if not len(cand) == len(ship) == len(clusters):
        raise ValueError(f"clustered_mcnemar: {len(cand)}, {len(ship)} and {len(clusters)} items")
    keys = {k: i for i, k in enumerate(dict.fromkeys(clusters))}
    d = np.zeros(len(keys))
    np.add.at(d, [keys[k] for k in clusters], cand.astype(float) - ship.astype(float))
    total = float(np.sum(d**2))
    return float(np.sum(d) ** 2 / total) if total else 0.0
