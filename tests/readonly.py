"""Run a command line with one folder read-only, as a user meets it (a read-only disk or folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# In a private mount namespace: bind the folder onto itself and remount that read-only; the rest of
# the file system and every other process see nothing of it.
_BIND_RO = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


def run_read_only(cmd: list[str], folder: Path) -> tuple[subprocess.CompletedProcess, str]:
    """Run ``cmd`` with ``folder`` read-only; returns the result and the reason the command should name.

    Root writes through permission bits, so as root the folder becomes a read-only bind mount in a
    private mount namespace (``unshare -m``); other users get the folder's write bits removed. Skips
    the test where neither is possible.
    """
    cmd = [str(c) for c in cmd]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(cmd, capture_output=True, text=True), "not writable"
        finally:
            folder.chmod(0o755)
    if shutil.which("unshare") is None:
        pytest.skip("no unshare to make a read-only mount")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", _BIND_RO, str(folder), "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {probe.stderr.decode().strip()}")
    res = subprocess.run(["unshare", "-m", "sh", "-c", _BIND_RO, str(folder), *cmd], capture_output=True, text=True)
    return res, "read-only file system"
