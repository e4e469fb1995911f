"""The report's history (hypervolume after each measurement) and its stated reference point,
against values worked out by hand."""

from __future__ import annotations

import pytest

from fleetnas.controller.report import ResultRow, hypervolume_history, reference_point
from fleetnas.controller.search import Objective

OBJECTIVES = [Objective("accuracy", "maximize"), Objective("latency[a]")]


def _row(i: int, accuracy: float, latency: float, *, feasible: bool = True,
         source: str = "measured") -> ResultRow:
    measured = source == "measured"
    return ResultRow(candidate_id=i, encoding=f"arch-{i}",
                     values={"accuracy": accuracy, "latency[a]": latency}, feasible=feasible,
                     violation=0.0 if feasible else 1.0, source=source,
                     sources={"latency[a]": "measured" if measured else "lut"},
                     measurements={"latency[a]": f"uid-{i}"} if measured else {})


def test_the_history_replays_in_measurement_order_against_the_reference() -> None:
    rows = [
        _row(0, 0.9, 3.0),                   # A
        _row(1, 0.8, 1.0),                   # B
        _row(2, 0.7, 2.0),                   # C, dominated by B
        _row(3, 0.95, 0.5, feasible=False),  # never counts
        _row(4, 0.99, 0.1, source="predicted"),  # not measured: does not count
    ]
    reference = reference_point(rows, OBJECTIVES, {"accuracy": 0.5, "latency[a]": 4.0})
    order = {1: 10.0, 2: 11.0, 3: 12.0, 0: 13.0, 4: 9.0}
    history = hypervolume_history(rows, OBJECTIVES, reference, order)
    assert history.axis == "latency measurements"
    assert [(p.x, p.candidate_id) for p in history.points] == [(1, 1), (2, 2), (3, 3), (4, 0)]
    # B alone: 3 ms x 0.3; C adds nothing; A adds the 1 ms x 0.1 strip above B: 1.0
    assert [p.hypervolumes["all"] for p in history.points] == pytest.approx([0.9, 0.9, 0.9, 1.0])


def test_a_search_that_measured_nothing_replays_per_candidate() -> None:
    rows = [_row(i, 0.5 + 0.1 * i, 1.0 + i, source="predicted") for i in range(3)]
    history = hypervolume_history(rows, OBJECTIVES, reference_point(rows, OBJECTIVES))
    assert history.axis == "candidates evaluated (predicted values)"
    assert [p.x for p in history.points] == [1, 2, 3]
    values = [p.hypervolumes["all"] for p in history.points]
    assert values == sorted(values) and values[0] > 0


def test_one_curve_per_device_plane_when_there_are_several_latencies() -> None:
    objectives = [*OBJECTIVES, Objective("latency[b]")]
    rows = [ResultRow(candidate_id=0, encoding="x", feasible=True, violation=0.0,
                      values={"accuracy": 0.9, "latency[a]": 2.0, "latency[b]": 1.0},
                      source="measured", measurements={"latency[a]": "u", "latency[b]": "v"})]
    reference = reference_point(rows, objectives, {"accuracy": 0.5, "latency[a]": 4.0,
                                                   "latency[b]": 3.0})
    history = hypervolume_history(rows, objectives, reference)
    assert history.curves == ("all", "accuracy × latency[a]", "accuracy × latency[b]")
    (point,) = history.points
    assert point.x == 2  # two latency measurements
    assert point.hypervolumes == pytest.approx(
        {"all": 0.4 * 2.0 * 2.0, "accuracy × latency[a]": 0.4 * 2.0,
         "accuracy × latency[b]": 0.4 * 2.0})


def test_the_stated_reference_is_the_worst_trial_plus_a_tenth_of_the_range() -> None:
    rows = [_row(0, 0.9, 3.0), _row(1, 0.7, 1.0)]
    reference = reference_point(rows, OBJECTIVES, {"latency[a]": 10.0})
    assert reference.values == pytest.approx({"accuracy": 0.7 - 0.02, "latency[a]": 10.0})
    assert reference.given == {"latency[a]"}
    assert "latency[a] 10 (given)" in reference.describe()
    with pytest.raises(ValueError, match="params: not an objective"):
        reference_point(rows, OBJECTIVES, {"params": 1.0})
