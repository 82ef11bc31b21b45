"""Simulated rooms for training: shoebox impulse responses (image source method, pyroomacoustics).

A hearing aid hears speech in rooms. Training on dry TTS only teaches the denoiser that every
speech frame ends where the voice stops; here a share of the training utterances and babble
tracks is heard through a simulated room. The denoiser removes babble, not the room: its target
is the speech through the direct path and the early reflections (the first ``EARLY_MS`` after
the direct sound), which listeners integrate with the direct sound; the late tail counts as
interference, as in the DNS challenge's reverberant data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rced.config import check_reverb_share
from rced.errors import RcedError

RT60_S = (0.2, 0.7)  # reverberation times drawn uniformly (living rooms to halls)
EARLY_MS = 50.0
PRE_DIRECT = 32  # samples kept before the direct-path peak (the fractional-delay filter's spread)


@dataclasses.dataclass(frozen=True)
class RoomResponse:
    """One source-microphone pair in one room: the whole response and its early part."""

    full: np.ndarray
    early: np.ndarray
    rt60: float


def room_responses(n: int, sample_rate: int, seed: int) -> list[RoomResponse]:
    """``n`` shoebox rooms, each with a random size, RT60, source and microphone; deterministic in ``seed``."""
    try:
        import pyroomacoustics as pra
    except ImportError as exc:
        raise RcedError(f"simulated rooms need pyroomacoustics ({exc}); pip install '.[train]'") from None
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        dim = np.array([rng.uniform(3.0, 9.0), rng.uniform(3.0, 7.0), rng.uniform(2.4, 3.6)])
        rt60 = float(rng.uniform(*RT60_S))
        absorption, max_order = pra.inverse_sabine(rt60, dim)
        room = pra.ShoeBox(dim, fs=sample_rate, materials=pra.Material(absorption), max_order=max_order)
        mic = dim * rng.uniform(0.2, 0.8, 3)
        while True:  # a talker 0.5-3 m away, inside the room
            src = dim * rng.uniform(0.1, 0.9, 3)
            if 0.5 <= np.linalg.norm(src - mic) <= 3.0:
                break
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        out.append(_response(np.asarray(room.rir[0][0], np.float64), sample_rate, rt60))
    return out


def _response(h: np.ndarray, sample_rate: int, rt60: float) -> RoomResponse:
    """Trim the propagation delay, scale the direct path to unit peak and cut the early part."""
    peak = int(np.argmax(np.abs(h)))
    h = h[max(0, peak - PRE_DIRECT) :]
    h = h / np.max(np.abs(h))
    early = h[: min(PRE_DIRECT, peak) + int(EARLY_MS * 1e-3 * sample_rate)]
    return RoomResponse(h.astype(np.float32), early.astype(np.float32), rt60)


def reverberate(x: np.ndarray, room: RoomResponse) -> tuple[np.ndarray, np.ndarray]:
    """(what the microphone hears, the target: direct sound and early reflections), both ``len(x)`` long."""
    from scipy.signal import fftconvolve

    n = len(x)
    return (fftconvolve(x, room.full)[:n].astype(np.float32), fftconvolve(x, room.early)[:n].astype(np.float32))


def in_rooms(audios: list[np.ndarray], share: float, sample_rate: int, seed: int,
             n_rooms: int = 48) -> list[np.ndarray]:  # fmt: skip
    """``share`` of the recordings as a microphone hears them in one of ``n_rooms`` simulated rooms
    (the whole response: recognizers hear the tail too), the rest as they are; deterministic in ``seed``."""
    check_reverb_share(share)
    if share == 0.0:
        return list(audios)
    rng = np.random.default_rng([seed, 11])
    rooms = room_responses(n_rooms, sample_rate, seed=int(rng.integers(2**31)))
    return [reverberate(a, rooms[int(rng.integers(n_rooms))])[0] if rng.random() < share else a for a in audios]
