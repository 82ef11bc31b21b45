"""Compute of each denoiser in MMAC per second of audio, and the quality-against-compute plot.

Multiply-accumulates are counted for the layers that hold weights: convolutions, dense /
FULLY_CONNECTED layers, BATCH_MATMUL and LSTM gate matrices. Element-wise ops (activations,
gate products, normalisation) and the STFT/FFT are left out for every system alike, as
rced.models.macs_per_frame does for the stapes models. Peers shipped as TFLite graphs are
counted from the graph itself (:func:`tflite_compute`): op kinds and tensor shapes read
through the LiteRT interpreter, run without delegates so that every op is listed once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Groups of summarize() rows drawn in the plot and the compact table: (group, short label).
GROUPS = (("all (test voices)", "TTS test voices"), ("real recordings", "real recordings"),
          ("natural TEST-ONLY voice", "natural voice (hibari heart)"), ("ALSA speaker-test phrases", "ALSA phrases"))  # fmt: skip
METRICS = (("d_pesq", "ΔPESQ-wb", "{:+.3f}"), ("d_stoi", "ΔSTOI", "{:+.3f}"), ("d_si_sdr", "ΔSI-SDR dB", "{:+.2f}"))
_WEIGHTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "BATCH_MATMUL",
                 "UNIDIRECTIONAL_SEQUENCE_LSTM")  # fmt: skip


@dataclass(frozen=True)
class Compute:
    """One system's size and cost: parameters, MACs per network call, calls per second of audio,
    and how they were counted."""

    params: int
    macs_per_call: int
    calls_per_second: float
    how: str

    @property
    def mmac_per_second(self) -> float:
        return self.macs_per_call * self.calls_per_second / 1e6


def _prod(shape) -> int:
    return int(np.prod([int(d) for d in shape])) if len(shape) else 1


def op_macs(op: str, ins: list[tuple[int, ...] | None], out: tuple[int, ...]) -> int:
    """Multiply-accumulates of one TFLite op from its input shapes (None: optional input left
    out) and its first output's shape; 0 for ops without weights."""
    if op in ("FULLY_CONNECTED", "CONV_2D"):  # weights (units, in) / (cout, kh, kw, cin)
        return _prod(out) * _prod(ins[1][1:])
    if op == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, cout)
        return _prod(out) * int(ins[1][1]) * int(ins[1][2])
    if op == "TRANSPOSE_CONV":  # (output_shape, weights (cout, kh, kw, cin), input)
        return _prod(ins[2]) * _prod(ins[1][:3])
    if op == "BATCH_MATMUL":  # out (..., M, N); the lhs's other dimension is K
        lhs = ins[0]
        return _prod(out) * int(lhs[-1] if lhs[-2] == out[-2] else lhs[-2])
    if op == "UNIDIRECTIONAL_SEQUENCE_LSTM":  # input-to-gate, recurrent and projection matrices per step
        mats = [ins[i] for i in (*range(1, 9), 16) if i < len(ins) and ins[i] is not None]
        return _prod(ins[0][:-1]) * sum(_prod(m) for m in mats)
    return 0


def tflite_graph(path: Path):
    """A LiteRT interpreter on ``path`` without the default (XNNPACK) delegate."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)  # fmt: skip
    interp.allocate_tensors()
    return interp


def tflite_counts(path: Path) -> tuple[int, int, Counter]:
    """(MACs per invocation, parameters, count of each weighted op) of one .tflite graph.

    Parameters are the float constant tensors of at least one dimension: read by an op, written
    by none, and not a graph input (LSTM states are graph inputs)."""
    interp = tflite_graph(path)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    written = {i for op in ops for i in op["outputs"]} | {d["index"] for d in interp.get_input_details()}
    macs, kinds = 0, Counter()
    for op in ops:
        shapes = [tuple(int(d) for d in tensors[i]["shape"]) if i >= 0 else None for i in op["inputs"]]
        n = op_macs(op["op_name"], shapes, tuple(int(d) for d in tensors[op["outputs"][0]]["shape"]))
        macs += n
        kinds[op["op_name"]] += op["op_name"] in _WEIGHTED_OPS
    consts = {i for op in ops for i in op["inputs"] if i >= 0 and i not in written}
    params = sum(_prod(tensors[i]["shape"]) for i in consts
                 if tensors[i]["dtype"] == np.float32 and len(tensors[i]["shape"]))  # fmt: skip
    return macs, params, +kinds


def tflite_compute(paths: list[Path], calls_per_second: float, per: str) -> Compute:
    """Compute of a system that runs every graph of ``paths`` once per ``per`` (a block shift),
    ``calls_per_second`` times a second."""
    counts = [tflite_counts(p) for p in paths]
    macs = sum(c[0] for c in counts)
    kinds = sum((c[2] for c in counts), Counter())
    how = (
        f"counted from {' + '.join(p.name for p in paths)}: {macs:,} MAC per {per} "
        f"({', '.join(f'{k} x{v}' for k, v in kinds.items())}) x {calls_per_second:g}/s"
    )
    return Compute(sum(c[1] for c in counts), macs, calls_per_second, how)


def stapes_compute(config) -> Compute:
    """Compute of a stapes model from its config: rced.models counts on the rebuilt network."""
    from rced.models import build_model, count_params, macs_per_frame

    model = build_model(config)
    macs, rate = macs_per_frame(model), config.frontend.frame_rate
    how = f"rced.models.macs_per_frame: {macs:,} MAC per frame x {rate:g} frames/s"
    return Compute(count_params(model), macs, rate, how)


def group_deltas(rows: list[dict], system: str) -> dict[str, dict[str, float]]:
    """{group: {d_pesq, d_stoi, d_si_sdr}} of ``system`` for the groups of :data:`GROUPS` present."""
    return {r["group"]: {k: r[k] for k, _, _ in METRICS} for r in rows
            if r["system"] == system and r["group"] in dict(GROUPS)}  # fmt: skip


def compact_table(rows: list[dict], compute: dict[str, Compute]) -> str:
    """Markdown: system, parameters, MMAC/s, and each Δ metric vs noisy as 'TTS / real / natural'."""
    present = [g for g, _ in GROUPS if any(r["group"] == g for r in rows)]
    lines = [f"Gain over the noisy input per group: {' / '.join(dict(GROUPS)[g] for g in present)}.", "",
             "| system | params | MMAC/s | " + " | ".join(name for _, name, _ in METRICS) + " |",
             "|---|---|---|" + "---|" * len(METRICS)]  # fmt: skip
    for system, c in sorted(compute.items(), key=lambda kv: kv[1].mmac_per_second):
        d = group_deltas(rows, system)
        cells = [" / ".join(fmt.format(d[g][k]) for g in present) for k, _, fmt in METRICS]
        lines.append(f"| {system} | {c.params:,} | {c.mmac_per_second:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _log_axis(ax, xs: list[float]) -> None:
    """Log x axis over ``xs`` with a margin, labelled in plain numbers at 1-2-5 steps."""
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    lo, hi = min(xs) / 1.6, max(xs) * 1.6
    ticks = [m * 10**e for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1) for m in (1, 2, 5)]
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator([t for t in ticks if lo <= t <= hi]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("compute, MMAC per second of audio (log scale)", fontsize=10)
    ax.tick_params(labelsize=9)


def plot_quality_vs_compute(rows: list[dict], compute: dict[str, Compute], path: Path, title: str) -> None:
    """PNG: one panel per Δ metric against MMAC/s (log x); colour = evaluation group, marker = system."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from rced.audio import atomic_save_png

    fig = Figure(figsize=(14, 5.2), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(METRICS))
    colours, markers = ("tab:blue", "tab:orange", "tab:green", "tab:red"), "osD^vP*Xph"
    systems = sorted(compute, key=lambda s: compute[s].mmac_per_second)
    for ax, (key, name, _) in zip(axes, METRICS):
        for si, system in enumerate(systems):
            for (group, _), colour in zip(GROUPS, colours):
                d = group_deltas(rows, system).get(group)
                if d is not None:
                    ax.plot([compute[system].mmac_per_second], [d[key]], markers[si % len(markers)], color=colour,
                            markersize=8, markeredgecolor="black", markeredgewidth=0.5)  # fmt: skip
        ax.axhline(0.0, color="grey", linewidth=0.8)
        _log_axis(ax, [compute[s].mmac_per_second for s in systems])
        ax.set_ylabel(f"{name} vs noisy input", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    groups = [Line2D([], [], linestyle="none", marker="s", color=c, markersize=9, label=lab)
              for (_, lab), c in zip(GROUPS, colours)]  # fmt: skip
    marks = [Line2D([], [], linestyle="none", marker=markers[i % len(markers)], color="white", markeredgecolor="black",
                    markersize=8, label=f"{s}: {compute[s].mmac_per_second:.0f} MMAC/s") for i, s in enumerate(systems)]  # fmt: skip
    fig.legend(handles=groups, title="evaluation group (colour)", loc="lower left", bbox_to_anchor=(0.12, 0.0),
               fontsize=9, title_fontsize=9, frameon=False)  # fmt: skip
    fig.legend(handles=marks, title="system (marker)", loc="lower left", bbox_to_anchor=(0.45, 0.0), ncol=2,
               fontsize=9, title_fontsize=9, frameon=False)  # fmt: skip
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.17, 1, 0.95))
    atomic_save_png(path, fig)
