import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from rced.config import FrontendConfig, ModelConfig, save_json
from rced.denoiser import Denoiser, default_model_path, shape_gain
from rced.errors import RcedError
from rced.features import Normalizer
from rced.models import build_model
from tests.conftest import assert_blocks_equal_whole, speechlike


@pytest.fixture(scope="module")
def den():
    return Denoiser.load()


def test_shipped_model_folder_is_complete():
    folder = default_model_path()
    for name in ("model.keras", "config.json", "norm.json", "MODEL_CARD.md"):
        assert (folder / name).exists(), name


@pytest.mark.parametrize("block", [1, 100, 128, 333, 4096, 100_000])
def test_streaming_equals_offline(den, block):
    rng = np.random.default_rng(block)
    x = (speechlike(16000, 1.3) + 0.02 * rng.standard_normal(20800)).astype(np.float32)
    ref = den.denoise(x, 16000)
    out = np.concatenate(list(den.stream(x[i : i + block] for i in range(0, len(x), block))))
    assert out.shape == ref.shape
    assert np.max(np.abs(out - ref)) <= 1e-5


def test_denoise_keeps_length_and_is_finite_on_edge_signals(den):
    for x in (np.zeros(16000, np.float32), np.ones(5, np.float32), np.clip(speechlike() * 40, -1, 1)):
        y = den.denoise(x, 16000)
        assert y.shape == x.shape and np.all(np.isfinite(y))
    assert np.max(np.abs(den.denoise(np.zeros(16000, np.float32), 16000))) == 0.0


def test_mask_is_bounded_by_floor_and_one(den):
    mag = np.abs(np.random.default_rng(0).standard_normal((50, 129))).astype(np.float32)
    m = den.mask(mag)
    assert m.shape == mag.shape and m.min() >= den.config.mask_floor and m.max() <= 1.0


def test_stream_cli_reports_latency_and_matches_denoise(tmp_path):
    p = tmp_path / "in.wav"
    sf.write(p, speechlike(16000, 1.0), 16000)
    res = subprocess.run([sys.executable, "-m", "rced", "stream", str(p), "-o", str(tmp_path / "s.wav"),
                          "--block-ms", "8", "--json"], capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout)
    assert stats["algorithmic_latency_ms"] == 16.0 and stats["blocks"] == 125
    assert stats["block_latency_ms_p99"] >= stats["block_latency_ms_median"] > 0
    res = subprocess.run([sys.executable, "-m", "rced", "denoise", str(p), "-o", str(tmp_path / "d.wav")])
    a, _ = sf.read(tmp_path / "s.wav")
    b, _ = sf.read(tmp_path / "d.wav")
    assert np.max(np.abs(a - b)) <= 1 / 32768 + 1e-9  # both 16-bit files: at most one LSB apart


def test_int8_streaming_equals_int8_offline():
    from rced.int8 import Int8Denoiser

    den8 = Int8Denoiser.load()
    x = (speechlike(16000, 0.6) + 0.02 * np.random.default_rng(5).standard_normal(9600)).astype(np.float32)
    ref = den8.denoise(x, 16000)
    out = np.concatenate(list(den8.stream(x[i : i + 200] for i in range(0, len(x), 200))))
    assert out.shape == ref.shape and np.max(np.abs(out - ref)) <= 1e-5
    # written as 16-bit PCM, the two paths give the same samples, except where a sample sits on a
    # rounding boundary (x.5 LSB): there 1e-8 apart may round one LSB apart
    pcm_out, pcm_ref = (np.round(np.clip(y, -1, 1) * 32767) for y in (out, ref))
    differ = pcm_out != pcm_ref
    assert np.max(np.abs(pcm_out - pcm_ref)) <= 1 and differ.sum() <= 3
    assert np.all(np.abs(np.abs(ref[differ] * 32767) % 1 - 0.5) < 1e-3)


def random_model_folder(folder, preset: str = "default", **cfg):
    """An untrained model folder (random weights) of any configuration, as Denoiser.load reads it."""
    config = ModelConfig(**{"frontend": FrontendConfig.preset(preset), **cfg})
    folder.mkdir(parents=True)
    build_model(config).save(folder / "model.keras")
    save_json(config, folder / "config.json")
    n = config.frontend.n_bins
    Normalizer(tuple([-4.0] * n), tuple([2.0] * n)).save(folder / "norm.json")
    return folder


@pytest.mark.parametrize("output,gain", [("mask", {}), ("magnitude", {}),
                                         ("mask", {"mask_release": 0.6, "mask_exponent": 0.8}),
                                         ("magnitude", {"mask_release": 0.3, "mask_exponent": 1.5}),
                                         ("mask", {"arch": "bced", "n_bands": 48, "width_mult": 0.5}),
                                         ("mask", {"arch": "bced", "n_bands": 48, "width_mult": 0.5,
                                                   "frontend": FrontendConfig(context=32)}),
                                         ("mask", {"arch": "bced", "n_bands": 48, "width_mult": 0.5,
                                                   "trackers": ((0.5, 0.5), (2.0, 0.05))})])  # fmt: skip
def test_streaming_equals_offline_for_each_output_kind(tmp_path, output, gain):
    """The release's state carries across blocks, so streaming equals offline with gain shaping
    too, and for the band-compressed architecture (with the paper's 8 frames of context and with 32,
    and with level trackers, whose state carries across blocks as well)."""
    den = Denoiser.load(random_model_folder(tmp_path / "m", output=output, mask_floor=0.1, **gain))
    x = (speechlike(16000, 0.7) + 0.02 * np.random.default_rng(1).standard_normal(11200)).astype(np.float32)
    ref = den.denoise(x, 16000)
    out = np.concatenate(list(den.stream(x[i : i + 333] for i in range(0, len(x), 333))))
    assert np.max(np.abs(out - ref)) <= 1e-5 * max(1.0, float(np.max(np.abs(ref))))


def test_stream_refuses_multichannel_blocks(den):
    with pytest.raises(RcedError, match="expected mono"):
        list(den.stream([np.zeros((256, 2), np.float32)]))


def test_stream_cli_runs_at_the_models_rate(tmp_path):
    """An 8 kHz model (the `paper` front-end) streams a 16 kHz file resampled, as `denoise` does."""
    model = random_model_folder(tmp_path / "paper", preset="paper")
    p = tmp_path / "in.wav"
    sf.write(p, speechlike(16000, 1.0), 16000)
    for cmd, name in (("stream", "s.wav"), ("denoise", "d.wav")):
        res = subprocess.run([sys.executable, "-m", "rced", cmd, str(p), "-o", str(tmp_path / name),
                              "--model", str(model)], capture_output=True, text=True)  # fmt: skip
        assert res.returncode == 0, res.stderr
    (a, sr_a), (b, sr_b) = sf.read(tmp_path / "s.wav"), sf.read(tmp_path / "d.wav")
    assert sr_a == sr_b == 8000 and len(a) == len(b) == 8000
    assert np.max(np.abs(a - b)) <= 2 / 32768


def test_with_mask_floor_changes_only_the_floor(tmp_path):
    den = Denoiser.load(random_model_folder(tmp_path / "m", mask_floor=0.1))
    mag = np.random.default_rng(3).gamma(1.0, 0.05, size=(40, 129)).astype(np.float32)
    raw = den.with_mask_floor(0.0).mask(mag)
    f = float(np.median(raw))  # a random network's mask sits near 0.5: a floor that binds half the bins
    hi = den.with_mask_floor(f)
    assert den.config.mask_floor == 0.1 and hi.config.mask_floor == f and hi.model is den.model
    np.testing.assert_allclose(hi.mask(mag), np.maximum(raw, f), atol=1e-6)
    assert np.mean(hi.mask(mag) > raw + 1e-4) > 0.3
    np.testing.assert_allclose(den.mask(mag), np.maximum(raw, 0.1), atol=1e-6)


@pytest.mark.parametrize("floor", [-0.1, 1.0, float("nan"), "0.2"])
def test_with_mask_floor_rejects_a_bad_floor(den, floor):
    with pytest.raises(RcedError, match="mask floor"):
        den.with_mask_floor(floor)


def test_shape_gain_without_release_or_exponent_is_the_floor():
    m = np.random.default_rng(0).uniform(0, 1, (30, 7)).astype(np.float32)
    g, _ = shape_gain(m, ModelConfig(mask_floor=0.2))
    np.testing.assert_array_equal(g, np.maximum(m, 0.2))
    g, _ = shape_gain(m, ModelConfig(mask_floor=0.2, mask_exponent=0.5))
    np.testing.assert_allclose(g, np.maximum(np.sqrt(m), 0.2), rtol=1e-6)


def test_shape_gain_release_closed_form():
    """A step 1 -> 0 after n frames: the running mean r_t = 1 - a^(t+1) rises, then decays as
    r_n * a^k; the gain is max(mask, r) (state starts at 0), floored."""
    a, n, k = 0.7, 5, 8
    m = np.concatenate([np.ones((n, 3)), np.zeros((k, 3))]).astype(np.float32)
    g, state = shape_gain(m, ModelConfig(mask_release=a, mask_floor=0.01))
    r_n = 1 - a**n
    expect = np.concatenate([np.ones(n), r_n * a ** np.arange(1, k + 1)])
    np.testing.assert_allclose(g[:, 0], np.maximum(expect, 0.01), rtol=1e-5)
    np.testing.assert_allclose(state, r_n * a**k, rtol=1e-5)
    assert np.all(g >= m)  # the release only ever raises the mask


def test_shape_gain_chains_over_blocks():
    cfg = ModelConfig(mask_release=0.8, mask_exponent=0.9, mask_floor=0.15)
    m = np.random.default_rng(1).uniform(0, 1, (50, 9)).astype(np.float32)
    cuts = [(0, 1), (1, 1), (1, 18), (18, 50)]  # an empty block included
    assert_blocks_equal_whole(lambda x, state: shape_gain(x, cfg, state), m, cuts, rtol=1e-6)


@pytest.mark.parametrize("field,value", [("mask_release", 1.0), ("mask_release", -0.1),
                                         ("mask_exponent", 0.0), ("mask_exponent", 2.5), ("mask_exponent", "1")])  # fmt: skip
def test_with_gain_rejects_bad_settings(den, field, value):
    with pytest.raises(RcedError, match=field.replace("_", " ")):
        den.with_gain(**{field: value})


def test_with_gain_changes_only_gain_settings(den):
    with pytest.raises(RcedError, match="width_mult is not a gain setting"):
        den.with_gain(width_mult=0.5)
    d = den.with_gain(mask_release=0.3)
    assert d.config.mask_release == 0.3 and d.model is den.model and den.config.mask_release != 0.3
