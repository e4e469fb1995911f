"""Energy meters and the per-inference helper: integration, wrap-around, threads, None."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest

from fleetnas.agent.telemetry import (
    Counter,
    CounterMeter,
    EnergyReading,
    PowerIntegratingMeter,
    SensorError,
    UnreadableMeter,
    energy_per_inference,
    integrate_samples,
)

WAIT_S = 10.0  # generous: waits end as soon as the sampling thread has done its part


class StepClock:
    """A clock that advances ``dt`` on every call (meters call it once per sample)."""

    def __init__(self, dt: float) -> None:
        self.t = 0.0
        self.dt = dt
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            now = self.t
            self.t += self.dt
            return now


class Profile:
    """A power profile P(t) read at the clock's time; signals after ``after`` reads."""

    def __init__(self, clock: StepClock, power: Callable[[float], float], after: int) -> None:
        self.clock = clock
        self.power = power
        self.after = after
        self.reads = 0
        self.enough = threading.Event()

    def __call__(self) -> dict[str, float]:
        self.reads += 1
        if self.reads >= self.after:
            self.enough.set()
        # the meter read the clock just before calling us: that sample's time
        return {"rail": self.power(self.clock.t - self.clock.dt)}


# -- the integral itself ------------------------------------------------------------------


def test_trapezoid_is_exact_on_a_ramp() -> None:
    samples = [(t / 10, {"a": 2.0 + 3.0 * t / 10}) for t in range(11)]  # 2 W -> 5 W over 1 s
    joules, bound = integrate_samples(samples)
    assert joules == pytest.approx(3.5)
    assert bound == pytest.approx(0.15)  # sum of dt*|dP|/2 = 10 * 0.1 * 0.3 / 2


def test_sine_profile_error_stays_inside_the_bound() -> None:
    dt = 0.01
    samples = [(i * dt, {"gpu": 50 + 30 * math.sin(2 * math.pi * i * dt)}) for i in range(301)]
    joules, bound = integrate_samples(samples, power_resolution_w=0.001)
    exact = 50 * 3.0  # three whole periods of the sine integrate to zero
    assert abs(joules - exact) < 0.01
    assert abs(joules - exact) <= bound


def test_step_profile_bound_covers_where_the_step_happened() -> None:
    # 10 W until an unknown moment between t=1.0 and t=1.1, then 20 W, until t=2.
    samples = [(i / 10, {"x": 10.0 if i <= 10 else 20.0}) for i in range(21)]
    joules, bound = integrate_samples(samples)
    for step_at in (1.0, 1.05, 1.1):
        true = 10 * step_at + 20 * (2 - step_at)
        assert abs(joules - true) <= bound + 1e-12
    assert bound == pytest.approx(0.5)


def test_parts_are_integrated_separately_and_summed() -> None:
    samples = [(0.0, {"a": 1.0, "b": 4.0}), (2.0, {"a": 3.0, "b": 4.0})]
    assert integrate_samples(samples)[0] == pytest.approx(4.0 + 8.0)


def test_samples_out_of_order_or_with_changing_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="out of order"):
        integrate_samples([(1.0, {"a": 1.0}), (0.5, {"a": 1.0})])
    with pytest.raises(ValueError, match="parts changed"):
        integrate_samples([(0.0, {"a": 1.0}), (1.0, {"b": 1.0})])


# -- the sampling meter -------------------------------------------------------------------


def test_power_meter_integrates_a_known_ramp_and_stops_its_thread() -> None:
    clock = StepClock(0.01)
    profile = Profile(clock, lambda t: 5.0 + 10.0 * t, after=30)
    meter = PowerIntegratingMeter(profile, method="test", scope="rail", period_s=0.001, clock=clock)
    meter.start()
    assert meter.sampling
    assert profile.enough.wait(WAIT_S)
    reading = meter.stop()
    assert not meter.sampling
    assert reading.samples == profile.reads >= 31  # first + >=29 periodic + last
    duration = reading.interval_s
    assert duration == pytest.approx((reading.samples - 1) * 0.01)
    assert reading.joules == pytest.approx(5.0 * duration + 5.0 * duration**2)
    assert reading.resolution_j == pytest.approx(10.0 * 0.01 * (reading.samples - 1) * 0.01 / 2)
    assert reading.parts == (("rail", reading.joules),)


def test_meter_as_context_manager_stops_the_thread_when_the_block_raises() -> None:
    meter = PowerIntegratingMeter(lambda: {"p": 1.0}, method="m", scope="s", period_s=0.001)
    with pytest.raises(RuntimeError, match="boom"):
        with meter:
            assert meter.sampling
            raise RuntimeError("boom")
    assert not meter.sampling
    assert meter.reading is not None and meter.reading.joules is not None


def test_a_sensor_failing_mid_run_makes_the_reading_unreadable() -> None:
    reads = 0
    failed = threading.Event()

    def flaky() -> dict[str, float]:
        nonlocal reads
        reads += 1
        if reads >= 3:
            failed.set()
            raise SensorError("rail VDD_IN: missing: /sys/bus/i2c/...")
        return {"VDD_IN": 4.0}

    meter = PowerIntegratingMeter(
        flaky, method="ina3221-integration", scope="VDD_IN", period_s=0.001
    )
    meter.start()
    assert failed.wait(WAIT_S)
    reading = meter.stop()
    assert not meter.sampling
    assert reading.joules is None and reading.resolution_j is None
    assert "power sample failed" in reading.reason and "VDD_IN" in reading.reason


def test_a_sensor_unreadable_at_start_gives_none_and_starts_no_thread() -> None:
    def denied() -> dict[str, float]:
        raise SensorError("permission denied: /sys/kernel/debug/x")

    meter = PowerIntegratingMeter(denied, method="m", scope="s")
    meter.start()
    assert not meter.sampling
    reading = meter.stop()
    assert reading.joules is None and reading.reason == "permission denied: /sys/kernel/debug/x"


def test_meter_misuse_is_refused() -> None:
    meter = UnreadableMeter(method="m", scope="s", reason="no sensor")
    with pytest.raises(RuntimeError, match="before start"):
        meter.stop()
    meter.start()
    with pytest.raises(RuntimeError, match="only once"):
        meter.start()
    assert meter.stop().reason == "no sensor"
    with pytest.raises(RuntimeError, match="only once"):
        meter.stop()


# -- counters -------------------------------------------------------------------------------


def sequence(values: list[int], done: threading.Event | None = None) -> Callable[[], int]:
    """A counter that returns ``values`` in turn, then repeats the last one."""
    it = iter(values)
    last = values[0]

    def read() -> int:
        nonlocal last
        try:
            last = next(it)
        except StopIteration:
            if done is not None:
                done.set()
        return last

    return read


def test_counter_difference_with_one_wrap_between_start_and_stop() -> None:
    clock = StepClock(2.0)
    counter = Counter(
        "package-0", sequence([262_143_000_000, 1_000_000]), 1e-6, wrap=262_143_328_850
    )
    meter = CounterMeter(
        [counter], method="rapl-counter", scope="package-0", update_period_s=0.001, clock=clock
    )
    meter.start()
    reading = meter.stop()
    assert reading.joules == pytest.approx((262_143_328_850 - 262_143_000_000 + 1_000_000) * 1e-6)
    assert reading.interval_s == 2.0
    mean_w = reading.joules / 2.0
    assert reading.resolution_j == pytest.approx(1e-6 + 2 * 0.001 * mean_w)


def test_polling_catches_a_counter_that_wraps_several_times() -> None:
    # +300 per read on a counter that wraps at 1000: start and stop alone would see 100 -> ?,
    # and lose every whole wrap; polling sees every step.
    values = [(100 + 300 * i) % 1000 for i in range(40)]
    done = threading.Event()
    meter = CounterMeter(
        [Counter("c", sequence(values, done), 1.0, wrap=1000)],
        method="m",
        scope="s",
        update_period_s=0.0,
        poll_s=0.001,
    )
    meter.start()
    assert done.wait(WAIT_S)
    reading = meter.stop()
    assert not meter.polling
    assert reading.joules == pytest.approx(300 * (len(values) - 1))


def test_a_counter_going_backwards_without_wrap_is_unreadable() -> None:
    meter = CounterMeter(
        [Counter("GPU 0", sequence([5_000, 1_000]), 1e-3)],
        method="nvml-energy-counter",
        scope="GPU 0",
        update_period_s=0.1,
    )
    meter.start()
    reading = meter.stop()
    assert reading.joules is None and "went backwards" in reading.reason


def test_several_counters_are_summed_and_kept_apart() -> None:
    meter = CounterMeter(
        [
            Counter("package-0", sequence([0, 3_000_000]), 1e-6, wrap=10**12),
            Counter("package-0/dram", sequence([0, 1_000_000]), 1e-6, wrap=10**12),
        ],
        method="rapl-counter",
        scope="package-0 + package-0/dram",
        update_period_s=0.001,
    )
    meter.start()
    reading = meter.stop()
    assert reading.joules == pytest.approx(4.0)
    assert reading.parts == (
        ("package-0", pytest.approx(3.0)),
        ("package-0/dram", pytest.approx(1.0)),
    )


# -- energy per inference -------------------------------------------------------------------


def reading(
    joules: float | None,
    interval: float,
    resolution: float | None = 0.01,
    method: str = "m",
    scope: str = "s",
) -> EnergyReading:
    if joules is None:
        return EnergyReading.unreadable(method=method, scope=scope, interval_s=interval, reason="x")
    return EnergyReading(method, scope, interval, joules, resolution)


def test_energy_per_inference_is_gross_with_its_uncertainty() -> None:
    per = energy_per_inference(reading(2.0, 1.0, 0.05), 400)
    assert per is not None
    assert per.mj_per_inference == pytest.approx(5.0)
    assert per.uncertainty_mj == pytest.approx(0.125)
    assert per.relative_uncertainty == pytest.approx(0.025)
    assert per.net_mj_per_inference is None and per.idle_power_w is None


def test_idle_baseline_of_the_same_meter_gives_a_net_figure() -> None:
    per = energy_per_inference(reading(10.0, 2.0, 0.02), 1000, idle=reading(3.0, 1.0, 0.01))
    assert per is not None
    assert per.idle_power_w == pytest.approx(3.0)
    assert per.mj_per_inference == pytest.approx(10.0)
    assert per.net_mj_per_inference == pytest.approx((10.0 - 3.0 * 2.0) / 1000 * 1000)
    assert per.net_uncertainty_mj == pytest.approx((0.02 + 0.01 * 2.0) * 1000 / 1000)


def test_unreadable_energy_gives_none_never_a_number() -> None:
    assert energy_per_inference(reading(None, 1.0), 10) is None
    per = energy_per_inference(reading(1.0, 1.0), 10, idle=reading(None, 1.0))
    assert per is not None and per.net_mj_per_inference is None


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        energy_per_inference(reading(1.0, 1.0), 0)
    with pytest.raises(ValueError, match="same meter"):
        energy_per_inference(reading(1.0, 1.0), 5, idle=reading(1.0, 1.0, scope="other"))
    with pytest.raises(ValueError, match="both be set"):
        EnergyReading("m", "s", 1.0, 1.0, None)
    with pytest.raises(ValueError, match="needs a reason"):
        EnergyReading("m", "s", 1.0, None, None)
