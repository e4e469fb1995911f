"""Pareto front of a search's trials: the vectorised front against the pure-Python sort it replaced.

Every hybrid step calls ``SearchEngine.pareto_front`` (several times: once
per round of measuring the front), over every complete trial so far. This
times the front selection alone, side by side in one process, on point sets
shaped like a search's: N trials, 3 objectives (accuracy and two latencies,
a trade-off with noise, many ties from rounding), a third of them violating
a constraint. Baseline: Deb's fast non-dominated sort over the feasible
trials (what the engine ran before), median of ``--repeats`` calls each.
Both must return the same indices (checked). Then the same for a whole
``SearchEngine.pareto_front()`` call on an engine holding those trials (the
engine's own bookkeeping included), with the old selection swapped in for
the baseline. Nothing is asserted on time.

    .venv/bin/python bench/bench_pareto_front.py [--sizes 200 800 3000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from fleetnas.controller.search import (
    Objective,
    RandomStrategy,
    SearchEngine,
    _engine,
    constrained_front,
    constrained_non_dominated_sort,
    non_dominated_sort,
)
from fleetnas.controller.spaces import get_space


def reference_front(points: Sequence[Sequence[float]], violations: Sequence[float]) -> list[int]:
    """The engine's selection before: Deb's sort of the feasible trials (else the constrained one)."""
    feasible = [i for i, v in enumerate(violations) if v <= 0.0]
    if feasible:
        return [feasible[k] for k in non_dominated_sort([points[i] for i in feasible])[0]]
    return constrained_non_dominated_sort(points, violations)[0]


@contextmanager
def swapped_selection() -> Iterator[None]:
    """The engine with its selection before this change (the baseline)."""
    original = _engine.constrained_front
    _engine.constrained_front = reference_front  # type: ignore[assignment]
    try:
        yield
    finally:
        _engine.constrained_front = original  # type: ignore[assignment]


def trials(n: int, seed: int) -> tuple[list[tuple[float, float, float]], list[float]]:
    rng = random.Random(seed)
    points, violations = [], []
    for _ in range(n):
        size = rng.random()
        accuracy = round(size + rng.gauss(0, 0.15), 2)
        lat1 = round(0.2 + 3 * size * rng.uniform(0.8, 1.2), 2)
        lat2 = round(lat1 * rng.uniform(0.4, 0.6), 2)
        points.append((-accuracy, lat1, lat2))
        violations.append(max(0.0, (lat1 - 2.2) / 2.2))
    return points, violations


def median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def engine_of(points: Sequence[tuple[float, float, float]], violations: Sequence[float]) -> SearchEngine:
    """An engine whose complete trials have these points (accuracy maximised) and violations."""
    engine = SearchEngine(get_space("nb201"), RandomStrategy(),
                          [Objective("accuracy", "maximize"), "lat1", "lat2"],
                          constraints=["lat1 <= 2.2"], seed=0)
    for candidate, (acc, l1, l2) in zip(engine.ask(len(points)), points, strict=True):
        engine.tell(candidate.id, {"accuracy": -acc, "lat1": l1, "lat2": l2})
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 800, 3000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}")
    print(f"{'N':>6}{'front':>7}{'python ms':>12}{'numpy ms':>11}{'speed-up':>10}"
          f"{'engine before ms':>18}{'engine now ms':>15}{'speed-up':>10}")
    for n in args.sizes:
        points, violations = trials(n, seed=n)
        expected = reference_front(points, violations)
        assert constrained_front(points, violations) == expected, "fronts differ"
        slow = median_s(functools.partial(reference_front, points, violations), args.repeats)
        fast = median_s(functools.partial(constrained_front, points, violations), args.repeats)
        engine = engine_of(points, violations)
        now = median_s(engine.pareto_front, args.repeats)
        with swapped_selection():
            before = median_s(engine.pareto_front, args.repeats)
        print(f"{n:>6}{len(expected):>7}{1e3 * slow:>12.1f}{1e3 * fast:>11.2f}{slow / fast:>9.0f}×"
              f"{1e3 * before:>18.1f}{1e3 * now:>15.2f}{before / now:>9.0f}×")
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
