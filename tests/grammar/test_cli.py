"""The ``grammar`` command line as a user runs it."""

import json
import sys

import pytest
import soundfile as sf

from tests.grammar.conftest import grammar_cli as grammar
from tests.grammar.conftest import one_line_error, tone
from tests.readonly import run_read_only


@pytest.fixture
def wavs(tmp_path):
    paths = []
    for i, sr in enumerate((16000, 44100)):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, tone(1.5, sr), sr)
        paths.append(p)
    return paths


def test_recognize_json_lines(tiny_am, tiny_grammar, wavs):
    res = grammar("recognize", *wavs, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser", "--json")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [x["path"] for x in lines] == [str(p) for p in wavs]
    assert all(set(x) == {"path", "command", "score"} for x in lines)


def test_transcribe(tiny_am, wavs):
    res = grammar("transcribe", wavs[0], "--am", tiny_am, "--json")
    assert res.returncode == 0, res.stderr
    assert set(json.loads(res.stdout)) == {"path", "text"}


def test_a_phoneme_am_spells_the_commands_and_refuses_a_character_grammar(tiny_phone_am, tiny_grammar, wavs, tmp_path):
    from grammar.units import Units

    cmds = tmp_path / "commands.txt"
    cmds.write_text("mute\nunmute\nvolume up\n")
    res = grammar("recognize", wavs[0], "--am", tiny_phone_am, "--commands", cmds, "--no-denoiser", "--json")
    assert res.returncode == 0, res.stderr
    assert set(json.loads(res.stdout)) == {"path", "command", "score"}
    res = grammar("transcribe", wavs[0], "--am", tiny_phone_am, "--json")
    assert res.returncode == 0, res.stderr
    Units("phones").parse(json.loads(res.stdout)["text"])  # ARPAbet (or nothing): parse refuses anything else
    res = grammar("recognize", wavs[0], "--am", tiny_phone_am, "--grammar", tiny_grammar, "--no-denoiser")
    one_line_error(res, "the grammar is spelled in chars, the acoustic model")
    res = grammar("dictionary", "build", "-o", tmp_path / "d.json", "--am", tiny_phone_am, "--no-denoiser")
    one_line_error(res, "outputs phones; pronunciation dictionaries and augmentation work over characters")
    assert not (tmp_path / "d.json").exists()


@pytest.mark.parametrize("content,needle", [
    ("", "no commands"),
    ("mute\nvolume up\nMute\n", "duplicate"),
    ("mute\n!!!\n", "no letters left"),
])  # fmt: skip
def test_malformed_command_files(tiny_am, wavs, tmp_path, content, needle):
    f = tmp_path / "commands.txt"
    f.write_text(content)
    res = grammar("recognize", wavs[0], "--am", tiny_am, "--commands", f, "--no-denoiser")
    one_line_error(res, needle)
    assert str(f) in res.stderr


def test_bad_audio_is_named(tiny_am, tiny_grammar, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    res = grammar("recognize", bad, "--am", tiny_am, "--grammar", tiny_grammar)
    one_line_error(res, "not a readable audio file")


def test_short_audio_is_refused(tiny_am, tiny_grammar, tmp_path):
    p = tmp_path / "short.wav"
    sf.write(p, tone(0.2), 16000)
    res = grammar("recognize", p, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser")
    one_line_error(res, "receptive field")


@pytest.mark.parametrize("manifest,needle", [
    ("path,label\n", "no rows"),
    ("file,label\nx.wav,mute\n", "path"),
    ("path,label\nmissing.wav,mute\n", "missing.wav"),
    ("path,label\nu0.wav,open the pod bay doors\n", "open the pod bay doors"),
])  # fmt: skip
def test_malformed_manifests(tiny_am, tiny_grammar, wavs, manifest, needle):
    m = wavs[0].parent / "manifest.csv"
    m.write_text(manifest)
    res = grammar("evaluate", "--dataset", m, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser")
    one_line_error(res, needle)


def test_evaluate_and_calibrate(tiny_am, tiny_grammar, wavs, tmp_path):
    m = wavs[0].parent / "manifest.csv"
    m.write_text("path,label,snr\nu0.wav,mute,clean\nu1.wav,,clean\n")
    res = grammar("evaluate", "--dataset", m, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser",
                  "--json", "--det", tmp_path / "det.png")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout, parse_constant=pytest.fail)["metrics"]  # strict JSON: no NaN
    assert out["all"]["n_command"] == 1 and out["all"]["n_noncommand"] == 1
    assert (tmp_path / "det.png").stat().st_size > 1000
    g = tmp_path / "calibrated.json"
    res = grammar("calibrate", "--dataset", m, "--target-far", "0", "-o", g, "--am", tiny_am,
                  "--grammar", tiny_grammar, "--no-denoiser")  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = grammar("recognize", wavs[1], "--am", tiny_am, "--grammar", g, "--no-denoiser", "--json")
    assert json.loads(res.stdout)["command"] is None  # the calibrated threshold rejects its non-command
    # one non-command cannot bound the FAR at 50 %: the target becomes 0 and it is rejected too
    res = grammar("calibrate", "--dataset", m, "--max-far", "0.5", "-o", g, "--am", tiny_am,
                  "--grammar", tiny_grammar, "--no-denoiser")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "calibrating to 0.0000" in res.stderr
    res = grammar("calibrate", "--dataset", m, "--max-far", "0.5", "-o", g, "--am", tiny_am,
                  "--grammar", tiny_grammar, "--no-denoiser", "--json")  # fmt: skip
    assert res.returncode == 0 and json.loads(res.stdout)["output"] == str(g)  # stdout is one JSON object
    assert json.loads(g.read_text())["provenance"]["threshold"]["max_far"] == 0.5
    assert json.loads(g.read_text())["provenance"]["threshold"]["n_independent"] == 1
    res = grammar("calibrate", "--dataset", m, "--target-far", "0", "-o", m / "g.json", "--am", tiny_am,
                  "--grammar", tiny_grammar, "--no-denoiser")  # fmt: skip
    one_line_error(res, str(m))  # the output's folder is a file


def test_evaluate_a_manifest_without_snr_column(tiny_am, tiny_grammar, wavs):
    m = wavs[0].parent / "plain.csv"
    m.write_text("path,label\nu0.wav,mute\nu1.wav,\n")
    res = grammar("evaluate", "--dataset", m, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser", "--json")
    assert res.returncode == 0, res.stderr
    assert list(json.loads(res.stdout)["metrics"]) == ["all"]


def test_evaluate_json_has_null_for_an_undefined_rate(tiny_am, tiny_grammar, wavs):
    """A group with no non-commands has no FAR: null in --json (NaN is not JSON)."""
    m = wavs[0].parent / "cmds.csv"
    m.write_text("path,label,snr\nu0.wav,mute,clean\nu1.wav,,5\n")
    res = grammar("evaluate", "--dataset", m, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout, parse_constant=pytest.fail)["metrics"]
    assert out["clean"]["far"] is None and out["5"]["mdr"] is None and out["5"]["accuracy"] is None
    assert out["all"]["far"] in (0.0, 1.0)


def test_output_checks_come_before_any_model_or_synthesis(wavs, tmp_path):
    """Each refusal names the user's path; --am names a missing folder, so a check that came after
    loading would report the model instead (make-dataset would synthesise first)."""
    m = tmp_path / "manifest.csv"
    m.write_text("path,label\nu0.wav,mute\nu1.wav,\n")
    cmds = tmp_path / "commands.txt"
    cmds.write_text("mute\n")
    no_am = ["--am", tmp_path / "no_am"]
    below = wavs[0] / "det.png"  # the output's folder is a regular file
    one_line_error(grammar("evaluate", "--dataset", m, "--det", below, *no_am),
                   f"{below}: cannot write here, {wavs[0]} is not a folder")  # fmt: skip
    one_line_error(grammar("augment", "--commands", cmds, "--dataset", m, "-o", m, *no_am),
                   f"{m}: output path equals the input")  # fmt: skip
    one_line_error(grammar("train-am", wavs[0] / "run"), f"{wavs[0] / 'run'}: cannot write here")
    one_line_error(grammar("make-dataset", "-o", m), f"{m}: output path exists and is not a folder")
    ro = tmp_path / "ro"
    ro.mkdir()
    for argv, out in ((["make-dataset", "-o", ro / "ds"], ro / "ds"),
                      (["calibrate", "--dataset", m, "-o", ro / "g.json", *no_am], ro / "g.json")):  # fmt: skip
        res, reason = run_read_only([sys.executable, "-m", "grammar", *argv], ro)
        one_line_error(res, f"{out}: cannot write here, {ro} is ")
        assert reason in res.stderr and not list(ro.iterdir())


def test_recognize_refuses_a_long_recording_before_any_model_loads(tmp_path):
    """Its score rates one command against the whole input: past 20 s it is meaningless; listen is the tool."""
    from grammar.cli import MAX_UTTERANCE_S

    ok, long = tmp_path / "ok.wav", tmp_path / "long.wav"
    sf.write(ok, tone(1.5), 16000)
    sf.write(long, tone(MAX_UTTERANCE_S + 0.5), 16000)
    res = grammar("recognize", ok, long, "--am", tmp_path / "no_am")  # a check after loading would name the AM
    one_line_error(res, f"{long}: {MAX_UTTERANCE_S + 0.5:.1f} s of audio, but recognize expects one utterance")
    assert f"grammar listen {long}" in res.stderr


def test_transcribe_shows_progress_on_long_audio_and_keeps_stdout_clean(tiny_am, tmp_path):
    p = tmp_path / "long.wav"
    sf.write(p, tone(61.0), 16000)
    res = grammar("transcribe", p, "--am", tiny_am, "--no-denoiser", "--json")
    assert res.returncode == 0, res.stderr
    assert set(json.loads(res.stdout)) == {"path", "text"}
    assert "transcribing: 100%" in res.stderr and "61/61 s of audio" in res.stderr
