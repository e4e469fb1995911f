"""Live device state (frequency, temperature, load, throttling) and measurement warnings.

The agent samples the state right before and right after each benchmark and
attaches both to the result, with :func:`state_warnings` saying in words what
may have spoiled the measurement: throttling, heat, other load on the host.

Sources (all optional; a device that exposes none of them still works):

* frequency: ``/sys/devices/system/cpu/cpufreq/policy*/`` (or ``cpu*/cpufreq/``),
  then ``/proc/cpuinfo`` "cpu MHz", then ``psutil.cpu_freq()``;
* temperature: the hottest ``/sys/class/thermal/thermal_zone*/temp``, then
  ``psutil.sensors_temperatures()``;
* throttling: the Raspberry Pi firmware's ``get_throttled`` word, x86 thermal
  throttle counters (``cpu*/thermal_throttle/*_throttle_count``), and a
  frequency policy capped below the hardware maximum.

File reads go through ``root`` so tests can use a fake tree; psutil fallbacks
that read the real machine are consulted only when ``root`` is the real ``/``.
Load, CPU utilisation and available memory always come from psutil.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from fleetnas.agent import _sysfs
from fleetnas.agent._freshest import Freshest
from fleetnas.api.v1 import agent_pb2

# Raspberry Pi get_throttled bits 0-3 mean "now": under-voltage, ARM frequency
# capped, throttled, soft temperature limit. Bits 16-19 are the same four as
# "has happened since boot" (sticky): a new sticky bit between two samples
# means it happened in between even if it has cleared since.
PI_THROTTLED_NOW_MASK = 0x0000F
PI_THROTTLED_STICKY_MASK = 0xF0000

# A frequency policy whose cap (scaling_max_freq) sits below this fraction of
# the hardware maximum is being held down (thermal or power limits lower the
# cap on modern kernels). Also applied to the current frequency under the
# "performance" governor, where the CPU should sit at its maximum.
CAPPED_FREQ_RATIO = 0.8

# Under these drivers the current frequency moves on its own (hardware P-states,
# turbo above the nominal maximum), so "current well below max" is normal and
# says nothing about throttling; their thermal throttle counters do.
_SELF_SCALING_DRIVERS = frozenset({"intel_pstate", "intel_cpufreq", "amd-pstate", "amd-pstate-epp"})

# Thermal zones that read outside this range (°C) are broken or unused sensors
# (-273 °C, 0x7fffffff) and must not decide the "hottest" reading.
_SANE_TEMPERATURE_C = (-40.0, 150.0)

# Raspberry Pi 4/5 firmware starts soft throttling at 80 °C, and passive trip
# points on most ARM boards sit at 75-85 °C: from here on, a measurement may
# have run at a reduced clock.
HOT_TEMPERATURE_C = 80.0

# Frequency drops of a few percent are ordinary governor jitter; more than 10%
# between the samples around a run means the clock was being pulled down.
FREQ_DROP_RATIO = 0.9

# With the agent idle, a host more than half busy (over the short sampling
# window) is running someone else's work that competes with the benchmark.
BUSY_CPU_PERCENT = 50.0

# load_1m counts runnable threads averaged over a minute. Other load above the
# cores the benchmark leaves free (plus this margin for daemons and the agent
# itself) competes with the benchmark's threads.
LOAD_MARGIN = 1.0

# load_1m decays with a one-minute time constant, so right after a benchmark
# it still carries the agent's own previous run. Only trust a high load as
# "other work" when the host is also measurably busy right now.
LOAD_CONFIRM_CPU_PERCENT = 20.0

_THERMAL_ZONE = re.compile(r"thermal_zone(\d+)$")
# Pi 4: soc/soc:firmware; Pi 5: soc@107c000000/soc@107c000000:firmware.
_PI_THROTTLED_GLOB = "soc*/soc*:firmware/get_throttled"


@dataclass(frozen=True)
class CpuFrequency:
    """CPU frequencies in MHz (0 when unknown) and whether the clock is held down.

    ``current_mhz`` and ``max_mhz`` are those of the fastest frequency domain
    (the big cluster on big.LITTLE), ``min_mhz`` the lowest hardware minimum.
    """

    current_mhz: float = 0.0
    min_mhz: float = 0.0
    max_mhz: float = 0.0
    capped: bool = False


def read_cpu_frequency(root: Path = Path("/")) -> CpuFrequency:
    """Read CPU frequencies under ``root``; never raises, zeros when the system exposes none.

    ``capped`` is true when some domain's policy cap is below
    ``CAPPED_FREQ_RATIO`` × its hardware maximum, or when a domain under the
    ``performance`` governor (and a driver that does not scale on its own) runs
    below that fraction. An idle CPU under ``ondemand``/``schedutil`` sitting at
    its minimum is normal and not reported as capped.
    """
    current = minimum = maximum = 0.0
    capped = False
    for domain in _sysfs.cpufreq_dirs(root):
        cur_khz = _sysfs.read_int(domain, "scaling_cur_freq")
        if cur_khz is None:
            cur_khz = _sysfs.read_int(domain, "cpuinfo_cur_freq")
        hw_max_khz = _sysfs.read_int(domain, "cpuinfo_max_freq")
        hw_min_khz = _sysfs.read_int(domain, "cpuinfo_min_freq")
        policy_max_khz = _sysfs.read_int(domain, "scaling_max_freq")
        if cur_khz:
            current = max(current, cur_khz / 1000.0)
        if hw_max_khz:
            maximum = max(maximum, hw_max_khz / 1000.0)
            if policy_max_khz and policy_max_khz < CAPPED_FREQ_RATIO * hw_max_khz:
                capped = True
            if cur_khz and cur_khz < CAPPED_FREQ_RATIO * hw_max_khz:
                governor = _sysfs.read_line(domain, "scaling_governor")
                driver = _sysfs.read_line(domain, "scaling_driver")
                if governor == "performance" and driver not in _SELF_SCALING_DRIVERS:
                    capped = True
        if hw_min_khz:
            minimum = hw_min_khz / 1000.0 if minimum == 0 else min(minimum, hw_min_khz / 1000.0)
    if current == 0.0:
        current = _cpuinfo_mhz(root)
    if current == 0.0 and maximum == 0.0 and _sysfs.is_real_root(root):
        current, minimum, maximum = _psutil_frequency()
    return CpuFrequency(current_mhz=current, min_mhz=minimum, max_mhz=maximum, capped=capped)


def _cpuinfo_mhz(root: Path) -> float:
    """The highest "cpu MHz" in /proc/cpuinfo (x86, also inside most VMs); 0 if none."""
    best = 0.0
    for block in _sysfs.cpuinfo_fields(root):
        try:
            best = max(best, float(block.get("cpu MHz", "0")))
        except ValueError:
            continue
    return best


def _psutil_frequency() -> tuple[float, float, float]:
    """(current, min, max) MHz from psutil, for systems without Linux sysfs; zeros if unknown."""
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, RuntimeError):
        return 0.0, 0.0, 0.0
    if freq is None:
        return 0.0, 0.0, 0.0
    return _finite(freq.current), _finite(freq.min), _finite(freq.max)


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) and value > 0 else 0.0


def read_temperature_c(root: Path = Path("/")) -> float | None:
    """The hottest sane sensor reading in °C, or ``None`` when the system exposes none.

    Thermal zones report millidegrees; readings outside -40..150 °C are
    ignored as broken sensors. psutil's hwmon reader is the fallback on the
    real root only.
    """
    readings: list[float] = []
    for zone in _sysfs.numbered_dirs(root, "/sys/class/thermal", _THERMAL_ZONE):
        milli = _sysfs.read_int(zone, "temp")
        if milli is not None:
            readings.append(milli / 1000.0)
    if not readings and _sysfs.is_real_root(root):
        readings = _psutil_temperatures()
    sane = [t for t in readings if _SANE_TEMPERATURE_C[0] < t < _SANE_TEMPERATURE_C[1]]
    return max(sane) if sane else None


def _psutil_temperatures() -> list[float]:
    sensors = getattr(psutil, "sensors_temperatures", None)
    if sensors is None:
        return []
    try:
        groups = sensors()
    except (OSError, RuntimeError, NotImplementedError):
        return []
    return [
        entry.current
        for entries in groups.values()
        for entry in entries
        if entry.current is not None
    ]


def read_pi_throttled(root: Path = Path("/")) -> int | None:
    """The Raspberry Pi firmware's throttle word (e.g. 0x50005), or ``None`` on other boards."""
    platform_dir = _sysfs.under(root, "/sys/devices/platform")
    for path in sorted(platform_dir.glob(_PI_THROTTLED_GLOB)):
        value = _sysfs.read_int(path.parent, path.name, base=16)
        if value is not None:
            return value
    return None


def read_throttle_count(root: Path = Path("/")) -> int | None:
    """Sum of the x86 thermal throttle event counters over all CPUs, or ``None`` when absent."""
    total: int | None = None
    for cpu in _sysfs.cpu_dirs(root):
        for name in ("core_throttle_count", "package_throttle_count"):
            count = _sysfs.read_int(cpu / "thermal_throttle", name)
            if count is not None:
                total = (total or 0) + count
    return total


class StateSampler:
    """Takes :class:`agent_pb2.DeviceState` snapshots and remembers throttle counters.

    Counters (x86 thermal throttle events, the Pi's sticky "has throttled"
    bits) only say something between two samples: a sample is ``throttled``
    when they grew since this sampler's previous sample. The first sample can
    only use the instantaneous signals. Keep one sampler for the agent's
    lifetime and use it for every before/after pair and status call.

    Thread-safe: concurrent :meth:`sample` calls are allowed.
    """

    def __init__(self, *, root: Path = Path("/"), cpu_window_s: float = 0.1) -> None:
        if not (isinstance(cpu_window_s, (int, float)) and 0 < cpu_window_s <= 10):
            raise ValueError(f"cpu_window_s must be in (0, 10] seconds, got {cpu_window_s!r}")
        self._root = root
        self._cpu_window_s = float(cpu_window_s)
        self._lock = threading.Lock()
        self._last_pi_bits: int | None = None
        self._last_throttle_count: int | None = None
        self._cpu_lock = threading.Lock()
        # (monotonic time, host cpu_times, own CPU seconds), oldest first: the newest
        # reading at least a window old, then every reading since (see below)
        self._cpu_readings: deque[tuple[float, Any, float]] = deque(
            [(time.monotonic(), psutil.cpu_times(), own_cpu_seconds())]
        )
        self._freshest = Freshest(self.sample, self._cpu_window_s)

    def _cpu_percent_since_last(self) -> tuple[float, float]:
        """(whole host, other programs) CPU utilisation in % over the window ending now.

        The window starts at the newest earlier reading of this sampler (a
        previous sample, or its creation) that is at least ``cpu_window_s``
        old, so it never covers less than ``cpu_window_s`` (cpu_times tick at
        10 ms: a shorter window is noise) and never blocks once the sampler
        is that old, however close together samples come. Samples taken far
        apart measure exactly the gap since the previous one: a benchmark's
        "before" sample measures the idle gap before it, its "after" sample
        the run (and, for a run shorter than the window, the moments before
        it). Only a sampler younger than the window waits for the rest of it.
        "Other programs" excludes this process and its children (the agent
        and its workers: a warm spare importing onnxruntime between two jobs
        is not a noisy host). Per sampler, unlike psutil's module-global
        ``cpu_percent(None)``.
        """
        with self._cpu_lock:
            readings = self._cpu_readings
            missing = self._cpu_window_s - (time.monotonic() - readings[0][0])
            if missing > 0:
                time.sleep(missing)
            now = time.monotonic()
            while len(readings) > 1 and now - readings[1][0] >= self._cpu_window_s:
                readings.popleft()  # a newer reading is old enough to start the window
            _, start, own_start = readings[0]
            end = psutil.cpu_times()
            own_end = own_cpu_seconds()
            readings.append((now, end, own_end))
        total = sum(end) - sum(start)
        busy = _busy_percent(start, end)
        if total <= 0:
            return busy, busy
        own_percent = 100.0 * max(0.0, own_end - own_start) / total
        return busy, max(0.0, busy - own_percent)

    def latest(self) -> agent_pb2.DeviceState:
        """The newest snapshot without waiting: for callers that may come many at once.

        Takes a fresh sample when the previous one of :meth:`latest` is at
        least ``cpu_window_s`` old (so that sample never sleeps), else
        returns a copy of the previous one; while another thread is taking
        the fresh sample, also the previous one. Only the very first call
        may wait, for the rest of the window since the sampler's creation.
        A snapshot's ``timestamp`` says when it was taken.
        """
        snapshot = agent_pb2.DeviceState()
        snapshot.CopyFrom(self._freshest.get())
        return snapshot

    def sample(self) -> agent_pb2.DeviceState:
        """One snapshot; CPU utilisation covers at least the last ``cpu_window_s``
        (see ``_cpu_percent_since_last``); blocks only while the sampler is younger."""
        timestamp = time.time()
        freq = read_cpu_frequency(self._root)
        temperature = read_temperature_c(self._root)
        pi_bits = read_pi_throttled(self._root)
        throttle_count = read_throttle_count(self._root)
        with self._lock:
            counters_grew = _grew(self._last_throttle_count, throttle_count)
            new_sticky = (
                pi_bits is not None
                and self._last_pi_bits is not None
                and bool(pi_bits & ~self._last_pi_bits & PI_THROTTLED_STICKY_MASK)
            )
            self._last_throttle_count = throttle_count
            self._last_pi_bits = pi_bits
        throttled = (
            freq.capped
            or (pi_bits is not None and bool(pi_bits & PI_THROTTLED_NOW_MASK))
            or new_sticky
            or counters_grew
        )
        cpu_percent, others_cpu_percent = self._cpu_percent_since_last()
        return agent_pb2.DeviceState(
            timestamp=timestamp,
            freq_current_mhz=freq.current_mhz,
            freq_max_mhz=freq.max_mhz,
            temperature_available=temperature is not None,
            temperature_c=temperature if temperature is not None else 0.0,
            load_1m=_load_1m(),
            cpu_percent=cpu_percent,
            others_cpu_percent=others_cpu_percent,
            memory_available_bytes=psutil.virtual_memory().available,
            throttled=throttled,
        )


def own_cpu_seconds() -> float:
    """CPU seconds used so far by this process and its children, live or reaped.

    A child that exits between two readings moves from the live sum to the
    parent's ``children_*`` times once reaped; one not yet reaped drops out
    until it is, which can only make "others" look busier, never quieter.
    """
    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:  # exited meanwhile
            continue
        total += child_times.user + child_times.system
    return total


def _busy_percent(start: Any, end: Any) -> float:
    """Share of CPU time not idle between two ``psutil.cpu_times()`` readings, in %."""
    idle_fields = ("idle", "iowait")
    total = sum(end) - sum(start)
    if total <= 0:
        return 0.0
    idle = sum(getattr(end, f, 0.0) - getattr(start, f, 0.0) for f in idle_fields)
    return max(0.0, min(100.0, 100.0 * (1.0 - idle / total)))


def _grew(before: int | None, after: int | None) -> bool:
    return before is not None and after is not None and after > before


def _load_1m() -> float:
    try:
        return float(psutil.getloadavg()[0])
    except (OSError, AttributeError):
        return 0.0


def sample_state(*, root: Path = Path("/"), cpu_window_s: float = 0.1) -> agent_pb2.DeviceState:
    """One snapshot from a fresh :class:`StateSampler` (so no counter history).

    Blocks for ``cpu_window_s`` (the CPU utilisation window, measured from the
    sampler's creation); the file reads
    around it take well under a millisecond (~0.3 ms measured on x86).
    Raises ``ValueError`` for a window outside (0, 10] s; never fails because
    the system lacks a sensor.
    """
    return StateSampler(root=root, cpu_window_s=cpu_window_s).sample()


def state_warnings(
    before: agent_pb2.DeviceState,
    after: agent_pb2.DeviceState,
    *,
    threads_used: int,
    logical_cores: int,
) -> list[str]:
    """Human-readable warnings for a measurement taken between ``before`` and ``after``.

    ``before`` must be sampled while the agent was idle (before the worker
    starts), ``after`` once it has finished. ``threads_used`` is the number of
    threads the measurement ran on (0 = all cores); ``logical_cores`` the
    host's. Each warning names the figure that triggered it. An empty list
    means nothing suspicious was seen; it is not a guarantee of a clean run.
    Raises ``ValueError`` on a non-positive core count or negative threads.
    """
    if logical_cores < 1:
        raise ValueError(f"logical_cores must be >= 1, got {logical_cores}")
    if threads_used < 0:
        raise ValueError(f"threads_used must be >= 0, got {threads_used}")
    warnings: list[str] = []

    if before.throttled or after.throttled:
        when = " and ".join(
            label for label, state in (("before", before), ("after", after)) if state.throttled
        )
        warnings.append(f"throttling: the device reported CPU throttling {when} the run")
    if (
        before.freq_current_mhz > 0
        and after.freq_current_mhz > 0
        and after.freq_current_mhz < FREQ_DROP_RATIO * before.freq_current_mhz
    ):
        warnings.append(
            f"throttling: CPU frequency fell from {before.freq_current_mhz:.0f} to "
            f"{after.freq_current_mhz:.0f} MHz during the run"
        )

    hottest = max(
        (s.temperature_c for s in (before, after) if s.temperature_available), default=None
    )
    if hottest is not None and hottest >= HOT_TEMPERATURE_C:
        figures = ", ".join(
            f"{s.temperature_c:.1f} °C {label}"
            for label, s in (("before", before), ("after", after))
            if s.temperature_available
        )
        warnings.append(
            f"hot: {figures} the run (>= {HOT_TEMPERATURE_C:.0f} °C, the clock may be reduced)"
        )

    noisy = noisy_host_warning(before, threads_used=threads_used, logical_cores=logical_cores)
    if noisy:
        warnings.append(noisy)
    return warnings


def noisy_host_warning(
    before: agent_pb2.DeviceState, *, threads_used: int, logical_cores: int
) -> str | None:
    """The "noisy host" warning for a state sampled while the agent was idle, or None.

    Noisy: other programs (``others_cpu_percent``: the host less this agent and
    its workers) kept the CPU at least BUSY_CPU_PERCENT busy, or the 1-minute
    load exceeded the cores the benchmark leaves free (+ LOAD_MARGIN) while
    they kept it at least LOAD_CONFIRM_CPU_PERCENT busy (the load average alone
    still remembers the agent's own previous runs). ``threads_used`` 0 = all cores.
    """
    threads = logical_cores if threads_used == 0 else min(threads_used, logical_cores)
    free_cores = logical_cores - threads
    load_text = f"load {before.load_1m:.1f} on {logical_cores} cores"
    others = before.others_cpu_percent
    if others >= BUSY_CPU_PERCENT:
        return (
            f"noisy host: other programs kept the CPU {others:.0f}% busy before the run "
            f"({load_text})"
        )
    if before.load_1m > free_cores + LOAD_MARGIN and others >= LOAD_CONFIRM_CPU_PERCENT:
        return (
            f"noisy host: {load_text} before the run, with {threads} of them in use by the "
            f"benchmark (other programs: CPU {others:.0f}% busy)"
        )
    return None


def oversubscribed_warning(
    threads_used: int, *, usable_cores: int, physical_cores: int
) -> str | None:
    """The warning for a benchmark that runs more threads than the agent may use at once.

    ``usable_cores`` is Describe's (affinity and cgroup quota; 0 = unknown:
    no warning); ``threads_used`` 0 means onnxruntime's default, one thread
    per physical core.
    """
    if usable_cores <= 0:
        return None
    threads = physical_cores if threads_used == 0 else threads_used
    if threads <= usable_cores:
        return None
    what = (
        f"{threads_used} intra-op threads"
        if threads_used
        else f"onnxruntime's default of one thread per physical core ({physical_cores})"
    )
    return (
        f"oversubscribed: {what} on {usable_cores} usable cores (CPU affinity / cgroup "
        "quota): the threads take turns, so the latency shows the limit, not the device"
    )
