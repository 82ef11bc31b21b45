"""File helpers the GPU scripts share: they run on a machine with numpy, JAX and optax only,
so they cannot use the project's own atomic writers (rced.audio imports soundfile)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np


def save_npz_atomic(path: Path, arrays: dict) -> None:
    """``np.savez`` under a temporary name beside ``path``, then a rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def assign_npz_weights(model, z, source: Path) -> int:
    """Set every weight of a Keras model from the npz entry ``layer/weight`` (Keras layout).

    Returns how many were set; a missing entry or a shape mismatch stops with a message naming
    ``source``.
    """
    n = 0
    for layer in model.layers:
        for w in layer.weights:
            key = f"{layer.name}/{w.name}"
            if key not in z.files:
                raise SystemExit(f"{source}: no weight {key}")
            if tuple(z[key].shape) != tuple(w.shape):
                raise SystemExit(f"{source}: {key} has shape {z[key].shape}, the model wants {tuple(w.shape)}")
            w.assign(z[key])
            n += 1
    return n
