"""Summary statistics of latency samples (pure Python, no numpy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from fleetnas.api.v1 import agent_pb2


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, by linear interpolation.

    Same definition as ``numpy.percentile(..., method="linear")``: the value at
    fractional rank ``(n - 1) * q / 100``.
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within [0, 100], got {q}")
    rank = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = rank - lo
    a, b = sorted_values[lo], sorted_values[hi]
    return a + (b - a) * frac if frac else a


def mean_std_cv(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, population standard deviation (ddof=0) and cv = std / mean (0 when mean is 0)."""
    if not values:
        raise ValueError("statistics of no values")
    mean = math.fsum(values) / len(values)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
    cv = std / mean if mean else 0.0
    return mean, std, cv


def latency_stats(samples_ms: Sequence[float]) -> agent_pb2.LatencyStats:
    """Summarise latency samples (milliseconds).

    median/p90/p99 use linear interpolation between order statistics (as
    numpy's default); ``std_ms`` is the *population* standard deviation
    (ddof=0); ``cv`` is ``std_ms / mean_ms`` (0 if the mean is 0).

    Raises:
        ValueError: ``samples_ms`` is empty or holds a NaN or infinity.
    """
    if not samples_ms:
        raise ValueError("latency_stats needs at least one sample")
    values = [float(v) for v in samples_ms]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("latency samples must be finite numbers")
    ordered = sorted(values)
    mean, std, cv = mean_std_cv(values)
    return agent_pb2.LatencyStats(
        median_ms=percentile(ordered, 50),
        mean_ms=mean,
        p90_ms=percentile(ordered, 90),
        p99_ms=percentile(ordered, 99),
        min_ms=ordered[0],
        max_ms=ordered[-1],
        std_ms=std,
        cv=cv,
    )
