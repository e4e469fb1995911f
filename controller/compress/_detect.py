"""The precision of an ONNX graph, read from the graph itself, with the evidence counted.

Evidence, counted over the nodes of the main graph:

* QDQ: QuantizeLinear / DequantizeLinear nodes, and weighted ops (Conv, Gemm,
  MatMul, ...) whose weight comes from a DequantizeLinear -> ``int8``;
* QOperator: QLinear* ops (QLinearConv, QLinearMatMul, QGemm, ...) -> ``int8``;
* dynamic: ConvInteger, MatMulInteger, DynamicQuantizeLinear (and ORT's fused
  DynamicQuantizeMatMul, MatMulIntegerToFloat) -> ``int8-dynamic``;
* half precision: float16 initializers, Casts to float16, weighted ops on
  float16 weights -> ``fp16``;
* weighted ops on float32 weights -> ``fp32``.

A graph with the evidence of exactly one precision has that precision; with
none (no weighted op, nothing quantized) it is ``fp32``; with several it is
``mixed`` (e.g. a partially quantized net: some convolutions on int8
weights, others on float32). A weight is traced back through Identity,
Transpose, Reshape, (Un)Squeeze and Flatten to where it comes from; a weighted
op whose second operand is an activation (a MatMul of two activations) is
not a weighted op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from fleetnas.controller.compress._graph import (
    TensorSpec,
    count_flops,
    count_params,
    input_specs,
    load_model,
    output_specs,
)
from fleetnas.controller.compress._precision import Precision

_WEIGHTED = {
    "Conv": 1, "ConvTranspose": 1, "FusedConv": 1, "Gemm": 1, "MatMul": 1, "FusedGemm": 1,
}  # fmt: skip
_INTEGER_OPS = frozenset(
    {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul",
     "MatMulIntegerToFloat"}
)  # fmt: skip
_PASS_THROUGH = frozenset({"Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten"})


@dataclass(frozen=True)
class PrecisionEvidence:
    """What the detection counted (see the module docstring)."""

    quantize_linear: int = 0
    dequantize_linear: int = 0
    qlinear_ops: int = 0
    integer_ops: int = 0
    fp16_initializers: int = 0
    fp16_casts: int = 0
    weighted_fp32: int = 0
    weighted_fp16: int = 0
    weighted_int8: int = 0

    def summary(self) -> str:
        """The non-zero counts, e.g. ``"12 QuantizeLinear, 25 DequantizeLinear, 12 weighted ops on int8 weights"``."""
        labels = (
            ("quantize_linear", "QuantizeLinear"),
            ("dequantize_linear", "DequantizeLinear"),
            ("qlinear_ops", "QLinear ops"),
            ("integer_ops", "dynamic integer ops"),
            ("fp16_initializers", "float16 initializers"),
            ("fp16_casts", "casts to float16"),
            ("weighted_int8", "weighted ops on int8 weights"),
            ("weighted_fp16", "weighted ops on float16 weights"),
            ("weighted_fp32", "weighted ops on float32 weights"),
        )
        parts = [f"{getattr(self, f)} {label}" for f, label in labels if getattr(self, f)]
        return ", ".join(parts) or "no weighted ops, nothing quantized"


@dataclass(frozen=True)
class DetectedPrecision:
    """The precision of a graph and the evidence for it."""

    precision: Precision
    evidence: PrecisionEvidence

    @property
    def signals(self) -> tuple[Precision, ...]:
        """Every precision the graph shows evidence of (one, except for ``mixed``)."""
        return _signals(self.evidence)


@dataclass(frozen=True)
class ModelInfo:
    """What a model is, read from its bytes: the cost DB's description of a user model."""

    sha256: str
    size_bytes: int
    precision: DetectedPrecision
    params: int
    flops: int | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int


def _signals(e: PrecisionEvidence) -> tuple[Precision, ...]:
    found: list[Precision] = []
    if e.quantize_linear or e.dequantize_linear or e.qlinear_ops or e.weighted_int8:
        found.append(Precision.INT8)
    if e.integer_ops:
        found.append(Precision.INT8_DYNAMIC)
    if e.fp16_initializers or e.fp16_casts or e.weighted_fp16:
        found.append(Precision.FP16)
    if e.weighted_fp32:
        found.append(Precision.FP32)
    return tuple(found)


def _weight_source(
    name: str,
    producers: Mapping[str, onnx.NodeProto],
    constants: Mapping[str, int],
) -> str | None:
    """``"int8"``, ``"fp16"``, ``"fp32"`` or another dtype name for a weight; None for an activation."""
    seen = 0
    while name not in constants:
        node = producers.get(name)
        seen += 1
        if node is None or seen > 32:
            return None
        if node.op_type == "DequantizeLinear":
            return "int8"
        if node.op_type == "Cast":
            to = next((a.i for a in node.attribute if a.name == "to"), TensorProto.FLOAT)
            source = _weight_source(node.input[0], producers, constants)
            return None if source is None else _type_name(to)
        if node.op_type not in _PASS_THROUGH or not node.input:
            return None
        name = node.input[0]
    return _type_name(constants[name])


def _type_name(elem_type: int) -> str:
    if elem_type == TensorProto.FLOAT:
        return "fp32"
    if elem_type == TensorProto.FLOAT16:
        return "fp16"
    return TensorProto.DataType.Name(elem_type).lower()


def evidence_of(model: onnx.ModelProto) -> PrecisionEvidence:
    """Count the precision evidence of ``model``'s main graph."""
    graph = model.graph
    constants = {t.name: t.data_type for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    constants[node.output[0]] = attr.t.data_type
    producers = {out: node for node in graph.node for out in node.output}
    counts = dict.fromkeys(PrecisionEvidence.__dataclass_fields__, 0)
    counts["fp16_initializers"] = sum(
        1 for t in graph.initializer if t.data_type == TensorProto.FLOAT16
    )
    for node in graph.node:
        op = node.op_type
        if op == "QuantizeLinear":
            counts["quantize_linear"] += 1
        elif op == "DequantizeLinear":
            counts["dequantize_linear"] += 1
        elif op.startswith("QLinear") or op == "QGemm":
            counts["qlinear_ops"] += 1
        elif op in _INTEGER_OPS:
            counts["integer_ops"] += 1
        elif op == "Cast" and any(
            a.name == "to" and a.i == TensorProto.FLOAT16 for a in node.attribute
        ):
            counts["fp16_casts"] += 1
        elif op in _WEIGHTED and len(node.input) > _WEIGHTED[op]:
            source = _weight_source(node.input[_WEIGHTED[op]], producers, constants)
            if source in ("int8", "fp16", "fp32"):
                counts[f"weighted_{source}"] += 1
    return PrecisionEvidence(**counts)


def precision_of(model: onnx.ModelProto) -> DetectedPrecision:
    """The detected precision of a loaded model (see the module docstring)."""
    evidence = evidence_of(model)
    signals = _signals(evidence)
    if not signals:
        precision = Precision.FP32
    elif len(signals) == 1:
        precision = signals[0]
    else:
        precision = Precision.MIXED
    return DetectedPrecision(precision, evidence)


def detect_precision(data: bytes) -> DetectedPrecision:
    """The precision of the ONNX model ``data``; InvalidModel when it cannot be read."""
    return precision_of(load_model(data, check=False))


def describe_model(
    data: bytes, *, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> ModelInfo:
    """Precision, params, MACs and input/output specs of ``data`` (see ``_graph`` for the rules).

    ``input_shapes`` fixes symbolic input dims for the MAC count (e.g.
    ``{"x": (1, 3, 224, 224)}``); without it a symbolic dim makes ``flops`` None.
    """
    model = load_model(data, check=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return ModelInfo(
        sha256=hashlib.sha256(bytes(data)).hexdigest(),
        size_bytes=len(data),
        precision=precision_of(model),
        params=count_params(model),
        flops=count_flops(model, input_shapes),
        inputs=input_specs(model),
        outputs=output_specs(model),
        opset=int(opset),
    )


