"""The inference runtime: a TFLite model file run by a LiteRT interpreter, no TensorFlow.

Every network that users run (denoiser, acoustic model; float or int8) is a ``.tflite`` file
beside the Keras weights; :class:`Network` makes it a callable like a Keras model, ``(N, ...)``
float features in, ``(N, ...)`` float outputs out:

- float models (``model_float.tflite``) are exported with free dimensions (the batch, the AM's
  time axis): a call resizes the interpreter to the input once and runs many frames per invoke.
  Their outputs equal the Keras model's to float rounding (tests/rced/test_runtime.py).
- int8 models (``model_int8.tflite``) are the device graphs, batch 1: features are quantised with
  the model's input scale and zero point, each item is one invoke, outputs are dequantised. By
  default LiteRT's optimised kernels run them (tens of microseconds a frame); they may differ from
  the device by one LSB. ``exact=True`` runs the *reference* kernels, bit-exact with TFLite
  for Microcontrollers (what firmware verification uses; about 40 times slower).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rced.errors import RcedError

FLOAT_MODEL_NAME = "model_float.tflite"
INT8_MODEL_NAME = "model_int8.tflite"
MAX_BATCH = 512  # frames per invoke for batched float models (activations stay in cache-sized buffers)


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 as TFLite's QUANTIZE does: round half away from zero, then saturate."""
    v = np.asarray(x, np.float64) / scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((np.asarray(q, np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


@contextlib.contextmanager
def silenced_stderr(fds: tuple[int, ...] = (2,)) -> Iterator[None]:
    """Drop what C/C++ code writes on ``fds`` meanwhile (LiteRT announces its XNNPACK delegate on
    every first interpreter); Python's own sys.stderr and sys.stdout objects are left alone."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "wb") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
            yield
    finally:
        sys.stdout.flush()  # what Python code printed meanwhile goes to the null device too
        sys.stderr.flush()
        for fd, keep in zip(fds, saved):
            os.dup2(keep, fd)
            os.close(keep)


@contextlib.contextmanager
def silenced_output() -> Iterator[None]:
    """Both stdout and stderr silenced, file descriptors and Python's objects alike (the TFLite
    converter's chatter: C++ logs and Keras's printed summary), whatever sys.stdout is (pytest)."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        with silenced_stderr((1, 2)):
            yield


def interpreter(model_content: bytes, *, exact: bool = False, threads: int = 1):
    """A LiteRT interpreter: optimised kernels, or with ``exact`` the reference kernels (TFLM's results)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.BUILTIN_REF if exact else OpResolverType.BUILTIN
    with silenced_stderr():
        interp = Interpreter(model_content=bytes(model_content), experimental_op_resolver_type=kind,
                             num_threads=threads)  # fmt: skip
        if all(int(v) > 0 for d in interp.get_input_details() for v in d["shape_signature"]):
            interp.allocate_tensors()  # free dimensions: allocated at the first call, for its shape
    return interp


def reference_interpreter(model_content: bytes):
    """A LiteRT interpreter on the reference kernels (what TFLM computes, bit for bit)."""
    return interpreter(model_content, exact=True)


class Network:
    """A one-input, one-output ``.tflite`` model, callable like a Keras model on float arrays.

    ``backend`` is "float" or "int8" (from the model's input type). ``input_shape`` and
    ``output_shape`` are the model's, with -1 where the file leaves a dimension free.
    """

    def __init__(self, model_content: bytes, source: str = "model", *, exact: bool = False, threads: int = 1):
        self.source, self.exact = source, exact
        try:
            self.interpreter = interpreter(model_content, exact=exact, threads=threads)
        except (RuntimeError, ValueError) as exc:
            raise RcedError(f"{source}: not a loadable TFLite model ({str(exc).splitlines()[0][:120]})") from None
        ins, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise RcedError(f"{source}: expected one input and one output, got {len(ins)} and {len(outs)}")
        self.input, self.output = ins[0], outs[0]
        kinds = {np.dtype(d["dtype"]) for d in (self.input, self.output)}
        if kinds == {np.dtype(np.int8)}:
            self.backend = "int8"
        elif kinds == {np.dtype(np.float32)}:
            self.backend = "float"
        else:
            raise RcedError(f"{source}: input {np.dtype(self.input['dtype']).name} and output "
                            f"{np.dtype(self.output['dtype']).name}: expected both int8 or both float32")  # fmt: skip
        self.input_shape = tuple(int(v) for v in self.input["shape_signature"])
        self.output_shape = tuple(int(v) for v in self.output["shape_signature"])
        self.in_scale, self.in_zp = float(self.input["quantization"][0]), int(self.input["quantization"][1])
        self.out_scale, self.out_zp = float(self.output["quantization"][0]), int(self.output["quantization"][1])
        # the input shape the interpreter is allocated for (None: free dimensions, not allocated yet)
        self._shape = None if -1 in self.input_shape else tuple(int(v) for v in self.input["shape"])

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> Network:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RcedError(f"{path}: cannot read model ({exc.strerror or exc})") from None
        return cls(data, str(path), **kwargs)

    @property
    def batched(self) -> bool:
        """True when the batch dimension is free (float exports): many items per invoke."""
        return self.input_shape[0] == -1

    def _check(self, x: np.ndarray) -> None:
        want = self.input_shape[1:]
        if x.ndim != len(self.input_shape) or any(w not in (-1, g) for w, g in zip(want, x.shape[1:])):
            raise RcedError(f"{self.source}: input of shape {x.shape[1:]} per item, the model takes "
                            f"{tuple('?' if w == -1 else w for w in want)}")  # fmt: skip

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        """One invoke on ``x`` of the interpreter's dtype (resized first when the shape changed)."""
        interp = self.interpreter
        if x.shape != self._shape:
            with silenced_stderr():
                interp.resize_tensor_input(self.input["index"], x.shape, strict=True)
                interp.allocate_tensors()
            self._shape = x.shape
        interp.set_tensor(self.input["index"], x)
        interp.invoke()
        return interp.get_tensor(self.output["index"])

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        """(N, ...) inputs of the model's dtype -> (N, ...) outputs of its dtype."""
        x = np.ascontiguousarray(x, self.input["dtype"])
        if self.batched:
            return np.concatenate([self._invoke(x[i : i + MAX_BATCH]) for i in range(0, max(len(x), 1), MAX_BATCH)])
        return np.stack([self._invoke(item[None])[0] for item in x]) if len(x) else np.zeros(
            (0, *self._out_item(x)), self.output["dtype"])  # fmt: skip

    def _out_item(self, x: np.ndarray) -> tuple[int, ...]:
        return tuple(int(v) for v in self.interpreter.get_output_details()[0]["shape"][1:])

    def run_int8(self, q: np.ndarray) -> np.ndarray:
        """(N, ...) int8 -> (N, ...) int8 (int8 models only)."""
        if self.backend != "int8":
            raise RcedError(f"{self.source}: run_int8 on a {self.backend} model")
        return self.run_raw(q)

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x, np.float32)
        self._check(x)
        if self.backend == "float":
            return self.run_raw(x)
        return dequantize(self.run_raw(quantize(x, self.in_scale, self.in_zp)), self.out_scale, self.out_zp)


def load_network(folder: Path, backend: str, error: type[Exception] = RcedError, *, exact: bool = False) -> Network:
    """The ``backend`` ("float" or "int8") ``.tflite`` of a model folder, as a :class:`Network`."""
    path = Path(folder) / (FLOAT_MODEL_NAME if backend == "float" else INT8_MODEL_NAME)
    if not path.exists():
        raise error(f"{path}: {backend} model not found")
    try:
        net = Network.load(path, exact=exact)
    except RcedError as exc:
        raise error(str(exc)) from None
    if net.backend != backend:
        raise error(f"{path}: a {net.backend} model, expected {backend}")
    return net
