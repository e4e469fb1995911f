"""The two ways hardware tells energy, as :class:`EnergyMeter` implementations.

* :class:`CounterMeter`: the hardware keeps an energy counter (NVML's mJ
  total, RAPL's ``energy_uj``); energy is the difference of two reads,
  corrected for wrap-around. Error: one count, plus the counter's update
  period at each edge (a read may be up to one update old).
* :class:`PowerIntegratingMeter`: the hardware tells only power (NVML's
  power draw, Jetson's INA3221 rails); a thread samples it every
  ``period_s`` and the trapezoid rule integrates it. Error: between two
  samples the true curve is unknown; if it is monotone there, the integral
  lies between the two rectangle sums, so each segment contributes
  ``dt * |ΔP| / 2`` to the bound, plus the sensor's power quantum over the
  interval. Spikes shorter than a period and not monotone between samples
  are outside that bound: the reading says its sample count and period.

Both take their first and last readings synchronously in ``start``/``stop``,
so the measured interval is exactly the caller's, and both keep every read
as an :class:`EnergyTrace` in the reading, so that the energy of a part of
the interval (a benchmark's timed loop) can be attributed afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fleetnas.agent.telemetry._base import (
    EnergyMeter,
    EnergyReading,
    SensorError,
    TraceRecorder,
)
from fleetnas.agent.telemetry._sampling import PeriodicThread

Clock = Callable[[], float]
PowerReader = Callable[[], Mapping[str, float]]
"""Returns watts per part (one rail, one GPU...); raises :class:`SensorError` when unreadable."""


class TrapezoidIntegral:
    """Running trapezoid integral of several power curves (W over s), with its error bound.

    Feed samples in time order with :meth:`add`; each sample must name the
    same parts as the first. Pure arithmetic: used by the meter's thread and
    directly by tests on known power profiles.
    """

    def __init__(self, power_resolution_w: float = 0.0) -> None:
        if power_resolution_w < 0:
            raise ValueError(f"power_resolution_w must be >= 0, got {power_resolution_w}")
        self._quantum_w = power_resolution_w
        self._first_t: float | None = None
        self._last: tuple[float, dict[str, float]] | None = None
        self._joules: dict[str, float] = {}
        self._bound_j = 0.0
        self.samples = 0

    def add(self, t: float, powers: Mapping[str, float]) -> None:
        """Add a sample at time ``t`` (s); ``ValueError`` if time goes back or parts change."""
        current = dict(powers)
        if self._last is None:
            self._first_t = t
            self._joules = dict.fromkeys(current, 0.0)
        else:
            last_t, last_p = self._last
            if t < last_t:
                raise ValueError(f"samples out of order: {t} after {last_t}")
            if current.keys() != last_p.keys():
                raise ValueError(f"parts changed from {sorted(last_p)} to {sorted(current)}")
            dt = t - last_t
            for part, watts in current.items():
                self._joules[part] += dt * (watts + last_p[part]) / 2.0
                self._bound_j += dt * abs(watts - last_p[part]) / 2.0
        self._last = (t, current)
        self.samples += 1

    @property
    def duration_s(self) -> float:
        if self._last is None or self._first_t is None:
            return 0.0
        return self._last[0] - self._first_t

    @property
    def joules(self) -> float:
        return sum(self._joules.values())

    @property
    def parts(self) -> tuple[tuple[str, float], ...]:
        return tuple(sorted(self._joules.items()))

    @property
    def bound_j(self) -> float:
        """Integration error bound plus ``power_resolution_w`` per part over the duration."""
        return self._bound_j + self._quantum_w * len(self._joules) * self.duration_s

    @property
    def last_t(self) -> float | None:
        return self._last[0] if self._last is not None else None


def integrate_samples(
    samples: Sequence[tuple[float, Mapping[str, float]]], *, power_resolution_w: float = 0.0
) -> tuple[float, float]:
    """(joules, error bound) of time-ordered ``(t, {part: watts})`` samples."""
    integral = TrapezoidIntegral(power_resolution_w)
    for t, powers in samples:
        integral.add(t, powers)
    return integral.joules, integral.bound_j


class PowerIntegratingMeter(EnergyMeter):
    """Energy from power samples taken every ``period_s`` on a daemon thread.

    ``read_power`` returns watts per part; the reading's ``parts`` are their
    integrals and ``joules`` their sum. A read that fails at start or during
    the run makes the whole reading unreadable (with when and why): an
    interval with a gap is not bridged by a guess.
    """

    def __init__(
        self,
        read_power: PowerReader,
        *,
        method: str,
        scope: str,
        period_s: float = 0.02,
        power_resolution_w: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        self._read_power = read_power
        self.method = method
        self.scope = scope
        self.period_s = period_s
        self._clock = clock
        self._integral = TrapezoidIntegral(power_resolution_w)
        self._thread = PeriodicThread(self._sample, period_s, name=f"energy:{method}")
        self._trace = TraceRecorder()
        self._t0 = 0.0
        self._failure = ""

    def _add(self, t: float, powers: Mapping[str, float]) -> None:
        self._integral.add(t, powers)
        self._trace.add(t, self._integral.joules, self._integral.bound_j)

    def _sample(self) -> None:
        t = self._clock()
        try:
            powers = self._read_power()
        except SensorError as err:
            self._failure = f"power sample failed {t - self._t0:.3f} s into the run: {err}"
            raise
        self._add(t, powers)

    def _start(self) -> None:
        self._t0 = self._clock()
        try:
            self._add(self._t0, self._read_power())
        except SensorError as err:
            self._failure = str(err)
            return
        self._thread.start()

    def _stop(self) -> EnergyReading:
        self._thread.stop()
        if not self._failure and self._thread.error is not None:
            self._failure = f"power sampling failed: {self._thread.error!r}"
        if not self._failure:
            self._sample_last()
        if self._failure:
            return EnergyReading.unreadable(
                method=self.method,
                scope=self.scope,
                interval_s=max(0.0, self._clock() - self._t0),
                reason=self._failure,
            )
        return EnergyReading(
            method=self.method,
            scope=self.scope,
            interval_s=self._integral.duration_s,
            joules=self._integral.joules,
            resolution_j=self._integral.bound_j,
            parts=self._integral.parts,
            samples=self._integral.samples,
            trace=self._trace.freeze(),
        )

    def _sample_last(self) -> None:
        try:
            self._sample()
        except SensorError:
            pass  # _sample recorded the reason

    @property
    def sampling(self) -> bool:
        """True while the sampling thread runs (tests check that stop ends it)."""
        return self._thread.alive


@dataclass(frozen=True)
class Counter:
    """One hardware energy counter.

    ``read`` returns the raw count or raises :class:`SensorError`;
    ``unit_j`` is joules per count; ``wrap`` is the count at which the
    counter wraps to 0 (RAPL's ``max_energy_range_uj``), ``None`` for one
    that never wraps in practice (NVML's 64-bit mJ total).
    """

    name: str
    read: Callable[[], int]
    unit_j: float
    wrap: int | None = None


class CounterMeter(EnergyMeter):
    """Energy as the difference of hardware counters, summed over ``counters``.

    With ``poll_s`` set, a thread reads every counter that often so that a
    counter that wraps is never missed twice in one interval (choose a period
    well under the counter's wrap time at full power). A counter that goes
    backwards without a known ``wrap`` (a driver reload resets NVML's)
    makes the reading unreadable. ``update_period_s`` is how often the
    hardware refreshes the counter; it enters the resolution as one update
    of energy at each edge.
    """

    def __init__(
        self,
        counters: Sequence[Counter],
        *,
        method: str,
        scope: str,
        update_period_s: float,
        poll_s: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        if not counters:
            raise ValueError("a CounterMeter needs at least one counter")
        self._counters = tuple(counters)
        self.method = method
        self.scope = scope
        self._update_period_s = update_period_s
        self._clock = clock
        self._last: list[int] = []
        self._counts = [0] * len(self._counters)
        self._trace = TraceRecorder()
        self._failure = ""
        self._t0 = 0.0
        self._thread = (
            PeriodicThread(self._poll, poll_s, name=f"energy:{method}")
            if poll_s is not None
            else None
        )

    def _read_all(self) -> list[int]:
        return [counter.read() for counter in self._counters]

    def _poll(self) -> None:
        t = self._clock()
        try:
            values = self._read_all()
        except SensorError as err:
            self._failure = f"counter read failed {t - self._t0:.3f} s into the run: {err}"
            raise
        self._accumulate(values)
        self._trace.add(t, self._joules())

    def _joules(self) -> float:
        return sum(c * counter.unit_j for counter, c in zip(self._counters, self._counts,
                                                              strict=True))

    def _accumulate(self, values: list[int]) -> None:
        for i, (counter, value) in enumerate(zip(self._counters, values, strict=True)):
            delta = value - self._last[i]
            if delta < 0:
                if counter.wrap is None:
                    self._failure = (
                        f"{counter.name}: energy counter went backwards ({self._last[i]} -> "
                        f"{value}); was the driver reloaded?"
                    )
                    raise SensorError(self._failure)
                delta += counter.wrap
            self._counts[i] += delta
        self._last = values

    def _start(self) -> None:
        self._t0 = self._clock()
        try:
            self._last = self._read_all()
        except SensorError as err:
            self._failure = str(err)
            return
        self._trace.add(self._t0, 0.0)
        if self._thread is not None:
            self._thread.start()

    def _stop(self) -> EnergyReading:
        if self._thread is not None:
            self._thread.stop()
            if not self._failure and self._thread.error is not None:
                self._failure = f"counter polling failed: {self._thread.error!r}"
        if not self._failure:
            try:
                self._poll()
            except SensorError:
                pass  # _poll/_accumulate recorded the reason
        trace = self._trace.freeze(lag_s=self._update_period_s,
                                   quantum_j=sum(c.unit_j for c in self._counters))
        t1 = trace.points[-1].t if trace.points else self._clock()
        interval = max(0.0, t1 - self._t0)
        if self._failure:
            return EnergyReading.unreadable(
                method=self.method, scope=self.scope, interval_s=interval, reason=self._failure
            )
        parts = tuple(
            (counter.name, count * counter.unit_j)
            for counter, count in zip(self._counters, self._counts, strict=True)
        )
        joules = sum(j for _, j in parts)
        mean_w = joules / interval if interval > 0 else 0.0
        resolution = sum(c.unit_j for c in self._counters) + 2 * self._update_period_s * mean_w
        return EnergyReading(
            method=self.method,
            scope=self.scope,
            interval_s=interval,
            joules=joules,
            resolution_j=resolution,
            parts=parts,
            trace=trace,
        )

    @property
    def polling(self) -> bool:
        return self._thread is not None and self._thread.alive


class UnreadableMeter(EnergyMeter):
    """A meter for hardware that tells no energy: its reading is ``None`` with the reason."""

    def __init__(self, *, method: str, scope: str, reason: str, clock: Clock = time.monotonic):
        super().__init__()
        self.method = method
        self.scope = scope
        self._reason = reason
        self._clock = clock
        self._t0 = 0.0

    def _start(self) -> None:
        self._t0 = self._clock()

    def _stop(self) -> EnergyReading:
        return EnergyReading.unreadable(
            method=self.method,
            scope=self.scope,
            interval_s=max(0.0, self._clock() - self._t0),
            reason=self._reason,
        )
