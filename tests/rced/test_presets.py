"""Named denoiser sizes (``rced train --size``) and the shipped lighter model folders."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rced.cli import _train_config, build_parser
from rced.config import ModelConfig
from rced.denoiser import Denoiser, preset_model_path
from rced.errors import RcedError
from rced.models import ARCHES, SIZES, build_model, macs_per_frame
from tests.conftest import speechlike

PRESETS = sorted(p.parent.name for p in Path(preset_model_path("x")).parent.glob("*/model.keras"))


def _cfg(*flags):
    return _train_config(build_parser().parse_args(["train", "run", *flags]))


def test_size_flag_sets_the_width():
    assert _cfg().model.width_mult == 1.0
    assert _cfg("--width-mult", "0.5").model.width_mult == 0.5
    for name, w in SIZES.items():
        assert _cfg("--size", name).model.width_mult == w
        assert _cfg("--size", name, "--width-mult", str(w)).model.width_mult == w
    with pytest.raises(RcedError, match="--size micro"):
        _cfg("--size", "micro", "--width-mult", "0.5")


def test_sizes_get_cheaper():
    macs = [macs_per_frame(build_model(ModelConfig(width_mult=w), batch_size=1)) for w in sorted(SIZES.values())]
    assert macs == sorted(macs) and macs[0] < macs[-1] / 8


def test_a_preset_is_shipped():
    assert PRESETS and set(PRESETS) <= set(SIZES) | set(ARCHES)


def _expected_preset(name: str) -> tuple[str, float | None]:
    """A preset named for a size is an R-CED of that width; one named for an architecture is that architecture."""
    return ("rced", SIZES[name]) if name in SIZES else (name, None)


@pytest.mark.parametrize("name", PRESETS)
def test_shipped_preset_loads_and_runs(name):
    folder = preset_model_path(name)
    den = Denoiser.load(folder)
    arch, width = _expected_preset(name)
    assert den.config.arch == arch and width in (None, den.config.width_mult)
    assert Denoiser.load(name).path == folder  # the bare name is the shipped preset
    assert (folder / "MODEL_CARD.md").exists()
    x = speechlike(16000, 1.0, seed=3) + 0.05 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    y = den.denoise(x, 16000)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    assert np.sum(y**2) < np.sum(x**2)  # a mask in [floor, 1] only removes energy (up to overlap-add)
    from rced.int8 import Int8Denoiser

    y8 = Int8Denoiser.load(folder).denoise(x, 16000)
    assert y8.shape == x.shape and np.all(np.isfinite(y8))


@pytest.mark.parametrize("name", PRESETS[:1])
def test_cli_denoise_with_preset_folder(tmp_path, name):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, speechlike(16000, 0.5, seed=4), 16000)
    res = subprocess.run([sys.executable, "-m", "rced", "denoise", str(src), "-o", str(out), "--model",
                          str(preset_model_path(name)), "--json"], capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert sf.info(out).frames == 8000
    json.loads(res.stdout)


def test_a_folder_here_wins_over_a_preset_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / PRESETS[0]).mkdir()  # an (empty) folder of the preset's name: the user's, not the shipped one
    with pytest.raises(RcedError, match=f"^{PRESETS[0]}/"):
        Denoiser.load(PRESETS[0])
    with pytest.raises(RcedError, match="no_such_preset: model folder not found"):
        Denoiser.load("no_such_preset")


@pytest.mark.parametrize("name", [p for p in PRESETS if p == "bced"])
def test_the_band_compressed_preset_fits_a_hearing_aid_class_core(name):
    """Issue 18's budget for the light preset: <= 50 MMAC/s, int8 flash <= 32 KB, TFLM arena <= 16 KB."""
    from firmware_export.verify import zero_input_arena

    folder = preset_model_path(name)
    den = Denoiser.load(folder, backend="keras")
    assert macs_per_frame(build_model(den.config, batch_size=1)) * den.config.frontend.frame_rate <= 50e6
    flat = (folder / "model_int8.tflite").read_bytes()
    assert len(flat) <= 32 * 1024 and zero_input_arena(flat, name) <= 16 * 1024
