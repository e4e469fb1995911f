"""The onnxruntime backend: ONNX models on onnxruntime's execution providers.

Sessions are made from bytes, never a path (external data can only resolve
inside the worker's own empty working directory), from the ONNX protobuf
format only (no ORT flatbuffer parser on untrusted bytes), sequential, with
the settings' threads and graph optimisation level. CPU providers run on host
tensors; CUDA and TensorRT run on tensors bound on the device (``_ort_gpu``).

Profiles: a second session with ``enable_profiling`` on (its JSON lands in
the worker's scratch dir, is parsed and deleted), one warm-up run left out.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from fleetnas.agent._text import client_text
from fleetnas.agent.backends import _ort_gpu
from fleetnas.agent.backends._base import (
    Backend,
    JobFailure,
    LoadContext,
    LoadedModel,
    memory_failure,
)
from fleetnas.agent.backends._inputs import DTYPES, InputSpec, make_feeds, resolve_inputs
from fleetnas.agent.backends._profile import build_profile, parse_ort_profile
from fleetnas.api.v1 import agent_pb2

NAME = "onnxruntime"
CPU = "CPUExecutionProvider"
_MAX_ORT_MESSAGE = 600
_PROFILE_PREFIX = "ort-profile"

_OPT_LEVELS = {
    agent_pb2.GRAPH_OPTIMIZATION_DISABLE: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    agent_pb2.GRAPH_OPTIMIZATION_BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    agent_pb2.GRAPH_OPTIMIZATION_EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    agent_pb2.GRAPH_OPTIMIZATION_ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# ORT exception class names (onnxruntime.capi.onnxruntime_pybind11_state).
_LOAD_INVALID = {"InvalidProtobuf", "InvalidGraph", "InvalidArgument", "NoModel", "Fail",
                 "ModelLoaded"}  # fmt: skip
# ORT exception class names a run raises for a graph that cannot run on its inputs (an index
# out of range, shapes that do not fit): the inputs' fault if input_shapes chose them,
# else the model's.
_RUN_INVALID = {"InvalidArgument", "RuntimeException", "Fail"}
_UNSUPPORTED_PATTERNS = (
    "is not a registered function/op",
    "Could not find an implementation for",
    "No Op registered for",
)
_MEMORY_PATTERNS = ("Failed to allocate memory", "bad_alloc", "bad allocation")


def _trim(text: str) -> str:
    """An onnxruntime message as a client may see it: one line, no host paths, bounded."""
    return client_text(re.sub(r"^\[ONNXRuntimeError\] : \d+ : ", "", str(text).strip()),
                       _MAX_ORT_MESSAGE)  # fmt: skip


def classify(
    exc: BaseException, *, phase: str, memory_cap_bytes: int, shapes_given: bool
) -> JobFailure:
    """Map an onnxruntime exception raised while loading (``phase="load"``) or running a model."""
    if isinstance(exc, JobFailure):
        return exc
    name = type(exc).__name__
    text = _trim(str(exc))
    if isinstance(exc, MemoryError) or any(p in text for p in _MEMORY_PATTERNS):
        return memory_failure(memory_cap_bytes, text)
    if name == "NotImplemented" or any(p in text for p in _UNSUPPORTED_PATTERNS):
        return JobFailure(
            "UnsupportedOperator",
            f"onnxruntime {ort.__version__} on this agent cannot run the model: {text}",
        )
    if phase == "load":
        if name in _LOAD_INVALID:
            return JobFailure("ModelInvalid", f"onnxruntime cannot load the model: {text}")
        return JobFailure(
            "InternalError", f"creating the onnxruntime session failed: {name}: {text}"
        )
    if name in _RUN_INVALID and shapes_given:
        return JobFailure(
            "InvalidSettings",
            f"running the model with the given input_shapes failed; check input_shapes: {text}",
        )
    if name in _RUN_INVALID:  # the model's own shapes: nothing of the settings is to blame
        return JobFailure("ModelInvalid", f"the model fails when run: {text}")
    return JobFailure("InternalError", f"running the model failed: {name}: {text}")


def session_options(settings: agent_pb2.BenchmarkSettings) -> ort.SessionOptions:
    """Session options per the settings (threads, optimisation level, sequential)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # Only the ONNX protobuf format: no ORT flatbuffer parser on untrusted bytes.
    options.add_session_config_entry("session.load_model_format", "ONNX")
    # Which provider got which nodes (see provider_used); ignored by an onnxruntime without it.
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    return options


def provider_used(session: ort.InferenceSession) -> tuple[str, dict[str, int]]:
    """The execution provider that ran the model's nodes, and the node count per provider.

    ``session.get_providers()`` lists what was *registered*: the requested
    providers plus the CPU fallback, whether or not they took any node (the
    Azure provider takes none of an ordinary graph). The partitioning that
    onnxruntime recorded (``get_provider_graph_assignment_info``, onnxruntime
    1.2x+) says who got the nodes: the provider with the most nodes is
    reported, ties going to the earlier registered. Where that record is
    missing (older onnxruntime, a graph with no nodes) the first registered
    provider is reported, as onnxruntime itself would prefer it.
    """
    registered = list(session.get_providers())
    counts: dict[str, int] = {}
    try:
        for subgraph in session.get_provider_graph_assignment_info():
            counts[subgraph.ep_name] = counts.get(subgraph.ep_name, 0) + len(subgraph.get_nodes())
    except (AttributeError, RuntimeError):
        counts = {}
    counts = {ep: n for ep, n in counts.items() if n > 0}
    if not counts:
        return registered[0], counts
    rank = {ep: i for i, ep in enumerate(registered)}
    return min(counts, key=lambda ep: (-counts[ep], rank.get(ep, len(rank)))), counts


def placement_warnings(requested: list[str], nodes: dict[str, int]) -> list[str]:
    """Warnings about where onnxruntime put the model's nodes (``nodes``: count per provider).

    Nodes on the CPU while a GPU provider was asked for first get their own
    warning: those nodes run on the CPU with copies in between, so the
    latency is not the GPU's alone.
    """
    out = []
    total = sum(nodes.values())
    first = requested[0] if requested else ""
    on_cpu = nodes.get(CPU, 0)
    if first in _ort_gpu.GPU_PROVIDERS and on_cpu:
        out.append(
            f"{on_cpu} of {total} nodes fell back to {CPU} although {first} was requested "
            "first: they run on the CPU, with host<->device copies between, so the latency is "
            f"not the GPU's alone (the profile's provider column names them)"
        )
    elif len(nodes) > 1:
        split = ", ".join(f"{ep} {n}" for ep, n in sorted(nodes.items(), key=lambda kv: -kv[1]))
        out.append(f"onnxruntime split the model's nodes between providers: {split}")
    return out


def _input_specs(session: ort.InferenceSession) -> list[InputSpec]:
    specs = []
    for inp in session.get_inputs():
        kind = str(inp.type)
        name = kind[7:-1] if kind.startswith("tensor(") and kind.endswith(")") else None
        specs.append(InputSpec(inp.name, list(inp.shape), name if name in DTYPES else None,
                               kind))  # fmt: skip
    return specs


class OrtModel(LoadedModel):
    """A session and its host feeds; :meth:`run` is ``session.run``."""

    def __init__(self, session: ort.InferenceSession, feeds: dict[str, np.ndarray],
                 make_session: Any, settings: agent_pb2.BenchmarkSettings, shapes_given: bool,
                 *, device: _ort_gpu.Device | None, **fields: Any) -> None:  # fmt: skip
        super().__init__(**fields)
        self.device = device
        self.session = session
        self.feeds = feeds
        self._make_session = make_session  # (options) -> session, for the profiling session
        self._settings = settings
        self._shapes_given = shapes_given

    def _fail(self, exc: Exception) -> JobFailure:
        return classify(exc, phase="run", memory_cap_bytes=self._settings.memory_cap_bytes,
                        shapes_given=self._shapes_given)  # fmt: skip

    def run(self) -> None:
        try:
            self.session.run(None, self.feeds)
        except Exception as exc:  # classified; a try costs nothing on the success path
            raise self._fail(exc) from exc

    def _runner_for(self, session: ort.InferenceSession) -> Any:
        return lambda: session.run(None, self.feeds)

    def profile(self, runs: int) -> agent_pb2.OperatorProfile:
        options = session_options(self._settings)
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(os.getcwd(), _PROFILE_PREFIX)
        try:
            session = self._make_session(options)
        except Exception as exc:  # the same bytes loaded once already: a fault of the runtime
            raise JobFailure("InternalError", f"creating the profiling session failed: "
                                              f"{_trim(str(exc))}") from exc  # fmt: skip
        run = self._runner_for(session)
        run_ms = []
        path: str | None = None
        try:
            run()  # warm-up, left out of the profile
            for _ in range(runs):
                start = time.perf_counter()
                run()
                run_ms.append((time.perf_counter() - start) * 1000.0)
        except Exception as exc:
            raise self._fail(exc) from exc
        finally:
            path = session.end_profiling()
            try:
                text = Path(path).read_text(encoding="utf-8") if path else ""
            finally:
                if path:
                    Path(path).unlink(missing_ok=True)
        nodes = parse_ort_profile(text, skip_runs=1)
        return build_profile(nodes, run_ms, agent_pb2.PROFILE_SOURCE_ORT_PROFILING)


class BoundModel(OrtModel):
    """An onnxruntime model whose inputs and outputs are bound on the GPU (``_ort_gpu``)."""

    def __init__(self, *args: Any, device: _ort_gpu.Device | None, **fields: Any) -> None:
        super().__init__(*args, device=device, **fields)
        assert device is not None
        self._binding, self._values = _ort_gpu.bind(self.session, self.feeds, device)

    def run(self) -> None:
        try:
            self.session.run_with_iobinding(self._binding)
        except Exception as exc:  # classified; a try costs nothing on the success path
            raise self._fail(exc) from exc

    def _runner_for(self, session: ort.InferenceSession) -> Any:
        assert self.device is not None
        binding, values = _ort_gpu.bind(session, self.feeds, self.device)
        return lambda: (values, session.run_with_iobinding(binding))  # values: kept alive

    def copies(self) -> agent_pb2.CopyTiming:
        assert self.device is not None
        return _ort_gpu.time_copies(self._binding, self._values, self.feeds, self.device)


class OnnxRuntimeBackend(Backend):
    """onnxruntime, as imported by this worker."""

    name = NAME
    model_format = agent_pb2.MODEL_FORMAT_ONNX

    def version(self) -> str:
        return str(ort.__version__)

    def describe(self) -> agent_pb2.RuntimeInfo:
        providers = list(ort.get_available_providers())
        return agent_pb2.RuntimeInfo(
            onnxruntime_version=self.version(), available_providers=providers, name=NAME,
            version=self.version(), accelerators=providers,
            formats=[agent_pb2.MODEL_FORMAT_ONNX], available=True,
        )  # fmt: skip

    def load(
        self, data: bytes, settings: agent_pb2.BenchmarkSettings, context: LoadContext
    ) -> LoadedModel:
        shapes_given = context.role == "model" and len(settings.input_shapes) > 0
        plan = _ort_gpu.plan(settings, context, self.version())
        # The bytes are kept only for the profiling session; the caller keeps none.
        keep = data if settings.profile and context.role == "model" else b""

        def make(options: ort.SessionOptions, source: bytes) -> ort.InferenceSession:
            return ort.InferenceSession(source, sess_options=options, providers=plan.providers)

        start = time.perf_counter()
        try:
            session = make(session_options(settings), data)
        except Exception as exc:  # onnxruntime raises many unrelated classes
            raise classify(exc, phase="load", memory_cap_bytes=settings.memory_cap_bytes,
                           shapes_given=shapes_given) from exc  # fmt: skip
        create_ms = (time.perf_counter() - start) * 1000.0
        del data
        if not session.get_outputs():
            raise JobFailure("ModelInvalid",
                             f"the {context.what} has no outputs: there is nothing to run")
        inputs = resolve_inputs(_input_specs(session), settings,
                                use_shapes=context.role == "model")  # fmt: skip
        provider, nodes = provider_used(session)
        fields: dict[str, Any] = dict(
            inputs=inputs, create_ms=create_ms, provider=provider, provider_nodes=nodes,
            warnings=placement_warnings(list(settings.providers), nodes),
            engine_cache_hit=plan.engine_cache_hit,
        )  # fmt: skip
        feeds = make_feeds(inputs, settings.seed)
        model_class = OrtModel if plan.device is None else BoundModel
        return model_class(session, feeds, lambda options: make(options, keep), settings,
                           shapes_given, device=plan.device, **fields)  # fmt: skip
