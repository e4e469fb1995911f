"""What the scheduler is asked to do and what it answers: jobs and their outcomes.

A :class:`Job` is (model, target, settings). The model is known by the
sha256 of its bytes (:class:`ModelRef`); the target is one device or a device
class (:class:`Target`); the settings are a ``BenchmarkSettings`` *request*
(unset fields take the agent's defaults). A :class:`JobOutcome` is returned
for every job, in order: measured, served from the cost DB, or failed with
the error as data (failures are never raised).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from fleetnas.agent.model_format import HEAD_BYTES, detect_format
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import Measurement


class ModelChanged(Exception):
    """A model file no longer has the sha256 it had when the job was made."""


@dataclass(frozen=True)
class ModelRef:
    """A model by content hash, with its bytes in memory or in a file.

    Build with :meth:`from_bytes` or :meth:`from_path`. A file is read again
    when the model is uploaded (so a batch need not hold every model in
    memory) and must still hash to ``sha256`` (else :class:`ModelChanged`).
    ``model_format`` (a ``ModelFormat``: ONNX, TFLite) is detected from the
    first bytes, as the agent detects it, unless given; a file that cannot
    be read is ``MODEL_FORMAT_UNRECOGNIZED`` (its upload then fails).
    """

    sha256: str
    size_bytes: int
    data: bytes | None = field(default=None, repr=False)
    path: Path | None = None
    model_format: int = agent_pb2.MODEL_FORMAT_UNSPECIFIED

    def __post_init__(self) -> None:
        if self.model_format == agent_pb2.MODEL_FORMAT_UNSPECIFIED:
            object.__setattr__(self, "model_format", detect_format(self._head()))

    def _head(self) -> bytes:
        if self.data is not None:
            return self.data[:HEAD_BYTES]
        if self.path is None:
            return b""
        try:
            with open(self.path, "rb") as f:
                return f.read(HEAD_BYTES)
        except OSError:
            return b""

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelRef:
        return cls(hashlib.sha256(data).hexdigest(), len(data), data=data)

    @classmethod
    def from_path(cls, path: str | Path) -> ModelRef:
        data = Path(path).read_bytes()
        return cls(hashlib.sha256(data).hexdigest(), len(data), path=Path(path),
                   model_format=detect_format(data[:HEAD_BYTES]))

    def read_bytes(self) -> bytes:
        """The model's bytes; raises :class:`ModelChanged` if a file changed since."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ModelChanged(f"{self.path} changed since the job was made (sha256 differs)")
        return data


@dataclass(frozen=True)
class Target:
    """Where a job runs: one named device, or any device of a class."""

    name: str
    is_class: bool = False

    @classmethod
    def device(cls, name: str) -> Target:
        return cls(name, False)

    @classmethod
    def device_class(cls, name: str) -> Target:
        return cls(name, True)

    def __str__(self) -> str:
        return f"class {self.name!r}" if self.is_class else f"device {self.name!r}"


def _model_ref(model: bytes | str | Path | ModelRef) -> ModelRef:
    if isinstance(model, ModelRef):
        return model
    if isinstance(model, bytes):
        return ModelRef.from_bytes(model)
    return ModelRef.from_path(model)


@dataclass(frozen=True, eq=False)
class Job:
    """Measure ``model`` on ``target`` with the ``settings`` request.

    ``tag`` is the caller's own label (an arch encoding, a file name); the
    scheduler only carries it through. ``settings`` is copied, so changing
    the caller's message later does not change the job. ``needs_energy``:
    a cached measurement without energy per inference is a miss (the job is
    measured again), for a search with an ``energy[T]`` objective.
    """

    model: ModelRef
    target: Target
    settings: agent_pb2.BenchmarkSettings = field(default_factory=agent_pb2.BenchmarkSettings)
    tag: object = None
    needs_energy: bool = False

    def __post_init__(self) -> None:
        copy = agent_pb2.BenchmarkSettings()
        copy.CopyFrom(self.settings)
        object.__setattr__(self, "settings", copy)

    @classmethod
    def on_device(
        cls,
        model: bytes | str | Path | ModelRef,
        device: str,
        settings: agent_pb2.BenchmarkSettings | None = None,
        *,
        tag: object = None,
    ) -> Job:
        return cls(_model_ref(model), Target.device(device),
                   settings or agent_pb2.BenchmarkSettings(), tag)

    @classmethod
    def on_class(
        cls,
        model: bytes | str | Path | ModelRef,
        device_class: str,
        settings: agent_pb2.BenchmarkSettings | None = None,
        *,
        tag: object = None,
    ) -> Job:
        return cls(_model_ref(model), Target.device_class(device_class),
                   settings or agent_pb2.BenchmarkSettings(), tag)

    def identity(self) -> tuple[str, bool, str, bytes, bool]:
        """Two jobs with the same identity are the same measurement request."""
        return (
            self.model.sha256,
            self.target.is_class,
            self.target.name,
            self.settings.SerializeToString(deterministic=True),
            self.needs_energy,
        )


class OutcomeStatus(enum.Enum):
    MEASURED = "measured"  # benchmarked now; the measurement is in the DB
    CACHED = "cached"      # served from the cost DB; no agent was contacted
    FAILED = "failed"      # see ``error``


@dataclass(frozen=True)
class Attempt:
    """One try of a job on one device. Times are unix seconds (controller clock).

    ``error`` is ``None`` for the successful attempt, else a one-line reason;
    ``transient`` says whether the failure allowed a retry.
    """

    device: str
    started_at: float
    ended_at: float
    error: str | None = None
    transient: bool = False


@dataclass(frozen=True)
class JobOutcome:
    """The answer for ``jobs[index]``.

    ``measurement`` is set for MEASURED and CACHED; ``error`` (an
    :class:`~fleetnas.agent.errors.AgentError` or another exception) for
    FAILED. ``device`` is where it was measured (or the last device tried).
    ``duplicate_of`` is the index of the job in the same batch whose outcome
    this one shares (the work was done once): an identical earlier job, or the
    device job a class job was merged into (same model and settings on a
    device of the class).
    """

    index: int
    job: Job
    status: OutcomeStatus
    device: str | None = None
    measurement: Measurement | None = None
    error: BaseException | None = None
    attempts: tuple[Attempt, ...] = ()
    duplicate_of: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is not OutcomeStatus.FAILED

    @property
    def latency_ms(self) -> float | None:
        return self.measurement.latency_ms if self.measurement is not None else None

    @property
    def error_message(self) -> str | None:
        if self.error is None:
            return None
        message = getattr(self.error, "message", None)
        return message if isinstance(message, str) else str(self.error)


@dataclass(frozen=True)
class Progress:
    """Passed to the progress callback once per finished job (``done`` of ``total``)."""

    done: int
    total: int
    outcome: JobOutcome
