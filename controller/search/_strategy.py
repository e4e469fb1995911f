"""The strategy contract: how a search proposes the next arch.

A :class:`Strategy` proposes one arch at a time from a read-only
:class:`SearchView` of the search and the engine's ``random.Random``; the
engine owns ids, deduplication, telling and persistence. A strategy instance
serves one engine; it may keep state between proposals, but all of it must
round-trip through :meth:`Strategy.state_dict` / :meth:`Strategy.load_state_dict`
(JSON-safe) and all randomness must come from the ``rng`` argument, so that a
restored search continues exactly as the original would have.

Proposals may be retried: when the engine has already seen the proposed arch,
it calls :meth:`Strategy.propose` again, so proposing must not assume its
previous proposal was accepted.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from fleetnas.controller.search._constraints import Constraint
from fleetnas.controller.search._objectives import Objective
from fleetnas.controller.search._records import Trial
from fleetnas.controller.spaces import Arch, SearchSpace


class Proposal(NamedTuple):
    """An arch a strategy wants evaluated, with its lineage."""

    arch: Arch
    parents: tuple[int, ...] = ()
    generation: int = 0


class SearchView(abc.ABC):
    """What a strategy may read of a search. Implemented by the engine; read-only."""

    space: SearchSpace
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]

    @abc.abstractmethod
    def complete(self) -> Sequence[Trial]:
        """Complete (told, not failed) trials in the order they were told.

        Only ever grows at the end; a revised trial keeps its position.
        """

    @abc.abstractmethod
    def trial(self, trial_id: int) -> Trial:
        """The trial with this id; KeyError when there is none."""

    @property
    @abc.abstractmethod
    def asked(self) -> int:
        """How many candidates the engine has created so far (all states)."""

    @abc.abstractmethod
    def point(self, trial: Trial) -> tuple[float, ...]:
        """The complete trial's objective values as a minimisation vector, in objective order."""

    @abc.abstractmethod
    def violation(self, trial: Trial) -> float:
        """The complete trial's total constraint violation (0 when feasible)."""


class Strategy(abc.ABC):
    """Proposes archs. See the module docstring for the contract."""

    #: registry name, stored with the search (``"nsga2"``, ``"aging"``, ``"random"``)
    kind: ClassVar[str]

    @abc.abstractmethod
    def propose(self, view: SearchView, rng: random.Random) -> Proposal:
        """The next arch to evaluate; all randomness from ``rng``."""

    @abc.abstractmethod
    def population(self, view: SearchView) -> list[int]:
        """Ids of the trials the next proposals are bred from (empty while sampling at random)."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-safe constructor arguments (operators as their configs)."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """JSON-safe mutable state; ``{}`` for a strategy that derives everything from the view."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Strategy:
        """The strategy :meth:`config` describes (a restored search is rebuilt with it).

        This default passes the configuration as keyword arguments; a strategy
        whose configuration holds operators overrides it.
        """
        return cls(**config)

    def default_batch_size(self) -> int:
        """How many candidates a driver should ask per step when not told: 10 here.

        NSGA-II asks one population, aging evolution a few at a time.
        """
        return 10


def population_points(
    view: SearchView, ids: Sequence[int]
) -> tuple[list[Trial], list[tuple[float, ...]], list[float]]:
    """The trials with ``ids`` and their minimisation vectors and violations."""
    trials = [view.trial(i) for i in ids]
    return trials, [view.point(t) for t in trials], [view.violation(t) for t in trials]
