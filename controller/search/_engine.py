"""The ask/tell search engine.

The engine proposes candidates (:meth:`SearchEngine.ask`), something else
evaluates them (devices, LUTs, estimators, any callable) and tells the values
back (:meth:`SearchEngine.tell`). It owns the candidates' ids, the search's
random generator, deduplication and the Pareto front, and delegates *what*
to propose to a :class:`Strategy`.

Guarantees:

* Determinism: every random draw comes from one ``random.Random(seed)`` the
  engine owns and passes to the strategy and the space. The same seed, space,
  strategy configuration and sequence of ask/tell/fail/revise calls give the
  same candidates, on every platform.
* Resumability: :meth:`SearchEngine.state_dict` is JSON-safe (generator
  state included) and :meth:`SearchEngine.from_state_dict` continues exactly
  where the original was: the same future asks for the same future tells.
  Pending candidates stay pending and can still be told after a restore.
* Unknown values: a value the evaluator cannot know (an accuracy proxy that
  sees only the fp32 network, for a candidate deployed in int8) is told as
  ``unknown={name: reason}`` instead of a number. An unknown objective ranks
  as its worst possible value (``+inf`` in the minimisation vector): such a
  trial dominates no trial on that objective, is dominated by any trial no
  worse on the others, and so is on the front only for its other objectives.
  It adds nothing to the hypervolume. A constraint cannot be checked on an
  unknown value, so telling one is a ValueError.
* No repeats: an arch already proposed (by encoding) is not proposed again.
  The strategy is asked again up to ``max_retries`` times, then the space is
  sampled uniformly up to ``max_retries`` times; if every draw was seen (a
  nearly exhausted space) the duplicate is proposed anyway, with
  ``Candidate.duplicate_of`` set and a :class:`DuplicateCandidateWarning`.

Not thread-safe: drive one engine from one thread (evaluations themselves
may run anywhere).
"""

from __future__ import annotations

import json
import logging
import math
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fleetnas.controller.search._constraints import Constraint, parse_constraint
from fleetnas.controller.search._objectives import CallableObjective, Objective, parse_objective
from fleetnas.controller.search._pareto import constrained_front, hypervolume
from fleetnas.controller.search._persist import (
    STATE_FORMAT,
    STEP_FORMAT,
    full_state,
    is_step_state,
    restore,
    step_state,
)
from fleetnas.controller.search._records import Candidate, Evaluation, Trial, TrialState
from fleetnas.controller.search._strategy import Proposal, SearchView, Strategy
from fleetnas.controller.search._validate import finite_float, positive_int
from fleetnas.controller.spaces import SearchSpace

log = logging.getLogger(__name__)

#: an unknown objective's coordinate in a minimisation vector: worse than any value
UNKNOWN_POINT = math.inf
#: stands for an unknown value while the matrix is built (then replaced by UNKNOWN_POINT)
UNKNOWN_VALUE = math.nan


def _told_values(values: Mapping[str, float], clean: Mapping[str, float] | None,
                 unknown: Mapping[str, str], constraints: Sequence[Constraint],
                 required: frozenset[str]) -> dict[str, float]:
    """``values`` checked finite (a value that is the very object ``clean`` holds is taken
    as it is). ValueError when a constraint's input is ``unknown`` or a ``required`` name
    is neither told nor unknown."""
    for c in constraints:
        if c.name in unknown:
            raise ValueError(f"constraint {c.text!r}: its value {c.name!r} is unknown "
                             f"({unknown[c.name]}), so it cannot be checked")
    checked: dict[str, float] = {}
    for name, value in values.items():
        if clean is not None and clean.get(name) is value:
            checked[name] = value
        else:
            checked[str(name)] = finite_float(f"value {name!r}", value)
    if not checked.keys() | unknown.keys() >= required:
        missing = sorted(required - checked.keys() - unknown.keys())
        raise ValueError(f"values lack {missing} (told: {sorted(checked)})")
    return checked


def _revised(told: Evaluation, values: Mapping[str, float],
             unknown: Mapping[str, str]) -> tuple[dict[str, float], dict[str, str]]:
    """``values`` and ``unknown`` merged over a told evaluation's: a name told as a value
    is known again, a name told as unknown loses its value."""
    merged_values = {**told.values, **values}
    merged_unknown = {**{n: r for n, r in told.unknown.items() if n not in values}, **unknown}
    for name in unknown:
        merged_values.pop(name, None)
    return merged_values, merged_unknown


def _known_feasible(front: Sequence[Trial], objectives: Sequence[Objective]) -> list[Trial]:
    """The feasible trials of ``front`` with every objective known: a trial with an
    unknown objective dominates no volume (module docstring)."""
    return [t for t in front if t.evaluation is not None and t.evaluation.feasible
            and not any(o.name in t.evaluation.unknown for o in objectives)]


class DuplicateCandidateWarning(UserWarning):
    """The engine proposed an arch that was already proposed (no unseen one was found)."""


class UnknownCandidate(KeyError):
    """No candidate with this id in the search."""


class CandidateStateError(ValueError):
    """The candidate is not in a state that allows this call (e.g. told twice)."""


class _View(SearchView):
    def __init__(self, engine: SearchEngine) -> None:
        self._engine = engine
        self.space = engine.space
        self.objectives = engine.objectives
        self.constraints = engine.constraints

    def complete(self) -> Sequence[Trial]:
        trials = self._engine._trials
        return [trials[i] for i in self._engine._complete_order]

    def trial(self, trial_id: int) -> Trial:
        return self._engine.trial(trial_id)

    @property
    def asked(self) -> int:
        return len(self._engine._trials)

    def point(self, trial: Trial) -> tuple[float, ...]:
        return self._engine._point(trial)

    def violation(self, trial: Trial) -> float:
        assert trial.evaluation is not None, f"trial {trial.id} is not complete"
        return trial.evaluation.total_violation


class SearchEngine:
    """Ask/tell multi-objective search over one space.

    ``objectives`` are :class:`Objective` objects or their text
    (:func:`parse_objective`: ``"accuracy"``, ``"latency[rpi4]"``...);
    ``constraints`` are :class:`Constraint` objects or their text
    (:func:`parse_constraint`). Raises ValueError for no objectives or
    repeated names.
    """

    def __init__(
        self,
        space: SearchSpace,
        strategy: Strategy,
        objectives: Sequence[Objective | str],
        *,
        constraints: Sequence[Constraint | str] = (),
        seed: int = 0,
        max_retries: int = 100,
    ) -> None:
        if not isinstance(strategy, Strategy):
            raise ValueError(f"strategy={strategy!r}, expected a Strategy")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed={seed!r}, expected an integer")
        self.space = space
        self.strategy = strategy
        self.objectives: tuple[Objective, ...] = tuple(
            parse_objective(o) if isinstance(o, str) else o for o in objectives
        )
        if not self.objectives:
            raise ValueError("objectives=(): a search needs at least one objective")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives={names!r}: names must be unique")
        self.constraints: tuple[Constraint, ...] = tuple(
            parse_constraint(c) if isinstance(c, str) else c for c in constraints
        )
        texts = [c.text for c in self.constraints]
        if len(set(texts)) != len(texts):
            raise ValueError(f"constraints={texts!r}: repeated constraint")
        self._required = frozenset([o.name for o in self.objectives]
                                   + [c.name for c in self.constraints])
        self.seed = seed
        self.max_retries = positive_int("SearchEngine", "max_retries", max_retries)
        self._rng = random.Random(seed)
        self._trials: dict[int, Trial] = {}
        self._complete_order: list[int] = []
        self._seen: dict[str, int] = {}
        self._view = _View(self)

    # -- ask / tell ---------------------------------------------------------------------------

    def ask(self, n: int = 1) -> list[Candidate]:
        """Create ``n`` new candidates (pending until told or failed)."""
        positive_int("SearchEngine.ask", "n", n)
        return [self._new_candidate() for _ in range(n)]

    def _new_candidate(self) -> Candidate:
        proposal: Proposal | None = None
        for _ in range(self.max_retries):
            proposal = self.strategy.propose(self._view, self._rng)
            encoding = self.space.encode(proposal.arch)
            if encoding not in self._seen:
                return self._add(proposal, encoding)
        assert proposal is not None
        generation = proposal.generation
        for _ in range(self.max_retries):
            arch = self.space.sample(self._rng)
            encoding = self.space.encode(arch)
            if encoding not in self._seen:
                log.info("strategy kept proposing seen archs; proposing a uniform sample instead")
                return self._add(Proposal(arch, (), generation), encoding)
        encoding = self.space.encode(proposal.arch)
        first = self._seen[encoding]
        warnings.warn(
            f"no unseen arch after {2 * self.max_retries} draws (is the space nearly exhausted?); "
            f"proposing {encoding!r} again, first proposed as candidate {first}",
            DuplicateCandidateWarning,
            stacklevel=3,
        )
        return self._add(proposal, encoding, duplicate_of=first)

    def _add(self, proposal: Proposal, encoding: str, duplicate_of: int | None = None) -> Candidate:
        candidate = Candidate(
            id=len(self._trials),
            arch=proposal.arch,
            encoding=encoding,
            generation=proposal.generation,
            parents=tuple(proposal.parents),
            duplicate_of=duplicate_of,
        )
        self._trials[candidate.id] = Trial(candidate)
        self._seen.setdefault(encoding, candidate.id)
        return candidate

    def tell(
        self,
        candidate_id: int,
        values: Mapping[str, float],
        *,
        metadata: Mapping[str, Any] | None = None,
        unknown: Mapping[str, str] | None = None,
    ) -> Trial:
        """Record a pending candidate's values; returns its complete trial.

        ``values`` must hold every objective's and every constraint's name
        (finite numbers, canonical units), except the objectives named in
        ``unknown`` (name -> why it cannot be known; ranked as the worst
        value, see the module docstring); extra names are kept. ``metadata``
        is free-form JSON-safe data (e.g. ``{"source": "measured"}``).
        Raises UnknownCandidate, CandidateStateError (not pending) or
        ValueError (missing or non-finite values, an unknown constraint input,
        metadata not JSON-safe).
        """
        trial = self._pending(candidate_id, "tell")
        evaluation = self._evaluate(values, metadata or {}, unknown=unknown or {})
        self._trials[candidate_id] = Trial(trial.candidate, TrialState.COMPLETE, evaluation)
        self._complete_order.append(candidate_id)
        return self._trials[candidate_id]

    def fail(self, candidate_id: int, reason: str) -> Trial:
        """Mark a pending candidate as failed (never selected, never in the front, never re-proposed)."""
        trial = self._pending(candidate_id, "fail")
        self._trials[candidate_id] = Trial(trial.candidate, TrialState.FAILED, None, str(reason))
        return self._trials[candidate_id]

    def revise(
        self,
        candidate_id: int,
        values: Mapping[str, float],
        *,
        metadata: Mapping[str, Any] | None = None,
        unknown: Mapping[str, str] | None = None,
    ) -> Trial:
        """Update a complete candidate's values (e.g. a measurement replacing a prediction).

        ``values`` and ``metadata`` are merged over the told ones, ``unknown``
        over the told unknowns (a name told as a value is known again); the trial
        keeps its place in the tell order. Raises CandidateStateError when the
        candidate is not complete. Without ``metadata`` (or with an empty one)
        the revised trial keeps the very metadata mapping it had (checked when
        it was told; a hybrid search revises hundreds of predictions a step).
        """
        trial = self.trial(candidate_id)
        if trial.state is not TrialState.COMPLETE or trial.evaluation is None:
            raise CandidateStateError(
                f"candidate {candidate_id} is {trial.state.value}, cannot revise it"
            )
        merged_values, merged_unknown = _revised(trial.evaluation, values, unknown or {})
        if metadata:
            evaluation = self._evaluate(merged_values, {**trial.evaluation.metadata, **metadata},
                                        unknown=merged_unknown)
        else:
            evaluation = self._evaluate(merged_values, trial.evaluation.metadata, checked=True,
                                        clean=trial.evaluation.values, unknown=merged_unknown)
        self._trials[candidate_id] = Trial(trial.candidate, TrialState.COMPLETE, evaluation)
        return self._trials[candidate_id]

    def _pending(self, candidate_id: int, action: str) -> Trial:
        trial = self.trial(candidate_id)
        if trial.state is not TrialState.PENDING:
            raise CandidateStateError(
                f"candidate {candidate_id} is already {trial.state.value}; cannot {action} it again"
            )
        return trial

    def _evaluate(self, values: Mapping[str, float], metadata: Mapping[str, Any], *,
                  checked: bool = False, clean: Mapping[str, float] | None = None,
                  unknown: Mapping[str, str] | None = None) -> Evaluation:
        """``metadata`` is copied through JSON (which checks it) unless ``checked``; a value
        that is the very object ``clean`` (checked values) holds is taken as it is;
        ``unknown``: the names told as unknown, with their reasons."""
        unknown = {str(n): str(r) for n, r in (unknown or {}).items()}
        checked_values = _told_values(values, clean, unknown, self.constraints, self._required)
        if checked:
            metadata_copy = metadata
        else:
            try:
                metadata_copy = json.loads(json.dumps(dict(metadata)))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"metadata {metadata!r} is not JSON-safe: {exc}") from exc
        violations = {c.text: c.violation(checked_values[c.name]) for c in self.constraints}
        total = sum(c.relative_violation(checked_values[c.name]) for c in self.constraints)
        return Evaluation(checked_values, violations, total, metadata_copy, unknown)

    # -- driving helpers ----------------------------------------------------------------------

    def evaluate_callables(self, candidate: Candidate) -> dict[str, float]:
        """Values of every :class:`CallableObjective` for ``candidate`` (computed here, now)."""
        return {
            o.name: o.evaluate(candidate.arch)
            for o in self.objectives
            if isinstance(o, CallableObjective)
        }

    def run(
        self,
        evaluate: Callable[[Candidate], Mapping[str, float]] | None = None,
        *,
        n_trials: int,
        batch_size: int | None = None,
    ) -> list[Trial]:
        """Ask, evaluate and tell ``n_trials`` candidates in this process.

        Each candidate's values are the callable objectives' values plus what
        ``evaluate(candidate)`` returns (which wins on a name clash).
        Batches default to the strategy's ``population_size`` (1 if it has
        none). Exceptions from ``evaluate`` propagate; the candidate stays
        pending. Returns the complete trials in order.
        """
        positive_int("SearchEngine.run", "n_trials", n_trials)
        batch = (
            batch_size if batch_size is not None else getattr(self.strategy, "population_size", 1)
        )
        positive_int("SearchEngine.run", "batch_size", batch)
        done: list[Trial] = []
        while len(done) < n_trials:
            for candidate in self.ask(min(batch, n_trials - len(done))):
                values = self.evaluate_callables(candidate)
                if evaluate is not None:
                    values.update(evaluate(candidate))
                done.append(self.tell(candidate.id, values))
        return done

    # -- reading ------------------------------------------------------------------------------

    def trial(self, candidate_id: int) -> Trial:
        """The trial of this candidate; UnknownCandidate when there is none."""
        try:
            return self._trials[candidate_id]
        except KeyError:
            raise UnknownCandidate(f"no candidate {candidate_id!r} in this search") from None

    def history(self) -> list[Trial]:
        """Every trial, in ask order (pending, complete and failed)."""
        return list(self._trials.values())

    def complete(self) -> list[Trial]:
        """Complete trials in tell order."""
        return [self._trials[i] for i in self._complete_order]

    def pending(self) -> list[Candidate]:
        """Candidates asked but neither told nor failed, in ask order."""
        return [t.candidate for t in self._trials.values() if t.state is TrialState.PENDING]

    def population(self) -> list[Trial]:
        """The strategy's current parent population."""
        return [self._trials[i] for i in self.strategy.population(self._view)]

    def _point(self, trial: Trial) -> tuple[float, ...]:
        if trial.evaluation is None:
            raise CandidateStateError(
                f"candidate {trial.id} is {trial.state.value}, it has no values"
            )
        values = trial.evaluation.values
        return tuple(o.sign * values[o.name] if o.name in values else UNKNOWN_POINT
                     for o in self.objectives)

    def pareto_front(self) -> list[Trial]:
        """The best trade-offs found: complete trials no other complete trial constraint-dominates.

        When any complete trial is feasible, these are the non-dominated
        feasible trials; otherwise the least-violating ones (non-dominated
        among equal violations). Sorted by the first objective, best first.
        """
        complete = self.complete()
        if not complete:
            return []
        for t in complete:
            if t.evaluation is None:
                self._point(t)  # raises: a complete trial has values
        matrix, violations = _minimisation_matrix(self.objectives, complete)
        front = constrained_front(matrix, violations)  # vectorised: every step calls this
        points = {i: tuple(float(x) for x in matrix[i]) for i in front}
        return [complete[i] for i in sorted(front, key=lambda i: (points[i], complete[i].id))]

    def hypervolume(self, reference: Mapping[str, float]) -> float:
        """Hypervolume of the feasible Pareto front against ``reference`` (one value per objective).

        0 when no trial is feasible. ``reference`` is in the objectives' own
        units and directions (e.g. accuracy 0, latency 100 ms).
        """
        missing = [o.name for o in self.objectives if o.name not in reference]
        if missing:
            raise ValueError(f"reference lacks {missing}")
        front = _known_feasible(self.pareto_front(), self.objectives)
        return hypervolume(
            [[t.values[o.name] for o in self.objectives] for t in front],
            [reference[o.name] for o in self.objectives],
            [o.direction for o in self.objectives],
        )

    # -- persistence (see ._persist) -----------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """A JSON-safe snapshot of the whole search, trials included (see :meth:`from_state_dict`)."""
        return full_state(self)

    def step_state(self) -> dict[str, Any]:
        """The snapshot without the trials: what changes every step whatever the search's length.

        Restore with :meth:`restore` and the trials' records
        (:func:`~._persist.trial_record`, e.g. kept as rows by a store).
        """
        return step_state(self)

    @classmethod
    def from_state_dict(
        cls,
        state: Mapping[str, Any],
        space: SearchSpace,
        *,
        strategy: Strategy | None = None,
        objectives: Sequence[Objective] | None = None,
    ) -> SearchEngine:
        """Rebuild a search from :meth:`state_dict` (after any JSON round trip).

        ``space`` must be the space the search ran on (same identity and
        version; archs are decoded from their encodings). ``strategy`` defaults
        to the registered strategy of the stored kind, rebuilt from the stored
        configuration; pass one to use custom operators (its ``kind`` and
        ``config()`` must match the stored ones). ``objectives`` defaults to
        plain objectives from the stored names; pass them again to get
        :class:`CallableObjective` functions back (names and directions must
        match). Raises ValueError on any mismatch.
        """
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"state format {state.get('format')!r}, expected {STATE_FORMAT!r}")
        return restore(cls, state, space, state["trials"], strategy=strategy,
                       objectives=objectives)

    @classmethod
    def restore(
        cls,
        state: Mapping[str, Any],
        space: SearchSpace,
        trials: Sequence[Mapping[str, Any]],
        *,
        strategy: Strategy | None = None,
        objectives: Sequence[Objective] | None = None,
    ) -> SearchEngine:
        """Rebuild a search from :meth:`step_state` and every trial's record, in id order.

        The same checks and arguments as :meth:`from_state_dict`; ValueError
        also when the number of trials is not the number the state asked.
        """
        if not is_step_state(state):
            raise ValueError(f"state format {state.get('format')!r}, expected {STEP_FORMAT!r}")
        return restore(cls, state, space, trials, strategy=strategy, objectives=objectives)


def _minimisation_matrix(objectives: Sequence[Objective],
                         complete: Sequence[Trial]) -> tuple[np.ndarray, list[float]]:
    """The complete trials' minimisation vectors as one matrix (sign x value, as
    ``SearchEngine._point`` computes them) and their total violations."""
    evaluations = [t.evaluation for t in complete if t.evaluation is not None]
    names = [o.name for o in objectives]
    signs = np.asarray([o.sign for o in objectives], dtype=np.float64)
    matrix = np.asarray([[e.values.get(n, UNKNOWN_VALUE) for n in names] for e in evaluations],
                        dtype=np.float64).reshape(len(evaluations), len(names)) * signs
    matrix[np.isnan(matrix)] = UNKNOWN_POINT  # an unknown value: the worst, whatever the sign
    return matrix, [e.total_violation for e in evaluations]
