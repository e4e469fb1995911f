"""A phone's live state (thermal zones, cpufreq, battery, thermal status) and its warnings.

One ``adb shell`` call per sample reads:

* ``/sys/class/thermal/thermal_zone*/{type,temp}`` (millidegrees). The
  benchmark heats the SoC, so the headline temperature is the hottest
  *SoC* zone (CPU clusters, CPU subsystem, GPU, "soc"/"ap" zones), not the
  skin, battery, USB port or crystal sensors;
* cpufreq policies, read by the host agent's ``read_cpu_frequency`` (a
  policy capped below 80% of its hardware maximum is throttled);
* ``dumpsys thermalservice``: Android's own throttling verdict, ``Thermal
  Status: N`` (0 NONE, 1 LIGHT, 2 MODERATE, 3 SEVERE, 4 CRITICAL,
  5 EMERGENCY, 6 SHUTDOWN; ``PowerManager.THERMAL_STATUS_*``) and the HAL's
  temperatures (used for the SoC temperature when no zone is readable);
* ``dumpsys battery``: ``temperature: 281`` is tenths of a degree;
* ``/proc/loadavg``, ``/proc/stat`` (CPU busy share since the sampler's
  previous sample), ``/proc/meminfo``.

:func:`phone_warnings` gives the host agent's own warnings (throttling,
frequency drop, hot, noisy host: ``device_state.state_warnings`` on the
:meth:`PhoneState.to_proto` states) plus Android's thermal status and a
warm battery.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from fleetnas.agent.android import _remote
from fleetnas.agent.android._adb import DEFAULT_TIMEOUT_S, Adb
from fleetnas.agent.android._device import POLICY_FILES
from fleetnas.agent.device_state import CpuFrequency, read_cpu_frequency, state_warnings
from fleetnas.api.v1 import agent_pb2

THERMAL_STATUS_NAMES = ("NONE", "LIGHT", "MODERATE", "SEVERE", "CRITICAL", "EMERGENCY", "SHUTDOWN")
# From LIGHT on Android itself says the device is throttling; from SEVERE
# on it limits performance hard: such a measurement says little about the
# phone's normal speed.
THROTTLING_STATUS = 1
SEVERE_STATUS = 3
# Phones start limiting charging and, on many models, CPU clocks when the
# battery passes about 40-45 °C; a battery this warm means the whole phone
# is heat-soaked.
BATTERY_WARM_C = 40.0
HAL_TYPE_CPU = 0
HAL_TYPE_SOC = 13

STATE_PATTERNS = (
    "sys/class/thermal/thermal_zone*/type",
    "sys/class/thermal/thermal_zone*/temp",
    *(f"sys/devices/system/cpu/cpufreq/policy*/{name}" for name in POLICY_FILES),
    "proc/loadavg",
    "proc/stat",
    "proc/meminfo",
)
STATE_COMMANDS = {"battery": "dumpsys battery", "thermal": "dumpsys thermalservice"}

# Zone types of the SoC (Qualcomm cpu-0-0-usr / cpuss-0 / gpuss-0, Exynos
# and Tensor BIG/MID/LITTLE/G3D, MediaTek mtktscpu / soc_max / cpu_big0, ...).
_SOC_ZONE = re.compile(
    r"(?i)^(cpu|cpuss|gpu|gpuss|soc|ap$|apc|kryo|cluster|tsens|mtktscpu|big|mid|little|g3d|tpu)"
)
_ZONE_DIR = re.compile(r"^sys/class/thermal/(thermal_zone\d+)/(type|temp)$")
_HAL_TEMPERATURE = re.compile(
    r"Temperature\{mValue=([-\d.eE+]+|NaN), mType=(-?\d+), mName=([^,]*), mStatus=(-?\d+)\}"
)
_SANE_C = (-40.0, 150.0)


@dataclass(frozen=True)
class ThermalZone:
    name: str  # thermal_zoneN
    type: str
    temperature_c: float


@dataclass(frozen=True)
class HalTemperature:
    name: str
    type: int
    temperature_c: float
    status: int


@dataclass(frozen=True)
class ThermalService:
    """``dumpsys thermalservice``: the status and the HAL's current temperatures."""

    status: int | None
    temperatures: tuple[HalTemperature, ...] = ()


@dataclass(frozen=True)
class Battery:
    """``dumpsys battery``: temperature (°C), level (%), and what powers it."""

    temperature_c: float | None
    level: int | None
    powered: tuple[str, ...] = ()


def parse_thermalservice(text: str) -> ThermalService:
    """Status and temperatures; the HAL's "Current temperatures" block wins over the cache."""
    match = re.search(r"Thermal Status:\s*(-?\d+)", text)
    current: list[HalTemperature] = []
    cached: list[HalTemperature] = []
    block: list[HalTemperature] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Current temperatures from HAL"):
            block = current
        elif stripped.startswith("Cached temperatures"):
            block = cached
        elif stripped.endswith(":") and not stripped.startswith("Temperature"):
            block = None
        elif block is not None:
            found = _HAL_TEMPERATURE.search(stripped)
            if found and found.group(1) != "NaN":
                block.append(HalTemperature(name=found.group(3), type=int(found.group(2)),
                                            temperature_c=float(found.group(1)),
                                            status=int(found.group(4))))
    return ThermalService(
        status=int(match.group(1)) if match else None,
        temperatures=tuple(current or cached),
    )


def parse_battery(text: str) -> Battery:
    """Parse ``dumpsys battery`` (two-space indented ``key: value`` lines)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        key = key.strip()
        if sep and key and key not in values:
            values[key] = value.strip()
    temperature = _int(values.get("temperature"))
    powered = tuple(
        source for source in ("AC", "USB", "Wireless", "Dock")
        if values.get(f"{source} powered") == "true"
    )
    return Battery(
        temperature_c=temperature / 10.0 if temperature is not None else None,
        level=_int(values.get("level")),
        powered=powered,
    )


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_thermal_zones(files: Mapping[str, str]) -> tuple[ThermalZone, ...]:
    """Zones with both a type and a sane temperature, by zone number."""
    parts: dict[str, dict[str, str]] = {}
    for path, text in files.items():
        match = _ZONE_DIR.match(path)
        if match:
            parts.setdefault(match.group(1), {})[match.group(2)] = text.strip()
    zones: list[ThermalZone] = []
    for name in sorted(parts, key=lambda n: int(n[len("thermal_zone"):])):
        milli = _int(parts[name].get("temp"))
        if milli is None:
            continue
        celsius = milli / 1000.0
        if _SANE_C[0] < celsius < _SANE_C[1]:
            zones.append(ThermalZone(name=name, type=parts[name].get("type", ""),
                                     temperature_c=celsius))
    return tuple(zones)


def soc_temperature(
    zones: tuple[ThermalZone, ...], service: ThermalService
) -> float | None:
    """The hottest SoC zone; else the HAL's hottest CPU/SoC temperature; else None."""
    soc = [z.temperature_c for z in zones if _SOC_ZONE.match(z.type)]
    if soc:
        return max(soc)
    hal = [t.temperature_c for t in service.temperatures if t.type in (HAL_TYPE_CPU, HAL_TYPE_SOC)]
    return max(hal) if hal else None


@dataclass(frozen=True)
class PhoneState:
    """One snapshot of a phone. ``cpu_percent`` is None for a sampler's first sample."""

    timestamp: float
    zones: tuple[ThermalZone, ...]
    soc_temperature_c: float | None
    thermal: ThermalService
    battery: Battery
    frequency: CpuFrequency
    load_1m: float
    cpu_percent: float | None
    memory_available_bytes: int

    @property
    def thermal_status(self) -> int | None:
        return self.thermal.status

    @property
    def throttled(self) -> bool:
        """Android reports throttling, or a cpufreq policy is capped well below its maximum."""
        return self.frequency.capped or (self.thermal.status or 0) >= THROTTLING_STATUS

    def to_proto(self) -> agent_pb2.DeviceState:
        """The v1 ``DeviceState``; ``others_cpu_percent`` is the whole phone's busy share
        (nothing of the agent runs on the phone between benchmarks)."""
        busy = self.cpu_percent or 0.0
        return agent_pb2.DeviceState(
            timestamp=self.timestamp,
            freq_current_mhz=self.frequency.current_mhz,
            freq_max_mhz=self.frequency.max_mhz,
            temperature_available=self.soc_temperature_c is not None,
            temperature_c=self.soc_temperature_c or 0.0,
            load_1m=self.load_1m,
            cpu_percent=busy,
            others_cpu_percent=busy,
            memory_available_bytes=self.memory_available_bytes,
            throttled=self.throttled,
        )


class PhoneStateSampler:
    """Samples a phone's state; remembers ``/proc/stat`` to give CPU busy shares.

    Thread-safe. One sample costs one ``adb shell`` call.
    """

    def __init__(self, adb: Adb, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._adb = adb
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._last_cpu: tuple[int, int] | None = None

    def sample(self) -> PhoneState:
        """A snapshot now; raises the adb errors of ``Adb.shell``."""
        snap = _remote.fetch(self._adb, STATE_PATTERNS, STATE_COMMANDS, timeout_s=self._timeout_s)
        timestamp = time.time()
        with snap.materialize() as root:
            frequency = read_cpu_frequency(root)
        zones = parse_thermal_zones(snap.files)
        service = parse_thermalservice(snap.outputs.get("thermal", ""))
        cpu = _cpu_times(snap.file("proc/stat"))
        with self._lock:
            previous, self._last_cpu = self._last_cpu, cpu or self._last_cpu
        return PhoneState(
            timestamp=timestamp,
            zones=zones,
            soc_temperature_c=soc_temperature(zones, service),
            thermal=service,
            battery=parse_battery(snap.outputs.get("battery", "")),
            frequency=frequency,
            load_1m=_load_1m(snap.file("proc/loadavg")),
            cpu_percent=_busy_percent(previous, cpu),
            memory_available_bytes=_mem_available(snap.file("proc/meminfo")),
        )


def _cpu_times(text: str | None) -> tuple[int, int] | None:
    """(total, idle incl. iowait) jiffies from the first ``cpu`` line of /proc/stat."""
    for line in (text or "").splitlines():
        if line.startswith("cpu "):
            try:
                values = [int(v) for v in line.split()[1:]]
            except ValueError:
                return None
            if len(values) < 4:
                return None
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            # guest time is already counted in user time
            return sum(values[:8]), idle
    return None


def _busy_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[0] <= before[0]:
        return None
    total = after[0] - before[0]
    idle = after[1] - before[1]
    return max(0.0, min(100.0, 100.0 * (1.0 - idle / total)))


def _load_1m(text: str | None) -> float:
    try:
        return float((text or "").split()[0])
    except (IndexError, ValueError):
        return 0.0


def _mem_available(text: str | None) -> int:
    match = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text or "", re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def status_name(status: int) -> str:
    return THERMAL_STATUS_NAMES[status] if 0 <= status < len(THERMAL_STATUS_NAMES) else "UNKNOWN"


def phone_warnings(
    before: PhoneState, after: PhoneState, *, threads_used: int, logical_cores: int
) -> list[str]:
    """Warnings for a measurement taken between ``before`` and ``after`` on a phone.

    The host agent's warnings (same texts, same thresholds) plus Android's
    thermal status (LIGHT or worse: throttling; SEVERE or worse: the result
    does not represent the phone's normal speed) and a battery at or above
    BATTERY_WARM_C. ``threads_used`` 0 means all cores.
    """
    warnings = state_warnings(
        before.to_proto(), after.to_proto(), threads_used=threads_used,
        logical_cores=logical_cores,
    )
    statuses = [(label, s.thermal_status) for label, s in (("before", before), ("after", after))
                if s.thermal_status is not None]
    worst = max((status for _, status in statuses), default=0)
    if worst >= THROTTLING_STATUS:
        figures = ", ".join(f"{status_name(v)} ({v}) {label}" for label, v in statuses)
        warnings.append(f"throttling: Android thermal status {figures} the run")
    if worst >= SEVERE_STATUS:
        warnings.append(
            f"severe throttling: Android thermal status {status_name(worst)}; the result does "
            "not represent this phone's normal speed (let it cool, then measure again)"
        )
    battery = max((t for t in (before.battery.temperature_c, after.battery.temperature_c)
                   if t is not None), default=None)
    if battery is not None and battery >= BATTERY_WARM_C:
        warnings.append(
            f"warm battery: {battery:.1f} °C (>= {BATTERY_WARM_C:.0f} °C); the phone is "
            "heat-soaked and may limit its clocks"
        )
    return warnings
