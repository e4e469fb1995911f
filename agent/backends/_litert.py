"""The LiteRT backend: TFLite flatbuffers on ``ai-edge-litert``'s classic Interpreter.

``Interpreter(model_content=..., num_threads=N)`` from bytes, the thread
count always passed explicitly (LiteRT's own default is 1, whatever its
docstring says; ``intra_op_threads=0`` becomes this worker's usable cores,
with a warning). XNNPACK is LiteRT's default delegate: it is on when the
providers name ``XNNPACK`` (the default), and off otherwise
(``BUILTIN_WITHOUT_DEFAULT_DELEGATES``). Other accelerators (``GPU``,
``EdgeTPU``) are external delegates loaded from the library Describe found
(``runtimes.LITERT_DELEGATE_LIBRARIES``); they get the nodes first.

Inputs are set once; a timed run is ``interpreter.invoke()`` alone.
``session_create_ms`` is construction plus ``allocate_tensors`` (where
LiteRT prepares its kernels and applies XNNPACK).

Hostile bytes: the Interpreter verifies the flatbuffer at construction
(``ValueError`` → MODEL_INVALID), resolves operators at ``allocate_tensors``
(an unknown custom op → UNSUPPORTED_OPERATOR). Structurally valid models can
still crash it natively (2.3.0 segfaults on a TRANSPOSE whose permutation
input is missing): that kills only this worker (WORKER_CRASHED, SIGSEGV).

Per-operator profiles: the Python API has no op profiler (the classic
wrapper exposes none; ``libLiteRt.so``'s C profiler belongs to the
CompiledModel API). :meth:`LiteRtModel.profile` says so; per-operator
LiteRT profiles come from ``benchmark_model --enable_op_profiling=true``.
"""

from __future__ import annotations

import ctypes.util
import os
import time
from typing import Any

import numpy as np
from ai_edge_litert import interpreter as litert

from fleetnas.agent._text import client_text
from fleetnas.agent.backends._base import (
    Backend,
    JobFailure,
    LoadContext,
    LoadedModel,
    ProfileUnavailable,
    memory_failure,
)
from fleetnas.agent.backends._inputs import (
    InputSpec,
    element_type_of,
    make_feeds,
    resolve_inputs,
)
from fleetnas.agent.runtimes import (
    LITERT,
    LITERT_CPU,
    LITERT_DELEGATE_LIBRARIES,
    LITERT_DISTRIBUTION,
)
from fleetnas.api.v1 import agent_pb2

#: the provider reported for nodes LiteRT ran on its own kernels (no delegate)
BUILTIN = "builtin"
_DELEGATE_OP = "DELEGATE"
_MAX_MESSAGE = 600
_UNSUPPORTED = ("unresolved custom op", "builtin_code out of range", "Didn't find op for builtin")
NO_PROFILER = (
    "per-operator profiles are not available for the litert runtime: LiteRT's Python API "
    "has no op profiler; per-operator LiteRT profiles come from benchmark_model "
    "--enable_op_profiling=true (over ADB on a phone)"
)


def _text(exc: BaseException) -> str:
    return client_text(str(exc), _MAX_MESSAGE)


def litert_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(LITERT_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(litert, "__version__", "unknown"))


def _prepare_failure(exc: BaseException, cap: int, *, resized: bool) -> JobFailure:
    """Classify a failure of construction or ``allocate_tensors``."""
    text = _text(exc)
    if isinstance(exc, MemoryError):
        return memory_failure(cap, text)
    if any(p in text for p in _UNSUPPORTED):
        return JobFailure(
            "UnsupportedOperator", f"LiteRT {litert_version()} on this agent cannot run the "
                                   f"model: {text}")  # fmt: skip
    if resized:
        return JobFailure("InvalidSettings", f"LiteRT cannot prepare the model with the given "
                                             f"input_shapes; check input_shapes: {text}")  # fmt: skip
    return JobFailure("ModelInvalid", f"LiteRT cannot prepare the model: {text}")


def node_providers(ops: list[dict[str, Any]], delegate_name: str) -> dict[str, int]:
    """Nodes per provider from ``Interpreter._get_ops_details()``.

    LiteRT lists every node of the model plus one ``DELEGATE`` node per
    delegated partition, whose inputs and outputs are the partition's
    boundary. A node is delegated when it produces a tensor inside a
    partition: walk back from each partition's outputs to its inputs.
    """
    original = [op for op in ops if op.get("op_name") != _DELEGATE_OP]
    producer = {int(t): op for op in original for t in op.get("outputs", ())}
    delegated: set[int] = set()
    for partition in (op for op in ops if op.get("op_name") == _DELEGATE_OP):
        boundary = {int(t) for t in partition.get("inputs", ())}
        stack = [int(t) for t in partition.get("outputs", ())]
        while stack:
            tensor = stack.pop()
            op = producer.get(tensor)
            if tensor in boundary or op is None or int(op["index"]) in delegated:
                continue
            delegated.add(int(op["index"]))
            stack.extend(int(t) for t in op.get("inputs", ()))
    counts = {delegate_name: len(delegated), BUILTIN: len(original) - len(delegated)}
    return {name: n for name, n in counts.items() if n}


class LiteRtModel(LoadedModel):
    """An allocated interpreter with its inputs set; :meth:`run` is ``invoke()``."""

    def __init__(self, interpreter: Any, *, resized: bool, **fields: Any) -> None:
        super().__init__(**fields)
        self.interpreter = interpreter
        self._resized = resized

    def run(self) -> None:
        try:
            self.interpreter.invoke()
        except Exception as exc:  # classified; a try costs nothing on the success path
            if self._resized:
                raise JobFailure("InvalidSettings", "running the model with the given "
                                 f"input_shapes failed; check input_shapes: {_text(exc)}") from exc
            raise JobFailure("ModelInvalid", f"the model fails when run: {_text(exc)}") from exc

    def profile(self, runs: int) -> agent_pb2.OperatorProfile:
        raise ProfileUnavailable(NO_PROFILER)


class LiteRtBackend(Backend):
    """LiteRT (``ai-edge-litert``), as imported by this worker."""

    name = LITERT
    model_format = agent_pb2.MODEL_FORMAT_TFLITE

    def version(self) -> str:
        return litert_version()

    def describe(self) -> agent_pb2.RuntimeInfo:
        accelerators = [LITERT_CPU] + [
            name for name, lib in LITERT_DELEGATE_LIBRARIES.items() if ctypes.util.find_library(lib)
        ]
        return agent_pb2.RuntimeInfo(name=LITERT, version=self.version(), available=True,
                                     accelerators=accelerators,
                                     formats=[agent_pb2.MODEL_FORMAT_TFLITE])  # fmt: skip

    def _delegates(self, providers: list[str], fp16: bool) -> list[Any]:
        if fp16:
            raise JobFailure("InvalidSettings", "fp16 is not wired for LiteRT's delegates in "
                             "this agent version (their option names are unverified); leave "
                             "fp16 off, or convert the model to fp16")  # fmt: skip
        delegates = []
        for name in providers:
            if name == LITERT_CPU:
                continue
            library = ctypes.util.find_library(LITERT_DELEGATE_LIBRARIES.get(name, name))
            if library is None:
                raise JobFailure("InvalidSettings",
                                 f"the {name} delegate's library is not on this agent")
            try:
                delegates.append(litert.load_delegate(library))
            except (ValueError, OSError, RuntimeError) as exc:
                raise JobFailure("InternalError",
                                 f"loading LiteRT's {name} delegate failed: {_text(exc)}") from exc
        return delegates

    def load(
        self, data: bytes, settings: agent_pb2.BenchmarkSettings, context: LoadContext
    ) -> LoadedModel:
        warnings = []
        threads = settings.intra_op_threads
        if threads == 0:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
            warnings.append(f"intra_op_threads=0: LiteRT has no thread count of its own "
                            f"choosing; it ran with {threads} (this worker's usable cores)")
        providers = list(settings.providers)
        resolver = (litert.OpResolverType.AUTO if LITERT_CPU in providers
                    else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)  # fmt: skip
        delegates = self._delegates(providers, settings.fp16)
        cap = settings.memory_cap_bytes
        start = time.perf_counter()
        try:
            interpreter = litert.Interpreter(model_content=data, num_threads=threads,
                                             experimental_op_resolver_type=resolver,
                                             experimental_delegates=delegates or None)
        except Exception as exc:  # ValueError from the verifier, RuntimeError, MemoryError
            failure = _prepare_failure(exc, cap, resized=False)
            if failure.reason == "ModelInvalid":
                failure = JobFailure("ModelInvalid", f"not a valid .tflite model: {_text(exc)}")
            raise failure from exc
        constructed = time.perf_counter()
        del data
        details = interpreter.get_input_details()
        inputs = resolve_inputs(_input_specs(details), settings, use_shapes=context.role == "model")
        resized = False
        for detail, info in zip(details, inputs, strict=True):
            if list(detail["shape"]) != list(info.dims):
                interpreter.resize_tensor_input(int(detail["index"]), list(info.dims))
                resized = True
        prepare_start = time.perf_counter()
        try:
            interpreter.allocate_tensors()
        except Exception as exc:
            raise _prepare_failure(exc, cap, resized=resized) from exc
        create_ms = ((constructed - start) + (time.perf_counter() - prepare_start)) * 1000.0
        if not interpreter.get_output_details():
            raise JobFailure("ModelInvalid",
                             f"the {context.what} has no outputs: there is nothing to run")
        feeds = make_feeds(inputs, settings.seed)
        for detail, info in zip(details, inputs, strict=True):
            interpreter.set_tensor(int(detail["index"]), feeds[info.name])
        delegate_name = next((p for p in providers if p != LITERT_CPU), LITERT_CPU)
        nodes = node_providers(interpreter._get_ops_details(), delegate_name)
        provider = max(nodes, key=lambda p: (nodes[p], p != BUILTIN)) if nodes else BUILTIN
        if len(nodes) > 1:
            split = ", ".join(f"{p} {n}" for p, n in sorted(nodes.items(), key=lambda kv: -kv[1]))
            warnings.append(f"LiteRT split the model's nodes between {delegate_name} and its "
                            f"builtin kernels: {split}")
        return LiteRtModel(interpreter, resized=resized, inputs=inputs, create_ms=create_ms,
                           provider=provider, provider_nodes=nodes, warnings=warnings)


def _input_specs(details: list[dict[str, Any]]) -> list[InputSpec]:
    specs = []
    for detail in details:
        signature = detail.get("shape_signature")
        dims = list(signature if signature is not None and len(signature) else detail["shape"])
        specs.append(InputSpec(
            name=str(detail["name"]),
            dims=[int(d) if int(d) >= 0 else "dynamic" for d in dims],
            element_type=element_type_of(detail["dtype"]),
            type_text=np.dtype(detail["dtype"]).name,
        ))  # fmt: skip
    return specs
