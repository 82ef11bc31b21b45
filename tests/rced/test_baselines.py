"""Tests for rced.baselines: spectral subtraction, the oracle IRM bound and the DTLN and GTCRN peer runners."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rced.baselines import DTLN, GTCRN, oracle_irm, spectral_subtraction
from rced.errors import RcedError
from rced.metrics import si_sdr

SR = 16000
REPO = Path(__file__).resolve().parents[2]
DTLN_DIR = REPO.parent / "shared" / "peers" / "dtln"
needs_dtln = pytest.mark.skipif(not DTLN_DIR.is_dir(), reason=f"DTLN peer models not found at {DTLN_DIR}")
GTCRN_DIR = REPO.parent / "shared" / "peers" / "gtcrn"
needs_gtcrn = pytest.mark.skipif(not GTCRN_DIR.is_dir(), reason=f"GTCRN peer models not found at {GTCRN_DIR}")


def envelope(n: int) -> np.ndarray:
    """Syllable-like envelope: 1.5 Hz bursts with silent gaps between them."""
    t = np.arange(n) / SR
    return np.clip(np.sin(2 * np.pi * 1.5 * t), 0.0, None) ** 2


def speech_like(n: int = 3 * SR) -> np.ndarray:
    """Closed-form 'speech': 11 harmonics of a gliding 120-160 Hz pitch under a slow envelope."""
    t = np.arange(n) / SR
    phase = 2 * np.pi * np.cumsum(140 + 20 * np.sin(2 * np.pi * 0.7 * t)) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    return (0.3 * voiced * envelope(n)).astype(np.float32)


def noise_only_mask(n: int) -> np.ndarray:
    """Samples deep inside the envelope's gaps, after the 1.5 s tracker window has filled."""
    t = np.arange(n) / SR
    return (np.sin(2 * np.pi * 1.5 * t) < -0.3) & (t > 1.6)


@pytest.fixture(scope="module")
def mixture() -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) with white Gaussian noise at 0 dB SNR."""
    clean = speech_like()
    noise = np.random.default_rng(0).standard_normal(len(clean))
    noise *= np.sqrt(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))
    return clean, (clean + noise).astype(np.float32)


# ---------------------------------------------------------------- oracle IRM


def test_oracle_irm_raises_si_sdr(mixture):
    clean, noisy = mixture
    out = oracle_irm(clean, noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert si_sdr(clean, out) > si_sdr(clean, noisy) + 5.0


def test_oracle_irm_is_identity_without_noise(mixture):
    clean, _ = mixture
    np.testing.assert_allclose(oracle_irm(clean, clean), clean, atol=1e-4)


def test_oracle_irm_rejects_mismatched_lengths(mixture):
    clean, noisy = mixture
    with pytest.raises(RcedError, match="samples"):
        oracle_irm(clean, noisy[:-1])


# ---------------------------------------------------------------- spectral subtraction


def test_spectral_subtraction_shape_and_finite(mixture):
    _, noisy = mixture
    out = spectral_subtraction(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))


def test_spectral_subtraction_lowers_noise_in_gaps(mixture):
    clean, noisy = mixture
    out = spectral_subtraction(noisy)
    gap = noise_only_mask(len(noisy))
    assert np.mean(out[gap] ** 2) < 0.1 * np.mean(noisy[gap] ** 2)  # at least 10 dB less residual noise
    assert si_sdr(clean, out) > si_sdr(clean, noisy) + 3.0


def test_spectral_subtraction_near_identity_on_clean(mixture):
    clean, _ = mixture
    assert si_sdr(clean, spectral_subtraction(clean)) > 25.0
    silence = spectral_subtraction(np.zeros(5000, np.float32))
    assert silence.shape == (5000,) and np.all(silence == 0.0)


def test_spectral_subtraction_is_causal(mixture):
    _, noisy = mixture
    cut = 2 * SR
    changed = noisy.copy()
    changed[cut:] = np.random.default_rng(1).standard_normal(len(noisy) - cut)
    a, b = spectral_subtraction(noisy), spectral_subtraction(changed)
    # an output sample depends on the frames overlapping it, which end at most n_fft samples later
    np.testing.assert_array_equal(a[: cut - 256], b[: cut - 256])
    assert not np.allclose(a[cut:], b[cut:])


def test_spectral_subtraction_rejects_bad_input():
    with pytest.raises(RcedError, match="empty"):
        spectral_subtraction(np.zeros(0, np.float32))
    with pytest.raises(RcedError, match="1-D"):
        spectral_subtraction(np.zeros((2, 100), np.float32))
    with pytest.raises(RcedError, match="NaN"):
        spectral_subtraction(np.full(100, np.nan, np.float32))


# ---------------------------------------------------------------- DTLN peer


@pytest.fixture(scope="module")
def dtln() -> DTLN:
    return DTLN(DTLN_DIR)


@needs_dtln
def test_dtln_length_and_alignment(dtln, mixture):
    clean, _ = mixture
    for n in (1, 127, 1000):  # short and non-multiple-of-shift lengths
        assert dtln.process(clean[:n]).shape == (n,)
    out = dtln.process(clean)
    assert out.shape == clean.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
    xcorr = np.correlate(out, clean, mode="full")
    peak_lag = int(np.argmax(xcorr)) - (len(clean) - 1)
    assert abs(peak_lag) <= 2, f"DTLN output misaligned by {peak_lag} samples"


@needs_dtln
def test_dtln_improves_si_sdr(dtln, mixture):
    clean, noisy = mixture
    assert si_sdr(clean, dtln.process(noisy)) > si_sdr(clean, noisy) + 5.0


@needs_dtln
def test_dtln_quantized_and_default_folder(mixture, monkeypatch):
    clean, noisy = mixture
    q = DTLN(DTLN_DIR, quantized=True)
    assert q.quantized and q.process(noisy[:SR]).shape == (SR,)
    assert si_sdr(clean, q.process(noisy)) > si_sdr(clean, noisy) + 5.0
    monkeypatch.chdir(REPO)  # default: ../shared/peers/dtln from the cwd
    assert DTLN().model_dir.resolve() == DTLN_DIR.resolve()


def test_dtln_missing_folder_or_model(tmp_path):
    with pytest.raises(RcedError, match="folder not found"):
        DTLN(tmp_path / "nope")
    with pytest.raises(RcedError, match="model file not found"):
        DTLN(tmp_path)


@needs_dtln
def test_dtln_matches_streaming_loop(dtln, mixture):
    """The batched two-pass run equals the reference interleaved block loop, lag 384 removed."""
    _, noisy = mixture
    x = noisy[:4000]
    (m1, in1, st1, out1, sto1), (m2, in2, st2, out2, sto2) = dtln._stages
    s1, s2 = np.zeros(st1["shape"], np.float32), np.zeros(st2["shape"], np.float32)
    in_buf, out_buf = np.zeros(512, np.float32), np.zeros(512, np.float32)
    stream = np.zeros(len(x) + 384, np.float32)
    src = np.concatenate([x, np.zeros(384 + 128, np.float32)])
    for b in range(len(stream) // 128 + 1):
        in_buf = np.concatenate([in_buf[128:], src[b * 128 : b * 128 + 128]])
        spec = np.fft.rfft(in_buf)
        m1.set_tensor(in1["index"], np.abs(spec).astype(np.float32).reshape(1, 1, -1))
        m1.set_tensor(st1["index"], s1)
        m1.invoke()
        s1 = m1.get_tensor(sto1["index"])
        block = np.fft.irfft(spec * m1.get_tensor(out1["index"])[0, 0]).astype(np.float32)
        m2.set_tensor(in2["index"], block.reshape(1, 1, -1))
        m2.set_tensor(st2["index"], s2)
        m2.invoke()
        s2 = m2.get_tensor(sto2["index"])
        out_buf = np.concatenate([out_buf[128:], np.zeros(128, np.float32)]) + m2.get_tensor(out2["index"])[0, 0]
        chunk = stream[b * 128 : b * 128 + 128]
        chunk[:] = out_buf[: len(chunk)]
    np.testing.assert_allclose(dtln.process(x), stream[384:], atol=1e-5)


# ---------------------------------------------------------------- GTCRN peer


@pytest.fixture(scope="module")
def gtcrn() -> GTCRN:
    return GTCRN(GTCRN_DIR)


@needs_gtcrn
def test_gtcrn_shape_finite_and_denoises(gtcrn, mixture):
    clean, noisy = mixture
    for n in (257, 4000, 4001):  # shortest accepted input, a multiple of the hop and not
        out = gtcrn.process(noisy[:n])
        assert out.shape == (n,) and out.dtype == np.float32 and np.isfinite(out).all()
    assert si_sdr(clean, gtcrn.process(noisy)) > si_sdr(clean, noisy) + 5.0  # measured +12.5 dB


@needs_gtcrn
def test_gtcrn_is_causal(gtcrn, mixture):
    """Changing the input from sample t on leaves the output before t - 511 untouched: the model
    is causal in frames and a centred 512-sample frame reaches 511 samples ahead."""
    _, noisy = mixture
    x = noisy[: SR].copy()
    t = 8100
    changed = x.copy()
    changed[t:] = np.random.default_rng(1).standard_normal(len(x) - t).astype(np.float32)
    a, b = gtcrn.process(x), gtcrn.process(changed)
    np.testing.assert_allclose(a[: t - 511], b[: t - 511], atol=1e-6)
    assert np.abs(a[t:] - b[t:]).max() > 1e-2  # the change does reach the output after t


@needs_gtcrn
def test_gtcrn_stft_reconstructs(gtcrn):
    """The README's STFT pair is an identity on its own (reflect-padded ends included)."""
    x = np.random.default_rng(2).standard_normal(5000)
    spec = gtcrn._stft(x)
    assert spec.shape == (257, 1 + 5000 // 256)
    np.testing.assert_allclose(gtcrn._istft(spec, len(x)), x, atol=1e-9)


@needs_gtcrn
def test_gtcrn_default_folder_and_short_input(gtcrn, monkeypatch):
    monkeypatch.chdir(REPO)  # default: ../shared/peers/gtcrn from the cwd
    assert GTCRN().model_path.resolve() == (GTCRN_DIR / "gtcrn_dns3.onnx").resolve()
    with pytest.raises(RcedError, match="need more than 256"):
        gtcrn.process(np.zeros(256, np.float32))


def test_gtcrn_missing_folder_or_model(tmp_path):
    with pytest.raises(RcedError, match="GTCRN model folder not found"):
        GTCRN(tmp_path / "nope")
    with pytest.raises(RcedError, match="GTCRN model file not found"):
        GTCRN(tmp_path)
    (tmp_path / "gtcrn_dns3.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(RcedError, match="cannot load ONNX model"):
        GTCRN(tmp_path)
