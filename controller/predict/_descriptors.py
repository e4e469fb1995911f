"""A device-independent description of a network: how much of each kind of work it does.

:func:`descriptor` reads an ONNX model as exported (no runtime, no
optimisation: the same for every device), infers every tensor's shape with
``onnx.shape_inference`` and sums per family of operator:

* multiply-accumulates of dense, pointwise (1x1) and depthwise/grouped
  convolutions and of matrix products, in millions;
* elements read and written by convolutions, elements written by
  elementwise operators (activations, adds, multiplies), elements read by
  pooling, in millions;
* node counts (convolutions, elementwise, other), for per-operator costs.

A device's latency is close to a non-negative combination of these (time per
MAC of each family, per element moved, per operator launched): the transfer
model (:mod:`._transfer`) fits one combination per device. The families are
named in :data:`FEATURES`; identities (``Identity``, ``Flatten``, reshapes)
count only as nodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

FEATURES: tuple[str, ...] = (
    "dense_conv_mmacs",
    "pointwise_conv_mmacs",
    "depthwise_conv_mmacs",
    "matmul_mmacs",
    "conv_in_melems",
    "conv_out_melems",
    "elementwise_melems",
    "pool_in_melems",
    "conv_nodes",
    "elementwise_nodes",
    "other_nodes",
)
_ELEMENTWISE = frozenset({
    "Relu", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Clip", "LeakyRelu", "Elu", "Gelu",
    "Add", "Sub", "Mul", "Div", "BatchNormalization", "Softmax", "Erf", "Pow", "Sqrt",
})  # fmt: skip
_POOLS = frozenset({"GlobalAveragePool", "AveragePool", "MaxPool", "GlobalMaxPool",
                    "ReduceMean"})
_FREE = frozenset({"Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Constant"})


class DescriptorError(ValueError):
    """A model whose shapes cannot be inferred (dynamic or unknown dims)."""


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    out: dict[str, tuple[int, ...]] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[info.name] = tuple(int(d.dim_value) for d in dims)
    for tensor in graph.initializer:
        out[tensor.name] = tuple(int(d) for d in tensor.dims)
    return out


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def descriptor(model: bytes) -> np.ndarray:
    """The :data:`FEATURES` of an ONNX model, as float64. Raises DescriptorError."""
    import onnx

    proto = onnx.load_from_string(model)
    shapes = _shapes(proto)
    acc = dict.fromkeys(FEATURES, 0.0)

    def size(name: str) -> float:
        if name not in shapes:
            raise DescriptorError(f"tensor {name!r} has no static shape; export static shapes")
        return float(math.prod(shapes[name]))

    for node in proto.graph.node:
        op = node.op_type
        if op == "Conv":
            _conv(node, shapes, acc, size)
        elif op in ("Gemm", "MatMul"):
            weight = shapes.get(node.input[1])
            if weight is None:
                raise DescriptorError(f"{op} {node.name}: weight shape unknown")
            if op == "Gemm":
                inner = weight[1] if _attr(node, "transB", 0) else weight[0]
            else:
                inner = weight[-2]
            acc["matmul_mmacs"] += size(node.output[0]) * inner / 1e6
            acc["other_nodes"] += 1
        elif op in _ELEMENTWISE:
            acc["elementwise_melems"] += size(node.output[0]) / 1e6
            acc["elementwise_nodes"] += 1
        elif op in _POOLS:
            acc["pool_in_melems"] += size(node.input[0]) / 1e6
            acc["other_nodes"] += 1
        elif op not in _FREE:
            acc["other_nodes"] += 1
    return np.array([acc[f] for f in FEATURES], dtype=np.float64)


def _conv(node: Any, shapes: Mapping[str, tuple[int, ...]], acc: dict[str, float],
          size: Any) -> None:
    weight = shapes.get(node.input[1])
    if weight is None:
        raise DescriptorError(f"Conv {node.name}: weight shape unknown")
    group = int(_attr(node, "group", 1))
    out_elems = size(node.output[0])
    # Each output element takes c_in/group * prod(kernel) MACs: weight dims 1: are exactly that.
    macs = out_elems * float(math.prod(weight[1:])) / 1e6
    if group > 1:
        acc["depthwise_conv_mmacs"] += macs
    elif all(k == 1 for k in weight[2:]):
        acc["pointwise_conv_mmacs"] += macs
    else:
        acc["dense_conv_mmacs"] += macs
    acc["conv_in_melems"] += size(node.input[0]) / 1e6
    acc["conv_out_melems"] += out_elems / 1e6
    acc["conv_nodes"] += 1
