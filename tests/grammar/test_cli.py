"""The ``grammar`` command line as a user runs it."""

import json
import sys

import pytest
import soundfile as sf

from tests.grammar.conftest import grammar_cli as grammar
from tests.grammar.conftest import one_line_error, voiced
from tests.readonly import run_read_only


@pytest.fixture
def wavs(tmp_path):
    paths = []
    for i, sr in enumerate((16000, 44100)):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, voiced(1.5, sr), sr)
        paths.append(p)
    return paths


def test_recognize_json_lines(tiny_am, tiny_grammar, wavs):
    res = grammar("recognize", *wavs, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser", "--json")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [x["path"] for x in lines] == [str(p) for p in wavs]
    assert all(set(x) == {"path", "command", "score"} for x in lines)


@pytest.mark.parametrize(("flags", "accepted"), [([], False), (["--no-speech-check"], True)])
def test_recognize_speech_check_and_its_flag(tiny_am, tiny_grammar, wavs, flags, accepted):
    """With the speech floor out of reach every command is rejected (the grammar's threshold, -1e9,
    accepts anything), unless --no-speech-check; the JSON keeps the three keys of the contract."""
    import subprocess

    code = ("import sys; import grammar.decoding.recognizer as R; R.SPEECH_FLOOR = 1e6; "
            "from grammar.cli import main; sys.exit(main(sys.argv[1:]))")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code, "recognize", str(wavs[0]), "--am", str(tiny_am), "--grammar",
                          str(tiny_grammar), "--no-denoiser", "--json", *flags], capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["command"] is not None) == accepted and set(out) == {"path", "command", "score"}


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
    sf.write(p, voiced(0.2), 16000)
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
    sf.write(ok, voiced(1.5), 16000)
    sf.write(long, voiced(MAX_UTTERANCE_S + 0.5), 16000)
    res = grammar("recognize", ok, long, "--am", tmp_path / "no_am")  # a check after loading would name the AM
    one_line_error(res, f"{long}: {MAX_UTTERANCE_S + 0.5:.1f} s of audio, but recognize expects one utterance")
    assert f"grammar listen {long}" in res.stderr


def test_transcribe_shows_progress_on_long_audio_and_keeps_stdout_clean(tiny_am, tmp_path):
    p = tmp_path / "long.wav"
    sf.write(p, voiced(61.0), 16000)
    res = grammar("transcribe", p, "--am", tiny_am, "--no-denoiser", "--json")
    assert res.returncode == 0, res.stderr
    assert set(json.loads(res.stdout)) == {"path", "text"}
    assert "transcribing: 100%" in res.stderr and "61/61 s of audio" in res.stderr


@pytest.fixture
def manifest(wavs, tmp_path):
    """A manifest of the two wavs (a command, a non-command), a commands file and a grammar file."""
    m = tmp_path / "manifest.csv"
    m.write_text("path,label\nu0.wav,mute\nu1.wav,\n")
    cmds = tmp_path / "commands.txt"
    cmds.write_text("mute\n")
    g = tmp_path / "g_in.json"
    g.write_text("{}\n")  # never read: the output check comes first
    return m, cmds, g


@pytest.mark.parametrize("command,option,which", [(c, o, w) for c, o in (("calibrate", "-o"), ("evaluate", "--det"))
                                                   for w in ("manifest", "commands", "grammar", "audio")
                                                   if (c, w) != ("calibrate", "grammar")])  # fmt: skip
def test_an_output_that_is_an_input_is_refused(manifest, wavs, tmp_path, command, option, which):
    """The manifest, --commands, --grammar and every audio file the manifest lists are inputs: never
    overwritten, refused before any model loads (--am names a missing folder). ``calibrate --grammar
    g.json -o g.json`` updates the grammar in place (tests/grammar/acoustic/test_int8.py)."""
    m, cmds, g = manifest
    target = {"manifest": m, "commands": cmds, "grammar": g, "audio": wavs[1]}[which]
    source = ["--grammar", g] if which == "grammar" else ["--commands", cmds]
    before = target.read_bytes()
    res = grammar(command, "--dataset", m, option, target, *source, "--am", tmp_path / "no_am")
    one_line_error(res, f"{target}: output path equals the input")
    assert target.read_bytes() == before


@pytest.mark.parametrize("command,option", [("calibrate", "-o"), ("evaluate", "--det")])
@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_a_special_file_output_is_never_replaced(manifest, tmp_path, command, option, kind):
    import os
    import socket
    import stat

    out = tmp_path / "special"
    if kind == "fifo":
        os.mkfifo(out)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(out))
    res = grammar(command, "--dataset", manifest[0], option, out, "--am", tmp_path / "no_am")
    one_line_error(res, f"{out}: output path is a {'named pipe' if kind == 'fifo' else 'socket'}")
    assert not stat.S_ISREG(os.stat(out).st_mode)


@pytest.mark.parametrize("argv,out", [
    (["calibrate", "--dataset", "{m}", "-o", "/proc/cal.json"], "/proc/cal.json"),
    (["evaluate", "--dataset", "{m}", "--det", "/proc/det.png"], "/proc/det.png"),
    (["demo", "-o", "{wav}/demo"], "{wav}/demo"),
])  # fmt: skip
def test_output_locations_are_checked_first_and_named_as_given(manifest, wavs, tmp_path, argv, out):
    """/proc takes no new file (not even root's) and a path below a file takes nothing: each refusal
    names the user's path (never a temporary one) before any model loads (--am names a missing folder)."""
    fill = {"m": manifest[0], "wav": wavs[0]}
    out = out.format(**fill)
    res = grammar(*(a.format(**fill) for a in argv), "--am", tmp_path / "no_am")
    one_line_error(res, f"{out}: cannot write here")
    assert ".part" not in res.stderr and not (tmp_path / "no_am").exists()


@pytest.mark.parametrize("command", ["calibrate", "evaluate"])
@pytest.mark.parametrize("kind,needle", [("empty", "empty file"), ("nan", "NaN"), ("truncated", "truncated")])
def test_manifest_audio_is_checked_before_any_model_loads(bad_files, tmp_path, command, kind, needle):
    m = tmp_path / "bad_audio.csv"
    m.write_text(f"path,label\n{bad_files[kind].name},\n")
    out = ["-o", tmp_path / "g.json"] if command == "calibrate" else []
    res = grammar(command, "--dataset", m, *out, "--am", tmp_path / "no_am")
    one_line_error(res, f"{bad_files[kind].resolve()}: ")
    assert needle in res.stderr and not (tmp_path / "g.json").exists()


@pytest.mark.parametrize("option,value,needle", [
    ("--target-far", "1.5", "[0, 1]"), ("--target-far", "-1", "[0, 1]"), ("--target-far", "nan", "[0, 1]"),
    ("--max-far", "nan", "(0, 1)"), ("--max-far", "1", "(0, 1)"), ("--confidence", "2", "(0, 1)"),
])  # fmt: skip
def test_calibrate_option_ranges_are_checked_first(manifest, tmp_path, option, value, needle):
    res = grammar("calibrate", "--dataset", manifest[0], "-o", tmp_path / "g.json", option, value,
                  "--am", tmp_path / "no_am")  # fmt: skip
    one_line_error(res, f"{option} must lie in {needle}, got ")


def test_an_error_while_scoring_is_not_on_the_progress_bar_line(tiny_am, tiny_grammar, tmp_path):
    """An utterance too short for the AM is found while scoring: the bar is closed first, so the
    error is a line of its own."""
    sf.write(tmp_path / "short.wav", voiced(0.05), 16000)
    m = tmp_path / "short.csv"
    m.write_text("path,label\nshort.wav,\n")
    out = tmp_path / "calibrated.json"
    res = grammar("calibrate", "--dataset", m, "-o", out, "--am", tiny_am, "--grammar", tiny_grammar, "--no-denoiser")
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("grammar: error: ") and "receptive field" in last, res.stderr
    assert not out.exists()


def test_recognize_json_has_null_for_a_score_that_is_not_finite(tiny_am, wavs, tmp_path):
    """A command too long for the audio cannot be aligned at all (score -inf): null, as strict JSON needs."""
    cmds = tmp_path / "long.txt"
    cmds.write_text("abcdefghij" * 50 + "\n")
    res = grammar("recognize", wavs[0], "--am", tiny_am, "--commands", cmds, "--no-denoiser", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout, parse_constant=pytest.fail)
    assert out["score"] is None and out["command"] is None


@pytest.mark.parametrize("argv", [["calibrate", "--dataset", "m.csv", "-o", ""], ["evaluate", "--dataset", "m.csv", "--det", ""],
                                  ["demo", "-o", ""]])  # fmt: skip
def test_an_empty_output_path_has_its_own_message(argv):
    res = grammar(*argv)
    assert res.returncode == 2 and "output path is empty ('')" in res.stderr.strip().splitlines()[-1], res.stderr


@pytest.mark.parametrize("argv,trackers", [
    ([], "shipped"),
    (["--trackers"], None),
    (["--trackers", "1,1", "--tracker-bands", "8"], ((1.0, 1.0),)),
])  # fmt: skip
def test_train_am_builds_the_shipped_trackers_unless_told(tmp_path, argv, trackers):
    """``train-am``'s network defaults to the shipped AM's, level trackers included, so
    ``--init-from grammar/default_am/model.keras`` fits it; ``--trackers`` alone trains one without."""
    from grammar.cli import _shipped_am_config, _train_am_config, build_parser

    shipped = _shipped_am_config()
    cfg = _train_am_config(build_parser().parse_args(["train-am", str(tmp_path / "run"), *argv])).am
    want = shipped.trackers if trackers == "shipped" else trackers
    assert cfg.trackers == want and (cfg.channels, cfg.blocks) == (shipped.channels, shipped.blocks)
    assert cfg.tracker_bands == (None if want is None else 8 if "8" in argv else shipped.tracker_bands)
    if not argv:  # the shipped checkpoint's weights fit the default network, layer by layer
        import keras

        from grammar.acoustic.am import build_am
        from grammar.decoding.recognizer import default_am_path

        src = keras.saving.load_model(default_am_path() / "model.keras", safe_mode=True, compile=False)
        assert [w.shape for w in build_am(cfg).get_weights()] == [w.shape for w in src.get_weights()]


def test_train_am_refuses_a_bad_tracker(tmp_path):
    res = grammar("train-am", tmp_path / "run", "--trackers", "1")  # argparse's usage error
    assert res.returncode == 2 and "argument --trackers: '1': expected RISE,FALL" in res.stderr
    one_line_error(grammar("train-am", tmp_path / "run", "--tracker-bands", "7"),
                   "tracker_bands 7: expected a positive divisor of n_mels (40)")  # fmt: skip
