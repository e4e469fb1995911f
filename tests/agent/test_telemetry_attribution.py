"""Energy attributed to a timed loop inside a metered job, on recorded series with known truth.

The series are what a meter records over a job whose power is known exactly
(idle, then the timed loop, then idle): a counter meter's cumulative counts
and a power-integrating meter's trapezoid, read at a fixed period. The
attributed energy must match the truth within the reading's own bound.
"""

from __future__ import annotations

import math
import threading

import pytest

from fleetnas.agent.telemetry import (
    Counter,
    CounterMeter,
    EnergyReading,
    EnergyTrace,
    PowerIntegratingMeter,
    TracePoint,
    attribute,
    energy_per_inference,
)

IDLE_W, LOOP_W = 10.0, 50.0
PERIOD = 0.05


def power(t: float, start: float, end: float) -> float:
    return LOOP_W if start <= t < end else IDLE_W


def exact_energy(a: float, b: float, start: float, end: float) -> float:
    """Integral of :func:`power` over [a, b]."""
    inside = max(0.0, min(b, end) - max(a, start))
    return IDLE_W * (b - a - inside) + LOOP_W * inside


def counter_series(start: float, end: float, job_s: float = 4.0) -> EnergyReading:
    """A 1 mJ counter read every PERIOD over the job, as CounterMeter records it."""
    points = []
    for i in range(int(round(job_s / PERIOD)) + 1):
        t = i * PERIOD
        points.append(TracePoint(t, math.floor(exact_energy(0, t, start, end) * 1000) / 1000, 0.0))
    trace = EnergyTrace(tuple(points), lag_s=0.0, quantum_j=1e-3)
    return EnergyReading(method="rapl-counter", scope="package-0", interval_s=job_s,
                         joules=points[-1].joules, resolution_j=1e-3, trace=trace)


@pytest.mark.parametrize(("start", "end"), [
    (1.0, 3.0),      # loop edges on reads
    (1.01, 2.99),    # edges between reads, power constant around them
    (1.02, 3.02),    # the power steps between two reads at both edges
    (0.0, 4.0),      # the whole job
])  # fmt: skip
def test_a_counter_series_attributes_the_loop_within_its_bound(start: float, end: float) -> None:
    job = counter_series(start, end)
    loop = attribute(job, start, end)
    truth = exact_energy(start, end, start, end)
    assert loop.joules is not None and loop.resolution_j is not None
    assert abs(loop.joules - truth) <= loop.resolution_j
    assert loop.resolution_j < 0.05 * truth  # reads every 50 ms: a few percent at most
    assert loop.method == job.method and loop.scope == job.scope
    assert loop.interval_s == pytest.approx(end - start)
    per = energy_per_inference(loop, 200)
    assert per is not None and per.mj_per_inference == pytest.approx(loop.joules * 5)


def test_edges_on_reads_cost_nothing_but_one_count() -> None:
    loop = attribute(counter_series(1.0, 3.0), 1.0, 3.0)
    assert loop.joules == pytest.approx(100.0, abs=2e-3)
    assert loop.resolution_j == pytest.approx(1e-3)
    off_grid = attribute(counter_series(1.02, 3.02), 1.02, 3.02)
    assert off_grid.resolution_j > 1.0  # a power step inside a bracket widens it


def test_the_update_lag_of_a_counter_enters_the_bound() -> None:
    job = counter_series(1.0, 3.0)
    assert job.trace is not None
    lagging = EnergyReading(method=job.method, scope=job.scope, interval_s=job.interval_s,
                            joules=job.joules, resolution_j=job.resolution_j,
                            trace=EnergyTrace(job.trace.points, lag_s=0.1, quantum_j=1e-3))
    loop = attribute(lagging, 1.0, 3.0)
    assert loop.resolution_j == pytest.approx(1e-3 + 2 * 0.1 * LOOP_W)


class StepClock:
    def __init__(self, dt: float) -> None:
        self.t, self.dt, self.lock = -dt, dt, threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.t += self.dt
            return self.t


def test_a_power_meter_records_its_trace_and_the_loop_is_cut_out() -> None:
    clock = StepClock(PERIOD)
    enough = threading.Event()
    reads = [0]

    def read_power() -> dict[str, float]:
        reads[0] += 1
        if reads[0] > 80:
            enough.set()
        return {"VDD_IN": power(clock.t, 1.0, 3.0)}

    meter = PowerIntegratingMeter(read_power, method="ina3221-integration", scope="VDD_IN",
                                  period_s=0.001, clock=clock)
    with meter:
        assert enough.wait(10)
    job = meter.reading
    assert job is not None and job.trace is not None
    assert job.trace.points[-1].joules == pytest.approx(job.joules)
    assert job.trace.points[-1].bound_j == pytest.approx(job.resolution_j)
    loop = attribute(job, 1.0, 3.0)
    assert loop.joules is not None and loop.resolution_j is not None
    assert abs(loop.joules - 100.0) <= loop.resolution_j
    assert loop.samples == 41  # reads at 1.00, 1.05, ..., 3.00


def test_a_counter_meter_records_every_poll() -> None:
    clock = StepClock(PERIOD)
    enough = threading.Event()

    def read() -> int:
        if clock.t > 4.0:
            enough.set()
        return int(exact_energy(0.0, clock.t, 1.0, 3.0) * 1000)

    meter = CounterMeter([Counter("GPU 0", read, 1e-3)], method="nvml-energy-counter",
                         scope="GPU 0", update_period_s=0.0, poll_s=0.001, clock=clock)
    with meter:
        assert enough.wait(10)
    job = meter.reading
    assert job is not None and job.trace is not None and len(job.trace.points) > 80
    assert job.trace.points[-1].joules == pytest.approx(job.joules)
    loop = attribute(job, 1.0, 3.0)
    assert loop.joules is not None and loop.resolution_j is not None
    assert abs(loop.joules - 100.0) <= loop.resolution_j


def test_what_cannot_be_attributed_says_why() -> None:
    job = counter_series(1.0, 3.0)
    outside = attribute(job, 3.5, 4.5)
    assert outside.joules is None and "lies outside the metered" in outside.reason
    blind = EnergyReading.unreadable(method="rapl-counter", scope="package-0", interval_s=4,
                                     reason="permission denied: /sys/...")
    assert attribute(blind, 1, 2).reason == "permission denied: /sys/..."
    untraced = EnergyReading(method="m", scope="s", interval_s=4, joules=1.0, resolution_j=0.1)
    assert "no trace" in attribute(untraced, 1, 2).reason
    for bad in ((2.0, 1.0), (1.0, 1.0), (float("nan"), 2.0)):
        with pytest.raises(ValueError):
            attribute(job, *bad)
