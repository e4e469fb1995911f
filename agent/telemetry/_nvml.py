"""NVIDIA GPUs through NVML (the ``pynvml`` module of ``nvidia-ml-py``).

``nvidia-ml-py`` is optional (the ``agent-gpu`` extra) and imported only when
an :class:`NvmlSource` is first used; without it, or without a loaded
driver, the source reports itself unavailable with the reason. Tests pass a
stand-in module through the ``nvml`` parameter; it must be shaped like
``pynvml`` for every name in :data:`PYNVML_NAMES`.

Energy: NVML's total-energy counter (mJ since the driver loaded; Volta and
newer) when the GPU has it; otherwise power draw sampled every
``power_period_s`` and integrated. The counter is refreshed only every
20-100 ms (NVIDIA does not specify it per GPU; PETSc's docs quote that
range), so its resolution includes one ``ENERGY_COUNTER_UPDATE_S`` of energy
at each edge, and loops should run for seconds, not milliseconds. On many
data-centre GPUs the power draw NVML reports is itself a ~1 s average, so
the integrating fallback smooths fast changes; its reading says so through
its method name.

Cost: ``describe`` makes 8-9 NVML queries per GPU, ``sample`` 7 (the time of
a query was not measured here: no GPU). NVML is thread-safe;
this module serialises only its own start-up.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fleetnas.agent.telemetry._base import (
    EnergyMeter,
    SensorError,
    SourceStatus,
    TelemetrySource,
    Unreadable,
    UnreadableLog,
)
from fleetnas.agent.telemetry._meters import (
    Counter,
    CounterMeter,
    PowerIntegratingMeter,
    UnreadableMeter,
)

T = TypeVar("T")

INSTALL_HINT = "pip install 'fleetnas[agent-gpu]' (it brings nvidia-ml-py)"
ENERGY_COUNTER_UPDATE_S = 0.1
POWER_RESOLUTION_W = 0.001  # nvmlDeviceGetPowerUsage reports integer milliwatts
METHOD_COUNTER = "nvml-energy-counter"
METHOD_POWER = "nvml-power-integration"

# Bit -> name of nvmlClocksEventReason* (formerly nvmlClocksThrottleReason*), from nvml.h.
CLOCK_EVENT_REASONS: tuple[tuple[int, str], ...] = (
    (0x001, "gpu_idle"),
    (0x002, "applications_clocks_setting"),
    (0x004, "sw_power_cap"),
    (0x008, "hw_slowdown"),
    (0x010, "sync_boost"),
    (0x020, "sw_thermal_slowdown"),
    (0x040, "hw_thermal_slowdown"),
    (0x080, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)
# Reasons that mean the GPU runs slower than it was configured to (power or heat);
# idle, application clocks, sync boost and display clocks are settings or rest.
THROTTLING_REASONS = frozenset(
    {
        "sw_power_cap",
        "hw_slowdown",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
    }
)

# Every pynvml name this module touches; a stand-in module must provide them all.
PYNVML_NAMES: tuple[str, ...] = (
    "NVMLError",
    "NVMLError_NotSupported",
    "NVMLError_FunctionNotFound",
    "NVML_CLOCK_SM",
    "NVML_CLOCK_MEM",
    "NVML_TEMPERATURE_GPU",
    "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN",
    "NVML_DEVICE_MIG_ENABLE",
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlSystemGetDriverVersion",
    "nvmlSystemGetCudaDriverVersion",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetCudaComputeCapability",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetTemperatureThreshold",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetComputeRunningProcesses",
)


def decode_clock_event_reasons(mask: int) -> tuple[str, ...]:
    """Names of the bits set in an NVML clocks-event (throttle) mask; unknown bits as hex."""
    names = [name for bit, name in CLOCK_EVENT_REASONS if mask & bit]
    unknown = mask & ~sum(bit for bit, _ in CLOCK_EVENT_REASONS)
    if unknown:
        names.append(f"unknown_0x{unknown:x}")
    return tuple(names)


def cuda_version_text(version: int) -> str:
    """NVML's CUDA driver version integer (12040) as text ("12.4")."""
    return f"{version // 1000}.{(version % 1000) // 10}"


@dataclass(frozen=True)
class GpuDescription:
    """Static facts of one GPU; ``None`` where NVML cannot tell (``unreadable`` says why)."""

    index: int
    name: str | None
    uuid: str | None
    memory_total_bytes: int | None
    compute_capability: str | None
    mig_mode: str | None  # "enabled" / "disabled"; None where the GPU has no MIG
    power_limit_w: float | None
    slowdown_temperature_c: float | None
    energy_method: str | None  # what energy_meter(index) will use; None: no energy here
    unreadable: tuple[Unreadable, ...] = ()


@dataclass(frozen=True)
class NvmlDescription:
    driver_version: str | None
    cuda_driver_version: str | None
    gpus: tuple[GpuDescription, ...]


@dataclass(frozen=True)
class GpuSample:
    """One GPU's state at ``timestamp`` (Unix seconds); ``None`` where NVML cannot tell."""

    index: int
    timestamp: float
    sm_clock_mhz: int | None
    memory_clock_mhz: int | None
    temperature_c: float | None
    power_w: float | None
    clock_event_reasons: tuple[str, ...] | None
    gpu_utilization_percent: int | None
    memory_utilization_percent: int | None
    memory_used_bytes: int | None
    unreadable: tuple[Unreadable, ...] = ()

    @property
    def throttled(self) -> bool | None:
        """Whether power or heat limits the clocks now; ``None`` when the reasons are unreadable."""
        if self.clock_event_reasons is None:
            return None
        return bool(THROTTLING_REASONS.intersection(self.clock_event_reasons))


@dataclass(frozen=True)
class NvmlSample:
    gpus: tuple[GpuSample, ...]


class NvmlSource(TelemetrySource[NvmlDescription, NvmlSample]):
    """NVML telemetry for every GPU the driver shows (NVML's index order, which is PCI order).

    ``nvml`` is the ``pynvml`` module to use (tests pass a stand-in); by
    default ``pynvml`` is imported on first use. NVML is initialised on first
    use and shut down by :meth:`close`.
    """

    name = "nvml"

    def __init__(self, *, nvml: Any = None, power_period_s: float = 0.02) -> None:
        self._nvml_override = nvml
        self._power_period_s = power_period_s
        self._lock = threading.Lock()
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._status: SourceStatus | None = None

    # -- start-up ---------------------------------------------------------------------------

    def _ensure(self) -> Any:
        """The initialised module, or ``None`` (with :attr:`_status` saying why)."""
        with self._lock:
            if self._status is None:
                self._status = self._open()
            return self._nvml if self._status.available else None

    def _open(self) -> SourceStatus:
        nvml = self._nvml_override
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")
            except ImportError:
                return SourceStatus(False, f"nvidia-ml-py is not installed: {INSTALL_HINT}")
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as err:
            return SourceStatus(
                False, f"NVML did not start: {err} (is the NVIDIA driver installed and loaded?)"
            )
        try:
            count = nvml.nvmlDeviceGetCount()
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except nvml.NVMLError as err:
            nvml.nvmlShutdown()
            return SourceStatus(False, f"NVML could not list the GPUs: {err}")
        if not handles:
            nvml.nvmlShutdown()
            return SourceStatus(False, "NVML found no NVIDIA GPU")
        self._nvml, self._handles = nvml, handles
        return SourceStatus(True)

    def status(self) -> SourceStatus:
        self._ensure()
        assert self._status is not None
        return self._status

    def close(self) -> None:
        with self._lock:
            if self._nvml is not None:
                try:
                    self._nvml.nvmlShutdown()
                except self._nvml.NVMLError:
                    pass  # shutting down a driver that went away: nothing left to release
            self._nvml, self._handles = None, []
            self._status = SourceStatus(False, "the NVML source was closed")

    # -- queries ----------------------------------------------------------------------------

    def _query(self, log: UnreadableLog, what: str, fn: Callable[..., T], *args: Any) -> T | None:
        try:
            return fn(*args)
        except self._nvml.NVMLError as err:
            log.add(what, _reason(self._nvml, err))
            return None

    def _handle(self, index: int) -> Any:
        if not 0 <= index < len(self._handles):
            raise ValueError(f"no GPU {index}: NVML shows GPUs 0..{len(self._handles) - 1}")
        return self._handles[index]

    def gpu_count(self) -> int:
        """How many GPUs NVML shows (0 when unavailable)."""
        return len(self._handles) if self._ensure() is not None else 0

    def describe(self) -> NvmlDescription | None:
        nvml = self._ensure()
        if nvml is None:
            return None
        log = UnreadableLog()
        driver = self._query(log, "driver version", nvml.nvmlSystemGetDriverVersion)
        cuda = self._query(log, "CUDA driver version", nvml.nvmlSystemGetCudaDriverVersion)
        gpus = tuple(self._describe_gpu(i) for i in range(len(self._handles)))
        return NvmlDescription(
            driver_version=driver,
            cuda_driver_version=cuda_version_text(cuda) if cuda is not None else None,
            gpus=gpus,
        )

    def _describe_gpu(self, index: int) -> GpuDescription:
        nvml, handle, log = self._nvml, self._handles[index], UnreadableLog()
        memory = self._query(log, "memory total", nvml.nvmlDeviceGetMemoryInfo, handle)
        capability = self._query(
            log, "compute capability", nvml.nvmlDeviceGetCudaComputeCapability, handle
        )
        mig = self._query(log, "MIG mode", nvml.nvmlDeviceGetMigMode, handle)
        limit_mw = self._query(log, "power limit", nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        slowdown = self._query(
            log,
            "slowdown temperature",
            nvml.nvmlDeviceGetTemperatureThreshold,
            handle,
            nvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
        )
        return GpuDescription(
            index=index,
            name=self._query(log, "name", nvml.nvmlDeviceGetName, handle),
            uuid=self._query(log, "UUID", nvml.nvmlDeviceGetUUID, handle),
            memory_total_bytes=int(memory.total) if memory is not None else None,
            compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
            mig_mode=(
                ("enabled" if mig[0] == nvml.NVML_DEVICE_MIG_ENABLE else "disabled")
                if mig is not None
                else None
            ),
            power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
            slowdown_temperature_c=float(slowdown) if slowdown is not None else None,
            energy_method=self._energy_method(index, log),
            unreadable=log.freeze(),
        )

    def sample(self) -> NvmlSample | None:
        if self._ensure() is None:
            return None
        return NvmlSample(gpus=tuple(self._sample_gpu(i) for i in range(len(self._handles))))

    def _sample_gpu(self, index: int) -> GpuSample:
        nvml, handle, log = self._nvml, self._handles[index], UnreadableLog()
        timestamp = time.time()
        sm = self._query(log, "SM clock", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
        mem_clock = self._query(
            log, "memory clock", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM
        )
        temperature = self._query(
            log, "temperature", nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU
        )
        power_mw = self._query(log, "power draw", nvml.nvmlDeviceGetPowerUsage, handle)
        reasons = self._clock_event_mask(handle, log)
        utilization = self._query(log, "utilisation", nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = self._query(log, "memory used", nvml.nvmlDeviceGetMemoryInfo, handle)
        return GpuSample(
            index=index,
            timestamp=timestamp,
            sm_clock_mhz=sm,
            memory_clock_mhz=mem_clock,
            temperature_c=float(temperature) if temperature is not None else None,
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            clock_event_reasons=decode_clock_event_reasons(reasons)
            if reasons is not None
            else None,
            gpu_utilization_percent=utilization.gpu if utilization is not None else None,
            memory_utilization_percent=utilization.memory if utilization is not None else None,
            memory_used_bytes=int(memory.used) if memory is not None else None,
            unreadable=log.freeze(),
        )

    def _clock_event_mask(self, handle: Any, log: UnreadableLog) -> int | None:
        """The clocks-event mask: the current name first, the pre-R535 name where it is missing."""
        nvml = self._nvml
        current = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if current is not None:
            try:
                return int(current(handle))
            except nvml.NVMLError_FunctionNotFound:
                pass  # a driver older than this pynvml: ask by the old name
            except nvml.NVMLError as err:
                log.add("clock event reasons", _reason(nvml, err))
                return None
        return self._query(
            log, "clock event reasons", nvml.nvmlDeviceGetCurrentClocksThrottleReasons, handle
        )

    # -- energy and memory ------------------------------------------------------------------

    def _energy_method(self, index: int, log: UnreadableLog) -> str | None:
        nvml, handle = self._nvml, self._handles[index]
        if (
            self._query(log, "energy counter", nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
            is not None
        ):
            return METHOD_COUNTER
        if self._query(log, "power draw", nvml.nvmlDeviceGetPowerUsage, handle) is not None:
            return METHOD_POWER
        return None

    def energy_meter(self, index: int = 0) -> EnergyMeter:
        """A meter for GPU ``index``: the energy counter, else integrated power, else unreadable.

        Raises ``ValueError`` for an index NVML does not show.
        """
        scope = f"GPU {index}"
        if self._ensure() is None:
            assert self._status is not None
            return UnreadableMeter(method=METHOD_COUNTER, scope=scope, reason=self._status.reason)
        nvml, handle, log = self._nvml, self._handle(index), UnreadableLog()
        method = self._energy_method(index, log)
        if method == METHOD_COUNTER:
            counter = Counter(
                scope, lambda: self._read(nvml.nvmlDeviceGetTotalEnergyConsumption, handle), 1e-3
            )
            return CounterMeter(
                [counter],
                method=METHOD_COUNTER,
                scope=scope,
                update_period_s=ENERGY_COUNTER_UPDATE_S,
            )
        if method == METHOD_POWER:
            return PowerIntegratingMeter(
                lambda: {scope: self._read(nvml.nvmlDeviceGetPowerUsage, handle) / 1000.0},
                method=METHOD_POWER,
                scope=scope,
                period_s=self._power_period_s,
                power_resolution_w=POWER_RESOLUTION_W,
            )
        reason = "; ".join(str(note) for note in log.freeze())
        return UnreadableMeter(
            method=METHOD_POWER, scope=scope, reason=f"NVML tells no energy: {reason}"
        )

    def _read(self, fn: Callable[..., int], *args: Any) -> int:
        """One NVML integer read for a meter; NVML errors become :class:`SensorError`."""
        try:
            return int(fn(*args))
        except self._nvml.NVMLError as err:
            raise SensorError(f"{fn.__name__}: {_reason(self._nvml, err)}") from err

    def process_gpu_memory(self, pid: int) -> tuple[int | None, str]:
        """(bytes of GPU memory process ``pid`` holds over all GPUs, reason when ``None``).

        ``None`` when NVML does not list the pid as a compute process (no CUDA
        context yet, or the agent runs in a container whose pids differ from
        the host's, which NVML reports) or cannot tell its usage (Windows WDDM).
        """
        nvml = self._ensure()
        if nvml is None:
            assert self._status is not None
            return None, self._status.reason
        total, found = 0, False
        for index, handle in enumerate(self._handles):
            try:
                processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except nvml.NVMLError as err:
                return None, f"GPU {index}: compute processes: {_reason(nvml, err)}"
            for process in processes:
                if process.pid != pid:
                    continue
                if process.usedGpuMemory is None:
                    return None, f"GPU {index}: NVML cannot tell pid {pid}'s memory"
                total, found = total + int(process.usedGpuMemory), True
        if not found:
            return None, (
                f"pid {pid} is not among NVML's compute processes (no CUDA context yet, or a "
                "container whose pids NVML does not see)"
            )
        return total, ""


def _reason(nvml: Any, err: Exception) -> str:
    if isinstance(err, nvml.NVMLError_NotSupported):
        return "not supported on this GPU"
    return f"NVML error: {err}"
