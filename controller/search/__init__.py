"""Multi-objective architecture search: an ask/tell engine, its strategies, objectives and constraints.

Drive a search from outside (devices, LUTs, estimators, any callable)::

    from fleetnas.controller.search import NSGA2Strategy, SearchEngine

    engine = SearchEngine(space, NSGA2Strategy(population_size=20),
                          ["accuracy", "latency[rpi4]", "latency[jetson]"],
                          constraints=["latency[rpi4] <= 30 ms"], seed=0)
    for candidate in engine.ask(20):
        engine.tell(candidate.id, {"accuracy": ..., "latency[rpi4]": ..., "latency[jetson]": ...})
    front = engine.pareto_front()

See ``docs/search.md``. Only the names in ``__all__`` are API.
"""

from __future__ import annotations

from fleetnas.controller.search._aging import AgingEvolutionStrategy
from fleetnas.controller.search._constraints import Constraint, parse_constraint
from fleetnas.controller.search._engine import (
    CandidateStateError,
    DuplicateCandidateWarning,
    SearchEngine,
    UnknownCandidate,
)
from fleetnas.controller.search._nsga2 import NSGA2Strategy
from fleetnas.controller.search._objectives import (
    MAXIMIZED_BY_DEFAULT,
    CallableObjective,
    Objective,
    parse_objective,
    split_name,
)
from fleetnas.controller.search._operators import (
    Crossover,
    Fitness,
    Mutation,
    ParetoFitness,
    ScalarFitness,
    Selection,
    SpaceCrossover,
    SpaceMutation,
    TournamentSelection,
    operator_from_config,
)
from fleetnas.controller.search._pareto import (
    MAXIMIZE,
    MINIMIZE,
    constrained_front,
    constrained_non_dominated_sort,
    crowding_distance,
    dominates,
    hypervolume,
    non_dominated_sort,
    pareto_indices,
)
from fleetnas.controller.search._persist import STATE_FORMAT, STEP_FORMAT, trial_record
from fleetnas.controller.search._random import RandomStrategy
from fleetnas.controller.search._records import Candidate, Evaluation, Trial, TrialState
from fleetnas.controller.search._registry import (
    STRATEGIES,
    STRATEGY_GROUP,
    StrategyPluginError,
    UnknownStrategy,
    available_strategies,
    strategy_class,
)
from fleetnas.controller.search._strategy import Proposal, SearchView, Strategy

__all__ = [
    "MAXIMIZE",
    "MAXIMIZED_BY_DEFAULT",
    "MINIMIZE",
    "STATE_FORMAT",
    "STEP_FORMAT",
    "STRATEGIES",
    "STRATEGY_GROUP",
    "AgingEvolutionStrategy",
    "CallableObjective",
    "Candidate",
    "CandidateStateError",
    "Constraint",
    "Crossover",
    "DuplicateCandidateWarning",
    "Evaluation",
    "Fitness",
    "Mutation",
    "NSGA2Strategy",
    "Objective",
    "ParetoFitness",
    "Proposal",
    "RandomStrategy",
    "ScalarFitness",
    "SearchEngine",
    "SearchView",
    "Selection",
    "SpaceCrossover",
    "SpaceMutation",
    "Strategy",
    "StrategyPluginError",
    "TournamentSelection",
    "Trial",
    "TrialState",
    "UnknownCandidate",
    "UnknownStrategy",
    "available_strategies",
    "constrained_front",
    "constrained_non_dominated_sort",
    "crowding_distance",
    "dominates",
    "hypervolume",
    "non_dominated_sort",
    "operator_from_config",
    "parse_constraint",
    "parse_objective",
    "pareto_indices",
    "split_name",
    "strategy_class",
    "trial_record",
]
