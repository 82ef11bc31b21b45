import numpy as np
import pytest

from rced.errors import RcedError
from rced.nonspeech import KINDS, nonspeech_clip


@pytest.mark.parametrize("kind", KINDS)
def test_a_clip_is_made_from_its_seed_alone(kind):
    a, k = nonspeech_clip(11, 1.5, kind=kind)
    b, _ = nonspeech_clip(11, 1.5, kind=kind)
    c, _ = nonspeech_clip(12, 1.5, kind=kind)
    assert k == kind and a.dtype == np.float32 and a.shape == (24000,)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    rms_db = 20 * np.log10(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    assert np.all(np.isfinite(a)) and np.max(np.abs(a)) <= 0.99 + 1e-6 and -45.5 <= rms_db <= -10 + 1e-3


def test_kinds_are_drawn_when_not_asked():
    assert {nonspeech_clip(s, 0.2)[1] for s in range(60)} == set(KINDS)


def test_mains_hum_lies_on_its_harmonics():
    """Hum of a mains fundamental: nearly all energy within 2 Hz of multiples of 50 or 60 Hz."""
    for seed in range(40):
        x, _ = nonspeech_clip(seed, 2.0, kind="hum")
        spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
        f = np.fft.rfftfreq(len(x), 1 / 16000)
        peak = f[np.argmax(spec)]
        for f0 in (50.0, 60.0):
            near = np.abs(f - f0 * np.round(f / f0)) <= 2.0
            if abs(peak - f0 * round(peak / f0)) <= 1.0 and spec[near].sum() / spec.sum() > 0.99:
                return
    pytest.fail("no mains hum among 40 hum clips")


@pytest.mark.parametrize("kw, message", [({"kind": "speech"}, "kind"), ({"seconds": 0.0}, "positive"),
                                         ({"seconds": float("nan")}, "positive")])  # fmt: skip
def test_bad_requests_are_refused(kw, message):
    with pytest.raises(RcedError, match=message):
        nonspeech_clip(0, **kw)
