"""Saving and restoring an engine: its small state, its trials, and the two together.

An engine's state has two parts of very different sizes:

* the **step state** (:func:`step_state`): the space's identity and version,
  the seed, objectives, constraints, the strategy's kind, configuration and
  state, and the generator's state. Its size does not grow with the search;
* the **trials**: one record per candidate (:func:`trial_record`: encoding,
  lineage, state, values, metadata, failure, and the unknown values with their
  reasons when there are any), which a store keeps as rows
  and writes only when a trial changes.

The step state also says in which order the complete trials were told: by
default in candidate order (what a driver does; ``"told_by_id": true``), else
the order itself. :func:`restore` rebuilds an engine from a step state plus
the trial records; :meth:`SearchEngine.state_dict` is both in one JSON
document (format ``fleetnas.search/1``), :meth:`SearchEngine.from_state_dict`
reads it. Either way the engine continues exactly as the original would have.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fleetnas.controller.search._objectives import Objective
from fleetnas.controller.search._records import Candidate, Trial, TrialState
from fleetnas.controller.search._registry import (
    StrategyPluginError,
    UnknownStrategy,
    strategy_class,
)
from fleetnas.controller.search._strategy import Strategy
from fleetnas.controller.spaces import SearchSpace

if TYPE_CHECKING:
    from fleetnas.controller.search._engine import SearchEngine

STATE_FORMAT = "fleetnas.search/1"
STEP_FORMAT = "fleetnas.search-step/1"


def trial_record(trial: Trial) -> dict[str, Any]:
    """One trial as JSON-safe data (see the module docstring)."""
    c = trial.candidate
    e = trial.evaluation
    return {
        "id": c.id, "encoding": c.encoding, "generation": c.generation,
        "parents": list(c.parents), "duplicate_of": c.duplicate_of, "state": trial.state.value,
        "values": dict(e.values) if e else None, "metadata": dict(e.metadata) if e else None,
        "failure": trial.failure,
        **({"unknown": dict(e.unknown)} if e and e.unknown else {}),
    }  # fmt: skip


def _header(engine: SearchEngine) -> dict[str, Any]:
    version, internal, gauss = engine._rng.getstate()
    return {
        "space": engine.space.identity(),
        "space_version": engine.space.version,
        "seed": engine.seed,
        "max_retries": engine.max_retries,
        "objectives": [o.to_dict() for o in engine.objectives],
        "constraints": [c.text for c in engine.constraints],
        "strategy": {
            "kind": engine.strategy.kind,
            "config": engine.strategy.config(),
            "state": engine.strategy.state_dict(),
        },
        "rng": [version, list(internal), gauss],
    }


def step_state(engine: SearchEngine) -> dict[str, Any]:
    """The engine without its trials (size independent of the search's length)."""
    order = list(engine._complete_order)
    by_id = order == sorted(order)
    return {
        "format": STEP_FORMAT,
        **_header(engine),
        "asked": len(engine._trials),
        "told_by_id": by_id,
        "complete_order": None if by_id else order,
        "duplicates": {str(t.id): t.candidate.duplicate_of for t in engine._trials.values()
                       if t.candidate.duplicate_of is not None},
    }  # fmt: skip


def full_state(engine: SearchEngine) -> dict[str, Any]:
    """The engine with every trial (``SearchEngine.state_dict``)."""
    return {
        "format": STATE_FORMAT,
        **_header(engine),
        "trials": [trial_record(t) for t in engine._trials.values()],
        "complete_order": list(engine._complete_order),
    }


def is_step_state(state: Mapping[str, Any]) -> bool:
    return state.get("format") == STEP_FORMAT


# -- restoring ------------------------------------------------------------------------------


def _check_space(state: Mapping[str, Any], space: SearchSpace) -> None:
    if state["space"] != space.identity() or state["space_version"] != space.version:
        raise ValueError(
            f"the search ran on space {state['space']!r} version {state['space_version']}, "
            f"not {space.identity()!r} version {space.version}"
        )


def _strategy(stored: Mapping[str, Any], strategy: Strategy | None) -> Strategy:
    if strategy is None:
        try:
            factory = strategy_class(stored["kind"])
        except (UnknownStrategy, StrategyPluginError) as exc:
            raise ValueError(f"{exc}; or pass the strategy object") from exc
        return factory.from_config(dict(stored["config"]))
    if strategy.kind != stored["kind"] or _jsonish(strategy.config()) != _jsonish(stored["config"]):
        raise ValueError(
            f"strategy {strategy.kind} {strategy.config()!r} does not match the stored "
            f"{stored['kind']} {stored['config']!r}"
        )
    return strategy


def _objectives(stored: Sequence[Mapping[str, Any]], objectives: Sequence[Objective] | None
                ) -> Sequence[Objective]:
    stored_objectives = [Objective(o["name"], o["direction"], o.get("label")) for o in stored]
    if objectives is None:
        return stored_objectives
    if [(o.name, o.direction) for o in objectives] != [
        (o.name, o.direction) for o in stored_objectives
    ]:
        raise ValueError(
            f"objectives {[o.to_dict() for o in objectives]} do not match the stored "
            f"{[o.to_dict() for o in stored_objectives]}"
        )
    return objectives


def _load_trials(engine: SearchEngine, records: Sequence[Mapping[str, Any]],
                 duplicates: Mapping[str, int]) -> None:
    for record in records:
        dup = record.get("duplicate_of", duplicates.get(str(record["id"])))
        candidate = Candidate(
            id=int(record["id"]), arch=engine.space.decode(record["encoding"]),
            encoding=record["encoding"], generation=int(record["generation"]),
            parents=tuple(int(p) for p in record["parents"]),
            duplicate_of=None if dup is None else int(dup),
        )  # fmt: skip
        if candidate.id != len(engine._trials):
            raise ValueError(f"trial ids out of order at {candidate.id}")
        trial_state = TrialState(record["state"])
        evaluation = None
        if trial_state is TrialState.COMPLETE:
            evaluation = engine._evaluate(record["values"], record["metadata"] or {},
                                          unknown=record.get("unknown") or {})
        engine._trials[candidate.id] = Trial(candidate, trial_state, evaluation, record["failure"])
        engine._seen.setdefault(candidate.encoding, candidate.id)


def restore(
    cls: type[SearchEngine],
    state: Mapping[str, Any],
    space: SearchSpace,
    trials: Sequence[Mapping[str, Any]],
    *,
    strategy: Strategy | None = None,
    objectives: Sequence[Objective] | None = None,
) -> SearchEngine:
    """An engine from a step or full state and its trial records (ids 0.. in order)."""
    _check_space(state, space)
    stored = state["strategy"]
    engine = cls(
        space, _strategy(stored, strategy), _objectives(state["objectives"], objectives),
        constraints=list(state["constraints"]), seed=int(state["seed"]),
        max_retries=int(state["max_retries"]),
    )  # fmt: skip
    if is_step_state(state) and len(trials) != int(state["asked"]):
        raise ValueError(f"the state has {state['asked']} candidates, {len(trials)} were given")
    _load_trials(engine, trials, state.get("duplicates") or {})
    order = state.get("complete_order")
    if order is None:
        order = [t.id for t in engine._trials.values() if t.state is TrialState.COMPLETE]
    engine._complete_order = [int(i) for i in order]
    version, internal, gauss = state["rng"]
    engine._rng.setstate((int(version), tuple(int(x) for x in internal), gauss))
    engine.strategy.load_state_dict(dict(stored["state"]))
    return engine


def _jsonish(value: Any) -> Any:
    return json.loads(json.dumps(value))
