"""Tiny models (random weights), closed-form speech-like calibration audio, and one bundle per session."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.conftest import speechlike

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def calibration_audio(n: int = 5) -> list[np.ndarray]:
    return [speechlike(16000, 1.5, seed=i) * (1 + i % 3) for i in range(n)]


@pytest.fixture(scope="session")
def calibration():
    from firmware_export.convert import Calibration

    return Calibration.from_audio(calibration_audio(), description="speech-like test signals")


def make_tiny_denoiser(folder):
    from rced.config import ModelConfig, save_json
    from rced.features import Normalizer, compress
    from rced.frontend import stft
    from rced.models import build_model

    folder.mkdir(parents=True, exist_ok=True)
    cfg = ModelConfig(arch="rced", width_mult=0.25, mask_release=0.5, mask_exponent=0.9)  # listener gain shaping on
    import keras

    keras.utils.set_random_seed(0)  # the int8 parity bounds are for these weights, not any random draw
    build_model(cfg).save(folder / "model.keras")
    save_json(cfg, folder / "config.json")
    feats = np.concatenate([compress(np.abs(stft(a, cfg.frontend)), cfg.input_feature) for a in calibration_audio()])
    Normalizer.fit(feats).save(folder / "norm.json")
    return folder


@pytest.fixture(scope="session")
def tiny_denoiser(tmp_path_factory):
    return make_tiny_denoiser(tmp_path_factory.mktemp("fx") / "denoiser")


@pytest.fixture(scope="session")
def tiny_am_dir(tmp_path_factory):
    from grammar.acoustic.am import build_am
    from grammar.config import AMConfig
    from rced.config import save_json
    from rced.features import Normalizer

    folder = tmp_path_factory.mktemp("fx_am") / "am"
    folder.mkdir()
    cfg = AMConfig(channels=16, blocks=2, input_mask_floor=0.35,  # its own floor, not the denoiser's
                   posterior_scale=1.5, blank_penalty=0.75)  # and its own readout
    build_am(cfg).save(folder / "model.keras")
    save_json(cfg, folder / "config.json")
    Normalizer(tuple([-8.0] * cfg.n_mels), tuple([3.0] * cfg.n_mels)).save(folder / "norm.json")
    return folder


@pytest.fixture(scope="session")
def tiny_grammar_file(tmp_path_factory):
    from grammar.decoding.decoder import Grammar

    g = Grammar(("volume up", "mute"), ("volume up", "volume op", "mute"), (0, 0, 1), threshold=-0.75,
                score_kind="len_margin", int8_threshold=-0.8)  # as the shipped grammar: its own int8 threshold
    p = tmp_path_factory.mktemp("fx_g") / "g.json"
    g.save(p)
    return p


BUILD_KW = {"calibration_frames": 200, "am_calibration_windows": 8, "measure_latency": False}


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, tiny_denoiser, tiny_am_dir, tiny_grammar_file, calibration):
    """(folder, report) of one bundle built from the tiny models."""
    from firmware_export import build_bundle

    out = tmp_path_factory.mktemp("bundle") / "out"
    report = build_bundle(out, tiny_denoiser, tiny_am_dir, tiny_grammar_file, calibration=calibration, **BUILD_KW)
    return out, report
