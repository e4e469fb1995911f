"""Small strategy objects the evolutionary strategies are built from.

* :class:`Mutation` — parent arch -> child arch (default :class:`SpaceMutation`).
* :class:`Crossover` — two parents -> child (default :class:`SpaceCrossover`).
* :class:`Fitness` — population -> one sort key per member, lower is better
  (default :class:`ParetoFitness`: constrained Pareto rank, then crowding).
* :class:`Selection` — sort keys -> the index of one parent
  (default :class:`TournamentSelection`).

Every operator is stateless, draws randomness only from the ``rng`` it is
given, and describes itself with :meth:`config` (JSON-safe, with a ``type``)
so a stored search can name what it ran with; :func:`operator_from_config`
rebuilds the built-in ones. Constructor arguments are validated with a
ValueError that names the bad value.
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from fleetnas.controller.search._pareto import constrained_non_dominated_sort, crowding_distance
from fleetnas.controller.search._validate import positive_int
from fleetnas.controller.spaces import Arch, SearchSpace

Key = tuple[float, ...]


class Mutation(abc.ABC):
    """Turns one parent into a child inside the same space."""

    @abc.abstractmethod
    def __call__(self, space: SearchSpace, arch: Arch, rng: random.Random) -> Arch:
        """A child of ``arch``; all randomness from ``rng``."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-safe description, ``{"type": ..., **arguments}``."""


class SpaceMutation(Mutation):
    """Apply the space's own :meth:`SearchSpace.mutate` ``steps`` times."""

    def __init__(self, steps: int = 1) -> None:
        self.steps = positive_int("SpaceMutation", "steps", steps)

    def __call__(self, space: SearchSpace, arch: Arch, rng: random.Random) -> Arch:
        for _ in range(self.steps):
            arch = space.mutate(arch, rng)
        return arch

    def config(self) -> dict[str, Any]:
        return {"type": "space_mutation", "steps": self.steps}


class Crossover(abc.ABC):
    """Breeds one child from two parents inside the same space."""

    @abc.abstractmethod
    def __call__(self, space: SearchSpace, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """A child whose choices come from ``a`` and ``b``; all randomness from ``rng``."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-safe description, ``{"type": ..., **arguments}``."""


class SpaceCrossover(Crossover):
    """The space's own :meth:`SearchSpace.crossover`."""

    def __call__(self, space: SearchSpace, a: Arch, b: Arch, rng: random.Random) -> Arch:
        return space.crossover(a, b, rng)

    def config(self) -> dict[str, Any]:
        return {"type": "space_crossover"}


class Fitness(abc.ABC):
    """Ranks a population: one sort key per member, lower is better."""

    @abc.abstractmethod
    def keys(self, points: Sequence[Key], violations: Sequence[float]) -> list[Key]:
        """Keys for members given as minimisation vectors and total constraint violations."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-safe description, ``{"type": ..., **arguments}``."""


class ParetoFitness(Fitness):
    """``(constrained Pareto rank, -crowding distance)`` over the population.

    Scale-free (no weights, no normalisation): a member of the best
    constraint-domination front beats any member of a worse one; within a
    front, the more isolated member wins (NSGA-II's crowded comparison).
    """

    def keys(self, points: Sequence[Key], violations: Sequence[float]) -> list[Key]:
        keys: list[Key] = [(0.0, 0.0)] * len(points)
        for rank, front in enumerate(constrained_non_dominated_sort(points, violations)):
            distances = crowding_distance([points[i] for i in front])
            for i, distance in zip(front, distances, strict=True):
                keys[i] = (float(rank), -distance)
        return keys

    def config(self) -> dict[str, Any]:
        return {"type": "pareto_fitness"}


class ScalarFitness(Fitness):
    """Weighted sum of the objectives, each min-max normalised over the population.

    ``weights`` follow the engine's objective order (``None``: equal weights).
    Feasible members beat infeasible ones; infeasible ones compare by total
    violation. An infinite coordinate (an unknown value) normalises to 1, the
    population's worst, and the finite ones span the range alone.
    """

    def __init__(self, weights: Sequence[float] | None = None) -> None:
        if weights is not None:
            weights = [float(w) for w in weights]
            if not weights or any(w < 0.0 for w in weights) or sum(weights) <= 0.0:
                raise ValueError(
                    f"ScalarFitness: weights={weights!r}, expected non-negative numbers, not all 0"
                )
        self.weights = weights

    def keys(self, points: Sequence[Key], violations: Sequence[float]) -> list[Key]:
        if not points:
            return []
        m = len(points[0])
        weights = self.weights if self.weights is not None else [1.0] * m
        if len(weights) != m:
            raise ValueError(f"ScalarFitness: {len(weights)} weights for {m} objectives")
        finite = [[p[k] for p in points if math.isfinite(p[k])] for k in range(m)]
        lows = [min(f, default=0.0) for f in finite]
        spans = [max(f, default=0.0) - lo for f, lo in zip(finite, lows, strict=True)]
        keys: list[Key] = []
        for p, v in zip(points, violations, strict=True):
            if v > 0.0:
                keys.append((1.0, v))
                continue
            score = sum(
                w * (1.0 if not math.isfinite(x) else (x - lo) / span if span > 0.0 else 0.0)
                for w, x, lo, span in zip(weights, p, lows, spans, strict=True)
            )
            keys.append((0.0, score))
        return keys

    def config(self) -> dict[str, Any]:
        return {"type": "scalar_fitness", "weights": self.weights}


class Selection(abc.ABC):
    """Picks one parent given the population's fitness keys."""

    @abc.abstractmethod
    def select(self, keys: Sequence[Key], rng: random.Random) -> int:
        """Index of the chosen member; ``keys`` is non-empty; lower keys are better."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-safe description, ``{"type": ..., **arguments}``."""


class TournamentSelection(Selection):
    """Draw ``size`` distinct members uniformly; the lowest key wins (ties: first drawn).

    ``size=2`` is NSGA-II's binary tournament. With fewer members than
    ``size``, all of them compete.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = positive_int("TournamentSelection", "size", size)

    def select(self, keys: Sequence[Key], rng: random.Random) -> int:
        if not keys:
            raise ValueError("TournamentSelection: empty population")
        contestants = rng.sample(range(len(keys)), min(self.size, len(keys)))
        return min(contestants, key=lambda i: keys[i])

    def config(self) -> dict[str, Any]:
        return {"type": "tournament", "size": self.size}


_OPERATORS: dict[str, type] = {
    "space_mutation": SpaceMutation,
    "space_crossover": SpaceCrossover,
    "pareto_fitness": ParetoFitness,
    "scalar_fitness": ScalarFitness,
    "tournament": TournamentSelection,
}


def operator_from_config(config: Mapping[str, Any]) -> Any:
    """Rebuild a built-in operator from its :meth:`config`; ValueError for unknown types."""
    arguments = dict(config)
    kind = arguments.pop("type", None)
    cls = _OPERATORS.get(str(kind))
    if cls is None:
        raise ValueError(
            f"operator type {kind!r} is not built in (known: {', '.join(sorted(_OPERATORS))}); "
            "pass the strategy object itself when restoring a search that used a custom operator"
        )
    return cls(**arguments)
