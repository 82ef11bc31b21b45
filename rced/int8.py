"""The int8 denoiser: the exported full-integer TFLite model, run on the host with LiteRT.

``model_int8.tflite`` beside a model folder's float weights is the graph the device runs
(batch 1, int8 in and out; ``firmware_export.convert.write_int8_beside`` writes it).
:class:`Int8Denoiser` has the interface of :class:`rced.denoiser.Denoiser`; only the network
call differs: features are quantised with the model's input scale and zero point, every
frame runs through LiteRT's *reference* kernels (bit-exact with TFLM; the default XNNPACK
path may differ by one LSB), and the int8 mask is dequantised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rced.config import ModelConfig, load_json
from rced.denoiser import Denoiser, default_model_path
from rced.errors import RcedError
from rced.features import Normalizer

INT8_MODEL_NAME = "model_int8.tflite"


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 as TFLite's QUANTIZE does: round half away from zero, then saturate."""
    v = np.asarray(x, np.float64) / scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((np.asarray(q, np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


def reference_interpreter(model_content: bytes):
    """A LiteRT interpreter on the reference kernels (what TFLM computes, bit for bit)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=bytes(model_content), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    return interp


class Int8Model:
    """Callable like a Keras model: (N, ...) float features -> (N, ...) float outputs, one frame per invoke."""

    def __init__(self, model_content: bytes, source: str = "int8 model"):
        try:
            self.interpreter = reference_interpreter(model_content)
        except (RuntimeError, ValueError) as exc:
            raise RcedError(f"{source}: not a loadable TFLite model ({str(exc).splitlines()[0][:120]})") from None
        ins, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise RcedError(f"{source}: expected one input and one output, got {len(ins)} and {len(outs)}")
        self.input, self.output = ins[0], outs[0]
        for d, what in ((self.input, "input"), (self.output, "output")):
            if d["dtype"] != np.int8:
                raise RcedError(f"{source}: {what} is {np.dtype(d['dtype']).name}, expected int8 (full-integer model)")
            if int(d["shape"][0]) != 1:
                raise RcedError(f"{source}: {what} batch is {int(d['shape'][0])}, expected 1")
        self.input_shape = tuple(int(v) for v in self.input["shape"])
        self.output_shape = tuple(int(v) for v in self.output["shape"])
        self.in_scale, self.in_zp = float(self.input["quantization"][0]), int(self.input["quantization"][1])
        self.out_scale, self.out_zp = float(self.output["quantization"][0]), int(self.output["quantization"][1])

    def run_int8(self, q: np.ndarray) -> np.ndarray:
        """(N, *input_shape[1:]) int8 -> (N, *output_shape[1:]) int8."""
        q = np.asarray(q, np.int8)
        out = np.empty((len(q), *self.output_shape[1:]), np.int8)
        idx_in, idx_out = self.input["index"], self.output["index"]
        for i, frame in enumerate(q):
            self.interpreter.set_tensor(idx_in, frame[None])
            self.interpreter.invoke()
            out[i] = self.interpreter.get_tensor(idx_out)[0]
        return out

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.input_shape[1:]:
            raise RcedError(f"int8 model: input frames of shape {x.shape[1:]}, the model takes {self.input_shape[1:]}")
        q = self.run_int8(quantize(x, self.in_scale, self.in_zp))
        return dequantize(q, self.out_scale, self.out_zp)


class Int8Denoiser(Denoiser):
    """:class:`Denoiser` whose network is the int8 TFLite model (LiteRT reference kernels)."""

    backend = "int8"

    def __init__(self, model_content: bytes, config: ModelConfig, norm: Normalizer, path: Path | None = None,
                 source: str = "int8 model"):  # fmt: skip
        model = Int8Model(model_content, source)
        fe = config.frontend
        want = (1, fe.n_bins, 1, fe.context)
        if model.input_shape != want or model.output_shape != (1, fe.n_bins):
            raise RcedError(f"{source}: shapes {model.input_shape} -> {model.output_shape} do not match the "
                            f"model config (expected {want} -> {(1, fe.n_bins)})")  # fmt: skip
        super().__init__(model, config, norm, path)

    def _run(self, x: np.ndarray) -> np.ndarray:
        """The network on a (n, bins, 1, context) batch: int8 LiteRT, frame by frame (no TF graph)."""
        return self.model(x)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Int8Denoiser:
        """Model folder with ``model_int8.tflite``, ``config.json`` and ``norm.json``; None = shipped default."""
        folder = Path(path) if path is not None else default_model_path()
        if not folder.is_dir():
            raise RcedError(f"{folder}: model folder not found")
        tfl = folder / INT8_MODEL_NAME
        if not tfl.exists():
            raise RcedError(f"{tfl}: int8 model not found (write it with `firmware-export int8 --denoiser {folder}`)")
        for name in ("config.json", "norm.json"):
            if not (folder / name).exists():
                raise RcedError(f"{folder}: model folder lacks {name}")
        config = load_json(ModelConfig, folder / "config.json")
        return cls(tfl.read_bytes(), config, Normalizer.load(folder / "norm.json"), folder, source=str(tfl))
