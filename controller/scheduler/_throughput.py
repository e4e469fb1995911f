"""A model's batch size, for throughput: items per second next to latency.

The batch is the first dimension of the model's first graph input (an input
that is not an initializer), as the benchmark runs it: a symbolic dimension
(``"batch"``) takes its value from the request's ``input_shapes`` for that
input, as the agent resolves it. ``None`` when it cannot be known here (a
non-ONNX model, a scalar input, a symbolic dimension the request leaves
open, an unreadable file). Throughput is ``batch * 1000 / latency_ms``.
"""

from __future__ import annotations

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.scheduler._jobs import ModelRef


def model_batch(model: ModelRef, request: agent_pb2.BenchmarkSettings) -> int | None:
    """The batch size the benchmark of ``model`` with ``request`` runs (see the module docstring)."""
    if model.model_format != agent_pb2.MODEL_FORMAT_ONNX:
        return None
    import onnx

    try:
        graph = onnx.load_model_from_string(model.read_bytes()).graph
    except Exception:  # noqa: BLE001 - any unreadable model: the batch is just unknown
        return None
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if not inputs:
        return None
    first = inputs[0]
    dims = first.type.tensor_type.shape.dim
    if not dims:
        return None
    if dims[0].HasField("dim_value") and dims[0].dim_value > 0:
        return int(dims[0].dim_value)
    for shape in request.input_shapes:
        if shape.name == first.name and shape.dims:
            return int(shape.dims[0])
    return None


def throughput(batch: int | None, latency_ms: float) -> float | None:
    """Items per second of one run of ``batch`` items taking ``latency_ms``; None if unknown."""
    if batch is None or latency_ms <= 0:
        return None
    return batch * 1000.0 / latency_ms
