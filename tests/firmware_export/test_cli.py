"""firmware-export command line: a build from files, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import sys

import pytest
import soundfile as sf

from firmware_export.cli import main
from firmware_export.convert import AM_FRAMES
from tests.firmware_export.conftest import calibration_audio
from tests.readonly import run_read_only


def calibration_folder(tmp_path):
    """Three calibration WAVs in tmp_path/cal, as --calibration-audio takes them."""
    cal = tmp_path / "cal"
    cal.mkdir()
    for i, a in enumerate(calibration_audio(3)):
        sf.write(cal / f"u{i}.wav", a, 16000)
    return cal


def test_build_denoiser_only_from_the_command_line(tmp_path, tiny_denoiser, capsys):
    cal = calibration_folder(tmp_path)
    out = tmp_path / "bundle"
    rc = main(["build", "-o", str(out), "--denoiser", str(tiny_denoiser), "--no-am", "--calibration-audio", str(cal),
               "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    assert [m["name"] for m in report["models"]] == ["denoiser"] and report["grammar"] is None
    assert report["models"][0]["host_latency_ms"]["tflm_ms"] > 0
    assert "denoiser: int8 conversion" in captured.err  # progress on stderr
    assert (out / "denoiser_model_data.cc").exists() and not (out / "grammar_data.h").exists()


def _error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) >= 1
    assert err[-1].startswith("firmware-export: error: ")
    return err[-1]


def test_errors_are_one_line(tmp_path, tiny_denoiser, capsys):
    missing = tmp_path / "nope"
    assert "model folder not found" in _error(capsys, ["build", "-o", str(tmp_path / "o"), "--denoiser", str(missing),
                                                       "--quiet"])  # fmt: skip
    msg = _error(capsys, ["build", "-o", str(tmp_path / "o"), "--denoiser", str(tiny_denoiser), "--am", str(missing),
                          "--quiet"])  # fmt: skip
    assert str(missing) in msg and "--no-am" in msg
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert "not a folder" in _error(capsys, ["build", "-o", str(afile), "--denoiser", str(tiny_denoiser), "--quiet"])
    assert "calibration folder not found" in _error(
        capsys, ["build", "-o", str(tmp_path / "o"), "--denoiser", str(tiny_denoiser), "--no-am",
                 "--calibration-audio", str(missing), "--quiet"])  # fmt: skip
    assert not (tmp_path / "o").exists()  # nothing written on failure


def test_int8_subcommand_writes_the_model_beside_the_weights(tmp_path, tiny_denoiser, capsys):
    import shutil

    cal = calibration_folder(tmp_path)
    folder = tmp_path / "model"
    shutil.copytree(tiny_denoiser, folder)
    assert main(["int8", "--denoiser", str(folder), "--calibration-audio", str(cal), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["output"] == str(folder / "model_int8.tflite") and out["bytes"] == (folder / "model_int8.tflite").stat().st_size


def test_int8_all_writes_both_models_beside_their_weights(tmp_path, tiny_denoiser, tiny_am_dir, capsys):
    """`firmware-export int8 all`: the denoiser's, then the AM's (calibrated through that denoiser); both load
    with the runtime classes that `--backend int8` uses."""
    import shutil

    from grammar.acoustic.int8 import Int8AM
    from rced.int8 import Int8Denoiser

    cal = calibration_folder(tmp_path)
    den, am = tmp_path / "den", tmp_path / "am"
    shutil.copytree(tiny_denoiser, den)
    shutil.copytree(tiny_am_dir, am)
    assert main(["int8", "all", "--denoiser", str(den), "--am", str(am), "--calibration-audio", str(cal), "--json",
                 "--quiet"]) == 0  # fmt: skip
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [x["output"] for x in lines] == [str(den / "model_int8.tflite"), str(am / "model_int8.tflite")]
    assert Int8Denoiser.load(den).path == den and Int8AM.load(am).frames == AM_FRAMES
    assert "model_int8.tflite" not in {p.name for p in tiny_am_dir.iterdir()}  # the copy, not the fixture


def test_output_path_os_errors_are_one_line(tmp_path, tiny_denoiser, capsys, monkeypatch):
    """An output below a file, or an OSError while writing (e.g. permission denied): one line, exit 2."""
    cal = calibration_folder(tmp_path)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    msg = _error(capsys, ["build", "-o", str(afile / "sub" / "out"), "--denoiser", str(tiny_denoiser), "--no-am",
                          "--calibration-audio", str(cal), "--quiet"])  # fmt: skip
    assert f"{afile / 'sub' / 'out'}: cannot write here, {afile} is not a folder" in msg
    assert afile.read_text() == "x"

    import firmware_export.bundle

    locked = tmp_path / "locked" / "out"

    def denied(out_dir, **kw):
        raise PermissionError(13, "Permission denied", str(locked))

    monkeypatch.setattr(firmware_export.bundle, "build_bundle", denied)
    msg = _error(capsys, ["build", "-o", str(locked), "--no-am", "--calibration-audio", str(cal), "--quiet"])
    assert msg == f"firmware-export: error: {locked}: Permission denied"


def test_read_only_outputs_fail_before_any_work(tmp_path, tiny_denoiser):
    """A bundle into a read-only folder, or int8 beside weights on a read-only disk: one line naming the
    path given, before the models load or calibration audio is read (both given here are missing)."""
    import shutil

    ro = tmp_path / "ro"
    shutil.copytree(tiny_denoiser, ro)
    before = sorted(p.name for p in ro.iterdir())
    missing = ["--calibration-audio", str(tmp_path / "no_cal"), "--quiet"]
    for argv, out in ((["build", "-o", ro / "bundle", "--denoiser", tmp_path / "no_model", *missing], ro / "bundle"),
                      (["int8", "--denoiser", ro, *missing], ro / "model_int8.tflite")):  # fmt: skip
        res, reason = run_read_only([sys.executable, "-m", "firmware_export", *argv], ro)
        err = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(err) == 1, res.stderr
        assert err[0].startswith(f"firmware-export: error: {out}: cannot write here, {ro} is ") and reason in err[0]
    assert sorted(p.name for p in ro.iterdir()) == before


@pytest.mark.parametrize("command", ["build", "int8"])
@pytest.mark.parametrize("value", ["-5", "0", "nan", "x"])
def test_bad_am_frames_are_refused_when_the_arguments_are_parsed(tmp_path, capsys, command, value):
    """Before any conversion (a negative window crashed in numpy after 10 s, 0 was found after 18 s)."""
    argv = [command, "--am-frames", value, "--quiet"] + (["-o", str(tmp_path / "b")] if command == "build" else [])
    with pytest.raises(SystemExit) as exc:
        main(argv)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert exc.value.code == 2 and last.startswith(f"firmware-export {command}: error: argument --am-frames: ")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("command", ["build", "int8"])
def test_an_am_window_off_the_stride_is_refused_before_calibration(tmp_path, capsys, monkeypatch, command):
    """125 frames against the shipped AM's stride 2: refused from its config.json, before any audio is made."""
    import firmware_export.cli as cli

    monkeypatch.setattr(cli, "_calibration", lambda *a, **k: pytest.fail("calibration audio made before the check"))
    argv = [command, "--am-frames", "125", "--quiet"] + (["-o", str(tmp_path / "b")] if command == "build" else ["am"])
    assert _error(capsys, argv) == "firmware-export: error: AM window: 125 frames is not a positive multiple of the stride 2"
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("command", ["build", "int8"])
def test_an_am_window_shorter_than_the_reach_is_refused_before_calibration(tmp_path, capsys, monkeypatch, command):
    """100 frames = 50 output frames, all of them the shipped AM's context (44) and look-ahead (6)."""
    import firmware_export.cli as cli

    monkeypatch.setattr(cli, "_calibration", lambda *a, **k: pytest.fail("calibration audio made before the check"))
    argv = [command, "--am-frames", "100", "--quiet"] + (["-o", str(tmp_path / "b")] if command == "build" else ["am"])
    assert _error(capsys, argv) == ("firmware-export: error: AM window: 100 frames give 50 output frames, none left "
                                    "after the AM's 44 of context and 6 of look-ahead (use more than 100 frames)")
    assert not (tmp_path / "b").exists()


def test_a_bundle_where_no_file_can_be_created_is_refused_first(tmp_path, capsys):
    """/proc takes no new folder, not even root's: refused before the models load (--denoiser is
    missing), naming the path given rather than the temporary folder."""
    msg = _error(capsys, ["build", "-o", "/proc/b", "--denoiser", str(tmp_path / "no_model"), "--quiet"])
    assert msg.startswith("firmware-export: error: /proc/b: cannot write here") and ".tmp-" not in msg


def test_an_empty_output_path_has_its_own_message(capsys):
    with pytest.raises(SystemExit):
        main(["build", "-o", ""])
    assert "output path is empty ('')" in capsys.readouterr().err.strip().splitlines()[-1]
