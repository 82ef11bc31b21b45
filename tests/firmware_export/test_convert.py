"""Calibration audio reaches each model's front-end at the model's sample rate (16 kHz: unchanged)."""

from __future__ import annotations

import types

import numpy as np

from firmware_export.convert import DENOISER_SNR_DB, Calibration, am_samples, denoiser_samples
from tests.firmware_export.conftest import calibration_audio

PAPER_SR = 8000  # rced's `paper` front-end preset


def _tone(sr: int, hz: float, seconds: float = 1.5) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def test_resampling_is_the_identity_at_the_calibration_rate():
    cal = Calibration.from_audio(calibration_audio(3))
    for a, b in zip(cal.mixtures(DENOISER_SNR_DB, 0.3, salt=1), cal.mixtures(DENOISER_SNR_DB, 0.3, salt=1, sr=16000)):
        assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b)
    assert np.array_equal(cal.held_out_mixture(), cal.held_out_mixture(sr=16000))


def test_mixtures_and_held_out_are_resampled_to_the_model_rate():
    from rced.config import FrontendConfig
    from rced.frontend import stft

    cal = Calibration.from_audio([*calibration_audio(2), _tone(16000, 1000.0)])
    assert all(len(m) == 12000 for m in cal.mixtures(DENOISER_SNR_DB, 0.0, salt=1, sr=PAPER_SR))
    x = cal.held_out_mixture(snr_db=60.0, sr=PAPER_SR)  # babble 60 dB down: the 1 kHz tone alone
    fe = FrontendConfig.preset("paper")
    assert len(x) == 12000
    peak = int(np.argmax(np.abs(stft(x, fe)).mean(axis=0)))
    assert peak == round(1000.0 * fe.n_fft / fe.sample_rate)  # 1 kHz, not 500 Hz (16 kHz read as 8 kHz)


def _spy_rates(monkeypatch) -> list[int | None]:
    rates: list[int | None] = []
    real = Calibration.mixtures

    def spy(self, snr_db, p_clean, salt, sr=None):
        rates.append(sr)
        return real(self, snr_db, p_clean, salt, sr=sr)

    monkeypatch.setattr(Calibration, "mixtures", spy)
    return rates


def test_denoiser_and_am_calibration_run_at_the_model_rate(monkeypatch):
    from grammar.config import AMConfig
    from rced.config import FrontendConfig, ModelConfig
    from rced.features import Normalizer, model_inputs
    from rced.frontend import stft

    fe = FrontendConfig.preset("paper")
    cal = Calibration.from_audio(calibration_audio(3))
    cfg = ModelConfig(frontend=fe)
    den = types.SimpleNamespace(config=cfg, norm=Normalizer(tuple([0.0] * fe.n_bins), tuple([1.0] * fe.n_bins)))
    rates = _spy_rates(monkeypatch)
    got = denoiser_samples(den, cal, n_frames=10**6)  # every frame, in order
    want = np.concatenate([model_inputs(np.abs(stft(x, fe)), cfg, den.norm)
                           for x in cal.mixtures(DENOISER_SNR_DB, 0.0, salt=1, sr=PAPER_SR)])  # fmt: skip
    assert np.array_equal(got, want)
    am_cfg = AMConfig(frontend=fe, channels=16, blocks=2)
    am_samples(am_cfg, Normalizer(tuple([-8.0] * am_cfg.n_mels), tuple([3.0] * am_cfg.n_mels)), None, cal,
               n_windows=2)  # fmt: skip
    assert rates == [PAPER_SR, PAPER_SR, PAPER_SR]
