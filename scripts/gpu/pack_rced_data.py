"""Pack clean TRAIN-voice speech for the JAX denoiser trainer into one small file.

The trainer (``train_rced_jax.py``) makes its noisy mixtures on the accelerator from clean
speech, so it needs no TTS engine and no audio files: only this pack, which is small enough to
copy to a remote GPU machine quickly. Each utterance keeps its TTS level (the features are log
magnitudes, so level matters against ``norm.json``): it is pre-emphasised (1 - 0.85 z^-1),
peak-normalised (the scale is stored), µ-law coded at 7 bits and LZMA-compressed in chunks of
32 utterances; :func:`decode` expands, de-emphasises (a 96-tap truncation of the exact IIR,
error < 1e-7) and rescales. Measured on 150 utterances of ``train_utterances(4000, 0)`` (coding
noise relative to the clean speech, STFT domain, active frames):

    codec                          MB per hour   noise 0-4 kHz   noise 4-8 kHz
    µ-law 8 bit (no pre-emphasis)      36.4         -40.8 dB        -19.6 dB
    pre-emphasis + µ-law 7 bit         35.6         -35.5 dB        -27.1 dB   <- default
    pre-emphasis + µ-law 8 bit         42.1         -41.5 dB        -33.1 dB   (--bits 8)

so one plan of ``train_utterances(4000, seed)`` (3.4 h) takes about 120 MB, and
``--budget-mb 52`` about 1.45 h. The 100 validation utterances of ``rced.train.Trainer`` (the
first ``n // 40`` of ``train_utterances(4000, 0)``, flagged ``is_val``) come first, then the
training utterances in plan order, seed after seed (``--seeds``), until the plan or the budget
ends. Babble is not packed: the trainer sums 3-8 other packed utterances, every batch.

``--vocode`` packs every utterance after an MLSA analysis-synthesis (pysptk: 25th-order
mel-cepstrum, SWIPE' pitch, pulse/noise excitation), the vocoder of statistical parametric
(HTS) synthesis. Measured with the shipped denoiser on the TRAIN-voice dev set of
``benchmarks/mask_floor.py``: ΔSI-SDR +1.40 dB on the original speech, +0.95 dB on the same
speech vocoded, and +0.34 dB on the TEST-ONLY HTS voice (festival cmu_us_slt_arctic_hts)
against +0.94 to +1.44 dB on the other test voices: part of the unseen-voice gap is the
vocoder, which no TRAIN voice has (``python benchmarks/vocoder_gap.py``). A vocoded pack of
TRAIN-voice speech (:func:`rced.corpus.vocode`) lets the trainer see it.

Usage (repo root, on a machine with the TTS engines of ``scripts/setup.sh``):
    python scripts/gpu/pack_rced_data.py rced_pack.npz --budget-mb 52
    python scripts/gpu/pack_rced_data.py rced_pack_b.npz --seeds 1 --n-val 0
"""

from __future__ import annotations

import lzma
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import check_output, parser  # noqa: E402

from rced.audio import atomic_save_npz  # noqa: E402

MU = 255.0
PREEMPH = 0.85
TAPS = 96  # de-emphasis impulse response length: 0.85**96 < 2e-7
CHUNK = 32  # utterances per LZMA stream (budget granularity, ~1 MB)
N_VAL = 100  # rced.train.Trainer: max(2, 4000 // 40) first utterances of the plan


def encode_utt(x: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """float waveform -> (µ-law codes of the pre-emphasised signal, peak scale)."""
    x = np.asarray(x, np.float64)
    e = np.concatenate([x[:1], x[1:] - PREEMPH * x[:-1]])
    scale = float(np.max(np.abs(e))) or 1.0
    y = e / scale
    y = np.sign(y) * np.log1p(MU * np.abs(y)) / np.log1p(MU)
    levels = 2**bits - 1
    return np.clip(np.round((y + 1) / 2 * levels), 0, levels).astype(np.uint8), scale


def decode_codes(q: np.ndarray, scale: float, bits: int) -> np.ndarray:
    """Inverse of :func:`encode_utt` (up to the µ-law quantisation)."""
    y = q.astype(np.float64) / (2**bits - 1) * 2 - 1
    e = np.sign(y) * np.expm1(np.abs(y) * np.log1p(MU)) / MU * scale
    return np.convolve(e, PREEMPH ** np.arange(TAPS))[: len(e)].astype(np.float32)


def decode(z) -> list[np.ndarray]:
    """Every utterance of a pack (``np.load(path, allow_pickle=False)``) as float32 at 16 kHz."""
    bits = int(z["codec"][0])
    blob = z["audio"].tobytes()
    lens, scale = z["lens"], z["scale"]
    out: list[np.ndarray] = []
    pos = 0
    for nbytes, nutt in zip(z["chunk_bytes"], z["chunk_utts"]):
        codes = np.frombuffer(lzma.decompress(blob[pos : pos + int(nbytes)]), np.uint8)
        pos += int(nbytes)
        off = 0
        for i in range(len(out), len(out) + int(nutt)):
            out.append(decode_codes(codes[off : off + lens[i]], float(scale[i]), bits))
            off += int(lens[i])
    return out


def encode_chunk(audio: list[np.ndarray], bits: int) -> tuple[bytes, list[tuple[int, float]]]:
    """One LZMA stream of up to CHUNK utterances, and (samples, peak scale) of each."""
    coded = [encode_utt(a, bits) for a in audio]
    return lzma.compress(b"".join(q.tobytes() for q, _ in coded), preset=9), [(len(q), sc) for q, sc in coded]


def pack_arrays(chunks: list[bytes], meta: list[tuple], bits: int, vocode=(False, 0.0, 0.0)) -> dict:
    """The pack's arrays: ``chunks`` of :func:`encode_chunk`, ``meta`` (seed, index, is_val, samples,
    scale) per utterance in order, ``vocode`` (vocoded?, warp, f0 spread) for the record."""
    return {
        "audio": np.frombuffer(b"".join(chunks), np.uint8),
        "chunk_bytes": np.array([len(b) for b in chunks], np.int64),
        "chunk_utts": np.array([min(CHUNK, len(meta) - k * CHUNK) for k in range(len(chunks))], np.int32),
        "lens": np.array([m[3] for m in meta], np.int64),
        "scale": np.array([m[4] for m in meta], np.float64),
        "is_val": np.array([m[2] for m in meta], bool),
        "seed": np.array([m[0] for m in meta], np.int32),
        "index": np.array([m[1] for m in meta], np.int32),
        "codec": np.array([bits, MU, PREEMPH, TAPS], np.float64),
        "vocoded": np.array(bool(vocode[0])),
        "vocode_warp": np.array(vocode[1:], np.float64),
        "sample_rate": np.array(16000, np.int32),
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("out", type=Path, help="the pack to write (.npz)")
    ap.add_argument("--budget-mb", type=float, default=None,
                    help="stop before the compressed audio passes this many MB (default: the whole plan)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="train_utterances(N, seed) plans, in order")
    ap.add_argument("--n-per-seed", type=int, default=4000, help="N: utterances per plan")
    ap.add_argument("--pico", type=int, default=0,
                    help="P: each plan also has P utterances of the SVOX Pico TRAIN voices, after its N "
                         "(train_utterances(N, seed, pico=P))")  # fmt: skip
    ap.add_argument("--bits", type=int, default=7, choices=(6, 7, 8), help="µ-law bits per sample")
    ap.add_argument("--max-utts", type=int, default=None, help="stop after this many (tiny test packs)")
    ap.add_argument("--skip", type=int, default=0, help="leave out the plan's first N utterances (in an earlier pack)")
    ap.add_argument("--n-val", type=int, default=N_VAL, help="validation utterances at the start of the first seed")
    ap.add_argument("--vocode", action="store_true", help="pack MLSA-vocoded speech (see the module docstring)")
    ap.add_argument("--warp", type=float, default=0.0,
                    help="with --vocode: per utterance, synthesis all-pass warp uniform in [-W, W] (new vocal tracts)")
    ap.add_argument("--f0-spread", type=float, default=0.0,
                    help="with --vocode: per utterance, pitch scaled by a log-uniform factor in [1/(1+F), 1+F]")
    args = ap.parse_args()
    if (args.warp or args.f0_spread) and not args.vocode:
        ap.error("--warp and --f0-spread need --vocode")
    if not (0 <= args.warp < 0.3 and 0 <= args.f0_spread <= 3):
        ap.error("--warp must be in [0, 0.3) and --f0-spread in [0, 3] (rced.corpus.vocode's limits)")
    check_output(args.out)

    from rced.corpus import load_utterances, train_utterances

    plan = []  # (seed, index, utterance, is_val)
    for seed in args.seeds:
        utts = train_utterances(args.n_per_seed, seed, pico=args.pico)
        plan += [(seed, i, u, seed == args.seeds[0] and i < args.n_val) for i, u in enumerate(utts)]
    plan = plan[args.skip :]
    if args.max_utts is not None:
        plan = plan[: args.max_utts]
    budget = math.inf if args.budget_mb is None else args.budget_mb * 1e6
    t0 = time.time()
    chunks, meta, total = [], [], 0
    for c0 in range(0, len(plan), CHUNK):
        part = plan[c0 : c0 + CHUNK]
        audio = load_utterances([u for _, _, u, _ in part], desc=f"speech {c0}")
        if args.vocode:
            from rced.corpus import vocode

            # one generator per utterance, so a pack's voices do not depend on its chunking
            rngs = [np.random.default_rng([s, i, 7]) for s, i, _, _ in part]
            warps = [float(r.uniform(-args.warp, args.warp)) for r in rngs]
            f0s = [float(np.exp(r.uniform(-1, 1) * np.log1p(args.f0_spread))) for r in rngs]
            with ProcessPoolExecutor(os.cpu_count() or 1) as ex:
                audio = list(ex.map(vocode, audio, [16000] * len(audio), warps, f0s))
        blob, coded = encode_chunk(audio, args.bits)
        if total + len(blob) > budget:
            break
        chunks.append(blob)
        total += len(blob)
        meta += [(s, i, v, n, sc) for (s, i, _, v), (n, sc) in zip(part, coded)]
        if len(chunks) % 10 == 0:
            secs = sum(m[3] for m in meta) / 16000
            print(f"{len(meta)} utterances, {secs / 3600:.2f} h, {total / 1e6:.1f} MB, {time.time() - t0:.0f}s",
                  flush=True)  # fmt: skip
    if not meta:
        raise SystemExit(f"{args.out}: nothing to pack (empty plan, or --budget-mb below one chunk)")
    arrays = pack_arrays(chunks, meta, args.bits, (args.vocode, args.warp, args.f0_spread))
    atomic_save_npz(args.out, arrays)
    secs = arrays["lens"].sum() / 16000
    n_val = int(arrays["is_val"].sum())
    print(f"{args.out}: {len(meta)} utterances ({n_val} val), {secs / 3600:.2f} h, "
          f"{args.out.stat().st_size / 1e6:.1f} MB ({total / 1e6 / (secs / 3600):.1f} MB/h), {time.time() - t0:.0f}s")  # fmt: skip


if __name__ == "__main__":
    main()
