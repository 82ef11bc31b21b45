"""Verification with the TFLM interpreter: bit-exactness against LiteRT, the smallest arena, timing.

TFLM's Python interpreter runs the reference kernels, so its int8 output must equal LiteRT's
reference kernels (``OpResolverType.BUILTIN_REF``) bit for bit; LiteRT's default XNNPACK path
may differ by one LSB and is not used. The arena is found by bisection: the smallest size
(in 16-byte steps) at which TFLM allocates the tensors and runs one inference.
"""

from __future__ import annotations

import math
import time

import numpy as np

from firmware_export.convert import captured_output
from firmware_export.errors import ExportError

ARENA_ALIGN = 16
ARENA_MARGIN = 0.10  # recorded arena = measured minimum + max(10 %, 1 KiB), rounded up to 16 bytes
ARENA_MARGIN_MIN = 1024
ARENA_LIMIT = 256 * 1024 * 1024


def _tflm(model_content: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(bytes(model_content), arena_size=int(arena_size))


def run_litert(model_content: bytes, inputs: np.ndarray) -> np.ndarray:
    """(N, *input shape without batch) int8 -> (N, *output shape without batch) int8, reference kernels."""
    from rced.int8 import Int8Model

    return Int8Model(model_content).run_int8(inputs)


def run_tflm(model_content: bytes, inputs: np.ndarray, arena_size: int) -> np.ndarray:
    interp = _tflm(model_content, arena_size)
    outs = []
    for x in np.asarray(inputs, np.int8):
        interp.set_input(x[None], 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0))[0])
    return np.stack(outs).astype(np.int8)


def _runs(model_content: bytes, arena_size: int, probe: np.ndarray) -> bool:
    """Whether TFLM allocates and invokes with this arena, tried in a forked child: some arena
    sizes make the TFLM Python interpreter crash (SIGSEGV) instead of reporting the failure."""
    import os

    pid = os.fork()
    if pid == 0:  # child: report by exit status only
        ok = False
        try:
            ok = _runs_here(model_content, arena_size, probe)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _runs_here(model_content: bytes, arena_size: int, probe: np.ndarray) -> bool:
    try:
        with captured_output():  # TFLM reports allocation failures on stderr
            interp = _tflm(model_content, arena_size)
            interp.set_input(probe[None], 0)
            interp.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def min_arena(model_content: bytes, probe: np.ndarray, name: str = "model") -> int:
    """Smallest TFLM arena (bytes, multiple of 16) that allocates and invokes, by bisection."""
    hi = 16 * 1024
    while not _runs(model_content, hi, probe):
        hi *= 2
        if hi > ARENA_LIMIT:
            raise ExportError(f"{name}: TFLM cannot run the model even with a {ARENA_LIMIT // 2**20} MiB arena")
    lo = 0  # known to fail (or never tried)
    while hi - lo > ARENA_ALIGN:
        mid = (lo + hi) // 2 // ARENA_ALIGN * ARENA_ALIGN
        if mid <= lo:
            break
        if _runs(model_content, mid, probe):
            hi = mid
        else:
            lo = mid
    return hi


def zero_input_arena(model_content: bytes, name: str = "model") -> int:
    """:func:`min_arena` on an all-zero input of the graph's own input shape and type."""
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_content=model_content).get_input_details()[0]
    return min_arena(model_content, np.zeros(detail["shape"][1:], detail["dtype"]), name)


def with_margin(arena_min: int) -> int:
    need = arena_min + max(math.ceil(arena_min * ARENA_MARGIN), ARENA_MARGIN_MIN)
    return -(-need // ARENA_ALIGN) * ARENA_ALIGN


def check_bit_exact(model_content: bytes, inputs: np.ndarray, arena_size: int, name: str = "model") -> np.ndarray:
    """Run ``inputs`` through LiteRT (reference kernels) and TFLM; raise unless every output byte agrees.
    Returns the outputs."""
    ref = run_litert(model_content, inputs)
    try:
        with captured_output() as log:
            got = run_tflm(model_content, inputs, arena_size)
    except (RuntimeError, ValueError) as exc:
        detail = "".join(log).strip().splitlines()
        raise ExportError(f"{name}: TFLM failed to run ({detail[0] if detail else exc})") from None
    if ref.shape != got.shape or not np.array_equal(ref, got):
        diff = np.abs(ref.astype(np.int32) - got.astype(np.int32)) if ref.shape == got.shape else None
        what = (f"{int(np.count_nonzero(diff))} of {diff.size} output values differ (max {int(diff.max())} LSB)"
                if diff is not None else f"output shapes differ ({ref.shape} vs {got.shape})")  # fmt: skip
        raise ExportError(f"{name}: TFLM and LiteRT (reference kernels) disagree: {what}")
    return ref


def latency_ms(model_content: bytes, probe: np.ndarray, arena_size: int, repeats: int = 20) -> dict[str, float]:
    """Median host latency of one inference: LiteRT reference kernels and the TFLM interpreter."""
    from rced.int8 import reference_interpreter

    out = {}
    lite = reference_interpreter(model_content)
    idx = lite.get_input_details()[0]["index"]
    tflm = _tflm(model_content, arena_size)
    for key, set_input, invoke in (
        ("litert_reference_ms", lambda: lite.set_tensor(idx, probe[None]), lite.invoke),
        ("tflm_ms", lambda: tflm.set_input(probe[None], 0), tflm.invoke),
    ):
        times = []
        for _ in range(repeats + 1):
            set_input()
            t0 = time.perf_counter()
            invoke()
            times.append(time.perf_counter() - t0)
        out[key] = round(1000.0 * float(np.median(times[1:])), 4)
    return out
