"""``build_bundle``: convert, verify and write the firmware bundle for TFLM.

Everything is computed and verified before the first file is written, so a failed check
leaves the output folder as it was. The files are written into a temporary sibling folder that
then replaces the output folder whole (the old bundle is removed only once the new one is in
place), so the folder never holds half a bundle or stale files of an earlier, larger one; a
non-empty folder that is not a bundle is refused, never emptied. All generated files depend only on the inputs (models,
grammar, calibration audio and settings); with ``measure_latency=False`` two builds are
byte-identical, otherwise only the host-latency figures of report.json/report.md differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from firmware_export import cgen, settings
from firmware_export.convert import (
    AM_FRAMES,
    Calibration,
    am_features,
    am_int8,
    am_samples,
    am_windows,
    denoiser_int8,
    denoiser_samples,
    device_am,
    device_denoiser,
)
from firmware_export.errors import ExportError
from firmware_export.flatbuffer import inspect
from firmware_export.report import BuildReport, ModelReport
from firmware_export.verify import check_bit_exact, latency_ms, min_arena, with_margin

Progress = Callable[[str], None]

MODEL_PARTS = ("int8.tflite", "model_data.h", "model_data.cc", "op_resolver.h", "settings.h", "golden.h",
               "MODEL_CARD.md")  # fmt: skip
BUNDLE_FILES = frozenset({"report.json", "report.md", "grammar_data.h",
                          *(f"{m}_{part}" for m in ("denoiser", "am") for part in MODEL_PARTS)})  # fmt: skip


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in ("tensorflow-cpu", "keras", "ai-edge-litert", "tflite-micro"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _source(folder: Path) -> dict:
    files = {}
    for name in ("model.keras", "config.json", "norm.json", "MODEL_CARD.md"):
        p = folder / name
        if p.exists():
            files[name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return {"folder": folder.name, "sha256": files}


def load_grammar(grammar):
    """(Grammar, description): a Grammar, a grammar JSON path, or None = the shipped grammar
    (or, while none is shipped, the default command set with one expression per command)."""
    from grammar.commands import default_commands_path, load_commands
    from grammar.decoding.decoder import Grammar
    from grammar.decoding.recognizer import default_grammar_path

    if isinstance(grammar, Grammar):
        return grammar, "caller-supplied grammar"
    if grammar is None:
        path = default_grammar_path()
        if path.exists():
            return Grammar.load(path), f"shipped grammar {path.name}"
        return (Grammar.from_commands(load_commands(default_commands_path())),
                "default command set, one expression per command, uncalibrated threshold")  # fmt: skip
    return Grammar.load(grammar), f"grammar file {Path(grammar).name}"


def _probes(samples_q: np.ndarray, goldens: np.ndarray, in_zp: int, seed: int) -> np.ndarray:
    """Inputs for the bit-exactness check: goldens, calibration samples, extremes, random bytes."""
    shape = goldens.shape[1:]
    rng = np.random.default_rng(seed)
    extremes = np.stack([np.full(shape, -128), np.full(shape, 127), np.full(shape, in_zp)]).astype(np.int8)
    noise = rng.integers(-128, 128, size=(2, *shape)).astype(np.int8)
    return np.concatenate([goldens, samples_q, extremes, noise]).astype(np.int8)


def _verify(name: str, data: bytes, probes: np.ndarray, measure_latency: bool, progress: Progress):
    progress(f"{name}: finding the smallest TFLM arena (bisection)")
    arena_min = min_arena(data, probes[0], name)
    progress(f"{name}: TFLM vs LiteRT (reference kernels) on {len(probes)} inputs")
    outputs = check_bit_exact(data, probes, arena_min, name)
    lat = latency_ms(data, probes[0], with_margin(arena_min)) if measure_latency else None
    return arena_min, outputs, lat


def _model_card(folder: Path, fallback: str) -> str:
    card = folder / "MODEL_CARD.md"
    return card.read_text(encoding="utf-8") if card.exists() else fallback


def _denoiser_part(den, cal: Calibration, n_frames: int, measure_latency: bool, progress: Progress):
    from rced.features import compress, model_inputs
    from rced.frontend import stft
    from rced.int8 import quantize
    from rced.models import count_params, macs_per_frame

    cfg, fe = den.config, den.config.frontend
    progress("denoiser: calibration features")
    samples = denoiser_samples(den, cal, n_frames)
    keras_model = device_denoiser(den)
    progress("denoiser: int8 conversion")
    data = denoiser_int8(den, cal, n_frames)  # recorded ranges where they exist: the shipped bytes
    info = inspect(data, "denoiser")
    i = info.inputs[0]

    # goldens: a held-out mixture; case 0 mid-utterance (its audio exported too), case 1 the first frame
    x = cal.held_out_mixture(sr=fe.sample_rate)  # at the model's rate: kAudio is what the device's ADC gives
    feats = model_inputs(np.abs(stft(x, fe)), cfg, den.norm)
    t_max = (len(x) - fe.hop) // fe.hop  # last frame whose samples all lie inside x
    t = int(min(max(fe.context, len(feats) // 2), t_max))
    if t < fe.context:
        raise ExportError("calibration: held-out utterance too short for a golden denoiser frame")
    # the context's frames; with level trackers every frame from the first (they start on frame 0)
    start = 0 if cfg.trackers else (t - fe.context + 1) * fe.hop - (fe.n_fft - fe.hop)
    audio = x[start : t * fe.hop + fe.hop]
    goldens = quantize(feats[[t, 0]], i.scale, i.zero_point)
    probes = _probes(quantize(samples[:: max(1, len(samples) // 12)][:12], i.scale, i.zero_point), goldens,
                     i.zero_point, seed=11)  # fmt: skip
    arena_min, outputs, lat = _verify("denoiser", data, probes, measure_latency, progress)
    silence = den.norm.apply(compress(np.zeros((1, fe.n_bins), np.float32), cfg.input_feature))[0]
    silence_q = quantize(silence, i.scale, i.zero_point)
    arena = with_margin(arena_min)

    frames_doc = "every frame from the stream's first" if cfg.trackers else "frames oldest to newest\n// of the context"
    extra_golden = (f"// Case 0 comes from these {len(audio)} samples (float, full scale 1.0): {frames_doc};\n"
                    f"// the firmware front-end should reproduce kInput of case 0 to within 1 LSB.\n"
                    + cgen.floats("kAudio", audio))  # fmt: skip
    files = {
        "denoiser_int8.tflite": data,
        "denoiser_model_data.h": cgen.model_data_h("denoiser", len(data)),
        "denoiser_model_data.cc": cgen.model_data_cc("denoiser", data),
        "denoiser_op_resolver.h": cgen.op_resolver_h("denoiser", info.resolver_methods, info.ops),
        "denoiser_settings.h": settings.denoiser_settings_h(den, info, arena, arena_min, silence_q),
        "denoiser_golden.h": cgen.golden_h("denoiser", goldens, outputs[: len(goldens)], extra_golden,
                                           "Case 0: a mid-utterance frame of a held-out mixture; case 1: its first "
                                           "frame (past context = silence)."),  # fmt: skip
    }
    n_tables = fe.n_fft + 4 * fe.n_bins  # window, mean, std, gain, offset (floats)
    if cfg.arch == "bced":
        n_tables += 2 * fe.n_bins + fe.n_bins // 2 + 1  # the two expansion weights (floats), first bands (int16)
    report = ModelReport(
        name="denoiser",
        description=(f"R-CED denoiser ({cfg.arch}, width x{cfg.width_mult:g}, {cfg.output} output, "
                     f"{cfg.input_feature} features): {fe.context} causal STFT frames -> one frame, one inference per "
                     f"hop ({fe.hop} samples at {fe.sample_rate} Hz)."),  # fmt: skip
        source=_source(Path(den.path)), params=count_params(keras_model), flash_bytes=len(data),
        settings_table_bytes=4 * n_tables + fe.n_bins, arena_bytes=arena, arena_bytes_measured=arena_min,
        ops=info.ops, op_counts=dict(info.op_counts), macs_per_inference=int(macs_per_frame(den.model)),
        inferences_per_second=float(fe.frame_rate), input_shape=i.shape, input_scale=i.scale,
        input_zero_point=i.zero_point, output_shape=info.outputs[0].shape, output_scale=info.outputs[0].scale,
        output_zero_point=info.outputs[0].zero_point, bit_exact_cases=len(probes), host_latency_ms=lat,
        extra={"algorithmic_latency_ms": fe.latency_ms, "calibration_frames": len(samples)},
    )  # fmt: skip
    return data, files, report


def _am_part(rec, den, den_int8, cal: Calibration, frames: int, n_windows: int, measure_latency: bool,
             progress: Progress):  # fmt: skip
    from grammar.acoustic.am import am_macs_per_second, am_params
    from grammar.acoustic.int8 import am_silence, window_schedule
    from grammar.decoding.recognizer import am_input_floor, receptive_field_frames
    from rced.int8 import quantize

    cfg, norm = rec.config, rec.norm
    fe = cfg.frontend
    progress("acoustic model: calibration features (enhanced by the float denoiser), int8 conversion")
    data = am_int8(rec.model, cfg, norm, den, cal, frames, n_windows, str(rec.path))  # as for the denoiser
    samples = am_samples(cfg, norm, den, cal, frames, n_windows)  # probes for the bit-exactness check
    keras_model = device_am(rec.model, cfg, frames)  # for the parameter and MAC counts
    info = inspect(data, "am")
    i, o = info.inputs[0], info.outputs[0]

    # goldens: the held-out mixture through the int8 denoiser (the device chain), and a silent window
    silence = am_silence(cfg, norm)
    feats = am_features(cal.held_out_mixture(sr=fe.sample_rate), cfg, norm, den_int8)
    goldens = quantize(np.concatenate([am_windows(feats, frames, silence, [0]),
                                       am_windows(feats[:0], frames, silence, [0])]), i.scale, i.zero_point)  # fmt: skip
    probes = _probes(quantize(samples[:4], i.scale, i.zero_point), goldens, i.zero_point, seed=12)
    arena_min, outputs, lat = _verify("am", data, probes, measure_latency, progress)
    silence_q = quantize(silence, i.scale, i.zero_point)
    arena = with_margin(arena_min)
    files = {
        "am_int8.tflite": data,
        "am_model_data.h": cgen.model_data_h("am", len(data)),
        "am_model_data.cc": cgen.model_data_cc("am", data),
        "am_op_resolver.h": cgen.op_resolver_h("am", info.resolver_methods, info.ops),
        "am_settings.h": settings.am_settings_h(cfg, norm, info, arena, arena_min, silence_q, frames,
                                                am_input_floor(cfg, den.config)),
        "am_golden.h": cgen.golden_h("am", goldens, outputs[: len(goldens)], "",
                                     "Case 0: the first window of a held-out mixture enhanced by the int8 denoiser; "
                                     "case 1: a silent window."),  # fmt: skip
    }
    per_inference = am_macs_per_second(keras_model, cfg) * frames / fe.frame_rate
    seconds = frames * fe.hop / fe.sample_rate
    n_trk = len(cfg.trackers or ())
    tracked = f" and {n_trk} level trackers of {cfg.tracker_groups} band groups" if n_trk else ""
    context, tail, hop = window_schedule(cfg, frames)
    hop_seconds = hop * cfg.stride * fe.hop / fe.sample_rate  # one window per hop
    report = ModelReport(
        name="am",
        description=(f"CTC acoustic model ({cfg.channels} channels, {cfg.blocks} separable blocks, stride {cfg.stride}) "
                     f"on {cfg.n_mels} log-mel bands of the enhanced spectrum{tracked}, with a Softmax for the device; fixed "
                     f"window of {frames} STFT frames ({seconds:.3f} s) -> {int(o.shape[1])} posterior frames, "
                     f"one window every {hop * cfg.stride} frames ({hop_seconds:.3f} s), each keeping {hop} posterior "
                     f"frames after {context} of context."),  # fmt: skip
        source=_source(Path(rec.path)), params=am_params(keras_model), flash_bytes=len(data),
        settings_table_bytes=4 * (fe.n_bins * cfg.n_mels + 4 * cfg.n_mels + 2 * n_trk) + cfg.input_channels,
        arena_bytes=arena, arena_bytes_measured=arena_min, ops=info.ops, op_counts=dict(info.op_counts),
        macs_per_inference=int(round(per_inference)), inferences_per_second=round(1.0 / hop_seconds, 6),
        input_shape=i.shape, input_scale=i.scale, input_zero_point=i.zero_point, output_shape=o.shape,
        output_scale=o.scale, output_zero_point=o.zero_point, bit_exact_cases=len(probes), host_latency_ms=lat,
        extra={"window_frames": frames, "window_seconds": seconds, "output_frames": int(o.shape[1]),
               "receptive_field_frames": receptive_field_frames(cfg), "lookahead_ms": cfg.lookahead_ms,
               "calibration_windows": len(samples),
               "window_context_frames": context, "window_hop_frames": hop,
               "note": "windows overlap (MACs x window/hop): a window's context is the AM's whole left reach, the "
                       "first window starts on the input and one more ends on it, so the frames it keeps are those "
                       "of the model run on the whole input; back-to-back windows cost the float AM 40 % -> 8 % "
                       "command accuracy"},
    )  # fmt: skip
    return files, report


def _card(report: ModelReport, kind: str) -> str:
    return (f"# {kind} (int8, firmware bundle)\n\n{report.description}\n\n"
            f"- parameters: {report.params:,}\n- flash: {report.flash_bytes:,} bytes (int8 flatbuffer)\n"
            f"- TFLM arena: {report.arena_bytes:,} bytes ({report.arena_bytes_measured:,} measured)\n"
            f"- MACs per inference: {report.macs_per_inference:,}; {report.macs_per_second / 1e6:.2f} MMAC per second "
            f"of audio\n- ops: {', '.join(report.ops)}\n- source folder: {report.source['folder']}\n\n"
            "No MODEL_CARD.md was found in the model folder; this card was generated from the export.\n"
            "Intended use, training data and evaluation: see the project README and benchmarks/results.\n")  # fmt: skip


def _default_am_folder(am) -> Path:
    from grammar.decoding.recognizer import default_am_path

    folder = Path(am) if am is not None else default_am_path()
    if not (folder / "model.keras").exists():
        what = "the shipped acoustic model" if am is None else "acoustic-model folder"
        raise ExportError(f"{folder}: {what} not found or incomplete (no model.keras); pass --am DIR, "
                          "or --no-am to export the denoiser alone")  # fmt: skip
    return folder


def _bundle_files(folder: Path) -> set[str] | None:
    """The file names a bundle folder's report.json lists (with the report files), or None if it has none."""
    try:
        data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return {*files, "report.json", "report.md"}


def check_output(out: Path) -> None:
    """Refuse an output path the bundle cannot take, before any conversion: what
    :func:`rced.outputs.check_output_folder` refuses for a folder replaced whole (a file, a path
    below a file, a mount point, a place that cannot be written), and an existing non-empty folder
    that is not a bundle."""
    from rced.errors import RcedError
    from rced.outputs import check_output_folder

    target = Path(os.path.realpath(out))
    if not target.name:
        raise ExportError(f"{out}: cannot replace the filesystem root with a bundle; name a folder")
    try:
        check_output_folder(out, replaced_whole=True)
    except RcedError as exc:
        raise ExportError(str(exc)) from None
    if not out.exists():
        return
    entries = sorted(os.listdir(target))
    if not entries:
        return
    owned = _bundle_files(target)
    if owned is None:
        raise ExportError(f"{out}: folder is not empty and holds no firmware bundle (no readable report.json); "
                          "refusing to replace it: choose a new or empty folder")  # fmt: skip
    foreign = [n for n in entries if (n not in owned and n not in BUNDLE_FILES) or (target / n).is_dir()]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ExportError(f"{out}: folder holds files that are not part of the firmware bundle ({shown}); "
                          "refusing to replace it: move them or choose another folder")  # fmt: skip


def _write_file(path: Path, data: bytes) -> None:
    """One file of the (still private) temporary bundle folder."""
    with open(path, "wb") as fh:
        fh.write(data)


def _swap_in(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is renamed aside first and removed last."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)  # put the previous bundle back
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_bundle(out: Path, files: dict[str, bytes | str]) -> None:
    """Write ``files`` into a temporary sibling folder of ``out``, then replace ``out`` with it.

    A failure (or an interruption) leaves ``out`` as it was and removes the temporary folder;
    files of an earlier bundle that this one lacks do not survive."""
    check_output(out)
    target = Path(os.path.realpath(out))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the bundle gets ordinary permissions
        for name in sorted(files):
            content = files[name]
            _write_file(tmp / name, content if isinstance(content, bytes) else content.encode("utf-8"))
        check_output(out)  # again: the folder may have changed during the conversion
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_bundle(out_dir: str | os.PathLike, denoiser: str | os.PathLike | None = None,
                 am: str | os.PathLike | None = None, grammar=None, *, include_am: bool = True,
                 am_frames: int = AM_FRAMES, calibration: Calibration | None = None,
                 calibration_utterances: int = 48, calibration_frames: int = 800, am_calibration_windows: int = 64,
                 measure_latency: bool = True, progress: Progress | None = None) -> BuildReport:  # fmt: skip
    """Convert the denoiser (and the AM), verify them with TFLM, and write the bundle as ``out_dir``
    (a new or empty folder, or an earlier bundle, which is replaced whole: see :func:`write_bundle`).

    ``denoiser``/``am``: model folders (None = shipped defaults); ``grammar``: a Grammar, a grammar JSON
    path or None (shipped). ``calibration``: audio to calibrate on (default: ``calibration_utterances``
    TRAIN-voice utterances of the synthetic corpus). Raises :class:`ExportError` (or the rced/grammar
    error of a bad model folder) with a one-line message; nothing is written then.
    """
    from grammar.alphabet import BLANK_ID
    from grammar.decoding.recognizer import Recognizer
    from grammar.units import Units
    from rced.denoiser import Denoiser
    from rced.int8 import Int8Denoiser

    say: Progress = progress or (lambda _msg: None)
    out = Path(out_dir)
    check_output(out)
    den = Denoiser.load(denoiser, backend="keras")
    rec = g = None
    g_desc = ""
    if include_am:
        rec = Recognizer.load(_default_am_folder(am), denoiser=False, grammar=False, backend="keras")
        if rec.config.frontend != den.config.frontend:
            raise ExportError(f"{rec.path}: the acoustic model's front-end {rec.config.frontend} differs from the "
                              f"denoiser's {den.config.frontend}; the device computes one STFT for both")  # fmt: skip
        g, g_desc = load_grammar(grammar)
        if g.units != rec.config.unit_set.name:
            raise ExportError(f"grammar ({g_desc}) is spelled in {g.units}, the acoustic model {rec.path} outputs "
                              f"{rec.config.unit_set.name}")  # fmt: skip
    if calibration is None:
        say(f"calibration: recorded ranges for the shipped models; probes and goldens from "
            f"{calibration_utterances} TRAIN-voice utterances")  # fmt: skip
        calibration = Calibration.from_corpus(calibration_utterances)

    den_data, files, den_report = _denoiser_part(den, calibration, calibration_frames, measure_latency, say)
    reports = [den_report]
    grammar_info = None
    if rec is not None:
        den_int8 = Int8Denoiser(den_data, den.config, den.norm, den.path, source="denoiser int8")
        am_files, am_report = _am_part(rec, den, den_int8, calibration, am_frames, am_calibration_windows,
                                       measure_latency, say)  # fmt: skip
        files.update(am_files)
        reports.append(am_report)
        files["grammar_data.h"] = cgen.grammar_h(g, Units(g.units).symbols, BLANK_ID)
        device_g = g.for_backend("int8")
        grammar_info = {"commands": len(g.commands), "expressions": len(g.expressions),
                        "threshold": device_g.threshold, "threshold_float": g.threshold,
                        "score_kind": g.score_kind, "source": g_desc}  # fmt: skip
    for r, folder in zip(reports, [Path(den.path)] + ([Path(rec.path)] if rec is not None else [])):
        files[f"{r.name}_MODEL_CARD.md"] = _model_card(folder, _card(r, "R-CED denoiser" if r.name == "denoiser"
                                                                     else "CTC acoustic model"))  # fmt: skip

    names = tuple(sorted([*files, "report.json", "report.md"]))
    report = BuildReport(out_dir=str(out), files=names, models=tuple(reports), grammar=grammar_info,
                         calibration=calibration.description, versions=_versions())  # fmt: skip
    files["report.json"] = report.to_json()
    files["report.md"] = report.to_markdown()
    say(f"writing {len(files)} files to {out}")
    write_bundle(out, files)
    return report
