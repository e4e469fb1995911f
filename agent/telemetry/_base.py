"""The telemetry contracts: a :class:`TelemetrySource` and its :class:`EnergyMeter`.

A telemetry source reads one kind of hardware instrumentation (NVML, a
Jetson's sysfs, Intel/AMD RAPL) and answers three questions:

* :meth:`TelemetrySource.describe`: static facts (names, totals, versions),
  read once when the agent describes itself;
* :meth:`TelemetrySource.sample`: a point-in-time state (clocks, temperature,
  power), taken before and after each benchmark and for ``Status``;
* :meth:`TelemetrySource.energy_meter`: a meter that integrates energy over
  an interval (the timed loop of a benchmark).

The one rule every implementation keeps: **a value the hardware does not
tell is ``None``, never a guess, never 0**. A source that cannot work at all
(library missing, not this kind of board) says so in :meth:`status` with a
reason a user can act on, and its ``describe``/``sample`` return ``None``.
Nothing here raises because a sensor is missing; the exceptions documented
below are programming errors (misuse), not hardware facts.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Generic, NamedTuple, TypeVar

D = TypeVar("D")
S = TypeVar("S")


class SensorError(Exception):
    """A sensor read failed; the message is the reason, naming the path or call and the fix."""


@dataclass(frozen=True)
class SourceStatus:
    """Whether a source can read anything here, and if not, why (one line, naming the fix)."""

    available: bool
    reason: str = ""


class TracePoint(NamedTuple):
    """The energy a meter had counted by time ``t`` (its clock, seconds): ``joules`` and the
    method's error bound ``bound_j`` on it, both cumulative since the meter started."""

    t: float
    joules: float
    bound_j: float


@dataclass(frozen=True)
class EnergyTrace:
    """Every read a meter took, cumulative, so energy can be attributed to a sub-interval.

    ``points`` are in time order, ``joules`` non-decreasing. ``lag_s`` is how
    old a read may be (a counter's update period); ``quantum_j`` the energy
    of one count of every counter. See ``fleetnas.agent.telemetry.attribute``.
    """

    points: tuple[TracePoint, ...]
    lag_s: float = 0.0
    quantum_j: float = 0.0


MAX_TRACE_POINTS = 50_000


class TraceRecorder:
    """Collects a meter's :class:`TracePoint` s; past ``MAX_TRACE_POINTS`` it keeps every
    other point (the bracket around any instant only widens: attribution stays sound)."""

    def __init__(self, limit: int = MAX_TRACE_POINTS) -> None:
        self._limit = limit
        self._points: list[TracePoint] = []

    def add(self, t: float, joules: float, bound_j: float = 0.0) -> None:
        self._points.append(TracePoint(t, joules, bound_j))
        if len(self._points) > self._limit:
            last = self._points[-1]
            self._points = self._points[:-1:2] + [last]

    def freeze(self, *, lag_s: float = 0.0, quantum_j: float = 0.0) -> EnergyTrace:
        return EnergyTrace(tuple(self._points), lag_s, quantum_j)


@dataclass(frozen=True)
class EnergyReading:
    """Energy used over one interval, as one meter measured it.

    ``joules`` is ``None`` when the hardware did not tell (``reason`` says
    why: no counter, permission denied, a sensor read that failed mid-run).
    ``resolution_j`` bounds the measurement's error from the method itself
    (counter granularity and update period, or the integration error of a
    sampled power curve); it does not cover the sensor's calibration. It is
    ``None`` exactly when ``joules`` is.

    ``method`` names the mechanism (``nvml-energy-counter``,
    ``nvml-power-integration``, ``ina3221-integration``, ``rapl-counter``,
    ``amd-energy-counter``); ``scope`` names what was measured ("GPU 0",
    "VDD_IN", "package-0 + dram-0"). Two readings are comparable only when
    both match. ``parts`` breaks ``joules`` down by counter or rail when the
    meter summed several; ``samples`` counts the power samples an
    integrating meter took (0 for counters). ``trace`` holds every read
    (a readable reading of the built-in meters always has one), so the
    energy of a sub-interval can be told; it is ``None`` when unreadable.
    """

    method: str
    scope: str
    interval_s: float
    joules: float | None
    resolution_j: float | None
    reason: str = ""
    parts: tuple[tuple[str, float], ...] = ()
    samples: int = 0
    trace: EnergyTrace | None = None

    def __post_init__(self) -> None:
        if (self.joules is None) != (self.resolution_j is None):
            raise ValueError("joules and resolution_j must both be set or both be None")
        if self.joules is None and not self.reason:
            raise ValueError("an unreadable EnergyReading needs a reason")
        if not (math.isfinite(self.interval_s) and self.interval_s >= 0):
            raise ValueError(f"interval_s must be finite and >= 0, got {self.interval_s!r}")

    @property
    def mean_power_w(self) -> float | None:
        """Average power over the interval, or ``None`` when unreadable or the interval is empty."""
        if self.joules is None or self.interval_s <= 0:
            return None
        return self.joules / self.interval_s

    @classmethod
    def unreadable(
        cls, *, method: str, scope: str, interval_s: float, reason: str
    ) -> EnergyReading:
        """A reading that says "the hardware did not tell", with the reason."""
        return cls(
            method=method,
            scope=scope,
            interval_s=interval_s,
            joules=None,
            resolution_j=None,
            reason=reason,
        )


class EnergyMeter(ABC):
    """Measures the energy used between :meth:`start` and :meth:`stop`.

    Single use: ``start()`` once, then ``stop()`` once, which returns the
    :class:`EnergyReading` (also kept as :attr:`reading`). A meter whose
    hardware cannot tell still starts and stops; its reading has
    ``joules=None`` and the reason, so callers never branch on the hardware.
    Calling ``start`` twice or ``stop`` before ``start`` raises
    ``RuntimeError``.

    A meter that samples power runs one daemon thread between start and stop;
    ``stop`` joins it before returning, and using the meter as a context
    manager stops it even when the measured block raises, so no thread
    outlives its measurement. ``start`` and ``stop`` may be called from
    different threads, but not concurrently.

    Cost: ``start`` and ``stop`` each read the hardware once (a counter, or
    one power sample of every part); a sampling thread costs one such read
    per period.
    """

    def __init__(self) -> None:
        self._started = False
        self._stopped = False
        self.reading: EnergyReading | None = None

    def start(self) -> None:
        if self._started:
            raise RuntimeError("an EnergyMeter can be started only once")
        self._started = True
        self._start()

    def stop(self) -> EnergyReading:
        if not self._started:
            raise RuntimeError("EnergyMeter.stop() called before start()")
        if self._stopped:
            raise RuntimeError("an EnergyMeter can be stopped only once")
        self._stopped = True
        self.reading = self._stop()
        return self.reading

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    def __enter__(self) -> EnergyMeter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.running:
            self.stop()

    @abstractmethod
    def _start(self) -> None:
        """Take the first reading (and start sampling, if the meter samples)."""

    @abstractmethod
    def _stop(self) -> EnergyReading:
        """Stop sampling (joining any thread), take the last reading, return the result."""


class TelemetrySource(ABC, Generic[D, S]):
    """One kind of hardware instrumentation; see the module docstring for the rules.

    ``D`` and ``S`` are the source's frozen dataclasses for ``describe()`` and
    ``sample()``; every field the hardware may not tell is ``Optional`` and
    ``None`` when unreadable.

    Thread safety: ``status``, ``describe``, ``sample`` and ``energy_meter``
    may be called from several threads at once. Cost per call is documented
    by each implementation (sysfs sources: tens of small file reads; NVML: one
    driver query per field). ``close`` releases what the
    source opened (NVML's handle); a closed source reports itself
    unavailable. Sources are context managers that close on exit.
    """

    name: ClassVar[str]

    @abstractmethod
    def status(self) -> SourceStatus:
        """Whether this source reads anything on this machine; the reason when not."""

    @abstractmethod
    def describe(self) -> D | None:
        """Static facts, or ``None`` when the source is unavailable."""

    @abstractmethod
    def sample(self) -> S | None:
        """A point-in-time state, or ``None`` when the source is unavailable."""

    @abstractmethod
    def energy_meter(self) -> EnergyMeter:
        """A fresh, unstarted meter over this source's widest scope.

        Always returns a meter: where no energy can be read, its reading is
        ``joules=None`` with the reason.
        """

    def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release what the source holds; the default holds nothing."""

    def __enter__(self) -> TelemetrySource[D, S]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Unreadable:
    """One value a sample could not read, and why (for logs and the user, not for logic)."""

    what: str
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


@dataclass
class UnreadableLog:
    """Collects :class:`Unreadable` notes while one describe/sample is assembled."""

    notes: list[Unreadable] = field(default_factory=list)

    def add(self, what: str, reason: str) -> None:
        self.notes.append(Unreadable(what, reason))

    def freeze(self) -> tuple[Unreadable, ...]:
        return tuple(self.notes)
