"""Aging (regularized) evolution (Real et al. 2019) as an ask/tell strategy.

The population is the ``population_size`` most recently told successful
trials: each new one pushes the oldest out, whatever its fitness (the
"aging" that regularises the search). The first ``population_size``
proposals are uniform samples; after that each proposal is a mutation of
the winner of a tournament among ``sample_size`` members drawn at random.

Multi-objective choice: the tournament compares members by a
:class:`Fitness` computed over the whole current population. The default,
:class:`ParetoFitness`, is the constrained Pareto rank with crowding distance
as tie-break: it needs no weights and no normalisation, so it works the same
for accuracy in [0, 1] against latency in ms; the winner of a tournament is a
member of the best front present in the sample, the most isolated one
within it. :class:`ScalarFitness` (normalised weighted sum) is the
alternative when a trade-off is known in advance.

The strategy keeps no state of its own: population and warm-up follow from
the search's history, so restoring a search restores the strategy.
"""

from __future__ import annotations

import random
from typing import Any

from fleetnas.controller.search._operators import (
    Fitness,
    Mutation,
    ParetoFitness,
    SpaceMutation,
    TournamentSelection,
    operator_from_config,
)
from fleetnas.controller.search._strategy import Proposal, SearchView, Strategy, population_points
from fleetnas.controller.search._validate import instance_of, positive_int


class AgingEvolutionStrategy(Strategy):
    """Regularized evolution; keyword-only arguments, validated.

    ``population_size`` ≥ 2, ``1 <= sample_size <= population_size``;
    ``sample_size`` defaults to ``min(10, population_size)``.
    """

    kind = "aging"

    def __init__(
        self,
        *,
        population_size: int = 50,
        sample_size: int | None = None,
        mutation: Mutation | None = None,
        fitness: Fitness | None = None,
    ) -> None:
        owner = "AgingEvolutionStrategy"
        self.population_size = positive_int(owner, "population_size", population_size, minimum=2)
        if sample_size is None:
            sample_size = min(10, self.population_size)
        self.sample_size = positive_int(owner, "sample_size", sample_size)
        if self.sample_size > self.population_size:
            raise ValueError(
                f"{owner}: sample_size={sample_size!r} exceeds population_size={population_size!r}"
            )
        self.mutation: Mutation = instance_of(
            owner, "mutation", mutation or SpaceMutation(), Mutation
        )
        self.fitness: Fitness = instance_of(owner, "fitness", fitness or ParetoFitness(), Fitness)
        self._tournament = TournamentSelection(self.sample_size)

    def population(self, view: SearchView) -> list[int]:
        return [t.id for t in view.complete()[-self.population_size :]]

    def propose(self, view: SearchView, rng: random.Random) -> Proposal:
        members = self.population(view)
        if view.asked < self.population_size or not members:
            return Proposal(view.space.sample(rng), (), 0)
        trials, points, violations = population_points(view, members)
        keys = self.fitness.keys(points, violations)
        parent = trials[self._tournament.select(keys, rng)]
        child = self.mutation(view.space, parent.candidate.arch, rng)
        return Proposal(child, (parent.id,), parent.candidate.generation + 1)

    def config(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size,
            "sample_size": self.sample_size,
            "mutation": self.mutation.config(),
            "fitness": self.fitness.config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AgingEvolutionStrategy:
        return cls(
            population_size=config["population_size"],
            sample_size=config["sample_size"],
            mutation=operator_from_config(config["mutation"]),
            fitness=operator_from_config(config["fitness"]),
        )

    def default_batch_size(self) -> int:
        """A few candidates per step: the population turns over continuously."""
        return 5

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"AgingEvolutionStrategy keeps no state, got {state!r}")
