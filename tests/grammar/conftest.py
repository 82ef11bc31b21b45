"""A tiny acoustic-model folder (random weights) for fast tests of the recognition chain."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest


def tiny_am_folder(folder, units=None, trackers=None):
    """An AM folder of random weights (16 channels, 2 blocks) in ``folder``; returns it."""
    from grammar.acoustic.am import build_am
    from grammar.config import AMConfig
    from rced.config import save_json
    from rced.features import Normalizer

    cfg = AMConfig(channels=16, blocks=2, units=units, trackers=trackers, tracker_bands=4 if trackers else None)
    build_am(cfg).save(folder / "model.keras")
    save_json(cfg, folder / "config.json")
    Normalizer(tuple([-8.0] * cfg.n_mels), tuple([3.0] * cfg.n_mels)).save(folder / "norm.json")
    return folder


@pytest.fixture(scope="session")
def tiny_am(tmp_path_factory):
    return tiny_am_folder(tmp_path_factory.mktemp("tiny_am"))


@pytest.fixture(scope="session")
def tiny_phone_am(tmp_path_factory):
    """The same, with ARPAbet phoneme outputs (41 symbols)."""
    return tiny_am_folder(tmp_path_factory.mktemp("tiny_phone_am"), units="phones")


@pytest.fixture(scope="session")
def tiny_tracker_am(tmp_path_factory):
    """The same, with two level trackers over groups of 4 mel bands (random weights on them too)."""
    return tiny_am_folder(tmp_path_factory.mktemp("tiny_tracker_am"), trackers=((0.5, 0.5), (2.0, 0.05)))


@pytest.fixture
def tiny_grammar(tmp_path):
    from grammar.decoding.decoder import Grammar

    g = Grammar.from_commands(["volume up", "mute", "call home"], threshold=-1e9)
    p = tmp_path / "g.json"
    g.save(p)
    return p


def synthetic_posterior(text, frames_per_char=3, peak=0.9, rng=None, units=None):
    """Synthetic (T, symbols) log-posteriors of ``text`` (a unit string of ``units``, default characters):
    blank, then each unit's frames, blank..."""
    from grammar.units import CHARS

    units = units or CHARS
    seq = [0]
    for i in units.encode(text):
        seq += [int(i)] * frames_per_char + [0]
    p = np.full((len(seq), units.size), (1 - peak) / (units.size - 1))
    p[np.arange(len(seq)), seq] = peak
    if rng is not None:
        p *= np.exp(rng.normal(scale=0.3, size=p.shape))
        p /= p.sum(axis=1, keepdims=True)
    return np.log(p)


def voiced(seconds: float, sr: int = 16000) -> np.ndarray:
    """A stand-in for speech: a 220-Hz buzz (its harmonics up to 4 kHz, falling 6 dB an octave)
    swelling three times a second, so it rises and falls as speech does and spreads its power over
    many bands: it passes the speech check, and the tiny test AMs' grammars accept it."""
    t = np.arange(int(seconds * sr)) / sr
    buzz = sum(np.sin(2 * np.pi * k * 220 * t) / k for k in range(1, 4000 // 220 + 1))
    return (0.05 * buzz * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def grammar_cli(*args):
    """Run ``python -m grammar`` as a user would."""
    return subprocess.run([sys.executable, "-m", "grammar", *map(str, args)], capture_output=True, text=True)


def one_line_error(res, needle):
    """The run failed with exactly one ``grammar: error:`` line on stderr, containing ``needle``."""
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("grammar: error:"), res.stderr
    assert needle in lines[0], lines[0]
