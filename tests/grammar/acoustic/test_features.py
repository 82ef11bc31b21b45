"""AM features: the mel filterbank equals librosa's (without importing it at inference)."""

from __future__ import annotations

import numpy as np
import pytest

from grammar.acoustic.features import htk_mel_filterbank, mel_matrix


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
