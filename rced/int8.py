"""The int8 denoiser: the exported full-integer TFLite model, run on the host with LiteRT.

``model_int8.tflite`` beside a model folder's float weights is the graph the device runs
(batch 1, int8 in and out; ``firmware_export.convert.write_int8_beside`` writes it).
:class:`Int8Denoiser` is a :class:`rced.denoiser.Denoiser` on that file: features are quantised
with the model's input scale and zero point, every frame is one invoke, the int8 mask is
dequantised (:class:`rced.runtime.Network`); for bced the graph ends at the band logits, and the
band expansion and sigmoid follow in float, as in the firmware (:func:`rced.features.device_head`). LiteRT's optimised kernels run it by default (within
one LSB of the device); ``exact=True`` runs the reference kernels, bit-exact with TFLM.
"""

from __future__ import annotations

from pathlib import Path

from rced.config import ModelConfig
from rced.denoiser import Denoiser
from rced.errors import RcedError
from rced.features import Normalizer, device_head, device_output_width
from rced.runtime import INT8_MODEL_NAME, Network, dequantize, quantize, reference_interpreter

__all__ = ["INT8_MODEL_NAME", "Int8Denoiser", "Int8Model", "dequantize", "quantize", "reference_interpreter"]


def Int8Model(model_content: bytes, source: str = "int8 model", *, exact: bool = True) -> Network:  # noqa: N802
    """A batch-1 full-integer model as a :class:`~rced.runtime.Network` (reference kernels unless
    ``exact=False``); anything else is a one-line RcedError naming ``source``."""
    net = Network(model_content, source, exact=exact)
    if net.backend != "int8":
        raise RcedError(f"{source}: input is {net.input['dtype'].__name__}, expected int8 (full-integer model)")
    if net.input_shape[0] != 1:
        raise RcedError(f"{source}: input batch is {net.input_shape[0]}, expected 1")
    return net


class Int8Denoiser(Denoiser):
    """:class:`Denoiser` whose network is the int8 TFLite model (see the module docstring)."""

    def __init__(self, model: bytes | Network, config: ModelConfig, norm: Normalizer, path: Path | None = None,
                 source: str = "int8 model", *, exact: bool = True):  # fmt: skip
        """``model``: the flatbuffer (run on the reference kernels unless ``exact=False``) or a loaded int8 Network."""
        if not isinstance(model, Network):
            model = Int8Model(model, source, exact=exact)
        fe = config.frontend
        want, want_out = (1, fe.n_bins, 1, config.input_channels), (1, device_output_width(config))
        if model.input_shape != want or model.output_shape != want_out:
            raise RcedError(f"{model.source}: shapes {model.input_shape} -> {model.output_shape} do not match the "
                            f"model config (expected {want} -> {want_out})")  # fmt: skip
        super().__init__(model, config, norm, path)
        self._head = device_head(config)

    def _run(self, x):
        """The device graph, then what the firmware computes after it (bced: band expansion, sigmoid)."""
        out = super()._run(x)
        return out if self._head is None else self._head(out)

    @classmethod
    def load(cls, path: str | Path | None = None, *, exact: bool = False) -> Int8Denoiser:
        """Model folder with ``model_int8.tflite``, ``config.json`` and ``norm.json``; None = shipped default."""
        return super().load(path, backend="int8", exact=exact)
