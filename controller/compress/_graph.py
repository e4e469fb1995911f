"""Reading ONNX bytes: loading with precise errors, input specs, parameter and MAC counts.

Counting rules (the same for every precision, so that the variants of one
network report the same numbers):

* **params**: the elements of the weight tensors (initializers and
  ``Constant`` nodes) of floating, 8-bit or int32 type that the nodes read,
  counted once per node input that reads them: exporters share one tensor
  between layers whose values happen to be equal (torch shares the zero
  biases of freshly initialised BatchNorms folded into convolutions), while
  each layer owns its parameters, and the quantizer gives every layer its
  own int32 bias. int64/bool tensors (shapes, indices) are not weights, and
  neither are quantization parameters: the scale and zero-point inputs of
  QuantizeLinear/DequantizeLinear, ConvInteger/MatMulInteger and the QLinear
  ops, and the weight scales of dynamic quantization (a tensor multiplied
  with a DynamicQuantizeLinear scale). An exported net's BatchNorms fold
  into its convolutions, so this is the deployed count, a little below the
  torch module's. onnxruntime's optimiser may rewrite a BatchNorm that
  cannot fold (no conv before it) into other tensors, so a quantized graph's
  count can differ from its float original's by a few channels' worth: for
  a variant made here, the source's count is the network's.
* **flops**: multiply-accumulates, the convention of
  ``SearchSpace.count_flops``: convolutions (depthwise included), Gemm and
  MatMul in any of their quantized forms, at the inferred shapes; other ops
  are not counted. None when a counted op's shapes cannot be inferred (a
  symbolic dimension: pass concrete ``input_shapes``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper

from fleetnas.controller.compress._errors import InvalidModel

Dim = int | str


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, dims (ints, or names of symbolic dims), numpy dtype name."""

    name: str
    dims: tuple[Dim, ...]
    dtype: str

    @property
    def fixed(self) -> bool:
        """Whether every dim is a known positive int."""
        return all(isinstance(d, int) and d > 0 for d in self.dims)

    def shape(self, *, batch: int = 1) -> tuple[int, ...]:
        """Concrete dims: symbolic (or unknown) dims become ``batch`` when first, else an error."""
        out: list[int] = []
        for i, d in enumerate(self.dims):
            if isinstance(d, int) and d > 0:
                out.append(d)
            elif i == 0:
                out.append(batch)
            else:
                raise InvalidModel(
                    f"input {self.name!r} has shape {list(self.dims)}: dim {i} is not fixed; "
                    f"give the input shape explicitly (e.g. {self.name}=1x3x224x224)"
                )
        return tuple(out)


def load_model(data: bytes, *, check: bool = True) -> onnx.ModelProto:
    """The ModelProto of ``data``; InvalidModel says why when it is not a usable ONNX model."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidModel(f"expected ONNX model bytes, got {type(data).__name__}")
    if not data:
        raise InvalidModel("the model is empty (0 bytes)")
    try:
        model = onnx.load_from_string(bytes(data))
    except (DecodeError, ValueError) as exc:
        raise InvalidModel(f"not an ONNX model (protobuf decode failed: {exc})") from exc
    if not model.graph.node:
        raise InvalidModel("not an ONNX model, or an empty graph: it has no nodes")
    external = [
        t.name for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL
    ]
    if external:
        raise InvalidModel(
            f"the model keeps weights in external data files ({external[:3]}); "
            "save it with the weights inside (onnx.save(model, path, save_as_external_data=False))"
        )
    if check:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidModel(f"the ONNX model is not valid: {first}") from exc
    return model


def _dims(value: onnx.ValueInfoProto) -> tuple[Dim, ...]:
    shape = value.type.tensor_type.shape
    return tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim
    )


def _dtype(elem_type: int) -> str:
    try:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        return TensorProto.DataType.Name(elem_type).lower()


def input_specs(model: onnx.ModelProto) -> tuple[TensorSpec, ...]:
    """The graph inputs the caller must feed (initializers listed as inputs are left out)."""
    inits = {t.name for t in model.graph.initializer}
    return tuple(
        TensorSpec(v.name, _dims(v), _dtype(v.type.tensor_type.elem_type))
        for v in model.graph.input
        if v.name not in inits
    )


def output_specs(model: onnx.ModelProto) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(v.name, _dims(v), _dtype(v.type.tensor_type.elem_type))
        for v in model.graph.output
    )


# --- params --------------------------------------------------------------------
_WEIGHT_TYPES = frozenset(
    {
        TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE,
        TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32,
    }
)  # fmt: skip
# Input positions holding scales and zero points, per op type.
_QUANT_PARAM_INPUTS: dict[str, frozenset[int]] = {
    "QuantizeLinear": frozenset({1, 2}),
    "DequantizeLinear": frozenset({1, 2}),
    "ConvInteger": frozenset({2, 3}),
    "MatMulInteger": frozenset({2, 3}),
    "QLinearConv": frozenset({1, 2, 4, 5, 6, 7}),
    "QLinearMatMul": frozenset({1, 2, 4, 5, 6, 7}),
    "QLinearAdd": frozenset({1, 2, 4, 5, 6, 7}),
    "QLinearMul": frozenset({1, 2, 4, 5, 6, 7}),
    "QGemm": frozenset({1, 2, 4, 5, 7, 8}),
    "QLinearGlobalAveragePool": frozenset({1, 2, 3, 4}),
    "QLinearAveragePool": frozenset({1, 2, 3, 4}),
    "QLinearSigmoid": frozenset({1, 2, 3, 4}),
    "QLinearLeakyRelu": frozenset({1, 2, 3, 4}),
    "QLinearSoftmax": frozenset({1, 2, 3, 4}),
}


def _quant_param_positions(node: onnx.NodeProto) -> Iterable[int]:
    if node.op_type == "QLinearConcat":  # Y_scale, Y_zp, then (tensor, scale, zp) triples
        return [0, 1] + [i for i in range(2, len(node.input)) if (i - 2) % 3 != 0]
    return _QUANT_PARAM_INPUTS.get(node.op_type, ())


def _weight_tensors(graph: onnx.GraphProto) -> dict[str, TensorProto]:
    tensors = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    tensors[node.output[0]] = attr.t
    return tensors


def count_params(model: onnx.ModelProto) -> int:
    """Weight elements of the graph, per use (see the module docstring for what counts)."""
    graph = model.graph
    tensors = _weight_tensors(graph)
    dynamic_scales = {n.output[1] for n in graph.node if n.op_type == "DynamicQuantizeLinear"}
    total = 0
    for node in graph.node:
        if node.op_type == "Mul" and dynamic_scales.intersection(node.input):
            continue  # x_scale * w_scale of dynamic quantization
        skip = set(_quant_param_positions(node))
        for i, name in enumerate(node.input):
            tensor = tensors.get(name)
            if i not in skip and tensor is not None and tensor.data_type in _WEIGHT_TYPES:
                total += math.prod(tensor.dims)
    return total


# --- flops (MACs) ----------------------------------------------------------------
# op type -> (data input, weight input) positions
_CONVS: dict[str, tuple[int, int]] = {
    "Conv": (0, 1), "FusedConv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3),
}  # fmt: skip
_MATMULS: dict[str, tuple[int, int]] = {
    "MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3),
    "Gemm": (0, 1), "QGemm": (0, 3),
}  # fmt: skip


def _with_input_shapes(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]
) -> onnx.ModelProto:
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    known = {v.name: v for v in fixed.graph.input}
    for name, dims in input_shapes.items():
        if name not in known:
            raise InvalidModel(f"no graph input named {name!r}; inputs are {sorted(known)}")
        shape = known[name].type.tensor_type.shape
        if len(shape.dim) != len(dims):
            raise InvalidModel(
                f"input {name!r} has {len(shape.dim)} dims, the given shape {list(dims)} has {len(dims)}"
            )
        for dim, value in zip(shape.dim, dims, strict=True):
            dim.Clear()
            dim.dim_value = int(value)
    return fixed


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[Dim, ...]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except (onnx.shape_inference.InferenceError, ValueError):
        inferred = model
    graph = inferred.graph
    shapes = {v.name: _dims(v) for v in [*graph.input, *graph.value_info, *graph.output]}
    shapes.update({t.name: tuple(t.dims) for t in graph.initializer})
    return shapes


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(helper.get_attribute_value(a))
    return default


def _concrete(shape: tuple[Dim, ...] | None) -> tuple[int, ...] | None:
    if shape is None or not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        return None
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]


def _node_macs(node: onnx.NodeProto, shapes: Mapping[str, tuple[Dim, ...]]) -> int | None:
    """MACs of one counted node, 0 for a node that is not counted, None when shapes are unknown."""
    if node.op_type in _CONVS:
        _, w = _CONVS[node.op_type]
        weight, out = _concrete(shapes.get(node.input[w])), _concrete(shapes.get(node.output[0]))
        if weight is None or out is None:
            return None
        return math.prod(out) * math.prod(weight[1:])  # Cout-independent: (Cin/g) x kernel
    if node.op_type == "ConvTranspose":
        data, weight = _concrete(shapes.get(node.input[0])), _concrete(shapes.get(node.input[1]))
        if data is None or weight is None:
            return None
        return math.prod(data) * math.prod(weight[1:])
    if node.op_type in _MATMULS:
        a_pos, _ = _MATMULS[node.op_type]
        a, out = _concrete(shapes.get(node.input[a_pos])), _concrete(shapes.get(node.output[0]))
        if a is None or out is None:
            return None
        if node.op_type in ("Gemm", "QGemm"):
            k = a[0] if _attr(node, "transA", 0) else a[-1]
        else:
            k = a[-1]
        return math.prod(out) * k
    return 0


def count_flops(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> int | None:
    """MACs of one forward pass (see the module docstring); None when not computable."""
    if input_shapes:
        model = _with_input_shapes(model, input_shapes)
    shapes = _shapes(model)
    total = 0
    for node in model.graph.node:
        macs = _node_macs(node, shapes)
        if macs is None:
            return None
        total += macs
    return total
