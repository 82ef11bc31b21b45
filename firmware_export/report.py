"""The build report: frozen dataclasses, ``report.json`` and ``report.md``.

Microcontroller load is an estimate from multiply-accumulates alone: cycles per second =
MACs per second / (int8 MACs per cycle), divided by the core clock. The MAC-per-cycle ranges
below are assumptions (CMSIS-NN kernels), stated in every report; FFT, feature computation,
requantisation and activations are not counted.
"""

from __future__ import annotations

import dataclasses
import json

# (core, clock Hz, int8 MACs per cycle (low, high), how)
CORES: tuple[tuple[str, float, tuple[float, float], str], ...] = (
    ("Cortex-M4F", 168e6, (0.5, 1.0), "CMSIS-NN with the DSP extension's dual 16-bit MAC (SMLAD)"),
    ("Cortex-M7", 480e6, (1.0, 2.0), "CMSIS-NN, dual-issue pipeline with SMLAD"),
    ("Cortex-M55", 400e6, (4.0, 8.0), "CMSIS-NN with Helium (MVE) vector MACs"),
)


@dataclasses.dataclass(frozen=True)
class CoreLoad:
    core: str
    clock_mhz: float
    macs_per_cycle: tuple[float, float]
    load_percent: tuple[float, float]  # (best case: high MAC/cycle, worst case: low MAC/cycle)


def core_loads(macs_per_second: float) -> tuple[CoreLoad, ...]:
    out = []
    for core, clock, (lo, hi), _ in CORES:
        best, worst = macs_per_second / (hi * clock) * 100, macs_per_second / (lo * clock) * 100
        out.append(CoreLoad(core, clock / 1e6, (lo, hi), (round(best, 3), round(worst, 3))))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class ModelReport:
    """One exported model."""

    name: str  # denoiser | am
    description: str
    source: dict  # folder name and sha256 of the files that define the model
    params: int
    flash_bytes: int  # the int8 flatbuffer
    settings_table_bytes: int  # constant tables of <name>_settings.h (window, mel matrix, affine maps)
    arena_bytes: int  # recorded arena (measured minimum plus margin)
    arena_bytes_measured: int
    ops: tuple[str, ...]
    op_counts: dict
    macs_per_inference: int
    inferences_per_second: float
    input_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_shape: tuple[int, ...]
    output_scale: float
    output_zero_point: int
    bit_exact_cases: int  # golden + probe inputs on which TFLM == LiteRT (reference kernels)
    host_latency_ms: dict | None  # median per inference; None when not measured
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def macs_per_second(self) -> float:
        return self.macs_per_inference * self.inferences_per_second

    @property
    def mcu_load(self) -> tuple[CoreLoad, ...]:
        return core_loads(self.macs_per_second)


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What ``build_bundle`` made: the files, every model's numbers, the grammar."""

    out_dir: str
    files: tuple[str, ...]
    models: tuple[ModelReport, ...]
    grammar: dict | None
    calibration: str
    versions: dict
    verified: bool = True

    def model(self, name: str) -> ModelReport:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def total_flash_bytes(self) -> int:
        return sum(m.flash_bytes + m.settings_table_bytes for m in self.models)

    @property
    def total_arena_bytes(self) -> int:
        """Both arenas side by side (a firmware running the models in turn can share one of max size)."""
        return sum(m.arena_bytes for m in self.models)

    @property
    def total_macs_per_second(self) -> float:
        return sum(m.macs_per_second for m in self.models)

    def to_dict(self, *, include_out_dir: bool = True) -> dict:
        models = []
        for m in self.models:
            d = dataclasses.asdict(m)
            d["macs_per_second"] = round(m.macs_per_second, 1)
            d["mcu_load"] = [dataclasses.asdict(c) for c in m.mcu_load]
            models.append(d)
        out = {
            "format": "stapes-firmware-bundle", "version": 1,
            "files": list(self.files), "models": models, "grammar": self.grammar,
            "totals": {"flash_bytes": self.total_flash_bytes, "arena_bytes": self.total_arena_bytes,
                       "macs_per_second": round(self.total_macs_per_second, 1),
                       "mcu_load": [dataclasses.asdict(c) for c in core_loads(self.total_macs_per_second)]},
            "assumptions": {
                "mcu": [{"core": c, "clock_mhz": f / 1e6, "int8_macs_per_cycle": list(r), "kernels": how}
                        for c, f, r, how in CORES],
                "load": "MACs per second / (MACs per cycle x clock); FFT, features, requantisation and "
                        "activations not counted",
                "arena": "smallest arena at which the host TFLM interpreter (64-bit) allocates and invokes, found by "
                         "bisection in 16-byte steps, plus max(10 %, 1 KiB); 32-bit targets need slightly less",
            },
            "calibration": self.calibration, "versions": self.versions, "verified": self.verified,
        }  # fmt: skip
        if include_out_dir:
            out["out_dir"] = self.out_dir
        return out

    def to_json(self) -> str:
        """report.json text: no output path, so the file depends only on the inputs."""
        return json.dumps(self.to_dict(include_out_dir=False), indent=2, sort_keys=True) + "\n"

    def to_markdown(self) -> str:
        lines = ["# Firmware bundle report", "",
                 "| model | params | flash (model) | settings tables | arena (measured) | MACs / inference | "
                 "inferences / s | MMAC / s | host latency (LiteRT ref / TFLM) |",
                 "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for m in self.models:
            lat = (f"{m.host_latency_ms['litert_reference_ms']:.3f} / {m.host_latency_ms['tflm_ms']:.3f} ms"
                   if m.host_latency_ms else "not measured")  # fmt: skip
            lines.append(f"| {m.name} | {m.params:,} | {m.flash_bytes:,} B | {m.settings_table_bytes:,} B | "
                         f"{m.arena_bytes:,} B ({m.arena_bytes_measured:,} B) | {m.macs_per_inference:,} | "
                         f"{m.inferences_per_second:g} | {m.macs_per_second / 1e6:.2f} | {lat} |")  # fmt: skip
        lines += ["", f"Total flash {self.total_flash_bytes:,} B; arenas {self.total_arena_bytes:,} B side by side; "
                  f"{self.total_macs_per_second / 1e6:.2f} MMAC per second of audio.", "",
                  "## Estimated load on microcontrollers", "",
                  "| core | clock | int8 MAC/cycle (assumed) | " + " | ".join(f"{m.name} load" for m in self.models)
                  + " | total load |", "|---|---|---|" + "---|" * (len(self.models) + 1)]  # fmt: skip
        total = core_loads(self.total_macs_per_second)
        for i, (core, clock, (lo, hi), _how) in enumerate(CORES):
            cells = [f"{m.mcu_load[i].load_percent[0]:.2f}-{m.mcu_load[i].load_percent[1]:.2f} %" for m in self.models]
            cells.append(f"{total[i].load_percent[0]:.2f}-{total[i].load_percent[1]:.2f} %")
            lines.append(f"| {core} | {clock / 1e6:g} MHz | {lo:g}-{hi:g} | " + " | ".join(cells) + " |")
        lines += ["", "Assumptions: " + "; ".join(f"{c} at {f / 1e6:g} MHz, {lo:g}-{hi:g} int8 MAC/cycle ({how})"
                                                 for c, f, (lo, hi), how in CORES)
                  + ". Load = MACs per second / (MAC per cycle x clock); the FFT, features, requantisation and "
                    "activations are not counted. The arena is the smallest that the host TFLM interpreter (64-bit "
                    "pointers) accepts, found by bisection, plus max(10 %, 1 KiB); 32-bit targets need slightly less.",
                  ""]  # fmt: skip
        for m in self.models:
            lines += [f"## {m.name}", "", m.description, "",
                      f"- ops: {', '.join(f'{op} x{m.op_counts[op]}' for op in m.ops)}",
                      f"- input {list(m.input_shape)} int8, scale {m.input_scale:.6g}, zero point {m.input_zero_point}; "
                      f"output {list(m.output_shape)} int8, scale {m.output_scale:.6g}, zero point {m.output_zero_point}",
                      f"- TFLM output equals LiteRT (reference kernels) bit for bit on {m.bit_exact_cases} inputs",
                      f"- source: {m.source.get('folder')}"]  # fmt: skip
            lines += [f"- {k}: {v}" for k, v in sorted(m.extra.items())]
            lines.append("")
        if self.grammar:
            g = self.grammar
            float_thr = g.get("threshold_float", g["threshold"])
            calib = ("the int8 chain's" if float_thr != g["threshold"]
                     else "no int8 threshold in the grammar: the float chain's")  # fmt: skip
            lines += ["## grammar", "", f"{g['commands']} commands, {g['expressions']} expressions, score "
                      f"{g.get('score_kind', 'len_norm')}, device threshold {g['threshold']:g} ({calib}; float "
                      f"{float_thr:g}) ({g['source']}).", ""]  # fmt: skip
        lines += ["## Calibration", "", self.calibration, "", "## Versions", "",
                  ", ".join(f"{k} {v}" for k, v in sorted(self.versions.items())), ""]  # fmt: skip
        return "\n".join(lines)
