"""Cool-down between runs: wait until the phone's thermal state has settled.

A phone that has just run a benchmark is hotter and may clock lower than
one that has rested, so back-to-back measurements drift with the heat. The
references let the phone cool between runs; fleetnas waits, polling the
SoC temperature and Android's thermal status, until either

* the thermal status is at most ``max_status`` (NONE by default) **and**
  the SoC is at or below ``target_c``, or
* the thermal status is at most ``max_status`` **and** the temperature has
  stopped falling: it dropped by no more than ``settle_delta_c`` over the
  last ``settle_window_s`` (a phone whose idle temperature sits above the
  target has reached it);

or until ``timeout_s`` has passed (then the run goes ahead and the result
carries a warning saying the phone had not settled). A phone that reports
neither a temperature nor a status cannot be waited for: the record says
so and no time is spent.

The clock and the sleep are parameters, so the rule is tested without
waiting; the bench passes the real ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CoolDownPolicy:
    """When a phone counts as cooled down (see the module docstring)."""

    target_c: float = 40.0
    max_status: int = 0
    settle_window_s: float = 20.0
    settle_delta_c: float = 0.5
    poll_s: float = 2.0
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("target_c", "settle_delta_c"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"cool-down {name} must be a finite number, got {value!r}")
        for name in ("settle_window_s", "poll_s", "timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"cool-down {name} must be >= 0 seconds, got {value!r}")
        if self.poll_s <= 0:
            raise ValueError(f"cool-down poll_s must be > 0 seconds, got {self.poll_s!r}")
        if not 0 <= self.max_status <= 6:
            raise ValueError(f"cool-down max_status must be a thermal status 0..6, "
                             f"got {self.max_status!r}")


@dataclass(frozen=True)
class CoolDownReading:
    elapsed_s: float
    temperature_c: float | None
    thermal_status: int | None


@dataclass(frozen=True)
class CoolDownRecord:
    """What the cool-down saw: every reading, how long it waited, and why it stopped."""

    settled: bool
    waited_s: float
    reason: str
    readings: tuple[CoolDownReading, ...]

    def warning(self) -> str | None:
        """The result warning when the phone had not settled; None when it had."""
        if self.settled:
            return None
        return f"cool-down: {self.reason}; the run started on a phone that had not cooled down"


def _settled(readings: list[CoolDownReading], policy: CoolDownPolicy) -> str | None:
    """Why the latest reading counts as settled, or None."""
    now = readings[-1]
    if now.thermal_status is not None and now.thermal_status > policy.max_status:
        return None
    if now.temperature_c is None:
        return "thermal status NONE and no temperature reading" if (
            now.thermal_status is not None) else None
    if now.temperature_c <= policy.target_c:
        return f"SoC at {now.temperature_c:.1f} °C (target {policy.target_c:.1f} °C)"
    cutoff = now.elapsed_s - policy.settle_window_s
    earlier = [r for r in readings[:-1] if r.elapsed_s <= cutoff and r.temperature_c is not None]
    if earlier and earlier[-1].temperature_c is not None:
        fell = earlier[-1].temperature_c - now.temperature_c
        if fell <= policy.settle_delta_c:
            return (
                f"SoC steady at {now.temperature_c:.1f} °C (fell {fell:.2f} °C over "
                f"{now.elapsed_s - earlier[-1].elapsed_s:.0f} s)"
            )
    return None


def wait_for_cool_down(
    read: Callable[[], tuple[float | None, int | None]],
    policy: CoolDownPolicy,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CoolDownRecord:
    """Poll ``read()`` -> (SoC °C or None, thermal status or None) until settled or timed out.

    Always reads at least once. Exceptions from ``read`` propagate (a phone
    that vanishes while cooling is the caller's error to report).
    """
    start = clock()
    readings: list[CoolDownReading] = []
    while True:
        temperature, status = read()
        elapsed = clock() - start
        readings.append(CoolDownReading(elapsed, temperature, status))
        if temperature is None and status is None:
            return CoolDownRecord(False, elapsed, "the phone reports no temperature and no "
                                  "thermal status", tuple(readings))
        why = _settled(readings, policy)
        if why is not None:
            return CoolDownRecord(True, elapsed, why, tuple(readings))
        if elapsed + policy.poll_s > policy.timeout_s:
            temp = f"{temperature:.1f} °C" if temperature is not None else "no temperature"
            state = f", thermal status {status}" if status is not None else ""
            return CoolDownRecord(
                False, elapsed, f"not settled after {elapsed:.0f} s ({temp}{state})",
                tuple(readings),
            )
        sleep(policy.poll_s)
