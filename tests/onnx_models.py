"""Small ONNX models built with ``onnx.helper`` (no torch) for tests.

Every builder returns the serialized model bytes. Builders are deterministic:
the same arguments give byte-identical output, so a model's sha256 is stable
across runs. Models meant to be valid pass ``onnx.checker.check_model``.

All models use opset ``OPSET`` (17) and IR version ``IR_VERSION`` (8), which
onnxruntime 1.16+ runs.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
CUSTOM_DOMAIN = "com.fleetnas.test"


def _finish(graph: onnx.GraphProto, *, extra_opsets: dict[str, int] | None = None) -> bytes:
    """Wrap a graph in a model with our opset/IR version, check it, serialize it."""
    opsets = [helper.make_opsetid("", OPSET)]
    for domain, version in sorted((extra_opsets or {}).items()):
        opsets.append(helper.make_opsetid(domain, version))
    model = helper.make_model(
        graph, opset_imports=opsets, ir_version=IR_VERSION, producer_name="fleetnas-tests"
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _weights(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """Normal weights scaled by 1/sqrt(fan_in) so activations stay O(1) through a chain."""
    return (rng.standard_normal(shape) / math.sqrt(fan_in)).astype(np.float32)


def mlp(width: int, depth: int, seed: int = 0) -> bytes:
    """A float32 MLP: ``depth`` × (MatMul [width, width] + Add bias + Relu).

    Input ``"x"`` of shape [1, width], output ``"y"`` of shape [1, width].
    ``seed`` changes the weights (and so the bytes and sha256), not the cost.
    """
    if width <= 0 or depth <= 0:
        raise ValueError(f"width and depth must be positive, got width={width} depth={depth}")
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    prev = "x"
    for i in range(depth):
        w, b = f"w{i}", f"b{i}"
        inits.append(numpy_helper.from_array(_weights(rng, (width, width), width), w))
        inits.append(numpy_helper.from_array(np.zeros(width, np.float32), b))
        out = "y" if i == depth - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, w], [f"mm{i}"]))
        nodes.append(helper.make_node("Add", [f"mm{i}", b], [f"add{i}"]))
        nodes.append(helper.make_node("Relu", [f"add{i}"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes,
        f"mlp_w{width}_d{depth}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
        initializer=inits,
    )
    return _finish(graph)


def conv_net(channels: int, size: int, depth: int, seed: int = 0, *, named: bool = False) -> bytes:
    """A float32 conv net: ``depth`` × (Conv 3×3, pad 1, + Relu), then GlobalAveragePool.

    Input ``"x"`` of shape [1, channels, size, size], output ``"y"`` of shape
    [1, channels, 1, 1]. ``named`` names the nodes ``conv<i>``, ``relu<i>``,
    ``pool`` (by default they are unnamed, as in the bytes tests already hash).
    """
    if channels <= 0 or size <= 0 or depth <= 0:
        raise ValueError(
            f"channels, size and depth must be positive, got {channels}, {size}, {depth}"
        )
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    prev = "x"
    for i in range(depth):
        w, b = f"w{i}", f"b{i}"
        inits.append(
            numpy_helper.from_array(_weights(rng, (channels, channels, 3, 3), channels * 9), w)
        )
        inits.append(numpy_helper.from_array(np.zeros(channels, np.float32), b))
        nodes.append(
            helper.make_node("Conv", [prev, w, b], [f"c{i}"], kernel_shape=[3, 3], pads=[1] * 4,
                             name=f"conv{i}" if named else None)
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"],
                                      name=f"relu{i}" if named else None))
        prev = f"r{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["y"],
                                  name="pool" if named else None))
    graph = helper.make_graph(
        nodes,
        f"conv_c{channels}_s{size}_d{depth}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, 1, 1])],
        initializer=inits,
    )
    return _finish(graph)


def with_unsupported_op() -> bytes:
    """A checker-valid model whose only node is ``com.fleetnas.test:NoSuchOp``.

    ``onnx.checker`` accepts ops of unknown custom domains; onnxruntime
    refuses the model at session creation with ``Fail: ... Fatal error:
    com.fleetnas.test:NoSuchOp(-1) is not a registered function/op``.
    """
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain=CUSTOM_DOMAIN)
    graph = helper.make_graph(
        [node],
        "unsupported_op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return _finish(graph, extra_opsets={CUSTOM_DOMAIN: 1})


def dynamic_batch_mlp(width: int, seed: int = 0) -> bytes:
    """A one-layer MLP whose input ``"x"`` has shape ["batch", width] (dim 0 symbolic).

    A benchmark needs ``input_shapes=[InputShape(name="x", dims=[B, width])]``.
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(_weights(rng, (width, width), width), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Relu", ["mm"], ["y"])],
        f"dyn_mlp_w{width}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=[w],
    )
    return _finish(graph)


# One 512×512 @ 512×512 float32 MatMul is ~0.27 GFLOP: ~1 ms on one AVX-512
# core (measured), tens of ms on a small ARM board. We assume the fast end so the
# model is at least as slow as hinted.
_SLOW_N = 512
_SLOW_MATMUL_S = 0.001


def slow_model(seconds_hint: float) -> bytes:
    """A model whose single run takes roughly ``seconds_hint`` or more on one thread.

    A chain of 512×512 MatMuls that all share one weight initializer, so the
    file stays ~1 MB however long the chain. The count assumes a fast core,
    so on slower hardware a run takes longer than hinted, never much shorter.
    Input ``"x"`` of shape [512, 512].
    """
    if not seconds_hint > 0:
        raise ValueError(f"seconds_hint must be positive, got {seconds_hint}")
    count = max(1, math.ceil(seconds_hint / _SLOW_MATMUL_S))
    rng = np.random.default_rng(0)
    # An orthogonal matrix keeps the activations' norm fixed through the chain.
    q, _ = np.linalg.qr(rng.standard_normal((_SLOW_N, _SLOW_N)))
    w = numpy_helper.from_array(q.astype(np.float32), "w")
    nodes = []
    prev = "x"
    for i in range(count):
        out = "y" if i == count - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, "w"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes,
        f"slow_{count}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [_SLOW_N, _SLOW_N])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [_SLOW_N, _SLOW_N])],
        initializer=[w],
    )
    return _finish(graph)


def memory_hog(bytes_to_allocate: int) -> bytes:
    """A tiny model whose run allocates (and writes) ~``bytes_to_allocate`` bytes.

    ``Expand`` broadcasts the runtime input ``"x"`` (shape [1]) to a float32
    tensor of ``bytes_to_allocate // 4`` elements, then ``ReduceSum`` makes it
    a scalar ``"y"``. Because the expanded tensor depends on the input it
    cannot be constant-folded: the file stays a few hundred bytes and session
    creation stays cheap; only the run allocates.
    """
    elements = bytes_to_allocate // 4
    if elements <= 0:
        raise ValueError(f"bytes_to_allocate must be at least 4, got {bytes_to_allocate}")
    shape = numpy_helper.from_array(np.array([elements], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Expand", ["x", "shape"], ["big"]),
            helper.make_node("ReduceSum", ["big"], ["y"], keepdims=0),
        ],
        "memory_hog",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        initializer=[shape],
    )
    return _finish(graph)


def truncated(model_bytes: bytes) -> bytes:
    """The first half of ``model_bytes`` (at least one byte cut): unparseable as a model."""
    if len(model_bytes) < 2:
        raise ValueError("need at least 2 bytes to truncate")
    return model_bytes[: len(model_bytes) // 2]


def random_bytes(n: int, seed: int = 0) -> bytes:
    """``n`` pseudo-random bytes from ``seed`` (deterministic): not a model."""
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


def scalar_bool() -> bytes:
    """``y = Not(x)`` on a 0-d (scalar) bool input ``"x"``: onnxruntime takes no numpy scalar."""
    graph = helper.make_graph(
        [helper.make_node("Not", ["x"], ["y"])],
        "scalar_bool",
        [helper.make_tensor_value_info("x", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, [])],
    )
    return _finish(graph)


def relu(dims: list[int | str]) -> bytes:
    """``y = Relu(x)`` with float input ``"x"`` of shape ``dims`` (strings are symbolic dims)."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
    )
    return _finish(graph)


def gather_out_of_range(index: int = 10) -> bytes:
    """Gather from a [4] input at a constant ``index``: valid ONNX that fails when run."""
    graph = helper.make_graph(
        [helper.make_node("Gather", ["x", "idx"], ["y"], axis=0)],
        "gather_out_of_range",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=[numpy_helper.from_array(np.array([index], dtype=np.int64), "idx")],
    )
    return _finish(graph)


def no_outputs() -> bytes:
    """A graph with one node and no graph outputs: the checker accepts it, nothing can run."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "no_outputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [],
    )
    return _finish(graph)
