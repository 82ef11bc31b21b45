import numpy as np
import pytest

from rced.config import ModelConfig, TrainConfig
from rced.errors import RcedError
from rced.rooms import EARLY_MS, PRE_DIRECT, RT60_S, in_rooms, reverberate, room_responses
from rced.train import build_pool, sample_batch
from tests.conftest import speechlike


@pytest.fixture(scope="module")
def rooms():
    return room_responses(3, 16000, seed=4)


def _schroeder_rt60(h: np.ndarray, sr: int) -> float:
    """RT60 from the -5..-25 dB slope of the backward-integrated energy (T20)."""
    edc = np.cumsum((h.astype(np.float64) ** 2)[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0])
    i5, i25 = int(np.argmax(db <= -5)), int(np.argmax(db <= -25))
    return 3.0 * (i25 - i5) / sr


def test_rooms_are_deterministic_and_start_at_the_direct_sound(rooms):
    again = room_responses(3, 16000, seed=4)
    for r, a in zip(rooms, again):
        np.testing.assert_array_equal(r.full, a.full)
        assert int(np.argmax(np.abs(r.full))) == PRE_DIRECT and abs(r.full[PRE_DIRECT]) == 1.0
        assert len(r.early) == PRE_DIRECT + int(EARLY_MS * 16)  # 50 ms after the direct sound
        np.testing.assert_array_equal(r.early, r.full[: len(r.early)])
        assert RT60_S[0] <= r.rt60 <= RT60_S[1]
    assert not np.array_equal(rooms[0].full[:2000], room_responses(1, 16000, seed=5)[0].full[:2000])


def test_the_tail_decays_as_the_drawn_rt60(rooms):
    for r in rooms:  # image-source rooms decay near the Sabine time they were built for
        assert 0.5 * r.rt60 < _schroeder_rt60(r.full, 16000) < 2.0 * r.rt60


def test_an_impulse_comes_back_as_the_response(rooms):
    x = np.zeros(4000, np.float32)
    x[0] = 1.0
    wet, early = reverberate(x, rooms[0])
    assert wet.shape == early.shape == x.shape
    np.testing.assert_allclose(wet, rooms[0].full[:4000], atol=1e-6)
    np.testing.assert_allclose(early[: len(rooms[0].early)], rooms[0].early, atol=1e-6)
    assert np.abs(early[len(rooms[0].early) :]).max() < 1e-6  # the target ends with the early part


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_pool_in_rooms_keeps_the_dry_pool_and_targets_the_early_part(share):
    utts = [speechlike(16000, 1.5, seed=i) for i in range(4)]
    cfg = TrainConfig(model=ModelConfig(arch="rced", width_mult=0.25), reverb_share=share)
    pool = build_pool(utts, utts, cfg, n_tracks=2, track_s=2.0, seed=3)
    dry = build_pool(utts, utts, TrainConfig(model=cfg.model), n_tracks=2, track_s=2.0, seed=3)
    if share == 0.0:
        assert pool.target is None
        for a, b in zip(pool.clean + pool.babble, dry.clean + dry.babble):
            np.testing.assert_array_equal(a, b)
        return
    assert all(t is not None and t.shape == c.shape for t, c in zip(pool.target, pool.clean))
    for c, t, d in zip(pool.clean, pool.target, dry.clean):
        e_c, e_t = np.sum(np.abs(c) ** 2), np.sum(np.abs(t) ** 2)
        assert e_c > e_t > 0.2 * np.sum(np.abs(d) ** 2)  # the tail adds energy; the direct sound stays
    y, s = sample_batch(pool, cfg, np.random.default_rng(0), 64)
    assert y.shape == s.shape and np.all(np.isfinite(y))


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_bad_reverb_share_is_refused(share):
    with pytest.raises(RcedError, match="reverb share"):
        TrainConfig(reverb_share=share)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_in_rooms_reverberates_the_share_asked_deterministically(share):
    rng = np.random.default_rng(0)
    dry = [rng.standard_normal(3000).astype(np.float32) for _ in range(40)]
    wet = in_rooms(dry, share, 16000, seed=3, n_rooms=2)
    assert all(np.array_equal(a, b) for a, b in zip(wet, in_rooms(dry, share, 16000, seed=3, n_rooms=2)))
    changed = [not np.array_equal(a, b) for a, b in zip(dry, wet)]
    assert [len(a) for a in wet] == [len(a) for a in dry]
    if share == 0.0:
        assert not any(changed)
    elif share == 1.0:
        assert all(changed)
    else:
        assert 8 <= sum(changed) <= 32  # binomial(40, 0.5): far outside would be a wrong share


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_in_rooms_rejects_a_share_outside_0_1(share):
    with pytest.raises(RcedError, match="reverb share"):
        in_rooms([np.zeros(100, np.float32)], share, 16000, seed=0)
