"""Output locations checked before any work, for every command line of the project.

A command that loads models, synthesises speech or denoises a long file first makes sure it can
write its results: each check raises a one-line :class:`RcedError` naming the path the user gave
and why it cannot be written (an existing folder where a file goes, a file where a folder goes, a
path below a regular file, a read-only or unwritable folder, an output that is one of the
inputs, a device, FIFO or socket, an empty path). ``grammar`` and ``firmware_export`` call the same
functions (this is the lowest package).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rced.audio import blocking_ancestor, refuse_special_file
from rced.errors import RcedError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64", ".rf64")
"""File name endings of the audio formats libsndfile reads: a new path ending so names a file, not a folder."""


def _nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing ancestor (the folder a write would start in)."""
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path(".")


def _check_can_create_in(folder: Path, shown: Path) -> None:
    """Files can be created in ``folder`` (or, if it is missing, in the folders that would hold it)."""
    above = blocking_ancestor(folder / "_")
    if above is not None:
        raise RcedError(f"{shown}: cannot write here, {above} is not a folder")
    base = _nearest_existing(folder)
    if not os.access(base, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(base).f_flag & os.ST_RDONLY)
        raise RcedError(f"{shown}: cannot write here, {base} is "
                        + ("on a read-only file system" if read_only else "not writable (permission denied)"))
    _probe_create(base, shown)


def _probe_create(base: Path, shown: Path) -> None:
    """Create and delete a file in the folder ``base``, as the write will: permission bits do not
    tell everything (nothing can be created in /proc, even by root)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".", suffix=".probe", dir=base)
    except OSError as exc:
        raise RcedError(f"{shown}: cannot write here, no file can be created in {base} "
                        f"({exc.strerror or type(exc).__name__})") from None  # fmt: skip
    os.close(fd)
    os.unlink(probe)


def given_path(path: str | os.PathLike) -> Path:
    """The output path as a Path; an empty one (``-o ''``, which Path would read as the current folder) is refused."""
    if not os.fspath(path):
        raise RcedError("output path is empty (''): give a file or folder name")
    return Path(path)


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_output_file(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an output file that cannot be written, before any work; returns it as a Path.

    The file is written under a temporary name in its folder and renamed, so the folder (or the
    nearest existing one above it, which the write creates folders in) must be writable; an
    existing file there is replaced. ``inputs`` are never overwritten.
    """
    path = given_path(path)
    if path.is_dir():
        raise RcedError(f"{path}: output path is an existing folder")
    refuse_special_file(path)
    _check_can_create_in(path.parent, path)
    for src in inputs:
        if _same_file(path, Path(src)):
            raise RcedError(f"{path}: output path equals the input {src}; inputs are never overwritten")
    return path


def check_output_folder(path: str | os.PathLike, replaced_whole: bool = False) -> Path:
    """Refuse an output folder that cannot be created or written in, before any work; returns it as a Path.

    ``replaced_whole``: the folder is written as a temporary sibling and swapped in, so it is the
    folder that holds it (the real one, past symbolic links) that must be writable.
    """
    path = given_path(path)
    if path.exists() and not path.is_dir():
        raise RcedError(f"{path}: output path exists and is not a folder")
    if not replaced_whole:
        _check_can_create_in(path, path)
        return path
    real = Path(os.path.realpath(path))
    if os.path.ismount(real):
        raise RcedError(f"{path}: is a mount point, which cannot be replaced whole; name a folder inside it")
    _check_can_create_in(real.parent if path.is_symlink() else path.parent, path)
    return path


def output_is_folder(out: str | os.PathLike, n_inputs: int) -> bool:
    """Whether ``-o OUT`` names a folder (each input's output then takes the input's file name).

    An existing folder always is one, and so is a path written with a trailing ``/``; with several
    inputs OUT must be a folder: an existing one, or a new path without an audio suffix (``x.wav``
    is refused rather than made a folder).
    """
    text = os.fspath(out)
    out = given_path(out)
    if out.is_dir() or text.endswith(("/", os.sep)):
        return True
    if n_inputs <= 1:
        return False
    if out.exists():
        raise RcedError(f"{out}: several inputs need an output folder, but this is a file")
    if out.suffix.lower() in AUDIO_SUFFIXES:
        raise RcedError(f"{out}: several inputs need an output folder, not an audio file name "
                        "(give an existing folder, or a new one without an audio suffix)")  # fmt: skip
    return True
