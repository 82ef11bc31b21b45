"""The ``rced`` command line as a user runs it: real processes, real files."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import speechlike
from tests.readonly import run_read_only


def rced(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rced", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def assert_one_line_error(res, needle):
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rced: error:"), res.stderr
    assert needle in lines[0]


def test_help_lists_commands():
    res = rced("--help")
    assert res.returncode == 0
    for cmd in ("train", "denoise", "evaluate", "demo"):
        assert cmd in res.stdout


def test_denoise_one_file_and_many(tmp_path):
    ins = []
    for i, (sr, ch) in enumerate([(16000, 1), (8000, 1), (44100, 2), (48000, 1)]):
        p = tmp_path / f"in{i}.wav"
        x = speechlike(sr, 1.0, seed=i)
        sf.write(p, np.stack([x] * ch, 1) if ch > 1 else x, sr)
        ins.append(p)
    res = rced("denoise", ins[0], "-o", tmp_path / "one.wav", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["output"] == str(tmp_path / "one.wav")
    y, sr = sf.read(tmp_path / "one.wav")
    assert sr == 16000 and len(y) == 16000
    res = rced("denoise", *ins, "-o", tmp_path / "outdir")  # missing output folder is created
    assert res.returncode == 0, res.stderr
    for p in ins:
        y, sr = sf.read(tmp_path / "outdir" / p.name)
        assert sr == 16000 and abs(len(y) - 16000) <= 2 and y.ndim == 1


BAD_INPUTS = [("empty", "empty file"), ("text", "not a readable audio file"), ("truncated", "truncated"),
              ("nan", "NaN"), ("missing", "not found")]  # fmt: skip


@pytest.mark.parametrize("command,kind,needle", [("denoise", k, n) for k, n in BAD_INPUTS]
                         + [("stream", k, n) for k, n in BAD_INPUTS + [("zero_samples", "empty audio")]])  # fmt: skip
def test_bad_input(bad_files, tmp_path, command, kind, needle):
    """One line naming the file, nothing written; the block-reading stream path reports bad input as
    the whole-file path does, before any work."""
    out = tmp_path / "out.wav"
    res = rced(command, bad_files[kind], "-o", out)
    assert_one_line_error(res, needle)
    assert str(bad_files[kind]) in res.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_one_bad_input_among_many_writes_nothing(bad_files, wav_16k, tmp_path):
    res = rced("denoise", wav_16k, bad_files["nan"], "-o", tmp_path / "outs")
    assert_one_line_error(res, "NaN")
    assert not (tmp_path / "outs" / wav_16k.name).exists()


def test_output_equal_to_input_is_refused(wav_16k):
    before = wav_16k.read_bytes()
    res = rced("denoise", wav_16k, "-o", wav_16k)
    assert_one_line_error(res, "equals the input")
    assert wav_16k.read_bytes() == before


@pytest.mark.parametrize("names", [("a/x.wav", "b/x.wav"), ("a/x.flac", "a/x.wav")])
def test_colliding_outputs_refused(tmp_path, names):
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        sf.write(tmp_path / name, speechlike(), 16000)
    res = rced("denoise", *(tmp_path / n for n in names), "-o", tmp_path / "o")
    assert_one_line_error(res, "several inputs would write this output")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize("command", ["denoise", "stream"])
def test_output_checks_come_before_the_model_loads(command, wav_16k, tmp_path):
    """Each refusal names the user's path; --model names a missing folder, so an output check that
    came after loading would report the model instead."""
    no_model = ["--model", tmp_path / "no_model"]
    below = wav_16k / "x.wav"  # the output's folder is a regular file
    assert_one_line_error(rced(command, wav_16k, "-o", below, *no_model), f"{below}: cannot write here, {wav_16k} "
                          "is not a folder")  # fmt: skip
    assert_one_line_error(rced(command, wav_16k, "-o", wav_16k, *no_model), f"{wav_16k}: output path equals the input")
    ro = tmp_path / "ro"
    ro.mkdir()
    res, reason = run_read_only([sys.executable, "-m", "rced", command, wav_16k, "-o", ro / "o.wav", *no_model], ro)
    assert_one_line_error(res, f"{ro / 'o.wav'}: cannot write here, {ro} is ")
    assert reason in res.stderr and not list(ro.iterdir())


def test_several_inputs_need_a_folder_output(wav_16k, tmp_path):
    """`denoise a b -o x.wav` does not make a folder called x.wav; an existing file is no folder either."""
    other = tmp_path / "other.flac"
    sf.write(other, speechlike(seed=1), 16000)
    for out in (tmp_path / "x.wav", wav_16k):
        assert_one_line_error(rced("denoise", wav_16k, other, "-o", out), f"{out}: several inputs need an output folder")
    assert not (tmp_path / "x.wav").exists()
    ro = tmp_path / "ro"
    ro.mkdir()
    res, reason = run_read_only([sys.executable, "-m", "rced", "denoise", wav_16k, other, "-o", ro / "new"], ro)
    assert_one_line_error(res, f"{ro / 'new'}: cannot write here")
    assert reason in res.stderr and not list(ro.iterdir())


def test_stream_and_denoise_agree_on_a_folder_output(wav_16k, tmp_path):
    """An existing folder as -o gets the input's file name, for both commands."""
    for command in ("denoise", "stream"):
        folder = tmp_path / command
        folder.mkdir()
        res = rced(command, wav_16k, "-o", folder, "--json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["output"] == str(folder / wav_16k.name)
        assert sf.info(folder / wav_16k.name).frames == 16000


def test_training_and_evaluation_outputs_are_checked_first(wav_16k, tmp_path):
    """A run folder or a results stem below a file fails at once, naming the path given."""
    for argv, path in ((["train", wav_16k / "run"], wav_16k / "run"),
                       (["train", tmp_path / "run", "--export", wav_16k / "m"], wav_16k / "m"),
                       (["evaluate", "-o", wav_16k / "res", "--model", tmp_path / "no_model"], wav_16k / "res.json")):  # fmt: skip
        assert_one_line_error(rced(*argv), f"{path}: cannot write here, {wav_16k} is not a folder")
    assert not (tmp_path / "run").exists()


def test_missing_model_folder(wav_16k, tmp_path):
    res = rced("denoise", wav_16k, "-o", tmp_path / "o.wav", "--model", tmp_path / "nope")
    assert_one_line_error(res, "model folder not found")


def test_demo_streams_and_writes_wavs_and_a_page(tmp_path):
    from rced.denoiser import default_model_path
    from tests.rced.test_demo import check_demo_page

    out_dir = tmp_path / "demo"
    res = rced("demo", "-o", out_dir, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["algorithmic_latency_ms"] == 16.0 and out["real_time_factor"] > 0
    assert 0 < out["block_latency_ms_median"] <= out["block_latency_ms_p99"] and out["block_ms"] == 8.0
    for name in ("clean", "noisy", "enhanced"):
        y, sr = sf.read(out_dir / f"{name}.wav")
        assert sr == 16000 and len(y) > 16000
    assert set(out["enhanced"]) == {"pesq", "stoi", "si_sdr"}
    refs, saved = check_demo_page(out_dir)
    assert sorted(refs.refs) == ["clean.wav", "enhanced.wav", "noisy.wav", "spectrogram.png"]
    assert {k: v for k, v in out.items() if k != "output"} == saved and saved["backend"] == "float"
    assert (out_dir / saved["model"]).resolve() == default_model_path().resolve()
    page = (out_dir / "index.html").read_text()
    for k in ("pesq", "stoi"):  # the numbers before and after are on the page as they are in result.json
        assert f"{saved['noisy'][k]:.3f}" in page and f"{saved['enhanced'][k]:.3f}" in page
    assert f"{saved['real_time_factor']:.3f}" in page and "16 ms" in page


def test_rerun_with_no_flags_resumes_the_folders_own_config(tmp_path):
    from rced.cli import _train_config, build_parser, config_or_resume
    from rced.config import save_json

    parser = build_parser()
    run = tmp_path / "run"
    first = parser.parse_args(["train", str(run), "--loss-compress", "0.5", "--steps-per-epoch", "7"])
    cfg = config_or_resume(first, parser, _train_config)
    assert cfg.loss_compress == 0.5 and cfg.steps_per_epoch == 7  # new folder: the flags' config
    run.mkdir()
    save_json(cfg, run / "train_config.json")
    assert config_or_resume(parser.parse_args(["train", str(run)]), parser, _train_config) is None
    other = config_or_resume(parser.parse_args(["train", str(run), "--epochs", "3"]), parser, _train_config)
    assert other is not None and other.epochs == 3  # an explicit change still reaches the Trainer's check


def test_train_flags_reach_the_config():
    from rced.cli import _train_config, build_parser
    from rced.errors import RcedError

    parser = build_parser()
    args = parser.parse_args(["train", "run", "--arch", "bced", "--context", "32", "--reverb-share", "0.3"])
    cfg = _train_config(args)
    assert (cfg.model.n_bands, cfg.model.frontend.context, cfg.reverb_share) == (48, 32, 0.3)
    assert cfg.model.frontend.n_fft == 256  # the rest of the default front-end is kept
    assert _train_config(parser.parse_args(["train", "run"])).model.frontend.context == 8
    args = parser.parse_args(["train", "run", "--trackers", "0.5,0.5", "2,0.05", "--tracker-history", "1.5"])
    cfg = _train_config(args)
    assert (cfg.model.trackers, cfg.tracker_history_s, cfg.history_frames) == (((0.5, 0.5), (2.0, 0.05)), 1.5, 188)
    for bad in (["--arch", "bced", "--n-bands", "0"], ["--context", "0"], ["--reverb-share", "2"],
                ["--trackers", "1,1", "--tracker-history", "-1"]):  # fmt: skip
        with pytest.raises(RcedError):  # refused, never silently replaced by a default
            _train_config(parser.parse_args(["train", "run", *bad]))


def test_progress_bar_on_long_work_only_and_never_on_stdout(tmp_path):
    """Off a terminal, a bar on stderr only for long work (60 s of audio or more), fed frame by frame;
    stdout holds only the --json lines. A short file leaves stderr empty."""
    long, short = tmp_path / "long.wav", tmp_path / "short.wav"
    sf.write(long, np.tile(speechlike(seconds=1.0), 61), 16000)
    sf.write(short, speechlike(), 16000)
    res = rced("denoise", long, short, "-o", tmp_path / "out", "--json")
    assert res.returncode == 0, res.stderr
    assert [json.loads(x)["input"] for x in res.stdout.splitlines()] == [str(long), str(short)]
    assert "denoising: 100%" in res.stderr and "62/62 s of audio" in res.stderr
    res = rced("denoise", short, "-o", tmp_path / "s.wav", "--json")
    assert res.returncode == 0 and res.stderr == "" and json.loads(res.stdout)["seconds"] == 1.0


def test_audio_progress_follows_the_frame_hooks(monkeypatch):
    import io

    from rced.cli import AudioProgress

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: shown for long work only
    with AudioProgress([50.0, 30.0], "working") as bar:
        hook = bar.file(50.0)
        hook(1000, 4000)
        assert bar._bar.n == pytest.approx(12.5)
        hook(4000, 4000)
        bar.file(30.0)(1, 2)
        assert bar._bar.n == pytest.approx(65.0)
    assert bar._bar.n == pytest.approx(80.0) and "80/80 s of audio" in sys.stderr.getvalue()
    with AudioProgress([5.0], "short") as bar:
        bar.file(5.0)(1, 1)
    assert "short" not in sys.stderr.getvalue()


def make_special_file(path, kind: str) -> None:
    """A named pipe or a socket at ``path`` (never a real device: mknod needs root, and /dev/null is shared)."""
    import os
    import socket

    if kind == "fifo":
        os.mkfifo(path)
        return
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # the socket file stays when the socket closes


@pytest.mark.parametrize("command", ["denoise", "stream"])
@pytest.mark.parametrize("kind,needle", [("fifo", "a named pipe (FIFO)"), ("socket", "a socket")])
def test_a_special_file_output_is_never_replaced(wav_16k, tmp_path, command, kind, needle):
    """A device, FIFO or socket as -o (think /dev/null) is refused before the model loads, not renamed over."""
    import os
    import stat

    out = tmp_path / "special.wav"
    make_special_file(out, kind)
    res = rced(command, wav_16k, "-o", out, "--model", tmp_path / "no_model")
    assert_one_line_error(res, f"{out}: output path is {needle}, not a regular file")
    assert not stat.S_ISREG(os.stat(out).st_mode)


@pytest.mark.parametrize("command", ["denoise", "stream"])
def test_a_trailing_slash_names_a_new_folder(wav_16k, tmp_path, command):
    res = rced(command, wav_16k, "-o", f"{tmp_path / 'new'}/", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["output"] == str(tmp_path / "new" / wav_16k.name)
    assert (tmp_path / "new").is_dir() and sf.info(tmp_path / "new" / wav_16k.name).frames == 16000


@pytest.mark.parametrize("argv,option", [
    (["stream", "{wav}", "-o", "{tmp}/b.wav", "--block-ms", "nan"], "--block-ms"),
    (["stream", "{wav}", "-o", "{tmp}/b.wav", "--block-ms", "inf"], "--block-ms"),
    (["stream", "{wav}", "-o", "{tmp}/b.wav", "--block-ms", "0"], "--block-ms"),
    (["stream", "{wav}", "-o", "{tmp}/b.wav", "--block-ms", "-5"], "--block-ms"),
    (["evaluate", "--n-per-voice", "1", "--snrs", "0", "nan", "--json"], "--snrs"),
    (["evaluate", "--n-per-voice", "1", "--snrs", "inf", "--json"], "--snrs"),
])  # fmt: skip
def test_bad_numbers_are_refused_when_the_arguments_are_parsed(wav_16k, tmp_path, argv, option):
    res = rced(*(a.format(wav=wav_16k, tmp=tmp_path) for a in argv))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"rced {argv[0]}: error: argument {option}: ") and "must be" in last, res.stderr
    assert not (tmp_path / "b.wav").exists()


@pytest.mark.parametrize("command", ["denoise", "stream"])
def test_an_output_where_no_file_can_be_created_is_named_as_given(wav_16k, tmp_path, command):
    """Nothing can be created in /proc, not even by root: found before the model loads, and the error
    names the user's path, never the temporary one."""
    out = "/proc/x.wav"
    res = rced(command, wav_16k, "-o", out, "--model", tmp_path / "no_model")
    assert_one_line_error(res, f"{out}: cannot write here")
    assert ".part" not in res.stderr


@pytest.mark.parametrize("command", ["denoise", "stream"])
@pytest.mark.parametrize("name", ["out.flac", "out.mp3", "out"])
def test_an_output_file_name_must_say_wav(wav_16k, tmp_path, command, name):
    res = rced(command, wav_16k, "-o", tmp_path / name)
    assert_one_line_error(res, f"{tmp_path / name}: outputs are written as WAV")
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("command", ["denoise", "stream"])
def test_an_empty_output_path_has_its_own_message(wav_16k, command):
    before = wav_16k.read_bytes()
    res = rced(command, wav_16k, "-o", "", cwd=wav_16k.parent)
    assert_one_line_error(res, "output path is empty ('')")
    assert wav_16k.read_bytes() == before


def test_an_empty_results_stem_is_refused_when_the_arguments_are_parsed():
    res = rced("evaluate", "-o", "")
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].endswith("output path is empty (''): give a "
                                                                                 "file or folder name")  # fmt: skip


@pytest.mark.parametrize("module,argv,needle", [
    ("rced.cli", ["train", ""], "argument run_dir: output path is empty ('')"),
    ("rced.cli", ["train", "r", "--epochs", "0"], "argument --epochs: '0': must be positive"),
    ("rced.cli", ["train", "r", "--steps-per-epoch", "-3"], "argument --steps-per-epoch: '-3': must be positive"),
    ("rced.cli", ["train", "r", "--lr", "nan"], "argument --lr: 'nan': must be a finite number"),
    ("rced.cli", ["train", "r", "--max-epochs-this-run", "0"], "argument --max-epochs-this-run: '0': must be positive"),
    ("rced.cli", ["train", "r", "--export", ""], "argument --export: output path is empty ('')"),
    ("rced.cli", ["train", "r", "--trackers", "1,x"], "argument --trackers: '1,x': expected RISE,FALL"),
    ("rced.cli", ["train", "r", "--trackers", "0,1"], "argument --trackers: '0,1': expected RISE,FALL"),
    ("grammar.cli", ["train-am", ""], "argument run_dir: output path is empty ('')"),
    ("grammar.cli", ["train-am", "r", "--threads", "0"], "argument --threads: '0': must be positive"),
])  # fmt: skip
def test_training_options_are_checked_when_parsed(module, argv, needle, capsys):
    """A trainer's run folder, export folder and numbers are refused before any data is prepared."""
    import importlib

    parser = importlib.import_module(module).build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(argv)
    assert exc.value.code == 2 and needle in capsys.readouterr().err.strip().splitlines()[-1]
