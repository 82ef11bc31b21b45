"""Streaming memory stays flat: a cheap stand-in for benchmarks/stream_memory.py's one-hour run.

Minutes of synthetic audio go through ``Denoiser.stream`` block by block (generated on the fly,
output dropped). The streamer's state must not grow with the input, and the Python heap that
tracemalloc traces (numpy buffers included) must not grow between a quarter and the end of the
run. The network is a constant mask in the long runs (the streaming machinery without
network, so minutes take seconds); one short run per backend uses the shipped model. The file path of
``rced stream`` (AudioBlocks -> stream -> AudioWriter) must give what the whole-file path gave.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from rced.audio import AudioBlocks, AudioWriter, load_audio, rechunk, write_audio
from rced.config import ModelConfig, load_json
from rced.denoiser import Denoiser, default_model_path, preset_model_path
from rced.features import Normalizer
from tests.conftest import speechlike

SR = 16000


class HalfMask(Denoiser):
    """The streaming machinery with a constant 0.5 mask for network: no network."""

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), x.shape[1]), 0.5, np.float32)


@pytest.fixture(scope="module")
def stub() -> Denoiser:
    folder = default_model_path()
    return HalfMask(None, load_json(ModelConfig, folder / "config.json"), Normalizer.load(folder / "norm.json"))


def synthetic_blocks(seconds: float, sizes: list[int], seed: int = 0):
    """Noise plus a voiced tone, generated block by block (sizes cycle), ``seconds`` long in total."""
    rng = np.random.default_rng(seed)
    total, done, k = int(seconds * SR), 0, 0
    while done < total:
        n = min(sizes[k % len(sizes)], total - done)
        t = (done + np.arange(n)) / SR
        yield (0.05 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
               + 0.01 * rng.standard_normal(n)).astype(np.float32)  # fmt: skip
        done, k = done + n, k + 1


def _sizes(state: dict) -> dict:
    """name -> ("array", bytes) or ("container", length) for what a generator frame holds."""
    out = {}
    for name, v in state.items():
        if isinstance(v, np.ndarray):
            out[name] = ("array", v.nbytes)
        elif isinstance(v, list | tuple | dict | set | bytes | bytearray):
            out[name] = ("container", len(v))
    return out


@pytest.mark.parametrize("preset", [None, "bced"])
def test_stream_state_stays_bounded(preset):
    """Every array and container the streaming generator holds between blocks keeps a bounded size
    (the default's config; bced's, whose input state also holds its level trackers)."""
    folder = default_model_path() if preset is None else preset_model_path(preset)
    stub = HalfMask(None, load_json(ModelConfig, folder / "config.json"), Normalizer.load(folder / "norm.json"))
    fe = stub.config.frontend
    n_trackers = len(stub.config.trackers or ())
    sizes = [7, 128, 200, 333, 1000]
    gen = stub.stream(synthetic_blocks(120, sizes))
    snapshots = []
    for k, _ in enumerate(gen):
        if k % 25:
            continue
        state = gen.gi_frame.f_locals
        assert state["history"].shape == (fe.n_fft - fe.hop,)
        inputs = state["masks"].inputs  # the network's input state
        assert inputs.past.shape == (fe.context - 1, fe.n_bins)
        assert (inputs.state is None) if not n_trackers else inputs.state.shape == (n_trackers, fe.n_bins)
        assert state["ola"].shape == (fe.n_fft - fe.hop,)
        assert len(state["pending"]) < fe.hop
        snapshots.append(_sizes(state))
    assert len(snapshots) > 100
    bound = 8 * (max(sizes) + fe.n_fft)  # one block and one frame of float64; 2 minutes of audio would be 7.7 MB
    quarter = len(snapshots) // 4
    for name in set().union(*snapshots):
        kinds = {s[name][0] for s in snapshots if name in s}
        vals = [s[name][1] if name in s else 0 for s in snapshots]
        if kinds == {"array"}:
            assert max(vals) <= bound, f"{name} holds {max(vals)} bytes"
        else:  # no container grows after the first quarter
            assert max(vals[quarter:]) <= max(vals[:quarter]), f"{name} grows: {vals[quarter]} -> {vals[-1]}"


def _traced_growth(den: Denoiser, seconds: float, block: int) -> tuple[int, int]:
    """tracemalloc's traced bytes at a quarter and at the end of a streamed run (output dropped)."""
    n_blocks = int(seconds * SR) // block
    marks = {}
    tracemalloc.start()
    try:
        for k, _ in enumerate(den.stream(synthetic_blocks(seconds, [block]))):
            if k in (n_blocks // 4, n_blocks - 2):
                marks[k] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return marks[n_blocks // 4], marks[n_blocks - 2]


def test_python_heap_is_flat_over_two_minutes(stub):
    list(stub.stream(synthetic_blocks(1, [384])))  # warm-up outside the trace
    quarter, end = _traced_growth(stub, 120, 384)  # 5,000 blocks of 24 ms: a leak of 2 bytes per block fails
    assert end - quarter < 8 * 1024, (quarter, end)


@pytest.mark.parametrize("backend", ["float", "int8"])
def test_shipped_model_stream_heap_is_flat(backend):
    den = Denoiser.load(backend=backend)
    list(den.stream(synthetic_blocks(1, [4096])))
    quarter, end = _traced_growth(den, 12, 4096)
    assert end - quarter < 64 * 1024, (quarter, end)


@pytest.mark.parametrize("sr,channels,subtype", [(16000, 1, "PCM_16"), (44100, 2, "FLOAT"), (8000, 1, "PCM_16")])
def test_file_blocks_equal_load_audio(tmp_path, sr, channels, subtype):
    x = speechlike(sr, 9.3) + 0.01 * np.random.default_rng(sr).standard_normal(int(sr * 9.3)).astype(np.float32)
    p = tmp_path / "in.wav"
    sf.write(p, np.stack([x, x[::-1]], 1) if channels == 2 else x, sr, subtype=subtype)
    ref = load_audio(p)
    for read_frames in (1000, 1 << 16):
        got = list(AudioBlocks(p, read_frames=read_frames))
        np.testing.assert_array_equal(np.concatenate(got), ref)
        blocks = list(rechunk(got, 160))
        assert all(len(b) == 160 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 160
        np.testing.assert_array_equal(np.concatenate(blocks), ref)


def test_block_writer_writes_the_same_bytes_atomically(tmp_path):
    x = np.clip(speechlike(SR, 3.0) * 12, -1.5, 1.5)  # peaks above full scale are clipped as write_audio does
    write_audio(tmp_path / "whole.wav", x)
    with AudioWriter(tmp_path / "blocks.wav") as w:
        for b in rechunk([x], 333):
            w.write(b)
    assert (tmp_path / "blocks.wav").read_bytes() == (tmp_path / "whole.wav").read_bytes()
    with pytest.raises(RuntimeError), AudioWriter(tmp_path / "failed.wav") as w:
        w.write(x)
        raise RuntimeError("stopped half way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.wav", "whole.wav"]


def test_latency_histogram_percentiles_match_numpy():
    """rced stream's per-block latency stats: constant memory, numpy's percentiles at microsecond resolution."""
    from rced.cli import LatencyHistogram

    lat = np.random.default_rng(1).gamma(2.0, 0.0015, 5001)
    hist = LatencyHistogram()
    for v in lat:
        hist.add(float(v))
    ms = np.round(lat * 1e6) / 1000
    for q in (0, 50, 90, 99, 100):
        assert abs(hist.percentile(q) - np.percentile(ms, q)) < 1e-9
    assert hist.n == len(lat) and len(hist.counts) <= len(set(np.round(lat * 1e6)))
    assert LatencyHistogram().percentile(99) == 0.0
