"""The runtime-backend contract: what the benchmark worker needs of a runtime.

A :class:`Backend` runs models of one format on one runtime (onnxruntime,
LiteRT). It lives only inside a benchmark worker process, which imports the
runtime: a runtime can crash on a crafted but valid model (LiteRT 2.3.0
segfaults on a TRANSPOSE whose permutation input is missing), and then only
the worker dies. The worker chooses the backend by ``settings.runtime``
(:func:`fleetnas.agent.backends.backend_for`), never by looking at the bytes;
the agent resolved the runtime from the model's format before.

What a backend promises (every implementation; the shared benchmark protocol
in ``_worker_bench`` relies on nothing else):

* :meth:`Backend.describe`: the runtime's name, version, formats and
  accelerators as this worker sees them (it imported the runtime).
* :meth:`Backend.load` builds a :class:`LoadedModel` from the model's bytes
  and resolved settings. It raises :class:`JobFailure` only, naming one of
  ``ModelInvalid`` (the bytes are not a loadable model of the format, or its
  graph is broken), ``UnsupportedOperator`` (an operator or input type this
  runtime cannot run), ``InvalidSettings`` (``input_shapes`` or providers
  that do not fit the model), ``MemoryCapExceeded`` (the model or one input
  is over the memory cap) or ``InternalError`` (the runtime failed
  otherwise). What is timed: ``LoadedModel.create_ms`` is the runtime's own
  session or interpreter creation from bytes (for TensorRT, the engine build
  or its load from the engine cache); reading the file and making the inputs
  are not in it.
* :meth:`LoadedModel.run` is exactly one inference on inputs already in
  place; it is the only thing the timed loop times. Its failures are
  :class:`JobFailure` too (classified; the classification costs nothing on
  the success path).
* :meth:`LoadedModel.profile` profiles per operator in runs of its own
  (profiling slows a run down, so they are never the timed runs), or raises
  :class:`ProfileUnavailable` saying why; :meth:`LoadedModel.copies` times
  host<->device copies where the inputs live on a device, else None.
* Nothing here quietly returns None for "not supported": that is what the
  named exceptions are for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from fleetnas.api.v1 import agent_pb2


class JobFailure(Exception):
    """A failure to report to the parent: ``reason`` names a fleetnas.agent.errors class."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class ProfileUnavailable(Exception):
    """This runtime (or this build of it) cannot profile per operator; ``args[0]`` says why."""


def memory_failure(cap_bytes: int, text: str) -> JobFailure:
    """The failure of a model that needed more memory than the worker's cap."""
    return JobFailure(
        "MemoryCapExceeded",
        f"the model needed more memory than the cap of {cap_bytes >> 20} MiB allows "
        f"(settings.memory_cap_bytes, capped by the agent's memory cap): {text}",
    )


@dataclass(frozen=True)
class LoadContext:
    """What a backend may need beyond bytes and settings.

    ``role`` is ``"model"`` (the candidate: ``input_shapes`` apply to it) or
    ``"reference"`` (the paired method's reference: static shapes, no
    ``input_shapes``). ``model_sha256`` and ``engine_cache_dir`` key the
    TensorRT engine cache; empty / None where there is none.
    """

    role: str = "model"
    model_sha256: str = ""
    engine_cache_dir: Path | None = None

    @property
    def what(self) -> str:
        return "model" if self.role == "model" else "reference model"


@dataclass
class LoadedModel(ABC):
    """One model loaded on a runtime, inputs made and in place (see the module docstring)."""

    inputs: list[agent_pb2.TensorInfo]
    create_ms: float
    #: the provider or delegate that ran most of the model's nodes
    provider: str
    #: nodes per provider or delegate, where the runtime says (empty otherwise)
    provider_nodes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: TensorRT: whether the engine came from the engine cache; None elsewhere
    engine_cache_hit: bool | None = None

    @abstractmethod
    def run(self) -> None:
        """One inference; raises JobFailure (classified) on failure."""

    @abstractmethod
    def profile(self, runs: int) -> agent_pb2.OperatorProfile:
        """Per-operator times over ``runs`` profiled runs; ProfileUnavailable if it cannot."""

    def copies(self) -> agent_pb2.CopyTiming | None:
        """Time host<->device copy rounds where the inputs live on a device; None on the host."""
        return None  # host memory: there is nothing to copy


class Backend(ABC):
    """A runtime the worker can run models on (see the module docstring)."""

    #: the value of ``BenchmarkSettings.runtime`` that selects it
    name: str
    #: the ModelFormat it runs
    model_format: int

    @abstractmethod
    def version(self) -> str:
        """The runtime's version."""

    @abstractmethod
    def describe(self) -> agent_pb2.RuntimeInfo:
        """Name, version, formats and accelerators, as seen from this worker."""

    @abstractmethod
    def load(
        self, data: bytes, settings: agent_pb2.BenchmarkSettings, context: LoadContext
    ) -> LoadedModel:
        """The model in ``data`` loaded per ``settings``; raises JobFailure only."""
