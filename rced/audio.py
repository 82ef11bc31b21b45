"""Audio I/O and validation: any readable file in, 16 kHz mono float32 inside; atomic writes.

Every error names the file and the problem in one line, and writes never leave a
half-written file behind (temporary name in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from rced.errors import RcedError

DEFAULT_SR = 16000


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality resampling (soxr); identity when the rates match."""
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32)


def _check_wav_truncation(path: Path) -> None:
    """libsndfile silently reads a truncated WAV; compare the data chunk with the file size."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = path.stat().st_size
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                break
            cid, clen = chunk[:4], int.from_bytes(chunk[4:], "little")
            if cid == b"data":
                if clen not in (0, 0xFFFFFFFF) and pos + 8 + clen > size:
                    raise RcedError(
                        f"{path}: truncated WAV (header promises {clen} data bytes, "
                        f"file holds {size - pos - 8})"
                    )
                return
            pos += 8 + clen + (clen & 1)


def validate_audio(audio: np.ndarray, name: str) -> np.ndarray:
    """Reject empty or non-finite signals; return float32."""
    audio = np.asarray(audio)
    if audio.size == 0:
        raise RcedError(f"{name}: empty audio (no samples)")
    if not np.all(np.isfinite(audio)):
        raise RcedError(f"{name}: audio contains NaN or infinite samples")
    return audio.astype(np.float32, copy=False)


def load_audio(path: str | os.PathLike, sr: int = DEFAULT_SR) -> np.ndarray:
    """Load any file libsndfile reads as mono float32 at ``sr`` Hz (down-mixed, resampled)."""
    path = Path(path)
    if not path.exists():
        raise RcedError(f"{path}: file not found")
    if path.is_dir():
        raise RcedError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise RcedError(f"{path}: empty file")
    _check_wav_truncation(path)
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RcedError(f"{path}: not a readable audio file ({msg})") from None
    audio = validate_audio(data, str(path)).mean(axis=1)
    return resample(audio, int(file_sr), sr)


def _atomic_target(path: str | os.PathLike) -> tuple[Path, str]:
    path = Path(path)
    if path.is_dir():
        raise RcedError(f"{path}: output path is an existing folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    return path, tmp


def _commit(tmp: str, path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
    os.replace(tmp, path)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int = DEFAULT_SR) -> None:
    """Write 16-bit PCM WAV atomically (peaks above full scale are clipped, not wrapped)."""
    audio = validate_audio(audio, str(path))
    path, tmp = _atomic_target(path)
    try:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
        _commit(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes under a temporary name, then rename: readers never see half a file."""
    path, tmp = _atomic_target(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        _commit(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
