"""The cool-down rule, driven by a fake clock (no waiting)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetnas.agent.android import CoolDownPolicy, wait_for_cool_down


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def reader(values: list[tuple[float | None, int | None]]) -> Iterator[tuple[float | None, int | None]]:
    yield from values
    while True:
        yield values[-1]


def run(values: list[tuple[float | None, int | None]], policy: CoolDownPolicy):
    clock = FakeClock()
    readings = reader(values)
    record = wait_for_cool_down(lambda: next(readings), policy, clock=clock, sleep=clock.sleep)
    return record, clock


POLICY = CoolDownPolicy(target_c=40.0, settle_window_s=10.0, settle_delta_c=0.5, poll_s=2.0,
                        timeout_s=60.0)


def test_a_cool_phone_starts_at_once() -> None:
    record, clock = run([(36.0, 0)], POLICY)
    assert record.settled and record.waited_s == 0.0 and clock.slept == []
    assert record.warning() is None


def test_waits_until_the_soc_is_at_the_target() -> None:
    record, clock = run([(48.0, 1), (45.0, 0), (42.5, 0), (40.0, 0)], POLICY)
    assert record.settled
    assert [r.temperature_c for r in record.readings] == [48.0, 45.0, 42.5, 40.0]
    assert record.waited_s == 6.0 and clock.slept == [2.0, 2.0, 2.0]
    assert "40.0 °C" in record.reason


def test_a_status_above_none_keeps_it_waiting_even_when_cool() -> None:
    record, _ = run([(39.0, 1), (39.0, 1), (39.0, 0)], POLICY)
    assert record.settled and len(record.readings) == 3


def test_a_plateau_above_the_target_counts_as_settled() -> None:
    # idles at 43 °C: after the 10 s window shows it no longer falls, it has settled
    values = [(45.0, 0), (44.0, 0), (43.2, 0), (43.0, 0), (43.0, 0), (43.0, 0), (42.9, 0),
              (42.9, 0)]
    record, _ = run(values, POLICY)
    assert record.settled and "steady at 42.9 °C" in record.reason
    assert record.waited_s >= 10.0


def test_times_out_with_a_warning_when_it_stays_hot_and_throttled() -> None:
    record, _ = run([(50.0, 1)], POLICY)
    assert not record.settled
    assert record.waited_s <= 60.0 and len(record.readings) == 31
    warning = record.warning()
    assert warning is not None and "not settled after 60 s (50.0 °C, thermal status 1)" in warning


def test_a_phone_without_any_thermal_reading_is_not_waited_for() -> None:
    record, clock = run([(None, None)], POLICY)
    assert not record.settled and clock.slept == []
    assert "no temperature and no thermal status" in record.reason


def test_status_alone_is_enough_when_there_is_no_temperature() -> None:
    record, _ = run([(None, 2), (None, 0)], POLICY)
    assert record.settled and len(record.readings) == 2


@pytest.mark.parametrize("bad", [dict(poll_s=0.0), dict(timeout_s=-1.0), dict(max_status=7),
                                 dict(target_c=float("nan"))])
def test_policy_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        CoolDownPolicy(**bad)
