"""Hybrid mode under noise and budgets: per-arch uncertainty, robust surrogate, the
vectorised front check, and a measurement budget that is always spent."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetnas.controller.driver import (
    CallableMeasurer,
    HybridOptions,
    RidgeSurrogate,
    SearchConfig,
    SearchConfigError,
    SearchDriver,
    Target,
    constraint_dominates,
)
from fleetnas.controller.driver._select import dominated_counts
from fleetnas.controller.driver._surrogate import _weighted_ridge, local_sigmas, spacing
from fleetnas.controller.spaces._nb201 import live_edges
from tests.controller.test_driver import TARGETS, true_accuracy
from tests.controller.test_driver import _config as driver_config
from tests.controller.test_driver import true_latency as smooth_latency


def degenerate(arch: object) -> bool:
    """A cell with no live edge: its output does not depend on its ops (NB201's dead cells)."""
    return not live_edges(arch.ops)  # type: ignore[attr-defined]


def true_latency(arch: object, target: Target) -> float:
    """test_driver's device (MACs, 5 % arch noise), where a dead cell runs in a twentieth."""
    return smooth_latency(arch, target) * (0.05 if degenerate(arch) else 1.0)


def _config(**overrides: object) -> SearchConfig:
    return driver_config(**{"mode": "hybrid", "seed": 3, **overrides})


def _driver(config: SearchConfig) -> tuple[SearchDriver, CallableMeasurer]:
    measurer = CallableMeasurer(true_latency)
    driver = SearchDriver.create(config, measurer=measurer, callables={"accuracy": true_accuracy})
    return driver, measurer


# -- the surrogate ---------------------------------------------------------------------------


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    y = np.exp(0.4 * x[:, 0] - 0.3 * x[:, 1] + 0.03 * rng.standard_normal(n))
    return x, y


def test_outliers_neither_steer_the_fit_nor_widen_every_interval() -> None:
    x, y = _rows(80, 0)
    y_out = y.copy()
    y_out[:6] *= 0.05  # six degenerate archs, twenty times faster than the model says
    plain = RidgeSurrogate(log_target=True, robust=False).fit(x.tolist(), y_out.tolist())
    robust = RidgeSurrogate(log_target=True).fit(x.tolist(), y_out.tolist())
    clean = RidgeSurrogate(log_target=True).fit(x[6:].tolist(), y[6:].tolist())
    assert plain.sigma > 0.5  # the RMS error: ±65 %+ for every arch
    assert robust.sigma < 1.5 * clean.sigma < 0.06  # the typical error stays the inliers'
    assert robust.outliers >= 6
    inliers = x[6:]
    assert np.median(np.abs(np.log(robust.predict(inliers.tolist())) - np.log(y[6:]))) < 0.04
    # ... and an arch like an outlier (its twin) gets a wider interval than the rest
    near_outlier = robust.sigmas([(x[0] + 1e-3).tolist()])[0]
    typical = np.median(robust.sigmas(inliers.tolist()))
    assert near_outlier > 5 * typical


def test_an_arch_unlike_any_measured_one_gets_a_wider_interval() -> None:
    x, y = _rows(40, 1)
    model = RidgeSurrogate(log_target=True).fit(x.tolist(), y.tolist())
    near, far = model.sigmas([x[3].tolist(), (x[3] + 8.0).tolist()])
    assert far > 1.5 * near and near >= model.sigma * 0.5


def test_an_untrained_surrogate_knows_nothing() -> None:
    model = RidgeSurrogate(log_target=True).fit([[0.0], [1.0]], [1.0, 2.0])
    assert math.isinf(model.sigma) and np.all(np.isinf(model.sigmas([[0.5]])))


def test_the_weighted_leave_one_out_residuals_equal_explicit_weighted_refits() -> None:
    x, y = _rows(20, 2)
    y = np.log(y)
    w = np.linspace(0.2, 1.0, 20)
    fitted = _weighted_ridge(x, y, w, [0.5])
    for i in range(20):
        keep = np.arange(20) != i
        one = _weighted_ridge(x[keep], y[keep], w[keep], [0.5])
        assert fitted.loo[i] == pytest.approx(y[i] - one.predict(x[i:i + 1])[0], rel=1e-9)


def test_local_sigmas_blend_the_neighbours_errors_by_distance_with_the_prior() -> None:
    train = np.array([[0.0], [1.0], [2.0], [10.0]])
    errors = np.array([0.0, 0.0, 0.0, 1.0])
    got = local_sigmas(train, errors, np.array([[0.5], [10.0], [11.0]]), 0.1, bandwidth=1.0,
                       neighbours=1, prior_weight=1.0)
    near = math.exp(-0.25)  # the tie at 0.5 goes to the earlier row, whose error is 0
    assert got == pytest.approx([math.sqrt(0.01 / (near + 1)), math.sqrt((1.0 + 0.01) / 2),
                                 math.sqrt((math.exp(-1.0) + 0.01) / (math.exp(-1.0) + 1))])
    # a far neighbour's error hardly counts: the prior stays
    far = local_sigmas(train, errors, np.array([[14.0]]), 0.1, bandwidth=1.0, neighbours=1)
    assert far[0] == pytest.approx(0.1, rel=1e-3)


def test_spacing_is_the_median_nearest_neighbour_distance() -> None:
    rows = np.array([[0.0], [1.0], [3.0], [3.0], [7.0]])  # duplicates are not each other's
    assert spacing(rows) == pytest.approx(2.0)  # nearest: 1, 1, 2, 2, 4
    assert spacing(rows[:1]) == 1.0 and spacing(np.zeros((3, 2))) == 1.0


# -- the front check -------------------------------------------------------------------------

_coord = st.sampled_from([0.0, 1.0, 2.0, -1.0, 0.5])
_point = st.tuples(st.lists(_coord, min_size=2, max_size=2),
                   st.sampled_from([0.0, 0.0, 0.1, 0.5]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_point, max_size=12), st.lists(_point, max_size=300))
def test_the_vectorised_front_check_is_the_pairwise_one(
    candidates: Sequence[tuple[list[float], float]], measured: Sequence[tuple[list[float], float]]
) -> None:
    counts = dominated_counts(candidates, measured)
    assert list(counts) == [sum(constraint_dominates(m, c) for m in measured) for c in candidates]


# -- budgets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "measured"])
def test_a_measurement_budget_is_spent_and_says_so(mode: str) -> None:
    driver, measurer = _driver(_config(mode=mode, budget=None, max_measurements=60))
    result = driver.run()
    assert result.status == "complete" and result.stop == "measurements"
    assert 60 <= driver.counters.measured == measurer.calls
    # past the budget only by rounding up to whole candidates (fewer than a candidate's
    # targets) and by measuring the predicted front members of the last step
    front = len(result.front)
    assert measurer.calls <= 60 + len(TARGETS) - 1 + len(TARGETS) * front, (measurer.calls, front)
    if mode == "measured":
        assert measurer.calls == 60 and driver.trials_done() == 30


def test_late_in_a_search_hybrid_still_measures_every_step() -> None:
    # z = 0 and a warm surrogate: few candidates could enter the front, yet the budget goes
    driver, measurer = _driver(_config(budget=None, max_measurements=80,
                                       hybrid=HybridOptions(z=0.0), batch_size=10))
    steps = []
    while driver.step():
        steps.append(measurer.calls)
    assert driver.stop_reason() == "measurements" and measurer.calls >= 80
    assert all(b > a for a, b in zip(steps, steps[1:], strict=False)), steps


def test_the_candidate_budget_stops_first_and_says_so() -> None:
    driver, measurer = _driver(_config(budget=30, max_measurements=10_000))
    result = driver.run()
    assert result.stop == "budget" and measurer.calls < 10_000
    assert driver.trials_done() == 30


def test_budgets_are_validated() -> None:
    with pytest.raises(SearchConfigError, match="no budget: give a candidate budget"):
        _config(budget=None)
    with pytest.raises(SearchConfigError, match="max_measurements=0: expected a positive"):
        _config(max_measurements=0)


def test_a_hybrid_run_measures_archs_like_the_degenerate_ones_where_they_could_matter() -> None:
    driver, measurer = _driver(_config(budget=200, strategy={"kind": "random"}))
    driver.run()
    complete = driver.engine.complete()
    predicted = [t for t in complete if t.evaluation is not None
                 and t.evaluation.metadata["source"] != "measured"]
    assert predicted, "hybrid predicts some candidates"
    # every trial on the front is measured, degenerate or not
    for trial in driver.engine.pareto_front():
        assert trial.evaluation is not None and trial.evaluation.metadata["source"] == "measured"
    # the surrogate's typical error is the 5 % arch noise's, not the dead cells' 95 %
    described = driver.describe_predictors()["latency[pi]"]
    error = float(described.split("±")[1].split("%")[0])
    assert error < 15, described
