"""Measured latency: where a candidate's ``latency[T]`` comes from when it is measured.

A :class:`Measurer` turns candidates into per-target results. The one
fleetnas uses is :class:`SchedulerMeasurer`: export each candidate in the
format each target's runtime takes (ONNX for onnxruntime, ``.tflite`` for
LiteRT: ``Scheduler.model_format_for``; cached on disk, once per format) and
record the model with its origin in the cost DB
(:func:`fleetnas.controller.export.register_arch`), then send
one job per (candidate, target) to the scheduler, which answers from the
cost DB first and otherwise measures on the target's device (or any device
of its class) with the target's own settings, recording each result as it
arrives. A candidate with precision genes (a
:class:`~fleetnas.controller.spaces.PrecisionSpace` arch) is exported as its
network, and each target is sent the variant of its gene's precision
(:class:`~fleetnas.controller.driver._deploy.DeployedModels`): the cost DB
then holds, per device, the model that device actually ran.
:class:`CallableMeasurer` calls a Python function instead: benches
and experiments with a ground-truth latency oracle.

Energy per inference (``energy[T]``) comes with the same measurement: the
cost DB's ``energy_mj`` of the recorded result, ``None`` with the meter's
reason where nothing was readable. :meth:`Measurer.check_energy` refuses,
before any work, targets whose devices have no readable meter (their
``Describe`` says so).

Failures are data. A failure that is a property of the model on that device
(invalid model, unsupported operator, benchmark timeout, memory cap, model
too large, export failure) is ``permanent``: the driver fails the candidate.
Any other (devices down, bad settings, bad token) is not, and the driver
stops the search so the user can fix the cause and resume.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fleetnas.agent.errors import (
    BenchmarkTimeout,
    MemoryCapExceeded,
    ModelInvalid,
    ModelTooLarge,
    UnsupportedOperator,
)
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._config import Target
from fleetnas.controller.driver._deploy import DeployedModels
from fleetnas.controller.driver._errors import SearchConfigError
from fleetnas.controller.scheduler import Job, JobOutcome, ModelRef, OutcomeStatus, Scheduler
from fleetnas.controller.scheduler import Target as SchedulerTarget
from fleetnas.controller.spaces import Arch, PrecisionSpace, SearchSpace

#: errors that say "this model cannot run there", not "the device is unavailable"
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    ModelInvalid,
    UnsupportedOperator,
    BenchmarkTimeout,
    MemoryCapExceeded,
    ModelTooLarge,
)

MeasureProgress = Callable[[int, int, str], None]
"""``(done, total, label)`` after each (candidate, target) result."""


@dataclass(frozen=True)
class TargetResult:
    """One candidate on one target: the latency (ms) or why there is none.

    ``ran`` is true when a benchmark ran for this request (false: the cost
    DB's cache answered). ``permanent`` classifies a failure (see the module
    docstring). ``energy_mj`` is the measurement's energy per inference,
    ``None`` when no meter read it (``energy_reason`` then says why, when known).
    """

    latency_ms: float | None
    peak_memory_bytes: float | None = None
    energy_mj: float | None = None
    energy_reason: str | None = None
    measurement_uid: str | None = None
    device: str | None = None
    ran: bool = False
    error: str | None = None
    permanent: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None and self.latency_ms is not None


@dataclass(frozen=True)
class CandidateMeasurement:
    """A candidate's results by target key; ``error`` when it could not even be exported."""

    candidate_id: int
    model_sha256: str | None
    results: dict[str, TargetResult] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.ok for r in self.results.values())

    def failure(self) -> tuple[str, bool] | None:
        """``(reason, permanent)`` of the first failure, or ``None``."""
        if self.error is not None:
            return self.error, True
        for key, result in self.results.items():
            if not result.ok:
                return f"{key}: {result.error}", result.permanent
        return None


@dataclass(frozen=True)
class MeasureRequest:
    """A candidate to measure: its id, arch and encoding."""

    candidate_id: int
    arch: Arch
    encoding: str


class Measurer(abc.ABC):
    """Measures candidates on targets. Called from the driver's thread only."""

    @abc.abstractmethod
    def measure(
        self,
        space: SearchSpace,
        requests: Sequence[MeasureRequest],
        targets: Sequence[Target],
        *,
        on_progress: MeasureProgress | None = None,
    ) -> list[CandidateMeasurement]:
        """One result per request, in order, each with one entry per target key."""

    def check_targets(self, targets: Sequence[Target]) -> None:  # noqa: B027
        """Raise before any work when a target cannot be measured here (default: accept)."""

    def export_seconds(self) -> float:
        """Seconds :meth:`measure` spent exporting so far (the driver reports the rest of
        its time as measuring); 0 for a measurer that exports nothing."""
        return 0.0

    def check_energy(self, targets: Sequence[Target]) -> None:  # noqa: B027
        """Raise SearchConfigError before any work when a target's energy cannot be measured
        (``targets`` are those an ``energy[T]`` names; default: accept)."""

    def check_precisions(  # noqa: B027
        self, targets: Sequence[Target], genes: Mapping[str, Sequence[str]]
    ) -> None:
        """Raise before any work when a target cannot take its allowed precisions (target
        key -> precisions; ``{}``: no genes) (default: accept)."""


class SchedulerMeasurer(Measurer):
    """Export, record the model, measure through the scheduler (see the module docstring).

    ``calibration`` (an ``.npz`` or dataset spec; None: random data with a
    warning, given once to ``on_warning``) calibrates the int8 variants of
    candidates with precision genes.
    """

    def __init__(self, scheduler: Scheduler, db: CostDB, *, cache_dir: str | Path | None = None,
                 calibration: str | None = None,
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.scheduler = scheduler
        self.db = db
        self.cache_dir = cache_dir
        self.deployed = DeployedModels(db, calibration, cache_dir, on_warning)
        self._export_s = 0.0
        self.energy_targets: list[Target] = []  # set by check_energy

    def export_seconds(self) -> float:
        return self._export_s

    def check_targets(self, targets: Sequence[Target]) -> None:
        for target in targets:
            job = Job.on_class(b"", target.name) if target.is_class else Job.on_device(b"", target.name)
            self.scheduler.eligible_devices(job)  # UnknownDevice / UnknownClass

    def check_energy(self, targets: Sequence[Target]) -> None:
        """Refuse a target with a device whose Describe shows no readable energy meter,
        naming the device and each telemetry source's reason. A device that does not
        answer is not judged here: its first result is (see the driver). From then on the
        jobs of these targets need energy: a cached measurement without it is measured again."""
        self.energy_targets = list(targets)
        for target in targets:
            for name in self.scheduler.devices_of(SchedulerTarget(target.name, target.is_class)):
                description = self.scheduler.describe_device(name)
                if description is None:
                    continue
                if any(t.available for t in description.telemetry):
                    continue
                reasons = "; ".join(f"{t.name}: {t.reason}" for t in description.telemetry)
                raise SearchConfigError(
                    f"energy[{target.key}]: device {name} has no readable energy meter "
                    f"({reasons or 'its agent reports no telemetry sources'}); measure energy "
                    "on a device with NVML, a Jetson's INA3221 rails or readable RAPL, or "
                    f"drop energy[{target.key}]"
                )

    def check_precisions(self, targets: Sequence[Target],
                         genes: Mapping[str, Sequence[str]]) -> None:
        """Variants are made from the ONNX export: a target of another runtime (LiteRT takes
        ``.tflite``) may only be fp32 (SearchConfigError)."""
        formats = self._formats(targets) if genes else {}
        for key, model_format in formats.items():
            if model_format != agent_pb2.MODEL_FORMAT_ONNX and list(genes[key]) != ["fp32"]:
                raise SearchConfigError(
                    f"target {key} runs models of another format than ONNX (e.g. LiteRT's "
                    f".tflite); precision {'|'.join(genes[key])} is made from the ONNX export: "
                    f"give it precision=fp32 (--device {key}:precision=fp32)")

    def _export(self, space: SearchSpace, arch: Arch, model_format: int) -> ModelRef:
        from fleetnas.controller.export import register_arch

        started = time.monotonic()
        try:
            return register_arch(self.db, space, arch, cache_dir=self.cache_dir,
                                 model_format=model_format)
        finally:
            self._export_s += time.monotonic() - started

    def _deploy(self, space: SearchSpace, request: MeasureRequest, fp32: dict[int, ModelRef],
                formats: dict[str, int], targets: Sequence[Target]) -> dict[str, ModelRef]:
        """The model each target is sent (by target key): the export in its format, or for
        a precision gene other than fp32 the recorded variant of the ONNX export."""
        if not isinstance(space, PrecisionSpace):
            return {t.key: fp32[formats[t.key]] for t in targets}
        from fleetnas.controller.compress import CalibrationError

        try:
            return {t.key: self.deployed.ref(fp32[formats[t.key]],
                                             space.precision_of(request.arch, t.key),
                                             space=space.base, arch=request.arch.arch)
                    for t in targets}  # fmt: skip
        except CalibrationError as exc:  # the user's data, not the candidate: stop the search
            raise SearchConfigError(f"calibration: {exc} (check --calibration)") from exc

    def _formats(self, targets: Sequence[Target]) -> dict[str, int]:
        """Each target's model format by target key (its runtime's, see the module docstring)."""
        return {
            t.key: self.scheduler.model_format_for(
                SchedulerTarget(t.name, t.is_class), t.request())
            for t in targets
        }  # fmt: skip

    def measure(
        self,
        space: SearchSpace,
        requests: Sequence[MeasureRequest],
        targets: Sequence[Target],
        *,
        on_progress: MeasureProgress | None = None,
    ) -> list[CandidateMeasurement]:
        from fleetnas.controller.compress import CompressError
        from fleetnas.controller.export import ConverterMissing, ExportError

        formats = self._formats(targets)
        refs: dict[tuple[int, int], ModelRef] = {}  # (candidate, format) -> model
        sent: dict[int, dict[str, ModelRef]] = {}  # candidate -> target key -> model
        errors: dict[int, str] = {}
        network = space.base if isinstance(space, PrecisionSpace) else space
        for request in requests:  # export everything first: torch never runs beside a benchmark
            arch = request.arch.arch if network is not space else request.arch
            for model_format in dict.fromkeys(formats.values()):
                try:
                    refs[request.candidate_id, model_format] = self._export(
                        network, arch, model_format)
                except ConverterMissing:
                    raise  # not the candidate's fault: stop, the message names the install
                except ExportError as exc:
                    errors[request.candidate_id] = f"export failed: {exc}"
                    break
            if request.candidate_id in errors:
                continue
            mine = {fmt: ref for (cid, fmt), ref in refs.items() if cid == request.candidate_id}
            started = time.monotonic()  # making a precision variant counts as exporting
            try:
                sent[request.candidate_id] = self._deploy(space, request, mine, formats, targets)
            except SearchConfigError:
                raise
            except (CompressError, ValueError) as exc:
                errors[request.candidate_id] = f"precision variant failed: {exc}"
            finally:
                self._export_s += time.monotonic() - started
        jobs: list[Job] = []
        energy = {t.key for t in self.energy_targets}
        for request in requests:
            if request.candidate_id in errors:
                continue
            for target in targets:
                make = Job.on_class if target.is_class else Job.on_device
                job = make(sent[request.candidate_id][target.key], target.name,
                           target.request(), tag=(request.candidate_id, target.key))
                jobs.append(replace(job, needs_energy=target.key in energy))
        outcomes: dict[tuple[int, str], JobOutcome] = {}

        def progress(p: Any) -> None:
            outcomes[p.outcome.job.tag] = p.outcome
            if on_progress is not None:
                cid, key = p.outcome.job.tag
                on_progress(p.done, p.total, f"#{cid} on {key}: {p.outcome.status.value}")

        if jobs:
            for outcome in self.scheduler.run(jobs, on_progress=progress):
                outcomes[outcome.job.tag] = outcome
        out = []
        for request in requests:
            cid = request.candidate_id
            if cid in errors:
                out.append(CandidateMeasurement(cid, None, {}, errors[cid]))
                continue
            results = {t.key: _result(outcomes[(cid, t.key)]) for t in targets}
            out.append(CandidateMeasurement(cid, _candidate_sha(refs, cid), results))
        return out


def _candidate_sha(refs: dict[tuple[int, int], ModelRef], candidate_id: int) -> str | None:
    """The model a candidate is recorded with: its ONNX export when it has one (what
    ``fleetnas export`` writes), else its first export."""
    mine = {fmt: ref for (cid, fmt), ref in refs.items() if cid == candidate_id}
    chosen = mine.get(agent_pb2.MODEL_FORMAT_ONNX) or next(iter(mine.values()), None)
    return None if chosen is None else chosen.sha256


def _result(outcome: JobOutcome) -> TargetResult:
    m = outcome.measurement
    if outcome.ok and m is not None:
        return TargetResult(
            latency_ms=m.latency_ms, peak_memory_bytes=float(m.peak_rss_bytes),
            energy_mj=m.energy_mj, energy_reason=m.energy_reason,
            measurement_uid=m.uid, device=outcome.device,
            ran=outcome.status is OutcomeStatus.MEASURED and outcome.duplicate_of is None,
        )  # fmt: skip
    error = outcome.error
    return TargetResult(
        latency_ms=None, device=outcome.device,
        error=outcome.error_message or "failed",
        permanent=isinstance(error, PERMANENT_ERRORS),
    )  # fmt: skip


class CallableMeasurer(Measurer):
    """``fn(arch, target) -> latency ms`` stands in for devices (benches, experiments).

    ``energy(arch, target) -> mJ per inference``, when given, stands in for the
    devices' energy meters (without it a search needing ``energy[T]`` is refused).
    ``calls`` counts the (candidate, target) evaluations; a ValueError or
    ArithmeticError from ``fn`` (or ``energy``) is a permanent failure of that candidate.
    """

    def __init__(self, fn: Callable[[Arch, Target], float],
                 energy: Callable[[Arch, Target], float] | None = None) -> None:
        self.fn = fn
        self.energy = energy
        self.calls = 0

    def check_energy(self, targets: Sequence[Target]) -> None:
        if targets and self.energy is None:
            raise SearchConfigError(
                f"energy[{targets[0].key}]: this CallableMeasurer has no energy function; "
                "pass CallableMeasurer(fn, energy=...)"
            )

    def measure(
        self,
        space: SearchSpace,
        requests: Sequence[MeasureRequest],
        targets: Sequence[Target],
        *,
        on_progress: MeasureProgress | None = None,
    ) -> list[CandidateMeasurement]:
        out = []
        total = len(requests) * len(targets)
        done = 0
        for request in requests:
            results = {}
            for target in targets:
                self.calls += 1
                try:
                    value = float(self.fn(request.arch, target))
                    mj = None if self.energy is None else float(self.energy(request.arch, target))
                    results[target.key] = TargetResult(latency_ms=value, energy_mj=mj, ran=True)
                except (ValueError, ArithmeticError) as exc:
                    results[target.key] = TargetResult(None, error=str(exc), permanent=True)
                done += 1
                if on_progress is not None:
                    on_progress(done, total, f"#{request.candidate_id} on {target.key}")
            out.append(CandidateMeasurement(request.candidate_id, None, results))
        return out
