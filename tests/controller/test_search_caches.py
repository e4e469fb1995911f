"""The search's caches change nothing: NSGA-II's fitness keys, NB201's block costs, and a
revision without new metadata (the hybrid driver's cheap path)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from fleetnas.controller.search import NSGA2Strategy, Objective, SearchEngine
from fleetnas.controller.search._operators import Key
from fleetnas.controller.spaces import NB201Space
from fleetnas.controller.spaces._nb201 import block_flops, block_params
from tests.controller.test_search_toyspace import ToySpace, zdt1

OBJECTIVES = [Objective("f1"), Objective("f2")]


class _UncachedNSGA2(NSGA2Strategy):
    """NSGA-II ranking the parents afresh at every proposal (the former behaviour)."""

    def _keys(self, points: Sequence[Key], violations: Sequence[float]) -> list[Key]:
        return self._fitness.keys(points, violations)


def _drive(engine: SearchEngine, space: ToySpace, seed: int) -> list[str]:
    """Ask in batches, tell ZDT1 values, and revise random told trials between batches
    (values moved up or down, ties included), as a hybrid search revises predictions."""
    rng = random.Random(seed)
    asked: list[str] = []
    for _ in range(12):
        for candidate in engine.ask(7):
            asked.append(candidate.encoding)
            engine.tell(candidate.id, zdt1(space, candidate.arch))
        for trial in rng.sample(engine.complete(), min(5, len(engine.complete()))):
            f1 = trial.values["f1"] if rng.random() < 0.5 else round(rng.random(), 1)
            engine.revise(trial.id, {"f1": f1, "f2": trial.values["f2"] * rng.uniform(0.8, 1.2)})
    return asked


def test_cached_nsga2_keys_propose_what_uncached_ones_do() -> None:
    space = ToySpace()
    for seed in range(4):
        cached = SearchEngine(space, NSGA2Strategy(population_size=6), OBJECTIVES, seed=seed)
        fresh = SearchEngine(space, _UncachedNSGA2(population_size=6), OBJECTIVES, seed=seed)
        assert _drive(cached, space, seed) == _drive(fresh, space, seed)


def test_cached_keys_are_a_copy() -> None:
    strategy = NSGA2Strategy(population_size=4)
    points, violations = [(0.0, 1.0), (1.0, 0.0), (1.0, 1.0)], [0.0, 0.0, 0.0]
    first = strategy._keys(points, violations)
    expected = list(first)
    first.clear()
    assert strategy._keys(points, violations) == expected
    assert strategy._keys([(1.0, 1.0), *points[:2]], violations) != expected


def test_nb201_cached_block_costs_match_the_block_functions() -> None:
    rng = random.Random(0)
    for space in (NB201Space(), NB201Space(channels=8, cells_per_stage=1)):
        for arch in [space.sample(rng) for _ in range(200)]:
            blocks = space.blocks(arch)
            assert space.count_flops(arch) == sum(block_flops(b) for b in blocks)
            assert space.count_params(arch) == sum(block_params(b) for b in blocks)


def test_revise_without_metadata_keeps_it_and_updates_values() -> None:
    space = ToySpace()
    engine = SearchEngine(space, NSGA2Strategy(population_size=4), OBJECTIVES, seed=0)
    candidate = engine.ask(1)[0]
    told = engine.tell(candidate.id, {"f1": 0.5, "f2": 2.0},
                       metadata={"sources": {"f1": "surrogate"}, "n": [1, 2]})
    revised = engine.revise(candidate.id, {"f1": 0.25})
    assert revised.values == {"f1": 0.25, "f2": 2.0}
    assert revised.evaluation is not None and told.evaluation is not None
    assert revised.evaluation.metadata == {"sources": {"f1": "surrogate"}, "n": [1, 2]}
    again = engine.revise(candidate.id, {"f2": 3.0}, metadata={"n": [3]})
    assert again.evaluation is not None
    assert again.evaluation.metadata == {"sources": {"f1": "surrogate"}, "n": [3]}
