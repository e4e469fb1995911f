"""latency_stats against numpy on generated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetnas.agent.stats import latency_stats, percentile

samples = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=300,
)


@given(samples)
def test_matches_numpy(values: list[float]) -> None:
    stats = latency_stats(values)
    arr = np.asarray(values, dtype=np.float64)
    tol = {"rel": 1e-9, "abs": 1e-9}
    assert stats.median_ms == pytest.approx(float(np.median(arr)), **tol)
    assert stats.mean_ms == pytest.approx(float(arr.mean()), **tol)
    assert stats.p90_ms == pytest.approx(float(np.percentile(arr, 90)), **tol)
    assert stats.p99_ms == pytest.approx(float(np.percentile(arr, 99)), **tol)
    assert stats.min_ms == float(arr.min())
    assert stats.max_ms == float(arr.max())
    assert stats.std_ms == pytest.approx(float(arr.std(ddof=0)), rel=1e-7, abs=1e-6)
    mean = float(arr.mean())
    if mean > 0:
        assert stats.cv == pytest.approx(float(arr.std(ddof=0)) / mean, rel=1e-6, abs=1e-9)
    else:
        assert stats.cv == 0.0
    assert stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms


@given(samples, st.floats(min_value=0, max_value=100))
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    assert percentile(sorted(values), q) == pytest.approx(
        float(np.percentile(values, q)), rel=1e-9, abs=1e-9
    )


def test_known_values() -> None:
    stats = latency_stats([4.0, 1.0, 3.0, 2.0])
    assert stats.median_ms == 2.5
    assert stats.mean_ms == 2.5
    assert stats.std_ms == pytest.approx(math.sqrt(1.25))  # population, not sample
    assert stats.p90_ms == pytest.approx(3.7)
    assert stats.cv == pytest.approx(math.sqrt(1.25) / 2.5)


def test_single_sample() -> None:
    stats = latency_stats([7.5])
    assert (stats.median_ms, stats.p99_ms, stats.std_ms, stats.cv) == (7.5, 7.5, 0.0, 0.0)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_rejects_empty_and_non_finite(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        latency_stats(bad)
