"""Find a search strategy by its ``kind``: the built-ins, then strategies from entry points.

A strategy from another package registers its :class:`Strategy` subclass in
the entry-point group ``fleetnas.strategies`` under its ``kind``::

    [project.entry-points."fleetnas.strategies"]
    bayes = "mypkg.search:BayesStrategy"

It is then available wherever a strategy is named: a driver's
``{"kind": "bayes", ...}`` spec, ``fleetnas search --strategy bayes``, and
:meth:`SearchEngine.from_state_dict` (rebuilt with ``from_config``). Same
rules as every registry (:mod:`fleetnas.controller.registry`).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable

from fleetnas.controller.registry import Registry, subclass_check
from fleetnas.controller.search._aging import AgingEvolutionStrategy
from fleetnas.controller.search._nsga2 import NSGA2Strategy
from fleetnas.controller.search._random import RandomStrategy
from fleetnas.controller.search._strategy import Strategy

STRATEGY_GROUP = "fleetnas.strategies"


class UnknownStrategy(LookupError):
    """No built-in or registered strategy has this kind."""


class StrategyPluginError(RuntimeError):
    """A registered strategy could not be loaded or is not a Strategy subclass."""


STRATEGIES: Registry[type[Strategy]] = Registry(
    STRATEGY_GROUP, "search strategy",
    {cls.kind: cls for cls in (NSGA2Strategy, AgingEvolutionStrategy, RandomStrategy)},
    subclass_check(Strategy, "kind", "search strategy", StrategyPluginError),
    unknown=UnknownStrategy, broken=StrategyPluginError,
)  # fmt: skip


def strategy_class(
    kind: str, *, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None
) -> type[Strategy]:
    """The strategy class of ``kind``; UnknownStrategy or StrategyPluginError."""
    return STRATEGIES.load(kind, entry_points)


def available_strategies(
    *, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None
) -> list[str]:
    """The built-in kinds (``nsga2``, ``aging``, ``random``), then the registered ones."""
    return STRATEGIES.names(entry_points)
