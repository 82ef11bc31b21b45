"""Audio I/O and validation: any readable file in, 16 kHz mono float32 inside; atomic writes.

Every error names the file and the problem in one line, and writes never leave a
half-written file behind (temporary name in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
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


STREAMING_DATA_SIZES = (0, 0xFFFFFFFF)
"""WAV data-chunk sizes that promise nothing: a writer that did not know the length (a pipe, a live recording)."""


def truncated_wav(name: str, promised: int, held: int, holds: str = "file holds") -> RcedError:
    """The one-line error of a WAV that ends before the data size its header promised."""
    return RcedError(f"{name}: truncated WAV (header promises {promised} data bytes, {holds} {held})")


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
                if clen not in STREAMING_DATA_SIZES and pos + 8 + clen > size:
                    raise truncated_wav(str(path), clen, size - pos - 8)
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


def _check_input_file(path: Path) -> None:
    """The checks every reader runs before libsndfile sees the file (one-line errors naming it)."""
    if not path.exists():
        raise RcedError(f"{path}: file not found")
    if path.is_dir():
        raise RcedError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise RcedError(f"{path}: empty file")
    _check_wav_truncation(path)


_SF_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError)


def _unreadable(path: Path, exc: Exception) -> RcedError:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return RcedError(f"{path}: not a readable audio file ({msg})")


def load_audio(path: str | os.PathLike, sr: int = DEFAULT_SR) -> np.ndarray:
    """Load any file libsndfile reads as mono float32 at ``sr`` Hz (down-mixed, resampled)."""
    path = Path(path)
    _check_input_file(path)
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except _SF_ERRORS as exc:
        raise _unreadable(path, exc) from None
    audio = validate_audio(data, str(path)).mean(axis=1)
    return resample(audio, int(file_sr), sr)


class AudioBlocks:
    """A file as consecutive mono float32 blocks at ``sr`` Hz, read and resampled piece by piece.

    Same checks and one-line errors as :func:`load_audio`, all raised when the object is made
    (one quick read pass checks every sample, so a NaN at the end of an hour is reported before
    any work), and, concatenated, the same samples: each piece is down-mixed as ``load_audio``
    does and resampled by one soxr stream (bit-identical to soxr's one-shot call). Memory stays
    bounded by ``read_frames`` whatever the file's length.
    """

    def __init__(self, path: str | os.PathLike, sr: int = DEFAULT_SR, read_frames: int = 1 << 16):
        self.path, self.sr, self.read_frames = Path(path), sr, read_frames
        _check_input_file(self.path)
        frames = 0
        try:
            with sf.SoundFile(str(self.path)) as fh:
                self.file_sr = int(fh.samplerate)
                while len(data := fh.read(read_frames, dtype="float32", always_2d=True)):
                    validate_audio(data, str(self.path))
                    frames += len(data)
        except _SF_ERRORS as exc:
            raise _unreadable(self.path, exc) from None
        if frames == 0:
            raise RcedError(f"{self.path}: empty audio (no samples)")

    def __iter__(self) -> Iterator[np.ndarray]:
        import soxr

        rs = None  # one soxr stream for the whole file: its output equals soxr.resample of all samples
        if self.file_sr != self.sr:
            rs = soxr.ResampleStream(self.file_sr, self.sr, 1, dtype="float32", quality="HQ")
        n = 0
        with sf.SoundFile(str(self.path)) as fh:
            while True:
                try:
                    data = fh.read(self.read_frames, dtype="float32", always_2d=True)
                except _SF_ERRORS as exc:
                    raise _unreadable(self.path, exc) from None
                if len(data) == 0:
                    break
                n += len(data)
                x = validate_audio(data, str(self.path)).mean(axis=1)
                y = x if rs is None else rs.resample_chunk(x).astype(np.float32, copy=False)
                if len(y):
                    yield y
        if n == 0:
            raise RcedError(f"{self.path}: empty audio (no samples)")
        if rs is not None:
            y = rs.resample_chunk(np.zeros(0, np.float32), last=True).astype(np.float32, copy=False)
            if len(y):
                yield y


def rechunk(chunks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Re-cut a stream of 1-D chunks into consecutive blocks of ``size`` samples (the last may be shorter)."""
    carry = np.zeros(0, np.float32)
    for chunk in chunks:
        if len(carry):
            chunk = np.concatenate([carry, chunk])
        n = len(chunk) - len(chunk) % size
        for i in range(0, n, size):
            yield chunk[i : i + size]
        carry = chunk[n:]
    if len(carry):
        yield carry


def blocking_ancestor(path: str | os.PathLike) -> Path | None:
    """The nearest existing ancestor of ``path`` if it is not a folder (nothing can be written at
    ``path`` then), else None; output checks call it before any work."""
    for parent in Path(path).parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


_SPECIAL_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))  # fmt: skip


def refuse_special_file(path: str | os.PathLike) -> None:
    """Refuse an output path that exists and is neither a regular file nor a folder (a device such as
    /dev/null, a FIFO, a socket): a write renames a new file over its target, which would replace it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # missing (or a dangling link): a new file is made
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = next((k for test, k in _SPECIAL_KINDS if test(mode)), "a special file")
    raise RcedError(f"{path}: output path is {kind}, not a regular file; it is never replaced")


def _atomic_target(path: str | os.PathLike) -> tuple[Path, str]:
    """The output checked (no folder, no special file) and a temporary file beside it; an OS error
    names ``path``, never the temporary name."""
    path = Path(path)
    if path.is_dir():
        raise RcedError(f"{path}: output path is an existing folder")
    refuse_special_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise RcedError(f"{path}: cannot write here ({exc.strerror or type(exc).__name__})") from None
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


class AudioWriter:
    """16-bit PCM WAV written block by block, atomically: ``with AudioWriter(path, sr) as w: w.write(block)``.

    The samples land under a temporary name in the same folder, renamed only when the block
    leaves without an exception (a failure leaves nothing behind). The bytes equal
    :func:`write_audio` of the concatenated blocks; no samples at all is the same error.
    """

    #: samples gathered before one write to the file (a stream of 8 ms blocks wrote 128 at a time)
    BUFFER_FRAMES = 1 << 14

    def __init__(self, path: str | os.PathLike, sr: int = DEFAULT_SR):
        self.path, self.sr, self.frames = Path(path), sr, 0
        self._tmp: str | None = None
        self._fh = None
        self._buf: list[np.ndarray] = []
        self._n_buf = 0

    def __enter__(self) -> AudioWriter:
        self.path, self._tmp = _atomic_target(self.path)
        try:
            self._fh = sf.SoundFile(self._tmp, "w", self.sr, 1, subtype="PCM_16", format="WAV")
        except BaseException:
            os.unlink(self._tmp)
            raise
        return self

    def write(self, audio: np.ndarray) -> None:
        if len(audio) == 0:
            return
        self._buf.append(np.asarray(audio, np.float32))
        self._n_buf += len(audio)
        self.frames += len(audio)
        if self._n_buf >= self.BUFFER_FRAMES:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            audio = validate_audio(np.concatenate(self._buf), str(self.path))
            self._buf, self._n_buf = [], 0
            self._fh.write(np.clip(audio, -1.0, 1.0))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
            self._fh.close()
            if exc_type is None:
                if self.frames == 0:
                    raise RcedError(f"{self.path}: empty audio (no samples)")
                _commit(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


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


def atomic_write_results(out: str | os.PathLike, payload: dict | None, markdown: str | list[str] | None,
                         indent: int = 1, default=None) -> Path:  # fmt: skip
    """A result pair beside ``out``: ``payload`` as ``<out>.json`` (``json.dumps(payload, indent=indent,
    default=default)`` and a newline) and ``markdown`` as ``<out>.md`` (a list of lines joined with
    newlines and a final one; a string as it is), each with :func:`atomic_write_text`; None skips
    that file. Every benchmark writes its results so, and a crash never leaves half of one."""
    out = Path(out)
    if payload is not None:
        atomic_write_text(out.with_suffix(".json"), json.dumps(payload, indent=indent, default=default) + "\n")
    if markdown is not None:
        atomic_write_text(out.with_suffix(".md"), markdown if isinstance(markdown, str) else "\n".join(markdown) + "\n")
    return out


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` to memory, then :func:`atomic_write_bytes`: never half a file, and processes
    writing the same cache side by side never share a temporary name."""
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` of named arrays, written as :func:`atomic_save_npy` writes one."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def figure_png(fig, dpi: float | None = None) -> bytes:
    """A matplotlib figure as PNG bytes (``dpi`` None: the figure's own)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **({} if dpi is None else {"dpi": dpi}))
    return buf.getvalue()


def atomic_save_png(path: str | os.PathLike, fig, dpi: float | None = None) -> None:
    """A matplotlib figure written as PNG by :func:`atomic_write_bytes` (a plot is never half-drawn on disk)."""
    atomic_write_bytes(path, figure_png(fig, dpi))
