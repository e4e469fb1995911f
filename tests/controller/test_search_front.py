"""The vectorised Pareto front is exactly the pure-Python one it replaced.

``reference_front`` below is ``SearchEngine.pareto_front``'s selection as it
was written before (Deb's fast non-dominated sort over the feasible trials,
else the constrained sort's first front), kept here as the reference. The
point sets come from a small grid, so ties (equal coordinates, duplicate
points) are common, and violations repeat so that equally violating groups
exist.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetnas.controller.search import (
    Objective,
    RandomStrategy,
    SearchEngine,
    constrained_front,
    constrained_non_dominated_sort,
    non_dominated_sort,
)
from fleetnas.controller.spaces import get_space


def reference_front(points: Sequence[Sequence[float]], violations: Sequence[float]) -> list[int]:
    if not points:  # the engine returned [] before sorting anything
        return []
    feasible = [i for i, v in enumerate(violations) if v <= 0.0]
    if feasible:
        return [feasible[k] for k in non_dominated_sort([points[i] for i in feasible])[0]]
    return constrained_non_dominated_sort(points, violations)[0]


coordinate = st.sampled_from([-1.5, -0.0, 0.0, 0.5, 1.0, 2.0, 2.5, 1e9])
violation = st.sampled_from([0.0, 0.0, 0.0, 0.25, 0.25, 1.0, 3.0])


@st.composite
def point_sets(draw: st.DrawFn) -> tuple[list[list[float]], list[float]]:
    m = draw(st.integers(1, 4))
    n = draw(st.integers(0, 40))
    points = [draw(st.lists(coordinate, min_size=m, max_size=m)) for _ in range(n)]
    if draw(st.booleans()):  # all infeasible sometimes: the least-violating group decides
        violations = [draw(st.sampled_from([0.25, 0.25, 1.0, 3.0])) for _ in range(n)]
    else:
        violations = [draw(violation) for _ in range(n)]
    return points, violations


@settings(max_examples=400, deadline=None)
@given(point_sets())
def test_the_vectorised_front_equals_the_reference(case: tuple[list[list[float]], list[float]]) -> None:
    points, violations = case
    assert constrained_front(points, violations) == reference_front(points, violations)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.sampled_from([0.0, 0.0, 0.5, 2.0])),
                min_size=1, max_size=60))
def test_the_engine_front_is_the_reference_front_in_the_same_order(
    rows: list[tuple[int, int, float]]
) -> None:
    space = get_space("nb201")
    engine = SearchEngine(space, RandomStrategy(), [Objective("acc", "maximize"), Objective("lat")],
                          constraints=["lat <= 3"], seed=0)
    for candidate, (acc, lat, over) in zip(engine.ask(len(rows)), rows, strict=True):
        engine.tell(candidate.id, {"acc": float(acc), "lat": float(lat) + (3.0 + over if over else 0.0)})
    complete = engine.complete()
    points = [(-t.values["acc"], t.values["lat"]) for t in complete]
    violations = [t.evaluation.total_violation for t in complete if t.evaluation is not None]
    expected = sorted(reference_front(points, violations), key=lambda i: (points[i], complete[i].id))
    assert [t.id for t in engine.pareto_front()] == [complete[i].id for i in expected]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2 points but 1 violations"):
        constrained_front([[0.0], [1.0]], [0.0])
    assert constrained_front([], []) == []


def test_large_sets_are_compared_in_chunks_with_the_same_result() -> None:
    import random

    rng = random.Random(0)
    points = [[rng.randint(0, 30) for _ in range(3)] for _ in range(1500)]
    violations = [rng.choice([0.0, 0.0, 1.0]) for _ in points]
    assert constrained_front(points, violations) == reference_front(points, violations)
