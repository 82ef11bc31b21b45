import numpy as np
import pytest

from rced.config import FrontendConfig
from rced.errors import RcedError
from rced.frontend import context_windows, istft, n_frames, ola_norm, stft


@pytest.mark.parametrize("preset", ["default", "paper"])
@pytest.mark.parametrize("length", [1, 127, 128, 129, 1000, 16000])
def test_stft_istft_reconstructs_exactly(preset, length):
    cfg = FrontendConfig.preset(preset)
    x = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    spec = stft(x, cfg)
    assert spec.shape == (n_frames(length, cfg), cfg.n_bins)
    np.testing.assert_allclose(istft(spec, cfg, length), x, atol=2e-5)


def test_sqrt_hann_is_power_complementary():
    # periodic sqrt-Hann at 50 % overlap: w^2 sums to exactly 1, so WOLA needs no correction
    np.testing.assert_allclose(ola_norm(FrontendConfig()), 1.0, atol=1e-12)


def test_latency_and_shapes_match_design():
    cfg = FrontendConfig()
    assert (cfg.n_bins, cfg.hop, cfg.latency_ms, cfg.frame_rate) == (129, 128, 16.0, 125.0)


def test_stft_is_causal():
    # changing a sample never changes frames that end before it
    cfg = FrontendConfig()
    x = np.random.default_rng(0).standard_normal(4000)
    y = x.copy()
    y[2000:] += 1.0
    a, b = stft(x, cfg), stft(y, cfg)
    last_unaffected = 2000 // cfg.hop - 1  # frame t ends at sample (t+1)*hop
    np.testing.assert_array_equal(a[: last_unaffected + 1], b[: last_unaffected + 1])
    assert not np.allclose(a[last_unaffected + 1], b[last_unaffected + 1])


def test_sine_peaks_in_its_bin():
    cfg = FrontendConfig()
    t = np.arange(16000) / 16000
    mag = np.abs(stft(np.sin(2 * np.pi * 1000 * t), cfg))
    assert np.argmax(mag[50]) == round(1000 / (16000 / 256))


def test_context_windows_are_causal_and_padded():
    feat = np.arange(12, dtype=np.float32).reshape(4, 3)
    w = context_windows(feat, 3, pad_value=-1.0)
    assert w.shape == (4, 3, 3)
    np.testing.assert_array_equal(w[0, :, -1], feat[0])  # newest frame last
    np.testing.assert_array_equal(w[0, :, 0], [-1, -1, -1])
    np.testing.assert_array_equal(w[3].T, feat[1:4])


def test_bad_hop_rejected():
    with pytest.raises(RcedError):
        ola_norm(FrontendConfig(n_fft=256, hop=100))
