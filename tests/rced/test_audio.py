import numpy as np
import pytest
import soundfile as sf

from rced.audio import (
    atomic_save_npy,
    atomic_save_npz,
    atomic_save_png,
    atomic_write_results,
    atomic_write_text,
    blocking_ancestor,
    load_audio,
    write_audio,
)
from rced.errors import RcedError
from tests.conftest import speechlike


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
def test_any_rate_becomes_16k(tmp_path, sr):
    x = speechlike(sr, 1.0)
    p = tmp_path / f"x_{sr}.wav"
    sf.write(p, x, sr)
    y = load_audio(p)
    assert y.dtype == np.float32
    assert abs(len(y) - 16000) <= 2
    ref = speechlike(16000, 1.0)
    if sr >= 16000:  # the harmonics above 4 kHz are lost at 8 kHz, so compare only there
        assert np.corrcoef(y[1000:15000], ref[1000:15000])[0, 1] > 0.99


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_downmixed(tmp_path, channels):
    x = speechlike()
    p = tmp_path / "multi.wav"
    sf.write(p, np.stack([x] * channels, axis=1), 16000)
    np.testing.assert_allclose(load_audio(p), x, atol=1e-4)


@pytest.mark.parametrize("kind,needle", [
    ("empty", "empty file"), ("text", "not a readable audio file"), ("truncated", "truncated"),
    ("nan", "NaN"), ("zero_samples", "empty audio"), ("missing", "not found"),
])  # fmt: skip
def test_bad_input_is_one_line_error_naming_file(bad_files, kind, needle):
    with pytest.raises(RcedError) as exc:
        load_audio(bad_files[kind])
    msg = str(exc.value)
    assert str(bad_files[kind]) in msg and needle in msg and "\n" not in msg


def test_flac_and_ogg_load(tmp_path):
    x = speechlike()
    for ext in ("flac", "ogg"):
        p = tmp_path / f"x.{ext}"
        sf.write(p, x, 16000)
        assert len(load_audio(p)) == len(x)


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "out.wav"  # missing folder is created
    write_audio(p, speechlike())
    assert p.exists() and [q.name for q in p.parent.iterdir()] == ["out.wav"]
    with pytest.raises(RcedError):
        write_audio(tmp_path / "bad.wav", np.array([np.nan], np.float32))
    assert not (tmp_path / "bad.wav").exists()
    assert not list(tmp_path.glob(".*.part"))


def test_write_clips_instead_of_wrapping(tmp_path):
    p = tmp_path / "loud.wav"
    write_audio(p, np.full(1000, 3.0, np.float32))
    y, _ = sf.read(p)
    assert y.max() > 0.99 and y.min() > 0.99


def test_atomic_text_overwrites_whole(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "first")
    atomic_write_text(p, "second")
    assert p.read_text() == "second"


RESULT = {"rows": [{"name": "a", "value": 0.5}], "note": "ΔPESQ", "x": np.float32(0.25)}


@pytest.mark.parametrize("indent", [1, 2])
def test_a_result_pair_is_written_whole_beside_out(tmp_path, indent):
    """<out>.json and <out>.md in a folder made for them: the exact text, over older files, no temporaries."""
    import json

    out = tmp_path / "new" / "bench"
    out.parent.mkdir()
    (out.parent / "bench.json").write_text("old and longer " * 100)
    assert atomic_write_results(str(out), RESULT, ["| a | b |", "|---|---|"], indent=indent, default=float) == out
    assert (out.parent / "bench.json").read_text() == json.dumps(RESULT, indent=indent, default=float) + "\n"
    assert (out.parent / "bench.md").read_text() == "| a | b |\n|---|---|\n"  # lines: joined, a final newline
    atomic_write_results(tmp_path / "made" / "bench.md", None, "verbatim, no newline")  # the suffix is replaced
    assert [q.name for q in (tmp_path / "made").iterdir()] == ["bench.md"]  # None: no .json
    assert (tmp_path / "made" / "bench.md").read_text() == "verbatim, no newline"
    assert sorted(q.name for q in out.parent.iterdir()) == ["bench.json", "bench.md"]


def test_a_result_payload_json_cannot_hold_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_results(tmp_path / "bench", RESULT, ["x"])  # a numpy scalar, no default
    assert list(tmp_path.iterdir()) == []


def test_arrays_are_saved_whole_without_pickles_or_temporaries(tmp_path):
    a, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 2], np.int8)
    atomic_save_npy(tmp_path / "c" / "a.npy", a)
    atomic_save_npz(tmp_path / "c" / "ab.npz", {"a": a, "b": b})
    assert np.array_equal(np.load(tmp_path / "c" / "a.npy", allow_pickle=False), a)
    z = np.load(tmp_path / "c" / "ab.npz", allow_pickle=False)
    assert sorted(z.files) == ["a", "b"] and np.array_equal(z["a"], a) and np.array_equal(z["b"], b)
    assert sorted(q.name for q in (tmp_path / "c").iterdir()) == ["a.npy", "ab.npz"]


@pytest.mark.parametrize("dpi", [None, 50, 100])
def test_figure_is_saved_as_a_png_of_its_size(tmp_path, dpi):
    """A 2 x 1 inch figure: a PNG of 2*dpi x dpi pixels (the figure's own dpi when None), no temporaries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1), dpi=80)
    atomic_save_png(tmp_path / "p" / "f.png", fig, dpi=dpi)
    plt.close(fig)
    data = (tmp_path / "p" / "f.png").read_bytes()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the IHDR chunk
    d = dpi or 80
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and (width, height) == (2 * d, d)
    assert [q.name for q in (tmp_path / "p").iterdir()] == ["f.png"]


def test_blocking_ancestor(tmp_path):
    """Output checks: nothing can be written below a file; a missing chain under a folder is fine."""
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert blocking_ancestor(tmp_path / "a" / "b.wav") is None
    assert blocking_ancestor(tmp_path / "out.wav") is None
    assert blocking_ancestor(f / "out.wav") == f
    assert blocking_ancestor(f / "deeper" / "out.wav") == f


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_the_atomic_writer_never_replaces_a_special_file(tmp_path, kind):
    """Every output goes through it: a device, FIFO or socket is refused, not renamed over."""
    import os
    import stat

    from tests.rced.test_cli import make_special_file

    out = tmp_path / "special"
    make_special_file(out, kind)
    with pytest.raises(RcedError, match="not a regular file"):
        atomic_write_text(out, "x")
    assert not stat.S_ISREG(os.stat(out).st_mode) and not list(tmp_path.glob(".*.part"))


def test_a_failed_write_names_the_output_not_the_temporary_file():
    with pytest.raises(RcedError) as exc:
        atomic_write_text("/proc/x.json", "x")  # nothing can be created in /proc, not even by root
    assert str(exc.value).startswith("/proc/x.json: cannot write here") and ".part" not in str(exc.value)
