"""Pack the AM training features for the JAX acoustic-model trainer into one small file.

The trainer (``train_am_jax.py``) augments on the accelerator, so it needs only one version of
each utterance, and a small pack copies quickly to a remote GPU machine: the prepared AM data of
``grammar train-am`` (log-mel of clean / babble / enhanced versions of 8,000 TRAIN-voice
utterances) is ~600 MB as float16, a pack of the same utterances ~1/10 of it. Per utterance it
keeps ONE version (the enhanced one where it exists, else the clean one, which the trainer mixes
with babble in the mel-power domain), quantises log-mel to 7 bits (0.17 nat = 0.76 dB steps; the
trainer adds uniform dither), delta-codes along time and compresses with LZMA (~21 bytes per
frame). The shortest utterances come first (voice commands are short), until the data or
``--budget-mb`` ends; ``--shard I/N`` splits one data file over several packs.

Usage (repo root):
    python scripts/gpu/pack_am_data.py runs/am/am_data.npz am_pack.npz
    python scripts/gpu/make_am_data.py runs/am_more/am_data.npz --seeds 2 3 4     # more utterances
    python scripts/gpu/pack_am_data.py runs/am_more/am_data.npz am_pack_b.npz --n-val 0
"""

from __future__ import annotations

import lzma
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import check_output, parser  # noqa: E402

from rced.audio import atomic_save_npz  # noqa: E402

LO, HI, LEVELS = -13.9, 8.3, 128
STEP = (HI - LO) / (LEVELS - 1)
N_VAL = 200  # the first n//40 utterances: grammar.acoustic.train_am.AMTrainer's validation split


def quantise(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round((x.astype(np.float32) - LO) / STEP), 0, LEVELS - 1).astype(np.uint8)


def encode(q: np.ndarray) -> bytes:
    """uint8 (frames, mels) -> LZMA of the time differences (mod 256)."""
    d = np.diff(q.astype(np.int16), axis=0, prepend=0).astype(np.uint8)
    return lzma.compress(d.tobytes(), preset=9 | lzma.PRESET_EXTREME)


def decode(blob: bytes, n_mels: int) -> np.ndarray:
    """Inverse of :func:`encode` (the trainer reads the pack with it)."""
    d = np.frombuffer(lzma.decompress(blob), np.uint8).reshape(-1, n_mels)
    return np.cumsum(d, axis=0, dtype=np.uint8)


def pack_arrays(feats: list[np.ndarray], kinds: list[int], labels: list[np.ndarray], val: list[np.ndarray],
                val_labels: list[np.ndarray], val_text: list[str], babble: np.ndarray) -> dict:
    """The pack's arrays from (frames, mels) log-mel: training utterances with their kind (0 clean,
    2 enhanced) and label codes, validation utterances with labels and text, and babble."""
    n_mels = babble.shape[1]
    return {
        "feats": np.frombuffer(encode(quantise(np.concatenate(feats))), np.uint8),
        "lens": np.array([len(f) for f in feats], np.int32),
        "kinds": np.array(kinds, np.int8),
        "labels": np.concatenate(labels).astype(np.int8),
        "label_lens": np.array([len(v) for v in labels], np.int32),
        "val_feats": np.frombuffer(encode(quantise(np.concatenate(val) if val else np.zeros((0, n_mels)))), np.uint8),
        "val_lens": np.array([len(v) for v in val], np.int32),
        "val_labels": np.concatenate(val_labels or [np.zeros(0, np.int8)]).astype(np.int8),
        "val_label_lens": np.array([len(v) for v in val_labels], np.int32),
        "val_text": np.array(val_text, dtype=np.str_),
        "babble": np.frombuffer(encode(quantise(babble)), np.uint8),
        "quant": np.array([LO, HI, LEVELS, n_mels], np.float64),
    }


def _babble_logmel(n_frames: int, seed: int) -> np.ndarray:
    """Log-mel of TRAIN-voice babble (3-8 talkers), the noise the trainer mixes in."""
    from grammar.acoustic.features import log_mel
    from grammar.config import AMConfig
    from rced.corpus import load_utterances, make_babble, train_utterances
    from rced.frontend import stft

    cfg = AMConfig()
    rng = np.random.default_rng(seed)
    pool = load_utterances(train_utterances(200, 777), desc="babble pool")
    chunks, total = [], 0
    while total < n_frames:
        noise = make_babble(16000 * 20, pool, rng)
        chunks.append(log_mel(np.abs(stft(noise, cfg.frontend)), cfg))
        total += len(chunks[-1])
    return np.concatenate(chunks)[:n_frames]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("am_data", type=Path, help="am_data.npz of a grammar train-am run (or of make_am_data.py)")
    ap.add_argument("out", type=Path, help="the pack to write (.npz)")
    ap.add_argument("--budget-mb", type=float, default=None,
                    help="stop before the compressed features pass about this many MB (default: all the data)")
    ap.add_argument("--max-frames", type=int, default=560,
                    help="drop longer utterances (the trainer's batches have a fixed number of frames)")
    ap.add_argument("--babble-frames", type=int, default=60000, help="log-mel frames of babble to pack")
    ap.add_argument("--n-val", type=int, default=N_VAL,
                    help="validation utterances (0 for a pack that only adds training data)")
    ap.add_argument("--shard", default="0/1", help="I/N: only utterances whose index is I modulo N")
    args = ap.parse_args()
    try:
        shard, n_shards = (int(v) for v in args.shard.split("/"))
    except ValueError:
        ap.error(f"--shard {args.shard!r}: expected I/N, e.g. 0/2")
    if not 0 <= shard < n_shards:
        ap.error(f"--shard {args.shard}: need 0 <= I < N")
    if not args.am_data.is_file():
        raise SystemExit(f"{args.am_data}: file not found")
    check_output(args.out)
    n_val = args.n_val

    z = np.load(args.am_data, allow_pickle=False)
    offs = {k: np.concatenate([[0], np.cumsum(z[f"{k}_len"])]) for k in ("labels", "clean", "noisy", "enhanced")}
    clean, noisy, enhanced, labels = z["clean"], z["noisy"], z["enhanced"], z["labels"]
    has = z["enhanced_has"]

    def version(i: int) -> tuple[np.ndarray, int]:
        """(log-mel, kind): kind 0 clean, 2 enhanced."""
        if has[i]:
            return enhanced[offs["enhanced"][i] : offs["enhanced"][i + 1]], 2
        return clean[offs["clean"][i] : offs["clean"][i + 1]], 0

    def lab(i: int) -> np.ndarray:
        return labels[offs["labels"][i] : offs["labels"][i + 1]]

    # validation: what AMTrainer validates on (enhanced where it exists, else noisy)
    val = [enhanced[offs["enhanced"][i] : offs["enhanced"][i + 1]] if has[i]
           else noisy[offs["noisy"][i] : offs["noisy"][i + 1]] for i in range(n_val)]  # fmt: skip
    val_lab = [lab(i) for i in range(n_val)]

    lengths = np.diff(offs["clean"])
    order = [i for i in np.argsort(lengths, kind="stable") if i >= n_val and i % n_shards == shard and lengths[i] <= args.max_frames]
    budget = math.inf if args.budget_mb is None else args.budget_mb * 1e6
    est_bytes_per_frame = 21.5  # measured: 7-bit delta + LZMA
    feats, kinds, keep, total = [], [], [], 0
    for i in order:
        f, k = version(int(i))
        if (total + len(f)) * est_bytes_per_frame > budget:
            break
        feats.append(f)
        kinds.append(k)
        keep.append(int(i))
        total += len(f)
    if not feats:
        raise SystemExit(f"{args.out}: no utterance to pack (all longer than --max-frames, or --budget-mb too small)")
    arrays = pack_arrays(feats, kinds, [lab(i) for i in keep], val, val_lab, [str(t) for t in z["text"][:n_val]],
                         _babble_logmel(args.babble_frames, seed=5))  # fmt: skip
    atomic_save_npz(args.out, arrays)
    print(f"{args.out}: {len(keep)} train utterances ({np.mean(np.array(kinds) == 2):.0%} enhanced), "
          f"{total} frames, {n_val} val, {args.out.stat().st_size / 1e6:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
