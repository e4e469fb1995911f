"""The agent's telemetry beyond the CPU, wired into Describe, Status and every benchmark.

:class:`DeviceTelemetry` holds one agent-lifetime instance of each telemetry
source that reads something here (NVML, Jetson, RAPL; see
``fleetnas.agent.telemetry``), and remembers why the others are missing.
Each source kind has a *part* that knows what it adds to the wire messages:

* Describe: NVML replaces ``gpus`` (nvidia-smi's) with its richer ones;
  Jetson fills ``jetson``; RAPL ``rapl``; ``telemetry`` lists every source
  probed, available or not, with the reason.
* DeviceState (Status, and before/after each benchmark): ``gpus`` and
  ``jetson`` samples.
* A benchmark (:meth:`DeviceTelemetry.job`): samples before, every
  ``watch_period_s`` during, and after the job (for warnings such as
  throttling, which a GPU shows only while busy); one energy meter per
  source, spanning the worker's whole job; NVML's peak GPU memory of the
  worker process. :meth:`JobTelemetry.finish` then puts the states,
  warnings, peak memory and energy into the result.

Energy is attributed to the worker's timed loop (``loop_start_ns`` ..
``loop_end_ns``, CLOCK_MONOTONIC like the meters) with
``fleetnas.agent.telemetry.attribute``; a result without that interval, a
paired result, or a meter that reads nothing gets an Energy with
``readable=false`` and the reason: never a guess. Sources other than the
three (tests inject them through ``create_server``) contribute energy only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from fleetnas.agent import telemetry_proto
from fleetnas.agent._freshest import Freshest
from fleetnas.agent.logs import get_logger
from fleetnas.agent.telemetry import (
    EnergyMeter,
    EnergyReading,
    GpuMemoryPeak,
    JetsonSource,
    NvmlSource,
    RaplSource,
    SampleWatch,
    TelemetrySource,
    attribute,
    energy_per_inference,
    gpu_warnings,
    jetson_warnings,
)
from fleetnas.api.v1 import agent_pb2

WATCH_PERIOD_S = 0.5
STATUS_MAX_AGE_S = 0.5
NO_LOOP_INTERVAL = "no timed-loop interval from the runtime"
PAIRED_NO_ENERGY = (
    "paired: the timed loop interleaves the reference model, so its energy is not the "
    "candidate's alone; measure energy with method plain"
)
Source: TypeAlias = "TelemetrySource[Any, Any]"


class _Part:
    """What one source adds to the wire messages; the base class adds energy only."""

    watch = False

    def __init__(self, source: Source) -> None:
        self.source = source
        self.description: Any = None

    def describe_into(self, description: agent_pb2.DeviceDescription) -> None:
        """Add this source's static facts (read once, at the agent's start)."""

    def state_into(self, state: agent_pb2.DeviceState, sample: Any) -> None:
        """Add one of this source's samples to ``state``."""

    def warnings(self, samples: Sequence[Any]) -> list[str]:
        return []

    def energy_meter(self) -> EnergyMeter:
        return self.source.energy_meter()


class _NvmlPart(_Part):
    watch = True

    def describe_into(self, description: agent_pb2.DeviceDescription) -> None:
        self.description = nvml = self.source.describe()
        if nvml is None:
            return
        del description.gpus[:]  # NVML tells more than nvidia-smi did
        description.gpus.extend(telemetry_proto.gpu_info(g, nvml) for g in nvml.gpus)

    def state_into(self, state: agent_pb2.DeviceState, sample: Any) -> None:
        state.gpus.extend(telemetry_proto.gpu_state(g) for g in sample.gpus)

    def warnings(self, samples: Sequence[Any]) -> list[str]:
        return gpu_warnings(samples, self.description)


class _JetsonPart(_Part):
    watch = True

    def describe_into(self, description: agent_pb2.DeviceDescription) -> None:
        jetson = self.source.describe()
        if jetson is not None:
            description.jetson.CopyFrom(telemetry_proto.jetson_info(jetson))

    def state_into(self, state: agent_pb2.DeviceState, sample: Any) -> None:
        state.jetson.CopyFrom(telemetry_proto.jetson_state(sample))

    def warnings(self, samples: Sequence[Any]) -> list[str]:
        return jetson_warnings(samples)


class _RaplPart(_Part):
    def describe_into(self, description: agent_pb2.DeviceDescription) -> None:
        rapl = self.source.describe()
        if rapl is not None:
            description.rapl.CopyFrom(telemetry_proto.rapl_info(rapl))


_PARTS: dict[type, type[_Part]] = {NvmlSource: _NvmlPart, JetsonSource: _JetsonPart,
                                   RaplSource: _RaplPart}  # fmt: skip


def _part(source: Source) -> _Part:
    kind = next((p for cls, p in _PARTS.items() if isinstance(source, cls)), _Part)
    return kind(source)


class DeviceTelemetry:
    """Agent-lifetime telemetry sources. Thread-safe (the sources are); close when done.

    ``sources`` are the sources to use (the caller hands over ownership);
    ``statuses`` what Describe says about every source probed (default: the
    given ones, available). ``idle_s`` > 0 measures an idle baseline of that
    many seconds before each job, with a meter of the same source, for the
    net energy figures.
    """

    def __init__(
        self,
        sources: Sequence[Source] = (),
        *,
        statuses: Sequence[agent_pb2.TelemetrySourceInfo] | None = None,
        watch_period_s: float = WATCH_PERIOD_S,
        idle_s: float = 0.0,
    ) -> None:
        if idle_s < 0:
            raise ValueError(f"idle_s must be >= 0, got {idle_s}")
        self._parts = [_part(s) for s in sources]
        self._statuses = list(statuses) if statuses is not None else [
            agent_pb2.TelemetrySourceInfo(name=s.name, available=True) for s in sources
        ]  # fmt: skip
        self._watch_period_s = watch_period_s
        self._idle_s = idle_s

    @classmethod
    def probe(cls, *, root: Path = Path("/"), idle_s: float = 0.0) -> DeviceTelemetry:
        """The sources that read something on this machine; the others' reasons for Describe."""
        statuses, found = [], []
        for source in (NvmlSource(), JetsonSource(root=root), RaplSource(root=root)):
            status = source.status()
            statuses.append(agent_pb2.TelemetrySourceInfo(
                name=source.name, available=status.available, reason=status.reason))
            if status.available:
                found.append(source)
            else:
                source.close()
        return cls(found, statuses=statuses, idle_s=idle_s)

    def describe_into(self, description: agent_pb2.DeviceDescription) -> None:
        """Add every source's static facts and the probe's statuses to ``description``."""
        for part in self._parts:
            part.describe_into(description)
        description.telemetry.extend(self._statuses)

    def sample(self) -> tuple[agent_pb2.DeviceState, list[Any]]:
        """A DeviceState with only the telemetry fields set, and the raw samples (one per
        part, ``None`` where the source read nothing)."""
        state = agent_pb2.DeviceState()
        raw = [part.source.sample() for part in self._parts]
        for part, sample in zip(self._parts, raw, strict=True):
            if sample is not None:
                part.state_into(state, sample)
        return state, raw

    def status_state(self) -> Callable[[], agent_pb2.DeviceState]:
        """A function for Status: the telemetry fields at most STATUS_MAX_AGE_S old, never
        waiting on another caller (see ``_freshest``)."""
        freshest = Freshest(lambda: self.sample()[0], STATUS_MAX_AGE_S)
        return freshest.get

    def job(self, worker_pid: Callable[[], int | None]) -> JobTelemetry:
        """Telemetry around one benchmark job; ``worker_pid`` returns the running worker's pid."""
        return JobTelemetry(self, worker_pid)

    @property
    def parts(self) -> list[_Part]:
        return self._parts

    @property
    def idle_s(self) -> float:
        return self._idle_s

    @property
    def watch_period_s(self) -> float:
        return self._watch_period_s

    def close(self) -> None:
        for part in self._parts:
            part.source.close()


class JobTelemetry:
    """Samples, meters and GPU-memory polling around one job: a context manager, then
    :meth:`finish`. Everything started in ``__enter__`` is stopped (threads joined) in
    ``__exit__``, also when the job raises."""

    def __init__(self, telemetry: DeviceTelemetry, worker_pid: Callable[[], int | None]) -> None:
        self._telemetry = telemetry
        self._worker_pid = worker_pid
        self._before = agent_pb2.DeviceState()
        self._after = agent_pb2.DeviceState()
        self._samples: list[list[Any]] = [[] for _ in telemetry.parts]
        self._watches: list[SampleWatch[Any] | None] = []
        self._meters: list[EnergyMeter] = []
        self._readings: list[EnergyReading] = []
        self._idle: list[EnergyReading | None] = []
        self._memory: GpuMemoryPeak | None = None
        self._peak: agent_pb2.GpuMemoryPeak | None = None

    def __enter__(self) -> JobTelemetry:
        parts = self._telemetry.parts
        self._before, raw = self._telemetry.sample()
        self._keep(raw)
        self._idle = [self._idle_reading(p) for p in parts]
        self._watches = [
            SampleWatch(p.source.sample, period_s=self._telemetry.watch_period_s) if p.watch
            else None for p in parts
        ]  # fmt: skip
        self._meters = [p.energy_meter() for p in parts]
        nvml = next((p.source for p in parts if isinstance(p, _NvmlPart)), None)
        if nvml is not None:
            self._memory = GpuMemoryPeak(nvml, self._worker_pid)
        try:
            for watch in self._watches:
                if watch is not None:
                    watch.start()
            for meter in self._meters:
                meter.start()
            if self._memory is not None:
                self._memory.start()
        except BaseException:
            self._stop()
            raise
        return self

    def _idle_reading(self, part: _Part) -> EnergyReading | None:
        if self._telemetry.idle_s <= 0:
            return None
        meter = part.energy_meter()
        with meter:
            time.sleep(self._telemetry.idle_s)
        return meter.reading

    def _keep(self, raw: list[Any]) -> None:
        for kept, sample in zip(self._samples, raw, strict=True):
            if sample is not None:
                kept.append(sample)

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        for meter in self._meters:
            if meter.running:
                self._readings.append(meter.stop())
        for kept, watch in zip(self._samples, self._watches, strict=False):
            if watch is not None and watch.watching:
                kept.extend(watch.stop())
        if self._memory is not None and self._memory.polling:
            peak = self._memory.stop()
            self._peak = agent_pb2.GpuMemoryPeak(polls=peak.polls, period_s=peak.period_s,
                                                 reason=peak.reason)
            if peak.peak_bytes is not None:
                self._peak.peak_bytes = peak.peak_bytes
        self._after, raw = self._telemetry.sample()
        self._keep(raw)

    def finish(self, result: agent_pb2.BenchmarkResult) -> None:
        """Put states, warnings, peak GPU memory and energy into ``result`` (the job's)."""
        result.state_before.MergeFrom(self._before)
        result.state_after.MergeFrom(self._after)
        for part, samples in zip(self._telemetry.parts, self._samples, strict=True):
            result.warnings.extend(part.warnings(samples))
        if self._peak is not None:
            result.gpu_memory.CopyFrom(self._peak)
        for part, reading, idle in zip(self._telemetry.parts, self._readings, self._idle,
                                       strict=True):
            result.energy.append(loop_energy(part.source.name, reading, result, idle))


def loop_energy(
    source: str,
    job: EnergyReading,
    result: agent_pb2.BenchmarkResult,
    idle: EnergyReading | None = None,
) -> agent_pb2.Energy:
    """The Energy of one meter's ``job`` reading attributed to ``result``'s timed loop."""
    start_ns, end_ns, n = result.loop_start_ns, result.loop_end_ns, result.timed_inferences
    reason = ""
    if result.settings.method == agent_pb2.METHOD_PAIRED:
        reason = PAIRED_NO_ENERGY
    elif not (start_ns and end_ns > start_ns and n):
        reason = NO_LOOP_INTERVAL
    if reason:
        loop = EnergyReading.unreadable(
            method=job.method, scope=job.scope,
            interval_s=max(0, end_ns - start_ns) / 1e9, reason=job.reason or reason,
        )  # fmt: skip
        return telemetry_proto.energy(source, loop, n, None)
    loop = attribute(job, start_ns / 1e9, end_ns / 1e9)
    try:
        per = energy_per_inference(loop, n, idle=idle)
    except ValueError as exc:  # an idle baseline that does not match: drop the net figure
        get_logger().warning("idle baseline not used", extra={"reason": str(exc)})
        per = energy_per_inference(loop, n)
    return telemetry_proto.energy(source, loop, n, per)
