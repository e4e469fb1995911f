"""The energy of a sub-interval of a metered run (a benchmark's timed loop).

The agent's meter spans the worker's whole job (session creation, warm-up,
the timed loop, profiling), because the agent cannot start and stop it at the
loop's exact edges from another process. The worker reports the loop's
edges on ``CLOCK_MONOTONIC``, the clock the meters read (``time.monotonic``
and ``time.monotonic_ns`` are that clock on Linux, in every process), and
:func:`attribute` cuts the loop out of the meter's :class:`EnergyTrace`.

How, and the error bound
------------------------
The trace is the cumulative energy at each read, non-decreasing. At an edge
``t`` between two reads ``(t_i, E_i)`` and ``(t_j, E_j)`` the energy counted
so far is interpolated linearly. Power is never negative, so the true
cumulative energy at ``t`` lies in ``[E_i, E_j]``: the interpolation error at
that edge is at most ``max(E(t) - E_i, E_j - E(t))`` (0 when ``t`` is a read).
The reading's ``resolution_j`` adds, to those two edge terms:

* the method's own error over the reads used: for an integrating meter the
  growth of its cumulative bound from the read before the start to the read
  after the end; for counters one count of each counter plus one update
  period of energy at each edge (``lag_s``), as a whole counter reading has.

Reads every 20-50 ms keep each edge term to that much energy, so loops of
seconds attribute to within a few percent. Per-part breakdowns are not
attributed (``parts`` is empty).
"""

from __future__ import annotations

import bisect
import math

from fleetnas.agent.telemetry._base import EnergyReading, EnergyTrace, TracePoint


def attribute(reading: EnergyReading, start_s: float, end_s: float) -> EnergyReading:
    """The energy ``reading``'s meter counted between ``start_s`` and ``end_s`` (the meter's
    clock, seconds), as a reading of the same method and scope.

    Unreadable (with the reason) when ``reading`` is, when it kept no trace, or
    when the interval is not inside the metered one. Raises ``ValueError`` for
    an interval that is empty, reversed or not finite.
    """
    if not (math.isfinite(start_s) and math.isfinite(end_s) and end_s > start_s):
        raise ValueError(f"the interval must be finite and non-empty, got {start_s}..{end_s}")
    interval = end_s - start_s

    def unreadable(reason: str) -> EnergyReading:
        return EnergyReading.unreadable(
            method=reading.method, scope=reading.scope, interval_s=interval, reason=reason
        )

    if reading.joules is None:
        return unreadable(reading.reason)
    trace = reading.trace
    if trace is None or len(trace.points) < 2:
        return unreadable("the meter kept no trace of its reads: the interval cannot be cut out")
    first, last = trace.points[0].t, trace.points[-1].t
    if start_s < first or end_s > last:
        return unreadable(
            f"the interval {start_s:.3f}-{end_s:.3f} s lies outside the metered "
            f"{first:.3f}-{last:.3f} s (CLOCK_MONOTONIC)"
        )
    j_start, edge_start, bound_start, _ = _at(trace.points, start_s)
    j_end, edge_end, _, bound_end = _at(trace.points, end_s)
    joules = max(0.0, j_end - j_start)
    resolution = (
        max(0.0, bound_end - bound_start)
        + edge_start
        + edge_end
        + _counter_terms(trace, joules, interval)
    )
    inside = sum(1 for p in trace.points if start_s <= p.t <= end_s)
    return EnergyReading(
        method=reading.method,
        scope=reading.scope,
        interval_s=interval,
        joules=joules,
        resolution_j=resolution,
        samples=inside,
    )


def _counter_terms(trace: EnergyTrace, joules: float, interval: float) -> float:
    return trace.quantum_j + 2 * trace.lag_s * joules / interval


def _at(points: tuple[TracePoint, ...], t: float) -> tuple[float, float, float, float]:
    """(interpolated joules, edge error bound, bound at the read before, bound at the read
    after) at ``t``, which lies within the points."""
    times = [p.t for p in points]
    j = bisect.bisect_right(times, t)
    if j > 0 and times[j - 1] == t:  # exactly a read
        p = points[j - 1]
        return p.joules, 0.0, p.bound_j, p.bound_j
    before, after = points[j - 1], points[j]
    span = after.t - before.t
    fraction = (t - before.t) / span if span > 0 else 0.0
    joules = before.joules + fraction * (after.joules - before.joules)
    edge = max(joules - before.joules, after.joules - joules)
    return joules, edge, before.bound_j, after.bound_j
