"""Real-corpus loaders on small folders built here: formats, rates, channels, mixing, pairing, errors."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rced.errors import RcedError
from rced.realcorpus import clean_noise_folders, find_audio, iter_folder, load_folder, paired_folders

SR = 16000

# (relative path, sample rate, channels, seconds): rates and a stereo file exercise conversion.
CLEAN_FILES = [
    ("spk1/a.wav", 16000, 1, 0.50),
    ("spk1/b.flac", 44100, 1, 0.40),
    ("spk2/deep/c.wav", 48000, 2, 0.30),
    ("spk2/d.ogg", 8000, 1, 0.25),
]
NOISE_FILES = [
    ("kitchen/n1.wav", 16000, 1, 0.10),  # shorter than every clean file: must loop
    ("street/n2.flac", 48000, 2, 0.60),
]


def _write(path: Path, sr: int, channels: int, seconds: float, seed: int, kind: str = "tone") -> None:
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    if kind == "tone":
        sig = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    else:
        sig = 0.1 * rng.standard_normal(n)
    data = np.stack([sig * (0.6 + 0.4 * ch) for ch in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data.astype(np.float32), sr)


def _build(root: Path, files, kind: str) -> Path:
    for i, (rel, sr, ch, sec) in enumerate(files):
        _write(root / rel, sr, ch, sec, seed=i, kind=kind)
    return root


@pytest.fixture()
def folders(tmp_path):
    clean = _build(tmp_path / "clean", CLEAN_FILES, "tone")
    noise = _build(tmp_path / "noise", NOISE_FILES, "noise")
    (clean / "README.txt").write_text("not audio")
    (clean / ".hidden.wav").write_bytes(b"junk")  # hidden (e.g. macOS ._ files): skipped
    return clean, noise


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    c = clean.astype(np.float64)
    return 10 * math.log10(np.sum(c**2) / np.sum((noisy.astype(np.float64) - c) ** 2))


def test_load_folder_sorted_mono_16k(folders):
    clean, _ = folders
    loaded = load_folder(clean)
    assert [name for name, _ in loaded] == sorted(rel for rel, *_ in CLEAN_FILES)
    assert [name for name, _ in iter_folder(clean)] == [name for name, _ in loaded]
    assert [p.name for p in find_audio(clean)] == ["a.wav", "b.flac", "d.ogg", "c.wav"]


@pytest.mark.parametrize("rel,sr,channels,seconds", CLEAN_FILES)
def test_each_format_rate_and_channel_count_becomes_16k_mono(folders, rel, sr, channels, seconds):
    audio = dict(load_folder(folders[0]))[rel]
    assert audio.ndim == 1 and audio.dtype == np.float32
    assert abs(len(audio) - seconds * SR) <= 2


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({}, 4 * 4),  # every clean file at every default SNR
        ({"snrs": (0.0, 5.0)}, 4 * 2),
        ({"snr_range": (-5.0, 10.0)}, 4),
        ({"n_mixtures": 7}, 7),
        ({"snr_range": (0.0, 3.0), "n_mixtures": 9}, 9),
    ],
)
def test_mixture_counts(folders, kwargs, expected):
    items = clean_noise_folders(*folders, **kwargs)
    assert len(items) == expected
    for it in items:
        assert len(it.noisy) == len(it.clean) and it.noisy.dtype == np.float32


def test_n_mixtures_covers_every_clean_file_before_repeating(folders):
    items = clean_noise_folders(*folders, n_mixtures=8, seed=3)
    firsts = [it.name.split("+")[0] for it in items]
    assert sorted(firsts[:4]) == sorted(rel for rel, *_ in CLEAN_FILES)
    assert sorted(firsts[4:]) == sorted(rel for rel, *_ in CLEAN_FILES)


def test_deterministic_by_seed(folders):
    a = clean_noise_folders(*folders, snr_range=(-5, 10), n_mixtures=6, seed=11)
    b = clean_noise_folders(*folders, snr_range=(-5, 10), n_mixtures=6, seed=11)
    c = clean_noise_folders(*folders, snr_range=(-5, 10), n_mixtures=6, seed=12)
    assert [(x.name, x.snr) for x in a] == [(x.name, x.snr) for x in b]
    assert all(np.array_equal(x.noisy, y.noisy) for x, y in zip(a, b))
    assert [(x.name, x.snr) for x in a] != [(x.name, x.snr) for x in c]


@pytest.mark.parametrize("snr", [-5.0, 0.0, 5.0, 10.0, 17.5])
def test_achieved_snr_matches_request(folders, snr):
    for it in clean_noise_folders(*folders, snrs=(snr,), seed=5):
        assert it.snr == snr
        assert abs(_snr_db(it.clean, it.noisy) - snr) < 0.1, it.name


def test_snr_range_draws_inside_range_and_is_achieved(folders):
    items = clean_noise_folders(*folders, snr_range=(-3.0, 8.0), n_mixtures=10, seed=2)
    assert len({it.snr for it in items}) > 1
    for it in items:
        assert -3.0 <= it.snr <= 8.0
        assert abs(_snr_db(it.clean, it.noisy) - it.snr) < 0.1


def test_short_noise_loops_over_the_whole_utterance(tmp_path):
    clean = _build(tmp_path / "c", [("x.wav", 16000, 1, 1.0)], "tone")
    noise = _build(tmp_path / "n", [("short.wav", 16000, 1, 0.05)], "noise")
    (it,) = clean_noise_folders(clean, noise, snrs=(0.0,))
    residual = it.noisy - it.clean
    quarters = residual.reshape(4, -1)
    assert np.all(np.sqrt(np.mean(quarters**2, axis=1)) > 0.1 * np.sqrt(np.mean(residual**2)))
    assert np.allclose(it.clean, load_folder(clean)[0][1])


def test_paired_folders_match_by_relative_path(tmp_path):
    rels = ["p232/001.wav", "p232/002.wav", "p257/sub/003.flac"]
    for i, rel in enumerate(rels):
        _write(tmp_path / "clean" / rel, 16000, 1, 0.3, seed=i)
        _write(tmp_path / "noisy" / rel, 48000 if i == 2 else 16000, 2 if i == 1 else 1, 0.3, seed=10 + i, kind="noise")
    items = paired_folders(tmp_path / "noisy", tmp_path / "clean")
    assert [it.name for it in items] == sorted(rels)
    loaded_clean = dict(load_folder(tmp_path / "clean"))
    for it in items:
        assert math.isnan(it.snr)
        assert len(it.clean) == len(it.noisy)
        assert np.array_equal(it.clean, loaded_clean[it.name][: len(it.clean)])


def test_paired_folders_trim_small_length_difference(tmp_path):
    _write(tmp_path / "clean" / "u.wav", 16000, 1, 1.000, seed=0)
    _write(tmp_path / "noisy" / "u.wav", 16000, 1, 1.005, seed=1, kind="noise")  # 0.5 % longer
    (it,) = paired_folders(tmp_path / "noisy", tmp_path / "clean")
    assert len(it.clean) == len(it.noisy) == 16000


def _missing(tmp_path):
    return (lambda: load_folder(tmp_path / "nope")), "nope"


def _not_a_folder(tmp_path):
    f = tmp_path / "file.wav"
    _write(f, 16000, 1, 0.1, seed=0)
    return (lambda: load_folder(f)), "file.wav"


def _empty(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("x")
    return (lambda: load_folder(tmp_path / "empty")), "empty"


def _unreadable(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.wav").write_bytes(b"this is not audio at all" * 10)
    return (lambda: load_folder(tmp_path / "bad")), "broken.wav"


def _noise_folder_missing(tmp_path):
    clean = _build(tmp_path / "c", CLEAN_FILES[:1], "tone")
    return (lambda: clean_noise_folders(clean, tmp_path / "nonoise")), "nonoise"


def _silent_noise(tmp_path):
    clean = _build(tmp_path / "c", CLEAN_FILES[:1], "tone")
    (tmp_path / "n").mkdir()
    sf.write(str(tmp_path / "n" / "quiet.wav"), np.zeros(1600, np.float32), 16000)
    return (lambda: clean_noise_folders(clean, tmp_path / "n")), "quiet.wav"


def _paired(tmp_path, noisy_only=(), clean_only=(), noisy_seconds=0.3):
    for rel in ("both.wav", *noisy_only):
        _write(tmp_path / "noisy" / rel, 16000, 1, noisy_seconds if rel == "both.wav" else 0.3, seed=1, kind="noise")
    for rel in ("both.wav", *clean_only):
        _write(tmp_path / "clean" / rel, 16000, 1, 0.3, seed=2)
    return lambda: paired_folders(tmp_path / "noisy", tmp_path / "clean")


def _noisy_only(tmp_path):
    return _paired(tmp_path, noisy_only=("spk/extra.wav",)), "extra.wav"


def _clean_only(tmp_path):
    return _paired(tmp_path, clean_only=("spk/orphan.flac",)), "orphan.flac"


def _length_mismatch(tmp_path):
    return _paired(tmp_path, noisy_seconds=0.33), "both.wav"  # 10 % longer


@pytest.mark.parametrize(
    "case",
    [
        _missing,
        _not_a_folder,
        _empty,
        _unreadable,
        _noise_folder_missing,
        _silent_noise,
        _noisy_only,
        _clean_only,
        _length_mismatch,
    ],
)
def test_errors_name_the_path_in_one_line(tmp_path, case):
    call, needle = case(tmp_path)
    with pytest.raises(RcedError) as exc:
        call()
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg


@pytest.mark.parametrize(
    "kwargs",
    [
        {"snrs": ()},
        {"snrs": (float("nan"),)},
        {"snr_range": (10.0, 0.0)},
        {"n_mixtures": 0},
        {"snrs": (0.0,), "snr_range": (0.0, 5.0)},
    ],
)
def test_bad_mixing_arguments(folders, kwargs):
    with pytest.raises(RcedError):
        clean_noise_folders(*folders, **kwargs)


def test_module_does_not_import_tensorflow():
    code = "import sys, rced.realcorpus; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
