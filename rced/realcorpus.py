"""Real corpora from folders: clean speech + noise (VCTK/LibriSpeech + DEMAND/MUSAN style) and
paired noisy/clean folders (VoiceBank-DEMAND style).

Everything is read with :func:`rced.audio.load_audio` (any libsndfile format, 16 kHz mono),
mixed with :func:`rced.corpus.mix` and returned as :class:`rced.corpus.EvalItem`, so real data
goes through the same evaluation and training code as the synthetic corpus. Mixing is
deterministic by seed; every problem is an :class:`~rced.errors.RcedError` naming the path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from rced.audio import DEFAULT_SR, load_audio
from rced.corpus import EVAL_SNRS, EvalItem, mix, rms
from rced.errors import RcedError

# Extensions of the formats libsndfile reads (compared lower-case).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
     ".snd", ".caf", ".w64", ".rf64", ".sph", ".nist", ".voc", ".htk", ".paf", ".svx", ".8svx",
     ".ircam", ".sf", ".xi", ".avr", ".pvf", ".sd2", ".mpc"}
)  # fmt: skip

LENGTH_TOLERANCE = 0.01  # paired files whose lengths differ by more than this share are refused
_SILENCE_RMS = 1e-7  # below this a file holds no signal, and an SNR is meaningless


def _check_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise RcedError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise RcedError(f"{folder}: not a folder")
    return folder


def find_audio(folder: str | os.PathLike) -> list[Path]:
    """Audio files under ``folder`` (recursive, symlinks followed, hidden entries skipped), sorted
    by relative path, so that the order and hence every seeded choice is the same on every machine."""
    folder = _check_folder(folder)
    found: list[Path] = []
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a symlink loop or a folder linked twice
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                found.append(Path(root) / name)
    if not found:
        raise RcedError(f"{folder}: no audio files found (searched recursively for .wav, .flac, .ogg, ...)")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def iter_folder(folder: str | os.PathLike, sr: int = DEFAULT_SR) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(relative path, mono float32 audio at sr)`` one file at a time, for corpora too big
    to hold in memory."""
    folder = Path(folder)
    for path in find_audio(folder):
        yield path.relative_to(folder).as_posix(), load_audio(path, sr)


def load_folder(folder: str | os.PathLike, sr: int = DEFAULT_SR) -> list[tuple[str, np.ndarray]]:
    """Every audio file under ``folder`` as ``(relative path, audio)``, sorted by relative path:
    the clean-speech and noise pools for training on real data."""
    return list(iter_folder(folder, sr))


def _noise_segment(noise: np.ndarray, offset: int, n: int) -> np.ndarray:
    """``n`` samples of ``noise`` from ``offset``, looping noise shorter than needed."""
    return np.take(noise, np.arange(offset, offset + n) % len(noise))


def _check_signal(audio: np.ndarray, path: Path) -> np.ndarray:
    if rms(audio) < _SILENCE_RMS:
        raise RcedError(f"{path}: silent audio (no signal to mix at an SNR)")
    return audio


def clean_noise_folders(clean_dir: str | os.PathLike, noise_dir: str | os.PathLike, *,
                        snrs: Sequence[float] | None = None, snr_range: tuple[float, float] | None = None,
                        seed: int = 0, n_mixtures: int | None = None,
                        sr: int = DEFAULT_SR) -> list[EvalItem]:  # fmt: skip
    """Mix every clean file with noise from the noise folder at known SNRs, deterministically by seed.

    Each mixture takes a random noise file and a random start in it (noise shorter than the
    speech loops). With ``snrs`` (default ``EVAL_SNRS``) and ``n_mixtures=None`` every clean file
    is mixed once at every SNR, like :func:`rced.corpus.eval_set`; with ``snr_range=(low, high)``
    each clean file is mixed once at an SNR drawn uniformly from the range. With ``n_mixtures``
    exactly that many mixtures are made, going through the clean files in shuffled passes, each
    at a random SNR from ``snrs`` or ``snr_range``. Clean levels are kept as recorded.
    """
    if snrs is not None and snr_range is not None:
        raise RcedError("clean_noise_folders: give snrs or snr_range, not both")
    if snr_range is not None:
        low, high = (float(v) for v in snr_range)
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise RcedError(
                f"clean_noise_folders: snr_range must be finite (low, high) with low <= high, got {snr_range}"
            )
    else:
        values = [float(v) for v in (EVAL_SNRS if snrs is None else snrs)]
        if not values or not all(math.isfinite(v) for v in values):
            raise RcedError(f"clean_noise_folders: snrs must be a non-empty list of finite dB values, got {snrs}")
    if n_mixtures is not None and n_mixtures < 1:
        raise RcedError(f"clean_noise_folders: n_mixtures must be at least 1, got {n_mixtures}")

    clean_dir, noise_dir = Path(clean_dir), Path(noise_dir)
    clean_files, noise_files = find_audio(clean_dir), find_audio(noise_dir)
    rng = np.random.default_rng(seed)

    def draw_snr() -> float:
        if snr_range is not None:
            return float(rng.uniform(low, high))
        return values[int(rng.integers(len(values)))]

    # The plan draws every random number before any audio is read, so it depends only on the seed
    # and the file lists, and only the files it uses are loaded.
    pairs: list[tuple[int, float]] = []
    if n_mixtures is None:
        for c in range(len(clean_files)):
            pairs += [(c, draw_snr())] if snr_range is not None else [(c, v) for v in values]
    else:
        while len(pairs) < n_mixtures:
            pairs += [(int(c), draw_snr()) for c in rng.permutation(len(clean_files))]
        pairs = pairs[:n_mixtures]
    plan = [(c, snr, int(rng.integers(len(noise_files))), float(rng.random())) for c, snr in pairs]

    cache: dict[Path, np.ndarray] = {}

    def get(path: Path) -> np.ndarray:
        if path not in cache:
            cache[path] = _check_signal(load_audio(path, sr), path)
        return cache[path]

    items = []
    for i, (c, snr, k, frac) in enumerate(plan):
        clean, noise = get(clean_files[c]), get(noise_files[k])
        offset = min(int(frac * len(noise)), len(noise) - 1)
        noisy = mix(clean, _noise_segment(noise, offset, len(clean)), snr)
        name = (
            f"{clean_files[c].relative_to(clean_dir).as_posix()}+{noise_files[k].relative_to(noise_dir).as_posix()}#{i}"
        )
        items.append(EvalItem(name, snr, clean, noisy))
    return items


def paired_folders(noisy_dir: str | os.PathLike, clean_dir: str | os.PathLike, *,
                   sr: int = DEFAULT_SR) -> list[EvalItem]:  # fmt: skip
    """Noisy/clean pairs matched by relative path (VoiceBank-DEMAND style); SNR unknown (NaN).

    A file on one side only, or a pair whose lengths differ by more than 1 %, is refused: such a
    pair is not aligned and would score nonsense. Smaller differences (codec padding) are trimmed.
    """
    noisy_dir, clean_dir = Path(noisy_dir), Path(clean_dir)
    noisy = {p.relative_to(noisy_dir).as_posix(): p for p in find_audio(noisy_dir)}
    clean = {p.relative_to(clean_dir).as_posix(): p for p in find_audio(clean_dir)}
    for side, other, other_dir in ((noisy, clean, clean_dir), (clean, noisy, noisy_dir)):
        lonely = sorted(set(side) - set(other))
        if lonely:
            more = f" (and {len(lonely) - 1} more unpaired files)" if len(lonely) > 1 else ""
            raise RcedError(f"{side[lonely[0]]}: no file {lonely[0]} in {other_dir} to pair it with{more}")
    items = []
    for rel in sorted(noisy):
        n_audio, c_audio = load_audio(noisy[rel], sr), load_audio(clean[rel], sr)
        longer, shorter = max(len(n_audio), len(c_audio)), min(len(n_audio), len(c_audio))
        if longer - shorter > LENGTH_TOLERANCE * longer:
            raise RcedError(
                f"{noisy[rel]}: length {len(n_audio)} samples differs from {clean[rel]} ({len(c_audio)} samples) "
                f"by more than {LENGTH_TOLERANCE:.0%}"
            )
        items.append(EvalItem(rel, float("nan"), c_audio[:shorter], n_audio[:shorter]))
    return items
