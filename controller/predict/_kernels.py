"""Fusion-aware kernels: the units a network is made of, as the runtime executes it.

A search space's blocks are the units the *designer* sees; onnxruntime runs
something else. At the device's optimisation level it folds and fuses nodes
(Conv + Add + Relu becomes one ``FusedConv``; on x86 at level ``all`` every
convolution becomes an NCHWc ``Conv`` with its activation and residual add
inside, and ``ReorderInput``/``ReorderOutput`` nodes appear where the layout
changes). A latency model that sums blocks measured alone pays for fusions
and layout changes the network never runs, and misses those it does.

:func:`extract_kernels` asks onnxruntime itself. It creates one session with
the device's optimisation level, ``optimized_model_filepath`` (the graph as
optimised: the nodes that will run) and profiling on, runs it once, and reads
each executed node's input and output shapes from the profile (the
optimised graph carries no shapes, and NCHWc tensors have padded channels
only the profile shows). Every executed node becomes one :class:`Kernel`:

* its **key** is stable and complete: domain, op type and opset version,
  the attributes, every input's shape (constants marked, with the values of
  non-float constants such as shapes and axes, which change what runs),
  every output's shape. Tensor names and float constants' values (weights:
  once the shapes are fixed they do not change the cost) are not part of
  it. Two nets that run the same node share its key;
* :func:`kernel_model` builds a standalone ONNX model of a kernel: the node,
  its data inputs as graph inputs, its constants as initializers (weights
  drawn from a generator seeded by the key, so the bytes, and hence the cost
  DB identity, depend on the key alone);
* :func:`check_kernel_model` optimises that model again at the same level
  and says whether onnxruntime would run exactly the one node (nothing
  inserted, nothing fused away): a standalone measurement then times the
  node as the network runs it.

Where the kernels are valid. The optimised graph comes from the
*controller's* onnxruntime: it is the graph the device executes when the
device runs the same onnxruntime build on the same instruction set (NCHWc
block sizes depend on the CPU's vector width). :class:`NetKernels` records
the version and machine it was extracted with; for a device that differs, use
level ``extended`` (fusions only, no layout transform: portable across
onnxruntime CPU builds).

Runs of several nodes as one kernel would amortise the per-run cost better;
they are not done here: single nodes already share most (see docs/predict.md).
"""

from __future__ import annotations

import hashlib
import json
import platform
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleetnas.api.v1 import agent_pb2

#: non-float constants (shapes, axes, indices: they change what runs) are part of a kernel's
#: key with their values; larger ones than this are refused
MAX_STRUCTURAL_ELEMENTS = 4096
ONNX_DOMAIN = "ai.onnx"

LEVEL_NAMES: dict[int, str] = {
    agent_pb2.GRAPH_OPTIMIZATION_DISABLE: "disable",
    agent_pb2.GRAPH_OPTIMIZATION_BASIC: "basic",
    agent_pb2.GRAPH_OPTIMIZATION_EXTENDED: "extended",
    agent_pb2.GRAPH_OPTIMIZATION_ALL: "all",
}


class KernelExtractionError(ValueError):
    """onnxruntime could not give the executed graph of a model (the message says why)."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a kernel: shape and element type; for constants, whether
    the values belong to the key (``values``) or are weights (``values is None``)."""

    dims: tuple[int, ...]
    dtype: str = "float"
    constant: bool = False
    values: tuple[float, ...] | None = None

    def text(self) -> str:
        dims = "x".join(str(d) for d in self.dims) or "scalar"
        prefix = "c:" if self.constant else ""
        dtype = "" if self.dtype == "float" else f"{self.dtype}:"
        values = "" if self.values is None else "=" + ",".join(f"{v:g}" for v in self.values)
        return f"{prefix}{dtype}{dims}{values}"

    def to_dict(self) -> dict[str, Any]:
        return {"dims": list(self.dims), "dtype": self.dtype, "constant": self.constant,
                "values": None if self.values is None else list(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        values = data.get("values")
        return cls(tuple(int(d) for d in data["dims"]), str(data["dtype"]),
                   bool(data["constant"]), None if values is None else tuple(values))


@dataclass(frozen=True)
class Kernel:
    """One executed node, independent of tensor names and weight values.

    ``attributes`` are ``(name, onnx attribute type, value)`` sorted by name,
    values JSON-safe (bytes decoded). ``inputs`` follow the node's input
    positions; ``None`` is an omitted optional input.
    """

    domain: str
    op_type: str
    opset: int
    attributes: tuple[tuple[str, str, Any], ...]
    inputs: tuple[TensorSpec | None, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def op(self) -> str:
        return f"{self.domain or ONNX_DOMAIN}:{self.op_type}"

    @property
    def key(self) -> str:
        """E.g. ``com.microsoft.nchwc:Conv@1|activation=Relu|group=1|...|in=1x16x88x88,
        c:64x16x1x1,c:64|out=1x64x88x88``."""
        attrs = [f"{name}={_attr_text(value)}" for name, _, value in self.attributes]
        ins = ",".join("-" if t is None else t.text() for t in self.inputs)
        outs = ",".join(t.text() for t in self.outputs)
        return "|".join([f"{self.op}@{self.opset}", *attrs, f"in={ins}", f"out={outs}"])

    @property
    def key_hash(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()[:16]

    @property
    def fusion(self) -> str:
        """What the node computes, in original ops: ``Conv+Add+Relu``, ``Conv``, ``Mul``."""
        parts = [self.op_type.removeprefix("Fused")]
        data_inputs = [t for t in self.inputs if t is not None and not t.constant]
        if self.domain and self.op_type in ("Conv", "FusedConv") and len(data_inputs) > 1:
            parts.append("Add")  # NCHWc Conv's Sum input / FusedConv's Z: a fused residual add
        activation = dict((n, v) for n, _, v in self.attributes).get("activation")
        if activation:
            parts.append(str(activation))
        return "+".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "op_type": self.op_type, "opset": self.opset,
                "attributes": [list(a) for a in self.attributes],
                "inputs": [None if t is None else t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Kernel:
        return cls(
            str(data["domain"]), str(data["op_type"]), int(data["opset"]),
            tuple((str(n), str(t), _freeze(v)) for n, t, v in data["attributes"]),
            tuple(None if t is None else TensorSpec.from_dict(t) for t in data["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
        )  # fmt: skip


@dataclass(frozen=True)
class NetKernels:
    """A network as executed: one kernel per node, in the optimised graph's order.

    ``nodes`` are the executed nodes' names (parallel to ``kernels``);
    ``level`` the optimisation level name; ``onnxruntime`` and ``machine``
    where it was extracted (see the module docstring).
    """

    kernels: tuple[Kernel, ...]
    nodes: tuple[str, ...]
    level: str
    onnxruntime: str
    machine: str
    ir_version: int

    def counts(self) -> Counter[str]:
        """How many times each kernel key runs in one inference."""
        return Counter(k.key for k in self.kernels)

    def distinct(self) -> dict[str, Kernel]:
        """Key -> kernel, first occurrence order."""
        out: dict[str, Kernel] = {}
        for kernel in self.kernels:
            out.setdefault(kernel.key, kernel)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kernels": [k.to_dict() for k in self.kernels], "nodes": list(self.nodes),
                "level": self.level, "onnxruntime": self.onnxruntime, "machine": self.machine,
                "ir_version": self.ir_version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetKernels:
        return cls(tuple(Kernel.from_dict(k) for k in data["kernels"]),
                   tuple(str(n) for n in data["nodes"]), str(data["level"]),
                   str(data["onnxruntime"]), str(data["machine"]), int(data["ir_version"]))


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _attr_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def environment() -> tuple[str, str]:
    """``(onnxruntime version, machine)`` of this controller: where kernels are extracted."""
    import onnxruntime as ort

    return ort.__version__, platform.machine()


# -- extraction --------------------------------------------------------------------------


def _session_options(level: int, workdir: Path, *, profile: bool) -> Any:
    import onnxruntime as ort

    levels = {
        agent_pb2.GRAPH_OPTIMIZATION_DISABLE: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        agent_pb2.GRAPH_OPTIMIZATION_BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        agent_pb2.GRAPH_OPTIMIZATION_EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        agent_pb2.GRAPH_OPTIMIZATION_ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if level not in levels:
        raise ValueError(f"unknown graph optimisation level {level!r}; "
                         f"use one of {sorted(LEVEL_NAMES)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.optimized_model_filepath = str(workdir / "optimized.onnx")
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(workdir / "profile")
    return options


def _feeds(session: Any) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in session.get_inputs():
        if not all(isinstance(d, int) and d > 0 for d in inp.shape):
            raise KernelExtractionError(
                f"input {inp.name!r} has a dynamic shape {inp.shape}; export the model with "
                "static shapes to extract its kernels"
            )
        if inp.type != "tensor(float)":
            raise KernelExtractionError(
                f"input {inp.name!r} has type {inp.type}; kernel extraction feeds float inputs"
            )
        feeds[inp.name] = rng.standard_normal(tuple(inp.shape), dtype=np.float32)
    return feeds


def _profiled_shapes(profile_path: str) -> dict[str, tuple[list[list[int]], list[list[int]]]]:
    """Node name -> (input shapes, output shapes) from an onnxruntime profile."""
    with open(profile_path, encoding="utf-8") as f:
        events = json.load(f)
    shapes = {}
    suffix = "_kernel_time"
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith(suffix):
            continue
        args = event.get("args", {})
        ins = [next(iter(d.values())) for d in args.get("input_type_shape", [])]
        outs = [next(iter(d.values())) for d in args.get("output_type_shape", [])]
        shapes[name[: -len(suffix)]] = (ins, outs)
    return shapes


def optimized_graph(model: bytes, level: int) -> tuple[Any, dict[str, Any]]:
    """``(optimised onnx.ModelProto, node name -> (input shapes, output shapes))``.

    Two sessions: the first optimises at ``level`` and saves the graph; every
    node the optimiser left unnamed (function bodies it inlined) gets a name;
    the second runs that saved graph once, unoptimised and profiled, so every
    profiled node is a node of the saved graph. Raises KernelExtractionError
    when onnxruntime cannot load or run the model.
    """
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="fleetnas-kernels-") as tmp:
        workdir = Path(tmp)
        try:
            ort.InferenceSession(model, _session_options(level, workdir, profile=False),
                                 providers=["CPUExecutionProvider"])
            optimized = onnx.load(str(workdir / "optimized.onnx"))
            names = {n.name for n in optimized.graph.node}
            for i, node in enumerate(optimized.graph.node):
                if not node.name:
                    node.name = f"fleetnas_node_{i}"
                    while node.name in names:
                        node.name += "_"
                    names.add(node.name)
            options = _session_options(agent_pb2.GRAPH_OPTIMIZATION_DISABLE, workdir,
                                       profile=True)
            options.optimized_model_filepath = ""
            session = ort.InferenceSession(optimized.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
            session.run(None, _feeds(session))
            profile = session.end_profiling()
        except KernelExtractionError:
            raise
        except Exception as exc:  # onnxruntime raises many unrelated classes
            raise KernelExtractionError(f"onnxruntime cannot run the model: {exc}") from exc
        return optimized, _profiled_shapes(profile)


def extract_kernels(model: bytes, level: int = agent_pb2.GRAPH_OPTIMIZATION_ALL) -> NetKernels:
    """The kernels of ``model`` as onnxruntime executes it at ``level`` (a
    ``GRAPH_OPTIMIZATION_*`` value); see the module docstring.

    Raises KernelExtractionError for a model with dynamic input shapes,
    non-float inputs, control flow, or a node onnxruntime did not profile.
    """
    return graph_kernels(*optimized_graph(model, level), level)


def graph_kernels(optimized: Any, shapes: Mapping[str, Any], level: int) -> NetKernels:
    """The kernels of an optimised graph and its profiled shapes (:func:`optimized_graph`)."""
    import onnx

    opsets = {o.domain: o.version for o in optimized.opset_import}
    constants = {t.name: t for t in optimized.graph.initializer}
    kernels, nodes = [], []
    for node in optimized.graph.node:
        if not node.name or node.name not in shapes:
            raise KernelExtractionError(
                f"onnxruntime did not profile node {node.name or '(unnamed)'} "
                f"({node.op_type}); its shapes are unknown"
            )
        in_shapes, out_shapes = shapes[node.name]
        kernels.append(_kernel(node, opsets, constants, in_shapes, out_shapes, onnx))
        nodes.append(node.name)
    version, machine = environment()
    return NetKernels(tuple(kernels), tuple(nodes), LEVEL_NAMES[level], version, machine,
                      int(optimized.ir_version))


def _kernel(node: Any, opsets: Mapping[str, int], constants: Mapping[str, Any],
            in_shapes: Sequence[list[int]], out_shapes: Sequence[list[int]], onnx: Any) -> Kernel:
    # The profile lists the shapes of the leading inputs (some kernels leave out a trailing
    # constant, e.g. Gemm's bias); constants carry their own dims.
    present = [name for name in node.input if name]
    shape_of = dict(zip(present, in_shapes, strict=False))
    if len(out_shapes) != len(node.output) or any(
        name not in constants and name not in shape_of for name in present
    ):
        raise KernelExtractionError(
            f"node {node.name} ({node.op_type}): the profile lists {len(in_shapes)} inputs and "
            f"{len(out_shapes)} outputs, the graph {len(present)} and {len(node.output)}"
        )
    inputs: list[TensorSpec | None] = []
    for name in node.input:
        if not name:
            inputs.append(None)
        elif name in constants:
            inputs.append(_constant_spec(constants[name], onnx))
        else:
            inputs.append(TensorSpec(tuple(int(d) for d in shape_of[name])))
    attributes = []
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise KernelExtractionError(
                f"node {node.name} ({node.op_type}) has a subgraph; control flow is not a kernel"
            )
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list):
            value = tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                          for v in value)
        elif not isinstance(value, (int, float, str)):
            raise KernelExtractionError(
                f"node {node.name} ({node.op_type}): attribute {attr.name} of type "
                f"{onnx.AttributeProto.AttributeType.Name(attr.type)} is not supported"
            )
        attributes.append((attr.name, onnx.AttributeProto.AttributeType.Name(attr.type), value))
    outputs = tuple(TensorSpec(tuple(int(d) for d in s)) for s in out_shapes)
    return Kernel(node.domain, node.op_type, int(opsets.get(node.domain, 1)),
                  tuple(sorted(attributes)), tuple(inputs), outputs)


def _constant_spec(tensor: Any, onnx: Any) -> TensorSpec:
    """Float constants are weights: their values do not change a kernel's cost once its
    output shapes are fixed. Other constants (shapes, axes, indices) keep their values."""
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    name = _dtype_name(tensor.data_type, onnx)
    dims = tuple(int(d) for d in tensor.dims)
    if np.issubdtype(dtype, np.floating):
        return TensorSpec(dims, name, True, None)
    array = onnx.numpy_helper.to_array(tensor)
    if array.size > MAX_STRUCTURAL_ELEMENTS:
        raise KernelExtractionError(
            f"a {name} constant of {array.size} elements (over {MAX_STRUCTURAL_ELEMENTS}) "
            "would have to be part of a kernel's key"
        )
    return TensorSpec(dims, name, True, tuple(float(v) for v in array.reshape(-1)))


def _dtype_name(data_type: int, onnx: Any) -> str:
    return str(onnx.TensorProto.DataType.Name(data_type)).lower()


# -- standalone models ---------------------------------------------------------------------


def kernel_model(kernel: Kernel, *, ir_version: int = 8) -> bytes:
    """A standalone ONNX model that runs ``kernel`` alone (module docstring).

    Data inputs are float graph inputs ``in0``, ``in1``, ...; outputs
    ``out0``, ...; weights are seeded by the kernel's key, so the same key
    always gives the same bytes.
    """
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(int(kernel.key_hash, 16))
    graph_inputs, initializers, names = [], [], []
    for i, spec in enumerate(kernel.inputs):
        if spec is None:
            names.append("")
            continue
        name = f"{'w' if spec.constant else 'in'}{i}"
        names.append(name)
        if spec.constant:
            initializers.append(_constant_tensor(name, spec, rng, onnx))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                              list(spec.dims)))
    outputs = [f"out{i}" for i in range(len(kernel.outputs))]
    attributes = [_attribute(name, kind, value, onnx) for name, kind, value in kernel.attributes]
    node = helper.make_node(kernel.op_type, names, outputs, domain=kernel.domain, name="kernel")
    node.attribute.extend(attributes)
    graph = helper.make_graph(
        [node], "kernel", graph_inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, list(s.dims))
         for o, s in zip(outputs, kernel.outputs, strict=True)],
        initializers,
    )  # fmt: skip
    opsets = [helper.make_opsetid(kernel.domain, kernel.opset)]
    if kernel.domain:
        opsets.append(helper.make_opsetid("", 17))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="fleetnas.kernel")
    model.ir_version = ir_version
    return model.SerializeToString(deterministic=True)


def _constant_tensor(name: str, spec: TensorSpec, rng: np.random.Generator, onnx: Any) -> Any:
    data_type = onnx.TensorProto.DataType.Value(spec.dtype.upper())
    dtype = onnx.helper.tensor_dtype_to_np_dtype(data_type)
    if spec.values is not None:
        array = np.asarray(spec.values, dtype=dtype).reshape(spec.dims)
    else:  # weights: values do not change the cost of a float kernel
        array = (0.1 * rng.standard_normal(spec.dims)).astype(dtype)
    return onnx.numpy_helper.from_array(array, name)


def _attribute(name: str, kind: str, value: Any, onnx: Any) -> Any:
    attr_type = onnx.AttributeProto.AttributeType.Value(kind)
    if kind == "STRING":
        value = str(value).encode()
    elif kind == "STRINGS":
        value = [str(v).encode() for v in value]
    elif isinstance(value, tuple):
        value = list(value)
    return onnx.helper.make_attribute(name, value, attr_type=attr_type)


def null_model() -> bytes:
    """The smallest model (one Identity of one float): a run's fixed cost and nothing else."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["in0"], ["out0"], name="kernel")], "null",
        [helper.make_tensor_value_info("in0", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("out0", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="fleetnas.kernel")
    model.ir_version = 8
    return model.SerializeToString(deterministic=True)


def check_kernel_model(kernel: Kernel, model: bytes, level: int) -> str | None:
    """``None`` when onnxruntime at ``level`` runs ``model`` as exactly the one node of
    ``kernel``; else what it runs instead (e.g. ``ReorderInput, Conv, ReorderOutput``)."""
    graph, _ = optimized_graph(model, level)
    ops = [f"{n.domain or ONNX_DOMAIN}:{n.op_type}" for n in graph.graph.node]
    return None if ops == [kernel.op] else ", ".join(ops) or "nothing"
