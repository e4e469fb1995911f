"""NSGA-II (Deb et al. 2002) as an ask/tell strategy.

Generations, asynchronously: while no parent population exists, proposals are
uniform samples (generation 0). Whenever at least ``population_size`` trials
have been told since the last step, the next parent population is chosen
from the previous one plus every trial told since (elitist environmental
selection: constrained non-dominated fronts, the last front cut by crowding
distance) and the generation counter advances. Offspring come from the
current parents: two tournament winners, crossover with ``crossover_prob``
(else a copy of the first), then mutation with ``mutation_prob``.

Constraints use Deb's constraint-domination (feasible beats infeasible, lower
total violation wins among infeasible), both in the fronts and in the
tournament keys. A driver that asks more than ``population_size`` before
telling simply gets more offspring of the same parents; failed trials never
count, so the generation waits for enough successful ones.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from fleetnas.controller.search._operators import (
    Crossover,
    Key,
    Mutation,
    ParetoFitness,
    Selection,
    SpaceCrossover,
    SpaceMutation,
    TournamentSelection,
    operator_from_config,
)
from fleetnas.controller.search._pareto import constrained_non_dominated_sort, crowding_distance
from fleetnas.controller.search._strategy import Proposal, SearchView, Strategy, population_points
from fleetnas.controller.search._validate import instance_of, positive_int, probability


class NSGA2Strategy(Strategy):
    """NSGA-II. Keyword-only arguments; operators default to the space's own mutate/crossover.

    ``population_size`` ≥ 2; ``crossover_prob``, ``mutation_prob`` in [0, 1];
    ``selection`` defaults to the binary tournament on (rank, crowding).
    """

    kind = "nsga2"

    def __init__(
        self,
        *,
        population_size: int = 20,
        mutation: Mutation | None = None,
        crossover: Crossover | None = None,
        crossover_prob: float = 0.9,
        mutation_prob: float = 1.0,
        selection: Selection | None = None,
    ) -> None:
        owner = "NSGA2Strategy"
        self.population_size = positive_int(owner, "population_size", population_size, minimum=2)
        self.mutation: Mutation = instance_of(
            owner, "mutation", mutation or SpaceMutation(), Mutation
        )
        self.crossover: Crossover = instance_of(
            owner, "crossover", crossover or SpaceCrossover(), Crossover
        )
        self.crossover_prob = probability(owner, "crossover_prob", crossover_prob)
        self.mutation_prob = probability(owner, "mutation_prob", mutation_prob)
        self.selection: Selection = instance_of(
            owner, "selection", selection or TournamentSelection(2), Selection
        )
        self._fitness = ParetoFitness()
        # the last fitness keys and the (points, violations) they rank: every proposal of a
        # generation ranks the same parents, so the sort runs once per change (a pure cache)
        self._keys_memo: tuple[tuple[tuple[Key, ...], tuple[float, ...]], list[Key]] | None = None
        self._generation = 0
        self._parents: list[int] = []
        self._consumed = 0

    @property
    def generation(self) -> int:
        """Number of completed environmental selections (offspring carry this number)."""
        return self._generation

    def population(self, view: SearchView) -> list[int]:
        """The parents the next offspring will come from (reading it changes nothing)."""
        parents, _, _ = self._next_parents(view)
        return list(parents)

    def propose(self, view: SearchView, rng: random.Random) -> Proposal:
        self._parents, self._consumed, self._generation = self._next_parents(view)
        if not self._parents:
            return Proposal(view.space.sample(rng), (), 0)
        trials, points, violations = population_points(view, self._parents)
        keys = self._keys(points, violations)
        first = trials[self.selection.select(keys, rng)]
        second = trials[self.selection.select(keys, rng)]
        if rng.random() < self.crossover_prob:
            child = self.crossover(view.space, first.candidate.arch, second.candidate.arch, rng)
            parents = tuple(dict.fromkeys((first.id, second.id)))
        else:
            child, parents = first.candidate.arch, (first.id,)
        if rng.random() < self.mutation_prob:
            child = self.mutation(view.space, child, rng)
        return Proposal(child, parents, self._generation)

    def _keys(self, points: Sequence[Key], violations: Sequence[float]) -> list[Key]:
        """The fitness keys of these points, recomputed only when they change."""
        ranked = (tuple(points), tuple(violations))
        if self._keys_memo is None or self._keys_memo[0] != ranked:
            self._keys_memo = (ranked, self._fitness.keys(points, violations))
        return list(self._keys_memo[1])  # a copy: a selection may keep or change its keys

    def _next_parents(self, view: SearchView) -> tuple[list[int], int, int]:
        """(parents, consumed, generation) after the environmental selection, if one is due."""
        complete = view.complete()
        fresh = complete[self._consumed :]
        if len(fresh) < self.population_size:
            return self._parents, self._consumed, self._generation
        pool = self._parents + [t.id for t in fresh]
        _, points, violations = population_points(view, pool)
        chosen: list[int] = []
        for front in constrained_non_dominated_sort(points, violations):
            room = self.population_size - len(chosen)
            if len(front) <= room:
                chosen.extend(front)
            else:
                distances = crowding_distance([points[i] for i in front])
                by_isolation = sorted(range(len(front)), key=lambda k: -distances[k])
                chosen.extend(front[k] for k in by_isolation[:room])
            if len(chosen) == self.population_size:
                break
        return [pool[i] for i in chosen], len(complete), self._generation + 1

    def config(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size,
            "mutation": self.mutation.config(),
            "crossover": self.crossover.config(),
            "crossover_prob": self.crossover_prob,
            "mutation_prob": self.mutation_prob,
            "selection": self.selection.config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NSGA2Strategy:
        return cls(
            population_size=config["population_size"],
            mutation=operator_from_config(config["mutation"]),
            crossover=operator_from_config(config["crossover"]),
            crossover_prob=config["crossover_prob"],
            mutation_prob=config["mutation_prob"],
            selection=operator_from_config(config["selection"]),
        )

    def default_batch_size(self) -> int:
        """One population per step."""
        return self.population_size

    def state_dict(self) -> dict[str, Any]:
        return {
            "generation": self._generation,
            "parents": list(self._parents),
            "consumed": self._consumed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._generation = int(state["generation"])
        self._parents = [int(i) for i in state["parents"]]
        self._consumed = int(state["consumed"])
