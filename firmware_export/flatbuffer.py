"""Reading a .tflite flatbuffer: the ops it uses, whether TFLM has them, tensor quantisation.

The op table maps every builtin that TFLM registers to the ``MicroMutableOpResolver`` method
that adds it (names as in tensorflow/lite/micro/micro_mutable_op_resolver.h). An op outside
the table, a custom op (e.g. a Flex/SELECT_TF_OPS op) or an op computing in float makes the
model unfit for the device, and the check says which op.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from firmware_export.errors import ExportError

# BuiltinOperator name -> MicroMutableOpResolver method (TFLM builtins only).
TFLM_RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "ELU": "AddElu", "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish", "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul", "NEG": "AddNeg", "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad",
    "PADV2": "AddPadV2", "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv", "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack", "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}  # fmt: skip

# Ops that only move or reshape data: allowed to see int32 shape tensors.
_INTEGER_TYPES = {"INT8", "INT16", "INT32", "INT64", "BOOL"}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str  # flatbuffer TensorType name: INT8, FLOAT32, ...
    scale: float
    zero_point: int


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the firmware needs to know about one flatbuffer."""

    ops: tuple[str, ...]  # distinct op names in first-use order (builtin names, or CUSTOM:<code>)
    op_counts: dict[str, int]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    float_ops: tuple[str, ...]  # ops with a float input or output tensor

    @property
    def resolver_methods(self) -> tuple[str, ...]:
        """MicroMutableOpResolver methods for the ops, sorted (call :func:`check_tflm` first)."""
        return tuple(sorted(TFLM_RESOLVER_METHODS[op] for op in self.ops))


def _schema():
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    return runtime, fb


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def inspect(model_content: bytes, name: str = "model") -> ModelInfo:
    """Parse the flatbuffer (one subgraph expected)."""
    runtime, fb = _schema()
    try:
        model = runtime.convert_bytearray_to_object(bytearray(model_content))
    except Exception as exc:  # flatbuffers raises anything on garbage
        raise ExportError(f"{name}: not a TFLite flatbuffer ({type(exc).__name__})") from None
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise ExportError(f"{name}: expected one subgraph, found {len(model.subgraphs or [])}")
    op_names, type_names = _names(fb.BuiltinOperator), _names(fb.TensorType)
    codes = []
    for oc in model.operatorCodes:
        code = runtime.get_builtin_code_from_operator_code(oc)
        if code == fb.BuiltinOperator.CUSTOM:
            custom = oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode)
            codes.append(f"CUSTOM:{custom}")
        else:
            codes.append(op_names.get(code, f"BUILTIN#{code}"))
    sg = model.subgraphs[0]

    def tensor(i: int) -> TensorInfo:
        t = sg.tensors[i]
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
        zp = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
        tname = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = tuple(int(v) for v in (t.shape if t.shape is not None else ()))
        return TensorInfo(tname, shape, type_names.get(t.type, str(t.type)), scale, zp)

    order: list[str] = []
    counts: dict[str, int] = {}
    float_ops: list[str] = []
    for op in sg.operators or []:
        opname = codes[op.opcodeIndex]
        if opname not in counts:
            order.append(opname)
        counts[opname] = counts.get(opname, 0) + 1
        tids = [i for i in list(op.inputs if op.inputs is not None else []) + list(op.outputs) if i >= 0]
        if any(tensor(i).dtype not in _INTEGER_TYPES for i in tids) and opname not in float_ops:
            float_ops.append(opname)
    return ModelInfo(tuple(order), counts, tuple(tensor(i) for i in sg.inputs), tuple(tensor(i) for i in sg.outputs),
                     tuple(float_ops))  # fmt: skip


def check_tflm(info: ModelInfo, name: str = "model") -> None:
    """Raise :class:`ExportError` naming the first op the device cannot run as full-integer TFLM."""
    for op in info.ops:
        if op.startswith("CUSTOM:"):
            code = op.split(":", 1)[1]
            hint = " (a SELECT_TF_OPS/Flex op: TensorFlow kernels, absent from TFLM)" if code.startswith("Flex") else ""
            raise ExportError(f"{name}: custom op {code!r}{hint} is not supported by TFLM")
        if op not in TFLM_RESOLVER_METHODS:
            raise ExportError(f"{name}: op {op} is not supported by TFLM (no MicroMutableOpResolver kernel)")
    if info.float_ops:
        raise ExportError(f"{name}: op {info.float_ops[0]} computes in float; the device graph must be full-integer int8")
    for what, tensors in (("input", info.inputs), ("output", info.outputs)):
        if len(tensors) != 1:
            raise ExportError(f"{name}: expected one {what} tensor, found {len(tensors)}")
        t = tensors[0]
        if t.dtype != "INT8":
            raise ExportError(f"{name}: {what} tensor {t.name!r} is {t.dtype}, expected INT8")
        if not t.shape or t.shape[0] != 1:
            raise ExportError(f"{name}: {what} tensor {t.name!r} has shape {t.shape}, expected batch 1")


def shape_size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1
