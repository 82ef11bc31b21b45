"""AM features: the mel filterbank equals librosa's (without importing it at inference)."""

from __future__ import annotations

import numpy as np
import pytest

from grammar.acoustic.features import (
    MODULATION_LAG,
    MODULATION_SMOOTH,
    MODULATION_SPAN,
    TONAL_BANDS,
    TONAL_SHARE,
    frame_levels,
    frame_tonal,
    htk_mel_filterbank,
    log_mel,
    mel_matrix,
    speech_modulation,
    tonality,
    with_trackers,
)
from tests.conftest import assert_blocks_equal_whole


@pytest.mark.parametrize("n_mels,n_fft,sr,fmin", [(40, 256, 16000, 20.0), (40, 256, 8000, 0.0), (64, 512, 16000, 125.0)])
def test_mel_filterbank_equals_librosa(n_mels, n_fft, sr, fmin):
    librosa = pytest.importorskip("librosa")
    want = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=sr / 2, htk=True, norm=None)
    got = htk_mel_filterbank(n_mels, n_fft, sr, fmin, sr / 2)
    assert got.dtype == np.float32 and np.array_equal(got, want)


def test_mel_matrix_warp_moves_filters_down():
    """VTLP: warp > 1 reads the filters at higher bin frequencies, so each filter's peak moves down."""
    plain, warped = mel_matrix(40, 256, 16000, 20.0), mel_matrix(40, 256, 16000, 20.0, 1.1)
    assert plain.shape == warped.shape == (129, 40)
    peaks_plain, peaks_warped = plain.argmax(axis=0), warped.argmax(axis=0)
    assert np.all(peaks_warped[10:] < peaks_plain[10:])


# --------------------------------------------------------------------------- the speech check's modulation


def test_modulation_of_a_steady_level_is_zero():
    assert speech_modulation(np.full(400, 3.7)) == 0.0


@pytest.mark.parametrize("slope", [0.01, -0.2, 1.5])
def test_modulation_of_a_ramp_is_the_lag_times_the_slope(slope):
    """A straight line stays one under the moving average; over the lag it changes by lag x slope."""
    assert speech_modulation(slope * np.arange(500.0)) == pytest.approx(MODULATION_LAG * abs(slope))


def test_modulation_of_a_square_wave_in_closed_form():
    """Level 0 and 1 alternating every lag frames: s[t] - s[t - lag] = 2 s[t] - 1, which is +-1 except
    on the 2 (smoothing - 1) frames per period where the moving average straddles an edge."""
    period = 2 * MODULATION_LAG
    levels = np.tile(np.r_[np.zeros(MODULATION_LAG), np.ones(MODULATION_LAG)], 40)
    s = np.convolve(levels, np.full(MODULATION_SMOOTH, 1 / MODULATION_SMOOTH), mode="valid")
    one_period = np.abs(2 * s[:period] - 1)  # the change over the lag, one period of it
    full, rest = divmod(MODULATION_SPAN, period)
    want = (full * one_period.sum() + np.sort(one_period)[::-1][:rest].sum()) / MODULATION_SPAN  # best phase
    assert speech_modulation(levels) == pytest.approx(want)


def test_modulation_is_the_loudest_second_not_the_mean():
    """Silence around one burst does not dilute it: the modulation is its span's, however long the input."""
    burst = np.tile(np.r_[np.zeros(MODULATION_LAG), np.ones(MODULATION_LAG)], 6)
    short = speech_modulation(np.r_[np.zeros(100), burst, np.zeros(100)])
    long = speech_modulation(np.r_[np.zeros(5000), burst, np.zeros(5000)])
    assert long == pytest.approx(short) and short > 0.5


def test_modulation_of_short_tracks():
    assert speech_modulation(np.zeros(0)) == 0.0
    assert speech_modulation(np.arange(MODULATION_SMOOTH + MODULATION_LAG - 1.0)) == 0.0  # no change measurable
    n = MODULATION_SMOOTH + MODULATION_LAG + 9  # shorter than a span: the mean over all of it
    assert speech_modulation(np.arange(float(n))) == pytest.approx(MODULATION_LAG)


def test_frame_levels_are_the_band_means():
    feats = np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(frame_levels(feats), [1.5, 5.5, 9.5])


@pytest.mark.parametrize(("power", "tonal"), [
    ([1.0] + [1e-9] * 39, 1.0),  # one band holds it all
    ([0.5, 0.5] + [1e-9] * 38, 1.0),  # two adjacent bands: one frequency between two filters
    ([0.3, 0.4, 0.3] + [0.0] * 37, 1.0),  # three: a low tone, where the bands are one FFT bin wide
    ([0.0] * 20 + [0.3, 0.3, 0.31, 0.09] + [0.0] * 16, 1.0),  # three adjacent bands hold just over the share
    ([0.0] * 20 + [0.29, 0.29, 0.3, 0.12] + [0.0] * 16, 0.0),  # just below it
    ([0.45, 0.0, 0.0, 0.45, 0.1] + [0.0] * 35, 0.0),  # two strong bands apart: two frequencies, not one
    ([0.25] * 4 + [0.0] * 36, 0.0),
    ([1.0] * 40, 0.0),  # flat: noise
])  # fmt: skip
def test_a_frame_is_tonal_when_adjacent_bands_hold_the_share(power, tonal):
    assert (TONAL_BANDS, TONAL_SHARE) == (3, pytest.approx(0.9))
    log_power = np.log(np.asarray(power, np.float64) + 1e-30)[None, :]
    assert frame_tonal(log_power + 7.0).tolist() == [tonal]  # the level does not matter


def through_front_end(x: np.ndarray) -> np.ndarray:
    """Tonal flags of a 16-kHz signal through the AM's front-end (STFT, log-mel), no denoiser."""
    from grammar.config import AMConfig
    from rced.frontend import stft

    cfg = AMConfig()
    return frame_tonal(log_mel(np.abs(stft(x.astype(np.float32), cfg.frontend)), cfg))


@pytest.mark.parametrize("hz", [100, 150, 220, 300, 440, 1000, 2000, 3500, 6000])
def test_a_tone_is_tonal_at_any_pitch(hz):
    t = np.arange(16000) / 16000
    tremolo = 1 + 0.5 * np.sin(2 * np.pi * 3 * t)  # a tone that rises and falls passes the modulation test
    flags = through_front_end(0.1 * tremolo * np.sin(2 * np.pi * hz * t))
    assert flags[2:-2].min() == 1.0 and tonality(flags) > 0.95


@pytest.mark.parametrize("f0", [90, 120, 200])
def test_noise_and_a_voiced_harmonic_series_are_not_tonal(f0):
    t = np.arange(16000) / 16000
    # a vowel-like series: harmonics of f0 up to 4 kHz, falling 6 dB an octave
    voiced = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 4000 // f0 + 1))
    noise = np.random.default_rng(0).standard_normal(16000)
    for x in (0.05 * voiced, 0.1 * noise):
        flags = through_front_end(x)
        assert flags.max() == 0.0 and tonality(flags) == 0.0


def test_tonality_is_the_most_tonal_second():
    assert tonality(np.zeros(0)) == 0.0
    assert tonality(np.r_[np.ones(10), np.zeros(30)]) == pytest.approx(0.25)  # shorter than a span: the share of all
    one_second = np.r_[np.zeros(2000), np.ones(MODULATION_SPAN), np.zeros(2000)]
    assert tonality(one_second) == pytest.approx(1.0)  # silence around a beep does not dilute it
    assert tonality(np.tile([1.0, 0.0], 1000)) == pytest.approx(0.5, abs=1 / MODULATION_SPAN)


def test_frame_tonal_wants_frames_of_bands():
    with pytest.raises(ValueError, match="frame_tonal"):
        frame_tonal(np.zeros(40))


TRACKED = {"trackers": ((0.5, 0.5), (2.0, 0.05)), "tracker_bands": 4}


def test_trackers_follow_band_group_means_in_closed_form():
    """A running mean (equal gains g) of a step from 0 to 1 reads 1 - (1 - g)^n after n frames; a
    noise floor (slow rise, fast fall) falls to a dip at its fall gain. Each channel follows the mean
    of its group of bands, tracker by tracker after the bands."""
    from grammar.config import AMConfig
    from rced.features import tracker_gains

    cfg = AMConfig(**TRACKED)
    assert (cfg.tracker_groups, cfg.input_channels) == (10, 60)
    g = tracker_gains(cfg)
    feats = np.zeros((50, 40), np.float32)
    feats[1:, :4] = 1.0  # group 0's mean steps to 1 (the other bands stay 0)
    feats[1:, 4:8] = np.array([0.0, 0.0, 0.0, 8.0])  # group 1's mean steps to 2
    x, state = with_trackers(feats, cfg)
    assert x.shape == (50, 60)
    np.testing.assert_array_equal(x[:, :40], feats)
    n = np.arange(50)
    np.testing.assert_allclose(x[:, 40], 1 - (1 - g[0, 0]) ** n, atol=1e-5)  # running mean, group 0
    np.testing.assert_allclose(x[:, 41], 2 * (1 - (1 - g[0, 0]) ** n), atol=1e-5)  # group 1
    np.testing.assert_allclose(x[:, 50], 1 - (1 - g[1, 0]) ** n, atol=1e-5)  # noise floor rises slowly
    assert np.abs(x[:, 42:50]).max() == 0.0 and state.shape == (2, 10)
    dip = np.ones((3, 40), np.float32)
    dip[1] = -1.0  # one quiet frame: the floor drops by its fall gain's share of the gap at once
    y, _ = with_trackers(dip, cfg)
    assert y[1, 50] == pytest.approx(1 - 2 * g[1, 1], abs=1e-6)


def test_trackers_block_by_block_equal_one_run_and_none_leave_the_features():
    from grammar.config import AMConfig

    cfg = AMConfig(**TRACKED)
    feats = np.random.default_rng(3).standard_normal((97, 40)).astype(np.float32)
    cuts = [(0, 1), (1, 1), (1, 40), (40, 97)]  # an empty block too
    assert_blocks_equal_whole(lambda f, state: with_trackers(f, cfg, state), feats, cuts, atol=1e-6)
    assert with_trackers(feats, AMConfig())[0] is feats


@pytest.mark.parametrize(
    ("kw", "needle"),
    [({"trackers": ((1.0, 1.0),)}, "need a band group size"), ({"tracker_bands": 4}, "need a band group size"),
     ({"trackers": ((1.0, 1.0),), "tracker_bands": 3}, "divisor of n_mels"),
     ({"trackers": ((1.0, -1.0),), "tracker_bands": 4}, "positive seconds")],
)  # fmt: skip
def test_tracker_settings_are_checked(kw, needle):
    from grammar.config import AMConfig
    from grammar.errors import GrammarError

    with pytest.raises(GrammarError, match=needle):
        AMConfig(**kw)


def test_tracker_settings_round_trip_json(tmp_path):
    from grammar.config import AMConfig
    from rced.config import load_json, save_json

    cfg = AMConfig(**TRACKED)
    save_json(cfg, tmp_path / "c.json")
    assert load_json(AMConfig, tmp_path / "c.json") == cfg
