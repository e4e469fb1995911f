"""Pareto utilities against brute force: sorting, crowding distance, exact hypervolume."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from fleetnas.controller.search import (
    constrained_non_dominated_sort,
    crowding_distance,
    dominates,
    hypervolume,
    non_dominated_sort,
    pareto_indices,
)


def _random_points(
    rng: random.Random, n: int, m: int, integer: bool = False
) -> list[tuple[float, ...]]:
    if integer:
        return [tuple(float(rng.randrange(10)) for _ in range(m)) for _ in range(n)]
    return [tuple(rng.random() for _ in range(m)) for _ in range(n)]


def _grid_volume(points: list[tuple[float, ...]], side: int) -> int:
    """Unit cells of [0, side)^m whose lower corner some point weakly dominates."""
    m = len(points[0])
    return sum(
        1
        for cell in itertools.product(range(side), repeat=m)
        if any(all(p[k] <= cell[k] for k in range(m)) for p in points)
    )


def _inclusion_exclusion(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    """Exact volume of the union of boxes [p, ref] by inclusion-exclusion (small sets only)."""
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(points, size):
            corner = [max(p[k] for p in subset) for k in range(len(ref))]
            box = math.prod(max(0.0, r - c) for r, c in zip(ref, corner, strict=True))
            total += box if size % 2 else -box
    return total


class TestSorting:
    def test_dominates(self) -> None:
        assert dominates((1, 2), (2, 2))
        assert not dominates((1, 2), (1, 2))
        assert not dominates((1, 3), (2, 2))

    @pytest.mark.parametrize("seed", range(5))
    def test_fronts_match_brute_force(self, seed: int) -> None:
        rng = random.Random(seed)
        points = _random_points(rng, 40, 3, integer=True)
        fronts = non_dominated_sort(points)
        assert sorted(i for f in fronts for i in f) == list(range(len(points)))
        rank = {i: r for r, f in enumerate(fronts) for i in f}
        for i, p in enumerate(points):
            dominators = [j for j, q in enumerate(points) if dominates(q, p)]
            # rank = length of the longest chain of dominators above it
            expected = 0 if not dominators else 1 + max(rank[j] for j in dominators)
            assert rank[i] == expected
        assert pareto_indices(points) == fronts[0]

    def test_constrained_sort_puts_feasible_first_then_by_violation(self) -> None:
        points = [(0.0, 0.0), (9.5, 9.5), (1.0, 9.0), (9.0, 1.0), (0.5, 0.5)]
        violations = [2.0, 0.0, 0.0, 0.0, 1.0]
        fronts = constrained_non_dominated_sort(points, violations)
        assert fronts == [[2, 3], [1], [4], [0]]


class TestCrowding:
    def test_boundaries_are_infinite_and_interior_is_normalised(self) -> None:
        points = [(0.0, 4.0), (1.0, 3.0), (3.0, 1.0), (4.0, 0.0)]
        d = crowding_distance(points)
        assert d[0] == d[3] == math.inf
        assert d[1] == pytest.approx(3 / 4 + 3 / 4)
        assert d[2] == pytest.approx(3 / 4 + 3 / 4)

    def test_small_fronts_are_all_boundary(self) -> None:
        assert crowding_distance([(1.0, 2.0), (2.0, 1.0)]) == [math.inf, math.inf]
        assert crowding_distance([]) == []


class TestHypervolume:
    @pytest.mark.parametrize("m,seed", [(2, s) for s in range(6)] + [(3, s) for s in range(6)])
    def test_exact_on_integer_grid(self, m: int, seed: int) -> None:
        rng = random.Random(100 + seed)
        points = _random_points(rng, 25, m, integer=True)
        ref = (10.0,) * m
        assert hypervolume(points, ref) == _grid_volume(points, 10)

    @pytest.mark.parametrize(
        "m,seed", [(2, s) for s in range(4)] + [(3, s) for s in range(4)] + [(4, 0)]
    )
    def test_exact_on_float_points(self, m: int, seed: int) -> None:
        rng = random.Random(200 + seed)
        points = _random_points(rng, 9, m)
        ref = (1.0,) * m
        assert hypervolume(points, ref) == pytest.approx(
            _inclusion_exclusion(points, ref), rel=1e-12
        )

    def test_monte_carlo_agrees_on_a_larger_3d_set(self) -> None:
        rng = random.Random(7)
        points = [p for p in _random_points(rng, 200, 3) if sum(p) > 1.2]
        exact = hypervolume(points, (1.0, 1.0, 1.0))
        samples = 40_000
        hits = 0
        for _ in range(samples):
            z = (rng.random(), rng.random(), rng.random())
            hits += any(p[0] <= z[0] and p[1] <= z[1] and p[2] <= z[2] for p in points)
        estimate = hits / samples
        # binomial standard error is at most 0.0025 here; 5 sigma
        assert abs(exact - estimate) < 0.0125

    def test_directions_and_points_outside_the_reference(self) -> None:
        # maximise accuracy, minimise latency; reference (accuracy 0, latency 10)
        points = [(0.9, 8.0), (0.5, 2.0), (0.95, 12.0), (0.0, 1.0)]
        volume = hypervolume(points, (0.0, 10.0), ["maximize", "minimize"])
        # the last two are outside the reference box
        assert volume == pytest.approx(0.5 * 8.0 + (0.9 - 0.5) * 2.0)

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="direction 'up'"):
            hypervolume([(1.0, 1.0)], (2.0, 2.0), ["up", "minimize"])
        with pytest.raises(ValueError, match="coordinates"):
            hypervolume([(1.0,)], (2.0, 2.0))
        assert hypervolume([], (1.0, 1.0)) == 0.0
