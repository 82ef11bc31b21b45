"""The bundle: its files compile, it is deterministic, TFLM agrees with LiteRT, the arena is minimal."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from firmware_export.convert import AM_FRAMES
from tests.firmware_export.conftest import BUILD_KW

GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ not installed: generated C++ not compiled")

EXPECTED_FILES = {
    "report.json", "report.md", "grammar_data.h",
    *(f"{m}_{part}" for m in ("denoiser", "am") for part in
      ("int8.tflite", "model_data.cc", "model_data.h", "op_resolver.h", "settings.h", "golden.h", "MODEL_CARD.md")),
}  # fmt: skip


def c_array(text: str, name: str) -> np.ndarray:
    """Numbers of ``name[...] = { ... };`` in generated C++."""
    m = re.search(rf"\b{name}\[[^\]]*\] = \{{(.*?)\}};", text, re.S)
    assert m, f"{name} not found"
    return np.array([float(v.rstrip("f")) for v in m.group(1).replace("\n", " ").split(",") if v.strip()])


def c_scalar(text: str, name: str) -> float:
    """Value of ``constexpr <type> name = value;`` in generated C++."""
    m = re.search(rf"\b{name} = ([^;]+);", text)
    assert m, f"{name} not found"
    return float(m.group(1).rstrip("f"))


def test_bundle_holds_every_file_and_a_consistent_report(bundle):
    out, report = bundle
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES == set(report.files)
    data = json.loads((out / "report.json").read_text())
    assert data["verified"] is True and "out_dir" not in data  # no paths: the file depends on inputs only
    den, am = report.model("denoiser"), report.model("am")
    assert den.flash_bytes == (out / "denoiser_int8.tflite").stat().st_size
    assert am.flash_bytes == (out / "am_int8.tflite").stat().st_size
    for m in (den, am):
        assert m.arena_bytes >= m.arena_bytes_measured + 1024 and m.arena_bytes % 16 == 0
        assert m.bit_exact_cases >= 5 and m.host_latency_ms is None  # latency off: see BUILD_KW
    assert set(den.ops) == {"CONV_2D", "LOGISTIC", "RESHAPE"}
    assert set(am.ops) == {"PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESHAPE", "SOFTMAX"}
    assert den.input_shape == (1, 129, 1, 8) and den.output_shape == (1, 129)
    assert am.input_shape == (1, AM_FRAMES, 1, 40) and am.output_shape == (1, AM_FRAMES // 2, 29)
    assert den.macs_per_second == den.macs_per_inference * 125
    md = (out / "report.md").read_text()
    for needle in ("Cortex-M4F", "Cortex-M7", "Cortex-M55", "MAC/cycle", "168 MHz", "480 MHz", "400 MHz"):
        assert needle in md
    assert report.grammar == {"commands": 2, "expressions": 3, "threshold": -0.8, "threshold_float": -0.75,
                              "score_kind": "len_margin", "source": "grammar file g.json"}
    assert "score len_margin, device threshold -0.8 (the int8 chain's; float -0.75)" in md
    grammar_h = (out / "grammar_data.h").read_text()
    from grammar.alphabet import encode

    tokens = c_array(grammar_h, "kExpressionTokens").astype(int)
    offsets = c_array(grammar_h, "kExpressionOffsets").astype(int)
    assert list(tokens[offsets[1] : offsets[2]]) == list(encode("volume op"))
    assert list(c_array(grammar_h, "kExpressionCommand").astype(int)) == [0, 0, 1]


@pytest.mark.parametrize("score_kind", ["len_norm", "frame_norm", "len_margin"])
@pytest.mark.parametrize("with_int8_threshold", [False, True])
def test_grammar_header_decides_as_the_int8_chain(score_kind, with_int8_threshold, monkeypatch):
    """The header's rule (most likely expression, its confidence by the stated formula, kThreshold,
    kMarginWeight) accepts exactly what ``decode`` accepts for the int8 backend: the grammar's int8
    threshold when it has one."""
    from firmware_export import cgen
    from grammar.decoding import listen

    # per-command offsets as a release may ship them (this one ships none): in kCommands' order
    monkeypatch.setattr(listen, "LISTEN_COMMAND_OFFSETS", {"mute": 0.4, "call home": -0.25, "not a command": 9.0})
    monkeypatch.setattr(listen, "LISTEN_BEST_OFFSET", -0.4)  # not the shipped value, so the check can fail
    from grammar.alphabet import BLANK_ID, SYMBOLS
    from grammar.decoding.decoder import Grammar, best_path_log_prob, ctc_log_likelihood, decode

    scale = 0.12 if score_kind == "frame_norm" else 1.0  # per frame: about 0.12 of per character here
    int8_threshold = -1.3 * scale if with_int8_threshold else None
    g = Grammar(("volume up", "mute", "call home"), ("volume up", "volume op", "mute", "call home"), (0, 0, 1, 2),
                threshold=-1.1 * scale, score_kind=score_kind, int8_threshold=int8_threshold)  # fmt: skip
    text = cgen.grammar_h(g, SYMBOLS, BLANK_ID)
    assert f'score kind "{score_kind}"' in text
    for name, value in (("kListenWindowSeconds", listen.LISTEN_WINDOW_S), ("kListenHopSeconds", listen.LISTEN_HOP_S),
                        ("kListenRefractorySeconds", listen.LISTEN_REFRACTORY_S),
                        ("kListenThresholdOffset", listen.LISTEN_THRESHOLD_OFFSET),
                        ("kListenMinWindows", listen.LISTEN_MIN_WINDOWS), ("kListenBestOffset", -0.4)):  # fmt: skip
        assert c_scalar(text, name) == pytest.approx(value), name
    assert "constexpr bool kListenBestCheck = true;" in text
    assert f"constexpr bool kListenVote = {'true' if listen.LISTEN_VOTE else 'false'};" in text
    from grammar.acoustic import features
    from grammar.decoding import recognizer

    for name, value in (("kSpeechFloor", recognizer.SPEECH_FLOOR), ("kSpeechMarginSeconds", listen.SPEECH_MARGIN_S),
                        ("kModulationSmooth", features.MODULATION_SMOOTH), ("kModulationLag", features.MODULATION_LAG),
                        ("kModulationSpan", features.MODULATION_SPAN), ("kTonalCeiling", recognizer.TONAL_CEILING),
                        ("kTonalBands", features.TONAL_BANDS), ("kTonalShare", features.TONAL_SHARE)):  # fmt: skip
        assert c_scalar(text, name) == pytest.approx(value), name
    assert "constexpr bool kSpeechCheck = true;" in text and "constexpr bool kTonalCheck = true;" in text
    monkeypatch.setattr(listen, "LISTEN_BEST_OFFSET", None)
    monkeypatch.setattr(listen, "LISTEN_VOTE", not listen.LISTEN_VOTE)
    monkeypatch.setattr(recognizer, "SPEECH_FLOOR", None)
    monkeypatch.setattr(recognizer, "TONAL_CEILING", None)
    off = cgen.grammar_h(g, SYMBOLS, BLANK_ID)
    assert "constexpr bool kListenBestCheck = false;" in off and "constexpr bool kSpeechCheck = false;" in off
    assert "constexpr bool kTonalCheck = false;" in off
    assert f"constexpr bool kListenVote = {'true' if listen.LISTEN_VOTE else 'false'};" in off  # the flipped value
    want = [listen.LISTEN_COMMAND_OFFSETS.get(c, 0.0) for c in g.commands]  # in kCommands' order
    np.testing.assert_allclose(c_array(text, "kListenCommandOffset"), want, atol=1e-6)
    thr, weight = c_scalar(text, "kThreshold"), c_scalar(text, "kMarginWeight")
    assert thr == pytest.approx(int8_threshold if with_int8_threshold else -1.1 * scale, abs=1e-6)
    device = g.for_backend("int8")
    rng = np.random.default_rng(3)
    lengths = g.lengths
    cmds = np.asarray(g.command_of)
    n_accepted = 0
    for i in range(60):
        logits = rng.normal(size=(40, len(SYMBOLS)))
        logits[:, BLANK_ID] += 2
        for k, sym in enumerate(g.labels[i % 4]):  # one expression, spoken more or less clearly
            logits[2 + 3 * k, sym] += 1 + i % 5
        logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        ll = ctc_log_likelihood(logp, g.labels)
        gap = ll - best_path_log_prob(logp)
        other = np.array([max((ll[f] for f in range(len(ll)) if cmds[f] != cmds[e]), default=-np.inf)
                          for e in range(len(ll))])  # fmt: skip
        score = {"len_norm": gap / lengths, "frame_norm": gap / len(logp),
                 "len_margin": (gap + weight * (ll - other)) / lengths}[score_kind]  # fmt: skip
        best = int(np.argmax(ll))  # the most likely expression; its confidence decides
        d = decode(logp, device)
        assert d.expression == best and d.score == pytest.approx(score[best], abs=1e-5)
        assert d.accepted == (score[best] >= thr)
        n_accepted += d.accepted
    assert 0 < n_accepted < 60  # both sides of the threshold were exercised


def test_grammar_header_of_a_phoneme_grammar():
    """Tokens are phoneme symbol ids (1-based codes behind the word space), texts are ARPAbet for logs."""
    from firmware_export import cgen
    from grammar.decoding.decoder import Grammar
    from grammar.units import Units

    ph = Units("phones")
    g = Grammar.from_commands(["mute", "volume up"], units="phones")
    text = cgen.grammar_h(g, ph.symbols, 0)
    tokens = c_array(text, "kExpressionTokens").astype(int)
    offsets = c_array(text, "kExpressionOffsets").astype(int)
    assert [ph.symbols[t] for t in tokens[offsets[1] : offsets[2]]] == ["V", "AA", "L", "Y", "UW", "M", " ", "AH", "P"]
    assert '"V AA L Y UW M | AH P"' in text and "phonemes and word spaces" in text


def test_settings_fold_normalisation_into_quantisation(bundle, tiny_denoiser):
    """q = round(gain * feature + offset) equals quantising the normalised feature (to 1 LSB)."""
    from rced.denoiser import Denoiser
    from rced.features import compress
    from rced.int8 import quantize

    out, report = bundle
    den = Denoiser.load(tiny_denoiser)
    text = (out / "denoiser_settings.h").read_text()
    gain, offset = c_array(text, "kInputGain"), c_array(text, "kInputOffset")
    assert len(gain) == 129 and np.allclose(c_array(text, "kFeatureMean"), den.norm.mean, atol=1e-5)
    m = report.model("denoiser")
    mag = np.random.default_rng(0).gamma(1.0, 0.05, size=(50, 129)).astype(np.float32)
    feat = compress(mag, "log")
    want = quantize(den.norm.apply(feat), m.input_scale, m.input_zero_point).astype(int)
    got = np.clip(np.round(gain * feat + offset), -128, 127).astype(int)
    assert np.abs(want - got).max() <= 1
    from rced.frontend import window

    assert np.allclose(c_array(text, "kWindow"), window(den.config.frontend), atol=1e-7)


def test_am_settings_carry_the_ams_own_mask_floor(bundle, tiny_denoiser):
    from rced.denoiser import Denoiser

    out, _ = bundle
    floor = re.search(r"kInputMaskFloor = ([0-9.e+-]+)f;", (out / "am_settings.h").read_text())
    den_floor = re.search(r"kMaskFloor = ([0-9.e+-]+)f;", (out / "denoiser_settings.h").read_text())
    assert float(floor.group(1)) == pytest.approx(0.35)  # tiny_am_dir's input_mask_floor
    cfg = Denoiser.load(tiny_denoiser).config
    assert float(den_floor.group(1)) == pytest.approx(cfg.mask_floor)
    text = (out / "denoiser_settings.h").read_text()
    for name, value in (("kMaskRelease", cfg.mask_release), ("kMaskExponent", cfg.mask_exponent)):
        assert float(re.search(name + r" = ([0-9.e+-]+)f;", text).group(1)) == pytest.approx(value)
    assert (cfg.mask_release, cfg.mask_exponent) == (0.5, 0.9)  # the fixture's shaping, not the defaults


def test_am_settings_carry_the_ams_readout(bundle):
    """kPosteriorScale and kBlankPenalty are the AM config's readout (tiny_am_dir: 1.5 and 0.75)."""
    out, _ = bundle
    text = (out / "am_settings.h").read_text()
    for name, value in (("kPosteriorScale", 1.5), ("kBlankPenalty", 0.75)):
        assert float(re.search(name + r" = ([0-9.e+-]+)f;", text).group(1)) == pytest.approx(value)


def test_tflm_agrees_with_litert_bit_for_bit_and_goldens_match(bundle):
    from firmware_export.verify import run_litert, run_tflm

    out, report = bundle
    for name in ("denoiser", "am"):
        data = (out / f"{name}_int8.tflite").read_bytes()
        m = report.model(name)
        rng = np.random.default_rng(5)
        x = rng.integers(-128, 128, size=(3, *m.input_shape[1:])).astype(np.int8)
        assert np.array_equal(run_tflm(data, x, m.arena_bytes), run_litert(data, x))
        golden = (out / f"{name}_golden.h").read_text()
        gin = c_array(golden, "kInput").astype(np.int8).reshape(-1, *m.input_shape[1:])
        gout = c_array(golden, "kOutput").astype(np.int8).reshape(-1, *m.output_shape[1:])
        assert np.array_equal(run_tflm(data, gin, m.arena_bytes), gout)


def test_arena_is_the_smallest_that_works(bundle):
    from firmware_export.verify import _runs

    out, report = bundle
    m = report.model("denoiser")
    data = (out / "denoiser_int8.tflite").read_bytes()
    probe = np.zeros(m.input_shape[1:], np.int8)
    assert _runs(data, m.arena_bytes_measured, probe)
    assert not _runs(data, m.arena_bytes_measured - 16, probe)


def test_bundle_is_deterministic(bundle, tmp_path, tiny_denoiser, tiny_am_dir, tiny_grammar_file, calibration):
    from firmware_export import build_bundle

    out, _ = bundle
    again = tmp_path / "again"
    build_bundle(again, tiny_denoiser, tiny_am_dir, tiny_grammar_file, calibration=calibration, **BUILD_KW)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


RESOLVER_STUB = """#pragma once
#include <string>
#include <vector>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
inline std::vector<std::string>& calls() { static std::vector<std::string> c; return c; }
namespace tflite {
template <unsigned N> class MicroMutableOpResolver {
 public:
%s
};
}  // namespace tflite
"""


def _gxx(tmp_path, *args):
    proc = subprocess.run([GXX, "-std=c++17", "-Wall", "-Werror", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


@needs_gxx
def test_generated_sources_compile_and_link(bundle, tmp_path):
    out, report = bundle
    src = tmp_path / "src"
    shutil.copytree(out, src)
    # every header on its own, and all of them together in one translation unit
    plain = sorted(p.name for p in src.glob("*.h") if not p.name.endswith("_op_resolver.h"))
    for h in plain:
        (tmp_path / f"inc_{h}.cc").write_text(f'#include "{h}"\n')
    (tmp_path / "all.cc").write_text("".join(f'#include "{h}"\n' for h in plain))
    objs = []
    for cc in sorted(tmp_path.glob("inc_*.cc")) + [tmp_path / "all.cc"] + sorted(src.glob("*.cc")):
        obj = tmp_path / (cc.stem + ".o")
        _gxx(tmp_path, "-I", str(src), "-c", str(cc), "-o", str(obj))
        objs.append(obj)
    # the model arrays link from another unit, with the right size and alignment
    main = tmp_path / "main.cc"
    main.write_text(
        '#include <cstdint>\n#include <cstdio>\n#include "denoiser_model_data.h"\n#include "am_model_data.h"\n'
        "int main() {\n"
        "  if ((reinterpret_cast<uintptr_t>(g_denoiser_model_data) % 16) != 0) return 1;\n"
        "  if ((reinterpret_cast<uintptr_t>(g_am_model_data) % 16) != 0) return 2;\n"
        '  std::printf("%u %u %c%c%c%c\\n", g_denoiser_model_data_size, g_am_model_data_size,\n'
        "              g_am_model_data[4], g_am_model_data[5], g_am_model_data[6], g_am_model_data[7]);\n"
        "  return 0;\n}\n"
    )  # fmt: skip
    exe = tmp_path / "main"
    _gxx(tmp_path, "-I", str(src), str(main), str(tmp_path / "denoiser_model_data.o"), str(tmp_path / "am_model_data.o"),
         "-o", str(exe))  # fmt: skip
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0
    assert run.stdout.split() == [str(report.model("denoiser").flash_bytes), str(report.model("am").flash_bytes),
                                  "TFL3"]  # fmt: skip


@needs_gxx
@pytest.mark.parametrize("model", ["denoiser", "am"])
def test_op_resolver_registers_exactly_the_model_ops(bundle, tmp_path, model):
    from firmware_export.flatbuffer import TFLM_RESOLVER_METHODS

    out, report = bundle
    expected = sorted(TFLM_RESOLVER_METHODS[op] for op in report.model(model).ops)
    stub_dir = tmp_path / "tensorflow" / "lite" / "micro"
    stub_dir.mkdir(parents=True)
    # only the expected methods exist: any other Add* call fails to compile
    methods = "\n".join(f'  TfLiteStatus {m}() {{ calls().push_back("{m}"); return kTfLiteOk; }}' for m in expected)
    (stub_dir / "micro_mutable_op_resolver.h").write_text(RESOLVER_STUB % methods)
    main = tmp_path / "main.cc"
    main.write_text(
        f'#include <cstdio>\n#include "{model}_op_resolver.h"\n'
        f"int main() {{\n  stapes::{model}::OpResolver r;\n"
        f"  static_assert(stapes::{model}::kNumOps == {len(expected)}, \"op count\");\n"
        f"  if (stapes::{model}::RegisterOps(r) != kTfLiteOk) return 1;\n"
        '  for (auto& c : calls()) std::printf("%s\\n", c.c_str());\n  return 0;\n}\n'
    )  # fmt: skip
    exe = tmp_path / "main"
    _gxx(tmp_path, "-I", str(tmp_path), "-I", str(out), str(main), "-o", str(exe))
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0 and sorted(run.stdout.split()) == expected


# --------------------------------------------------------------------------- writing the bundle folder


def _snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_rebuild_with_fewer_files_leaves_no_stale_file(bundle, tmp_path, tiny_denoiser, calibration):
    """A denoiser-only build over a full bundle: no am_* or grammar_data.h survives, nothing else is left around."""
    from firmware_export import build_bundle

    out = tmp_path / "out"
    shutil.copytree(bundle[0], out)
    report = build_bundle(out, tiny_denoiser, include_am=False, calibration=calibration, **BUILD_KW)
    assert {p.name for p in out.iterdir()} == set(report.files)
    assert not any(p.name.startswith("am_") for p in out.iterdir()) and not (out / "grammar_data.h").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary or set-aside folder


def test_failure_mid_write_keeps_the_previous_bundle(bundle, tmp_path, monkeypatch):
    from firmware_export import bundle as bundle_mod

    out = tmp_path / "out"
    shutil.copytree(bundle[0], out)
    before = _snapshot(out)
    written = []

    def failing_write(path, data):
        if len(written) == 3:
            raise OSError(28, "No space left on device", str(path))
        written.append(path.name)
        path.write_bytes(data)

    monkeypatch.setattr(bundle_mod, "_write_file", failing_write)
    new = {"report.json": '{"files": ["denoiser_int8.tflite"]}', "report.md": "new", "denoiser_int8.tflite": b"x",
           "denoiser_golden.h": "new"}  # fmt: skip
    with pytest.raises(OSError, match="No space left"):
        bundle_mod.write_bundle(out, new)
    assert len(written) == 3 and _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failed_swap_puts_the_previous_bundle_back(bundle, tmp_path, monkeypatch):
    import os

    from firmware_export import bundle as bundle_mod

    out = tmp_path / "out"
    shutil.copytree(bundle[0], out)
    before = _snapshot(out)
    real_rename, calls = os.rename, []

    def rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the new folder into place
            raise PermissionError(13, "Permission denied", str(src))
        real_rename(src, dst)

    monkeypatch.setattr(bundle_mod.os, "rename", rename)
    with pytest.raises(PermissionError):
        bundle_mod.write_bundle(out, {"report.json": '{"files": []}', "report.md": ""})
    assert _snapshot(out) == before and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_folder_that_is_not_a_bundle_is_refused(bundle, tmp_path, tiny_denoiser, calibration):
    from firmware_export import ExportError, build_bundle

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match=r"mine: folder is not empty and holds no firmware bundle"):
        build_bundle(mine, tiny_denoiser, include_am=False, calibration=calibration, **BUILD_KW)
    mixed = tmp_path / "mixed"
    shutil.copytree(bundle[0], mixed)
    (mixed / "main.cc").write_text("int main() {}\n")
    (mixed / "build").mkdir()
    with pytest.raises(ExportError, match=r"not part of the firmware bundle \(build, main.cc\)"):
        build_bundle(mixed, tiny_denoiser, include_am=False, calibration=calibration, **BUILD_KW)
    assert (mine / "notes.txt").read_text() == "keep me" and (mixed / "main.cc").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "mixed"]
    empty = tmp_path / "empty"
    empty.mkdir()
    from firmware_export.bundle import check_output

    check_output(empty)  # an empty folder is fine


def test_band_compressed_denoiser_bundles_bit_exact_and_its_expansion_gives_the_float_mask(tmp_path, calibration):
    """bced's device graph ends at the band logits; the header's two-tap expansion, applied to TFLM's
    output, gives the float model's mask (within int8 rounding), and TFLM equals LiteRT bit for bit."""
    from firmware_export import build_bundle
    from firmware_export.verify import run_litert, run_tflm
    from rced.denoiser import Denoiser, preset_model_path

    out = tmp_path / "b"
    report = build_bundle(out, preset_model_path("bced"), include_am=False, calibration=calibration, **BUILD_KW)
    m = report.model("denoiser")
    den = Denoiser.load("bced", backend="keras")
    assert m.output_shape == (1, den.config.n_bands) and m.flash_bytes <= 32 * 1024
    settings = (out / "denoiser_settings.h").read_text()
    first = c_array(settings, "kExpandBand").astype(int)
    w0, w1 = c_array(settings, "kExpandWeight0"), c_array(settings, "kExpandWeight1")
    data = (out / "denoiser_int8.tflite").read_bytes()
    golden = (out / "denoiser_golden.h").read_text()
    gin = c_array(golden, "kInput").astype(np.int8).reshape(-1, *m.input_shape[1:])
    q = run_tflm(data, gin, m.arena_bytes)
    assert np.array_equal(q, run_litert(data, gin))
    z = (q.astype(np.float32) - m.output_zero_point) * m.output_scale  # what the firmware computes
    mask = 1 / (1 + np.exp(-(w0 * z[:, first] + w1 * z[:, first + 1])))
    x = (gin.astype(np.float32) - m.input_zero_point) * m.input_scale
    np.testing.assert_allclose(mask, np.asarray(den.model(x)), atol=0.08)


def test_an_am_with_level_trackers_is_bundled_with_their_recipe(tmp_path, tiny_denoiser, tiny_am_dir,
                                                                 tiny_grammar_file, calibration):  # fmt: skip
    """An AM with level trackers: its bundle (TFLM-verified as any) has a wider input, and am_settings.h's
    recipe (normalise, average each band group, track from the stream's first frame, quantise with the
    input's scale) gives the int8 input that the host's chain feeds the model, to 1 LSB."""
    import dataclasses
    import shutil

    from firmware_export import build_bundle
    from grammar.acoustic.am import build_am
    from grammar.config import AMConfig
    from grammar.decoding.recognizer import Recognizer
    from rced.config import load_json, save_json
    from rced.int8 import quantize
    from tests.conftest import speechlike

    am = tmp_path / "am"
    shutil.copytree(tiny_am_dir, am)
    cfg = dataclasses.replace(load_json(AMConfig, am / "config.json"), trackers=((0.5, 0.5), (2.0, 0.05)),
                              tracker_bands=8)  # fmt: skip
    build_am(cfg).save(am / "model.keras")
    save_json(cfg, am / "config.json")
    report = build_bundle(tmp_path / "out", tiny_denoiser, am, tiny_grammar_file, calibration=calibration, **BUILD_KW)
    m = report.model("am")
    assert m.input_shape[-1] == 50 and m.bit_exact_cases >= 5
    text = (tmp_path / "out" / "am_settings.h").read_text()
    consts = {k: int(re.search(k + r" = (\d+);", text).group(1)) for k in ("kNumTrackers", "kTrackerBands",
                                                                          "kTrackerGroups", "kInputChannels")}  # fmt: skip
    assert consts == {"kNumTrackers": 2, "kTrackerBands": 8, "kTrackerGroups": 5, "kInputChannels": 50}
    rise, fall = c_array(text, "kTrackerRise"), c_array(text, "kTrackerFall")
    mean, std = c_array(text, "kFeatureMean"), c_array(text, "kFeatureStd")
    rec = Recognizer.load(am, denoiser=False, grammar=False)
    feats = rec.features(speechlike(16000, 1.5, seed=3), 16000)  # normalised bands
    want = quantize(rec.am_input(feats)[0], m.input_scale, m.input_zero_point).astype(int)
    raw = feats * std + mean  # the header's recipe from the features before normalisation
    y = ((raw - mean) / std).reshape(len(raw), 5, 8).mean(axis=2)
    s, chans = np.repeat(y[:1], 2, axis=0), []
    for f in y:
        d = f - s
        s = s + np.where(d > 0, rise[:, None], fall[:, None]) * d
        chans.append(s.reshape(-1).copy())
    got = np.clip(np.round(np.array(chans) / m.input_scale) + m.input_zero_point, -128, 127).astype(int)
    assert np.abs(want[:, 40:] - got).max() <= 1
