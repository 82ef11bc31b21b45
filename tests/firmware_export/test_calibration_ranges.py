"""Reproducible int8. SHIPPED-BYTES TESTS: a rebuild of each shipped int8 model from the recorded
calibration ranges (firmware_export/calibration_ranges.json) equals the shipped model_int8.tflite
byte for byte, with no audio synthesised. Models without a record are calibrated on synthesised
audio and say so; a calibration corpus is synthesised only when its audio is used."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from firmware_export.convert import SHIPPED_CORPUS, Calibration, CorpusSpec, am_int8, am_key, denoiser_int8, recorded
from firmware_export.errors import ExportError
from tests.firmware_export.conftest import calibration_audio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_synthesis(monkeypatch):
    """Any attempt to synthesise the calibration corpus fails the test."""

    def refuse(self):
        raise AssertionError(f"calibration audio was synthesised ({self})")

    monkeypatch.setattr(CorpusSpec, "load", refuse)


def _shipped(folder: str) -> bytes:
    return (ROOT / folder / "model_int8.tflite").read_bytes()


#: How far a float in a rebuilt file (a quantisation scale, a folded float weight) may lie from the
#: shipped one: the converter's float arithmetic rounds differently on different CPUs (seen: 1-6
#: float32 ulp on an Intel Xeon for files built on an AMD EPYC); a step of an int8 weight is 1/127.
FLOAT_RTOL = 1e-5


def assert_same_tflite(rebuilt: bytes, shipped: bytes) -> None:
    """The rebuild is the shipped file: byte for byte, or, where the converter's float arithmetic
    rounds differently on this CPU, the same size, ops, tensors, zero points and integer constants
    (weights, biases) bit for bit, with every float (scales, float constants) within FLOAT_RTOL."""
    if rebuilt == shipped:
        return
    from rced.runtime import interpreter

    assert len(rebuilt) == len(shipped), "the rebuild's size differs from the shipped file"
    a, b = interpreter(rebuilt, exact=True), interpreter(shipped, exact=True)
    ops = [[(o["op_name"], list(o["inputs"]), list(o["outputs"])) for o in i._get_ops_details()] for i in (a, b)]
    assert ops[0] == ops[1], "the rebuild's ops differ"
    made = {t for o in a._get_ops_details() for t in o["outputs"]} | {d["index"] for d in a.get_input_details()}
    constant = {t for o in a._get_ops_details() for t in o["inputs"] if t >= 0} - made  # weights, biases, shapes
    ta, tb = a.get_tensor_details(), b.get_tensor_details()
    assert len(ta) == len(tb) and constant
    for x, y in zip(ta, tb):
        assert (x["name"], x["dtype"], list(x["shape"])) == (y["name"], y["dtype"], list(y["shape"])), x["name"]
        qx, qy = x["quantization_parameters"], y["quantization_parameters"]
        np.testing.assert_array_equal(qx["zero_points"], qy["zero_points"], err_msg=x["name"])
        assert qx["quantized_dimension"] == qy["quantized_dimension"], x["name"]
        np.testing.assert_allclose(qx["scales"], qy["scales"], rtol=FLOAT_RTOL, err_msg=x["name"])
        if x["index"] in constant:
            vx, vy = a.get_tensor(x["index"]), b.get_tensor(y["index"])
            if np.issubdtype(vx.dtype, np.integer):
                np.testing.assert_array_equal(vx, vy, err_msg=x["name"])
            else:
                np.testing.assert_allclose(vx, vy, rtol=FLOAT_RTOL, atol=1e-30, err_msg=x["name"])


def test_shipped_bytes_rebuild_of_the_default_denoiser_via_write_int8_beside(tmp_path, no_synthesis):
    """What `firmware-export int8 denoiser` does, on a copy of the shipped folder (about 20 s on two
    cores, with TensorFlow's start-up and the float export beside it; the lite rebuild alone takes 4 s)."""
    from firmware_export.convert import write_int8_beside

    folder = tmp_path / "default_model"
    folder.mkdir()
    for name in ("model.keras", "config.json", "norm.json"):
        shutil.copy(ROOT / "rced/default_model" / name, folder / name)
    path = write_int8_beside(folder, calibration=Calibration.from_corpus(48))
    assert_same_tflite(path.read_bytes(), _shipped("rced/default_model"))
    # the float runtime's file beside it is the shipped one too (the float conversion is deterministic)
    assert_same_tflite((folder / "model_float.tflite").read_bytes(), (ROOT / "rced/default_model/model_float.tflite").read_bytes())


@pytest.mark.parametrize("name", ["lite", "bced"])
def test_shipped_bytes_rebuild_of_each_preset(no_synthesis, name):
    from rced.denoiser import Denoiser, preset_model_path

    den = Denoiser.load(preset_model_path(name), backend="keras")
    assert_same_tflite(denoiser_int8(den), _shipped(f"rced/presets/{name}"))


def test_shipped_bytes_rebuild_of_the_am_behind_the_shipped_denoiser(no_synthesis):
    """The shipped AM's int8 file (233,576 bytes) from its recorded ranges: about 7 s."""
    from grammar.decoding.recognizer import Recognizer

    rec = Recognizer.load(None, denoiser=None, grammar=False, backend="keras")
    assert_same_tflite(am_int8(rec.model, rec.config, rec.norm, rec.denoiser), _shipped("grammar/default_am"))


def test_an_am_behind_another_denoiser_has_no_record_and_says_so(caplog):
    from grammar.decoding.recognizer import Recognizer

    rec = Recognizer.load(None, denoiser=None, grammar=False, backend="keras")
    cal = Calibration.from_corpus()
    assert recorded(am_key(rec.model, rec.config, rec.norm, rec.denoiser, cal), "am", cal) is not None
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="firmware_export"):
        assert recorded(am_key(rec.model, rec.config, rec.norm, None, cal), "AMDIR", cal) is None
    msg = caplog.records[-1].getMessage()
    assert msg.startswith("AMDIR: calibrating on freshly synthesised") and "with this denoiser in front" in msg
    assert recorded(am_key(rec.model, rec.config, rec.norm, rec.denoiser, cal, n_windows=32), "am", cal) is None


def test_an_unrecorded_denoiser_is_calibrated_on_synthesised_audio_with_a_warning(tiny_denoiser, monkeypatch,
                                                                                   caplog):  # fmt: skip
    from rced.denoiser import Denoiser

    loads = []

    def fake_load(self):  # stands in for the TTS engines: the same corpus API, closed-form audio
        loads.append(self)
        audio = calibration_audio(4)
        return audio, audio

    monkeypatch.setattr(CorpusSpec, "load", fake_load)
    den = Denoiser.load(tiny_denoiser, backend="keras")
    with caplog.at_level(logging.WARNING, logger="firmware_export"):
        data = denoiser_int8(den, n_frames=100)
    assert loads == [SHIPPED_CORPUS] and data[4:8] == b"TFL3"
    msg = caplog.records[-1].getMessage()
    assert msg.startswith(f"{tiny_denoiser}: calibrating on freshly synthesised TRAIN-voice audio (no calibration "
                          "ranges are recorded for this model's weights")  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="firmware_export"):
        assert recorded({"kind": "denoiser"}, "d", Calibration.from_corpus(8)) is None
    assert "not the shipped calibration set" in caplog.records[-1].getMessage()


def test_given_audio_is_never_looked_up_and_warns_nothing(caplog):
    cal = Calibration.from_audio(calibration_audio(3))
    with caplog.at_level(logging.WARNING, logger="firmware_export"):
        assert recorded(None, "d", cal) is None
    assert cal.corpus is None and not caplog.records


def test_corpus_calibration_is_synthesised_on_first_use_only(monkeypatch):
    calls = []

    def fake_load(self):
        calls.append(self)
        return calibration_audio(3), calibration_audio(2)

    monkeypatch.setattr(CorpusSpec, "load", fake_load)
    cal = Calibration.from_corpus(2, seed=5)
    assert calls == [] and cal.corpus == CorpusSpec(2, 5) and cal.seed == 5
    assert len(cal.speech) == 2 and len(cal.babble_pool) == 2 and np.array_equal(cal.held_out, calibration_audio(3)[2])
    cal.mixtures((0.0, 10.0), 0.0, salt=1)
    assert calls == [CorpusSpec(2, 5)]
    with pytest.raises(ExportError, match="need at least one utterance"):
        Calibration.from_corpus(0)


def test_ranges_that_do_not_fit_the_graph_are_a_clear_error(tiny_denoiser):
    from firmware_export.convert import convert_recorded, device_denoiser, load_records
    from rced.denoiser import Denoiser

    am_record = next(r for r in load_records()["records"] if r["key"]["kind"] == "am")
    model = device_denoiser(Denoiser.load(tiny_denoiser, backend="keras"))
    with pytest.raises(ExportError, match=r"^denoiser: the recorded calibration ranges do not fit this converter's "
                                          r"graph \(tensor 'serving_default_noisy_features:0'\)"):  # fmt: skip
        convert_recorded(model, am_record, "denoiser")


def test_the_records_file_is_small_and_names_each_shipped_int8_file():
    from firmware_export.convert import RANGES_FILE, load_records

    assert RANGES_FILE.stat().st_size < 30_000
    records = {r["name"]: r for r in load_records()["records"]}
    presets = sorted(f"rced/presets/{p.parent.name}" for p in (ROOT / "rced/presets").glob("*/model_int8.tflite"))
    assert presets and sorted(records) == ["grammar/default_am", "rced/default_model", *presets]
    for name, r in records.items():
        assert r["int8_sha256"] == hashlib.sha256(_shipped(name)).hexdigest()


def test_load_records_rejects_a_broken_file(tmp_path):
    from firmware_export.convert import load_records

    bad = tmp_path / "ranges.json"
    bad.write_text("{not json")
    with pytest.raises(ExportError, match=f"^{bad}: not a calibration-ranges file"):
        load_records(bad)
    assert load_records(tmp_path / "missing.json")["records"] == []


def _record_script():
    spec = importlib.util.spec_from_file_location("record_calibration", ROOT / "scripts/record_calibration.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_update_records_the_named_am_and_keeps_the_other_records(tmp_path, tiny_am_dir, calibration, capsys):
    """`record_calibration.py --update --am DIR`: that AM's record replaces its old one (checked by a rebuild),
    every other record stays as it was, no denoiser is recorded; --update with no folder is a usage error."""
    import json

    from firmware_export.convert import load_records, write_am_int8_beside

    am = tmp_path / "am"
    shutil.copytree(tiny_am_dir, am)
    write_am_int8_beside(am, denoiser=False, calibration=calibration, n_windows=4)
    out = tmp_path / "ranges.json"
    other = {"name": "rced/other", "key": {"kind": "denoiser"}, "int8_sha256": "0" * 64, "ranges": {}}
    out.write_text(json.dumps({"tensorflow": "0", "records": [other, {**other, "name": am.as_posix()}]}))
    script = _record_script()
    assert script.main(["--update", "--am", str(am), "-o", str(out)]) == 0
    records = load_records(out)["records"]
    assert [r["name"] for r in records] == ["rced/other", am.as_posix()] and records[0] == other
    assert records[1]["int8_sha256"] == hashlib.sha256((am / "model_int8.tflite").read_bytes()).hexdigest()
    assert records[1]["key"]["kind"] == "am" and records[1]["ranges"]
    with pytest.raises(SystemExit) as exc:
        script.main(["--update", "-o", str(out)])
    assert exc.value.code == 2 and "--update: name the folders to record" in capsys.readouterr().err


def test_recovered_ranges_give_back_each_scale_and_zero_point():
    """For ranges the calibrator could report (random, ReLU-like from 0 too), the range recovered from
    the resulting (scale, zero point) gives back exactly that pair."""
    script = _record_script()
    rng = np.random.default_rng(0)
    for i in range(3000):
        lo = np.float32(0.0 if i % 3 == 0 else -(10 ** rng.uniform(-3, 1.5)))
        scale, zp = script.quant_params(lo, np.float32(10 ** rng.uniform(-3, 1.5)))
        assert script.quant_params(*(np.float32(v) for v in script.range_for(scale, zp))) == (scale, zp)


def test_the_readout_is_left_out_of_the_weights_digest_and_the_network_is_not(tiny_am_dir):
    """How outputs are read (AMConfig.READOUT_FIELDS) never changes the int8 graph, so it never
    invalidates a record; a field of the network does."""
    import dataclasses

    from firmware_export.convert import weights_digest
    from grammar.config import AMConfig
    from rced.denoiser import load_model_folder

    model, cfg, norm = load_model_folder(tiny_am_dir, AMConfig, "am", ExportError, "keras")
    base = weights_digest(model, cfg, norm)
    neutral = cfg.without_readout()
    assert neutral.readout == (1.0, 0.0) and cfg.readout == (1.5, 0.75)
    assert weights_digest(model, neutral, norm) == base
    assert weights_digest(model, dataclasses.replace(cfg, posterior_scale=3.0), norm) == base
    assert weights_digest(model, dataclasses.replace(cfg, input_mask_floor=0.2), norm) != base
