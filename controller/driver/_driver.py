"""The search driver: asks the engine, has a latency source evaluate, stores every step.

One **step** of :meth:`SearchDriver.run`:

1. ask the engine for a batch of candidates (or take the pending ones a
   resumed search left) and store them as pending;
2. compute what needs no device: params, FLOPs, callables, the accuracy
   estimate (unless the source defers an expensive one); each estimate is
   stored as it finishes. With an executor (:mod:`._remote`) the estimates
   are only submitted here and collected once the step's measurements are
   done, so both run at once;
3. hand the batch to the search's :class:`~._source.LatencySource` (chosen by
   ``config.mode``), which measures and predicts latencies and tells or fails
   every candidate (see :mod:`._sources` and :mod:`._hybrid`);
4. commit the engine's small state with the changed candidate rows in one
   transaction.

**Resume.** The engine is deterministic and the sources refit their
predictors from the stored measurements, so the stored state determines
everything after it. A search killed anywhere is resumed from its last
commit: the step in flight is redone, its measurements come back from the
cost DB's cache (the scheduler recorded each as it arrived), and the engine,
the candidates and what was measured stay consistent. Nothing is measured
twice or lost.

Not thread-safe: one driver, one thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._accuracy import is_expensive, make_estimator
from fleetnas.controller.driver._candidates import CandidateBook, CandidateState
from fleetnas.controller.driver._config import SearchConfig
from fleetnas.controller.driver._deploy import search_space
from fleetnas.controller.driver._deployed_accuracy import deployed_accuracy_for
from fleetnas.controller.driver._errors import SearchAborted, SearchConfigError
from fleetnas.controller.driver._evaluation import ACCURACY, Evaluation, PhaseTimes, Tally
from fleetnas.controller.driver._features import FeatureCache
from fleetnas.controller.driver._kernel_luts import kernel_lut_predictors, stored_kernel_luts
from fleetnas.controller.driver._measure import Measurer
from fleetnas.controller.driver._predict_fixed import StoredPredictor
from fleetnas.controller.driver._remote import RemoteEstimates, inline_note, remote_estimates
from fleetnas.controller.driver._remote_supernet import SupernetEstimates, supernet_estimates
from fleetnas.controller.driver._resume import StoredSearch, load_search
from fleetnas.controller.driver._source import LatencySource, SourceSetup, latency_source_class
from fleetnas.controller.driver._store import Counters, SearchStore, owner_label
from fleetnas.controller.driver._transfers import stored_transfers, transfer_predictors
from fleetnas.controller.driver._unknown import network_space
from fleetnas.controller.lut import LatencyPredictor, LutNotFound, LutStore
from fleetnas.controller.predict import StoredKernelLut, StoredTransfer
from fleetnas.controller.search import Candidate, Objective, SearchEngine, Trial, TrialState
from fleetnas.controller.spaces import Arch, SearchSpace, get_space

if TYPE_CHECKING:
    from fleetnas.controller.accuracy import AccuracyEstimator
    from fleetnas.controller.executor import Executor

log = logging.getLogger("fleetnas.search")


@dataclass(frozen=True)
class SearchProgress:
    """Passed to the progress callback during a search.

    ``phase`` is ``"estimate"``, ``"measure"`` (``detail`` says which job)
    or ``"step"`` (after each commit). ``best`` holds, per objective, the best
    value on the current feasible front; ``front`` its size. ``elapsed_s`` is
    the time since this run started; ``eta_s`` (steps only) the time it will
    likely still take at this run's pace: the nearest of the candidate budget,
    the measurement budget and the time limit (``None`` before a step or
    without any bound). ``per_candidate_s`` (steps only) splits this run's
    time per candidate evaluated into ``export``, ``measure`` and
    ``accuracy`` seconds (empty before the first candidate).
    ``labels`` maps a value's name to what people read
    (``{"accuracy": "naswot score"}``, see ``Objective.label``).
    """

    phase: str
    trials: int
    budget: int | None
    measured: int
    device_runs: int
    predicted: int
    front: int
    best: Mapping[str, float] = field(default_factory=dict)
    detail: str = ""
    elapsed_s: float = 0.0
    eta_s: float | None = None
    per_candidate_s: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


ProgressCallback = Callable[[SearchProgress], None]


#: why a search stops (:meth:`SearchDriver.stop_reason`), as the CLI says it
STOP_REASONS: Mapping[str, str] = {
    "budget": "the candidate budget is spent",
    "measurements": "the measurement budget is spent",
    "timeout": "the time limit is reached",
}


@dataclass(frozen=True)
class SearchResult:
    """How a run ended. ``front`` is the engine's Pareto front, best first; ``stop`` is
    the :data:`STOP_REASONS` key of a complete search, ``timeout`` for one that
    ``run``'s time limit interrupted (resumable), ``None`` for any other
    interruption (``max_steps``)."""

    search_id: int | None
    status: str
    engine: SearchEngine
    counters: Counters
    front: list[Trial]
    stop: str | None = None


def check_measurer(measurer: Measurer, config: SearchConfig) -> None:
    """Before any work: the measurer can reach every target, measure the energy an
    ``energy[T]`` asks for and make the precisions the genes allow (SearchConfigError)."""
    measurer.check_targets(config.targets)
    measurer.check_energy(config.energy_targets())
    measurer.check_precisions(config.targets, config.precision_genes())


def best_so_far(objectives: Sequence[Objective], front: Sequence[Trial]) -> dict[str, float]:
    """Per objective, the best value among the feasible members of ``front`` (empty before any)."""
    feasible = [t for t in front if t.evaluation is not None and t.evaluation.feasible]
    best: dict[str, float] = {}
    for o in objectives:
        if feasible:
            values = [t.values[o.name] for t in feasible if o.name in t.values]  # not unknown
            if values:
                best[o.name] = min(values) if o.direction == "minimize" else max(values)
    return best


class SearchDriver:
    """Runs one search (see the module docstring). Build with :meth:`create` or :meth:`resume`."""

    def __init__(
        self,
        config: SearchConfig,
        engine: SearchEngine,
        *,
        measurer: Measurer | None = None,
        luts: Mapping[str, LatencyPredictor] | None = None,
        fixed: Mapping[str, StoredPredictor] | None = None,
        estimator: AccuracyEstimator | None = None,
        callables: Mapping[str, Callable[[Arch], float]] | None = None,
        store: SearchStore | None = None,
        search_id: int | None = None,
        counters: Counters | None = None,
        on_progress: ProgressCallback | None = None,
        book: CandidateBook | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.space: SearchSpace = engine.space
        self.measurer = measurer
        self.store = store
        self.search_id = search_id
        self.on_progress = on_progress
        self.callables = dict(callables or {})
        config.validate(self.callables)
        source_class = latency_source_class(config.mode)
        self.names = list(dict.fromkeys(
            [o.name for o in engine.objectives] + [c.name for c in engine.constraints]
        ))  # fmt: skip
        needs_accuracy = ACCURACY in self.names and ACCURACY not in self.callables
        if needs_accuracy and estimator is None:
            assert config.accuracy is not None  # validate() checked
            estimator = make_estimator(config.accuracy)
        self.estimator = estimator
        deferred = bool(needs_accuracy and config.accuracy is not None
                        and source_class.defers_expensive
                        and is_expensive(config.accuracy, config.accuracy_cost))  # fmt: skip
        if source_class.measures and measurer is None:
            raise SearchConfigError(f"mode {config.mode} measures candidates: pass a measurer")
        luts = _checked_luts(config, source_class, luts or {}, fixed or {})
        self.book = book or CandidateBook()
        counters = counters or Counters()
        self.tally = Tally(counters.measured, counters.device_runs)
        self.counters = counters
        self.evaluation = Evaluation(
            config, engine, self.book, names=self.names, measurer=measurer, estimator=estimator,
            deferred=(ACCURACY,) if deferred else (), tally=self.tally, report=self._report,
            search_id=lambda: self.search_id,
        )  # fmt: skip
        self.evaluation.on_estimate = self._store_estimate
        self.remote = (_wire_accuracy(self.evaluation, estimator, measurer, executor,
                                      self._remote_value, _workdir(store), self._report)
                       if needs_accuracy else None)
        setup = SourceSetup(config, luts, FeatureCache(self.space), deferred,
                            {k: v for k, v in (fixed or {}).items() if k not in luts})
        self.source: LatencySource = source_class(setup, self.evaluation)
        self._steps = 0
        self._pace = _Pace(time.monotonic, time.monotonic(), None, 0, 0)
        #: what the estimator's ``prepare`` checked or did (a table's coverage, a supernet)
        self.estimator_notes = (_estimator_notes(self.evaluation, estimator, executor, store,
                                                 self.remote, self._report)
                                if needs_accuracy else [])

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        config: SearchConfig,
        *,
        db: CostDB | None = None,
        space: SearchSpace | None = None,
        measurer: Measurer | None = None,
        luts: Mapping[str, LatencyPredictor] | None = None,
        kernel_luts: Mapping[str, StoredKernelLut] | None = None,
        transfers: Mapping[str, StoredTransfer] | None = None,
        export_cache: str | Path | None = None,
        estimator: AccuracyEstimator | None = None,
        callables: Mapping[str, Callable[[Arch], float]] | None = None,
        on_progress: ProgressCallback | None = None,
        executor: Executor | None = None,
    ) -> SearchDriver:
        """A new search; stored in ``db`` (and resumable) when one is given.

        ``space`` defaults to ``get_space(config.space, config.space_config)``.
        ``luts`` maps target keys to LUT predictors (mode ``lut``: every
        target; ``hybrid``: any). With a ``db``, each must come from a stored
        LUT (its id is kept in the config for resuming). ``kernel_luts``, ``transfers``:
        stored ones for targets without a block LUT (:func:`find_kernel_luts`,
        :func:`find_transfers`; ids kept in the config), archs exported into ``export_cache``.
        ``executor`` runs the accuracy estimates (see :mod:`._remote`;
        ``config.executor`` says which kind a resume should open, :func:`open_executor`
        opens it).
        """
        space = search_space(space or get_space(config.space, config.space_config), config)
        luts = dict(luts or {})
        config, fixed = _stored_predictors(config, space, luts, kernel_luts or {},
                                           transfers or {}, export_cache)
        if db is not None:
            config = replace(config, luts=_lut_ids(luts))
        engine = SearchEngine(
            space, config.make_strategy(), config.objective_list(),
            constraints=list(config.constraints), seed=config.seed,
        )  # fmt: skip
        store = None if db is None else SearchStore(db)
        driver = cls(config, engine, measurer=measurer, luts=luts, fixed=fixed,
                     estimator=estimator, callables=callables, store=store,
                     on_progress=on_progress, executor=executor)
        if measurer is not None:
            check_measurer(measurer, config)
        if store is not None:
            record = store.create(space=space.identity(), mode=config.mode,
                                  config=config.to_dict(), budget=config.budget,
                                  owner=owner_label())
            driver.search_id = record.id
            driver._commit()
        return driver

    @classmethod
    def resume(
        cls,
        search_id: int,
        *,
        db: CostDB,
        space: SearchSpace | None = None,
        measurer: Measurer | None = None,
        estimator: AccuracyEstimator | None = None,
        callables: Mapping[str, Callable[[Arch], float]] | None = None,
        budget: int | None = None,
        max_measurements: int | None = None,
        force: bool = False,
        export_cache: str | Path | None = None,
        on_progress: ProgressCallback | None = None,
        executor: Executor | None = None,
    ) -> SearchDriver:
        """The stored search ``search_id``, ready to :meth:`run` on from its last commit.

        ``budget`` and ``max_measurements`` replace the stored ones (to extend a
        finished search); ``export_cache`` is as for :meth:`create`. Raises
        SearchNotFound, SearchBusy (another live process runs it; ``force``
        ignores a ``running`` mark from another host), or SearchConfigError
        when it cannot be rebuilt (a LUT, kernel LUT or transfer fit was deleted...).
        """
        store = SearchStore(db)
        stored_config = SearchConfig.from_dict((record := store.get(search_id)).config)
        config = _extended(stored_config, budget, max_measurements)
        space = search_space(space or get_space(config.space, config.space_config), config)
        stored = load_search(store, search_id, space=space, config=config)
        engine = stored.engine
        luts = stored_luts(db, space, config)
        _, fixed = _stored_predictors(config, space, luts, stored_kernel_luts(db, config),
                                      stored_transfers(db, config), export_cache)
        store.claim(search_id, owner_label(), force=force)
        if config != stored_config:  # only once it is ours: a refused resume changes nothing
            store.set_config(search_id, config.to_dict(), config.budget)
        book = _restored_book(stored, engine)
        counters = Counters(record.trials, record.measured, record.device_runs, record.predicted)
        driver = cls(config, engine, measurer=measurer, luts=luts, fixed=fixed,
                     estimator=estimator, callables=callables, store=store, search_id=search_id,
                     counters=counters, on_progress=on_progress, book=book, executor=executor)
        if measurer is not None:
            check_measurer(measurer, config)
        return driver

    # -- running -----------------------------------------------------------------------------

    def run(self, *, max_steps: int | None = None, timeout_s: float | None = None,
            clock: Callable[[], float] = time.monotonic) -> SearchResult:
        """Step until a budget is spent (or ``max_steps`` steps, or ``timeout_s``); returns
        the result.

        The stored status becomes ``complete`` (a budget spent), ``interrupted``
        (``max_steps``; ``timeout_s`` seconds of ``clock`` passed, checked
        after each step, so a step in flight finishes first and every run
        makes progress; Ctrl-C; or
        SearchAborted: devices unavailable, which is re-raised) or ``failed``
        (any other exception, re-raised). An interrupted search resumes where
        it stopped.
        """
        status, stop = "interrupted", None
        started = clock()
        deadline = None if timeout_s is None else started + timeout_s
        self._pace = _Pace(clock, started, deadline, self.trials_done(), self.tally.measured)
        self.evaluation.times = PhaseTimes()
        try:
            while max_steps is None or self._steps < max_steps:
                if not self.step():
                    status, stop = "complete", self.stop_reason()
                    break
                if deadline is not None and clock() >= deadline and self.stop_reason() is None:
                    stop = "timeout"
                    break
        except SearchAborted as exc:
            self._set_status("interrupted", str(exc))
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C, or a signal the caller turned into one
            self._set_status("interrupted", str(exc) or "interrupted by the user")
            raise
        except Exception as exc:
            self._set_status("failed", f"{type(exc).__name__}: {exc}")
            raise
        self._set_status(status, f"stopped after {timeout_s:g} s (time limit)"
                         if stop == "timeout" else None)
        return SearchResult(self.search_id, status, self.engine, self.counters,
                            self.engine.pareto_front(), stop)

    def trials_done(self) -> int:
        return sum(1 for t in self.engine.history() if t.state is not TrialState.PENDING)

    def stop_reason(self) -> str | None:
        """Why no new step starts (a :data:`STOP_REASONS` key), or None while one may:
        ``budget`` (candidates), ``measurements`` (``max_measurements`` spent)."""
        config = self.config
        if config.budget is not None and self.trials_done() >= config.budget:
            return "budget"
        left = self.evaluation.measurements_left()
        if left is not None and left <= 0:
            return "measurements"
        return None

    def _batch_size(self) -> int:
        """Candidates to ask now: the batch, within the candidate budget and, for a source
        that measures every candidate, within the measurement budget."""
        size = self.config.effective_batch_size()
        if self.config.budget is not None:
            size = min(size, self.config.budget - self.trials_done())
        left = self.evaluation.candidates_left()
        if left is not None and self.source.measures_every_candidate:
            size = min(size, left)
        return size

    def step(self) -> bool:
        """One step (see the module docstring); False when the search must stop
        (:meth:`stop_reason`)."""
        batch = self.engine.pending()
        if not batch:
            if self.stop_reason() is not None:
                return False
            batch = self.engine.ask(self._batch_size())
            self.book.asked(batch)
            self._commit()
        self.source.evaluate(self._prepare(batch))
        self.evaluation.finish_step()
        self._steps += 1
        self._commit()
        self._report("step")
        return True

    # -- values that need no device -------------------------------------------------------

    def _prepare(self, batch: Sequence[Candidate]) -> list[CandidateState]:
        """The batch's candidates with their pre-tell values; fails those the estimator cannot score."""
        from fleetnas.controller.accuracy import EstimatorError

        alive = []
        estimate = (ACCURACY in self.names and ACCURACY not in self.callables
                    and ACCURACY not in self.evaluation.deferred)  # fmt: skip
        for i, candidate in enumerate(batch):
            state = self.book.get(candidate)
            if not state.prepared:
                values, sources = _static_values(self.space, self.names, self.callables, candidate.arch)
                if estimate and self.remote is not None:  # prepared once its estimate comes
                    state.values, state.sources = values, sources
                    self.remote.submit(state, "estimator")
                    alive.append(state)
                    continue
                if estimate:
                    assert self.estimator is not None
                    self._report("estimate", f"accuracy {i + 1}/{len(batch)}")
                    try:
                        accuracy, origins = self.evaluation.estimate_accuracy(candidate.arch,
                                                                              "estimator")
                    except EstimatorError as exc:
                        self.evaluation.fail(candidate.id, f"accuracy: {exc}")
                        continue
                    values.update(accuracy)
                    sources.update(origins)
                self.book.prepared(state, values, sources)
                self._store_estimate(state)
            alive.append(state)
        return alive

    # -- storing and reporting --------------------------------------------------------------

    def _remote_value(self, state: CandidateState) -> None:
        """An estimate came from the executor: the candidate is prepared, its row stored."""
        if self.engine.trial(state.id).state is TrialState.FAILED:
            return
        if not state.prepared:
            self.book.prepared(state, state.values, state.sources)
        self._store_estimate(state)

    def _store_estimate(self, state: CandidateState) -> None:
        """Store what was just computed for a candidate, before anything else runs: an
        estimate can take minutes (training), and a resumed search must not redo it.

        A pending candidate's values go to its row; a told trial's (a front member
        about to be revised) to the stored step state, until the step commits.
        """
        if self.store is None or self.search_id is None or not self.source.measures:
            return  # a source that never measures finishes each step without waiting
        trial = self.engine.trial(state.id)
        if trial.state is TrialState.PENDING:
            self.store.put_candidates([self.book.record(trial, self.search_id)])
        else:
            self.store.put_inflight(self.search_id, state.id, state.values, state.sources)

    def _current_counters(self) -> Counters:
        return _counters(self.evaluation, self.trials_done())

    def _commit(self) -> None:
        self.counters = self._current_counters()
        changed = self.book.take_changed()
        if self.store is None or self.search_id is None:
            return
        rows = [self.book.record(self.engine.trial(cid), self.search_id) for cid in changed]
        self.store.commit(self.search_id, self.engine.step_state(), rows, self.counters)

    def _set_status(self, status: str, error: str | None = None) -> None:
        if self.store is not None and self.search_id is not None:
            self.store.set_status(self.search_id, status, error=error)

    def _report(self, phase: str, detail: str = "") -> None:
        if self.on_progress is None:
            return
        counters = self._current_counters() if phase == "step" else self.counters
        if phase != "step":
            counters = replace(counters, measured=self.tally.measured,
                               device_runs=self.tally.device_runs)
        front = self.engine.pareto_front() if phase == "step" else []
        now = self._pace.clock()
        self.on_progress(SearchProgress(
            phase=phase, trials=counters.trials, budget=self.config.budget,
            measured=counters.measured, device_runs=counters.device_runs,
            predicted=counters.predicted, front=len(front),
            best=best_so_far(self.engine.objectives, front) if phase == "step" else {}, detail=detail,
            elapsed_s=now - self._pace.started,
            eta_s=self._pace.eta(now, self.config, counters) if phase == "step" else None,
            per_candidate_s=self.evaluation.times.per_candidate(counters.trials - self._pace.trials)
            if phase == "step" else {},
            labels={o.name: o.label for o in self.engine.objectives if o.label},
        ))  # fmt: skip

    def describe_predictors(self) -> dict[str, str]:
        """One line per predicted value: what predicts it and how well."""
        return self.source.describe()


def _static_values(space: SearchSpace, names: Sequence[str],
                   callables: Mapping[str, Callable[[Arch], float]],
                   arch: Arch) -> tuple[dict[str, float], dict[str, str]]:
    """An arch's values that need no device and no estimator: callables, params, FLOPs."""
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    for name in names:
        if name in callables:
            values[name], sources[name] = float(callables[name](arch)), "callable"
        elif name == "params":
            values[name], sources[name] = float(space.count_params(arch)), "analytic"
        elif name == "flops":
            values[name], sources[name] = float(space.count_flops(arch)), "analytic"
    return values, sources


def _extended(config: SearchConfig, budget: int | None,
              max_measurements: int | None) -> SearchConfig:
    """``config`` with the budgets a resume replaces (None: keep the stored one)."""
    if budget is not None:
        config = config.with_budget(budget)
    if max_measurements is not None:
        config = config.with_max_measurements(max_measurements)
    return config


def _restored_book(stored: StoredSearch, engine: SearchEngine) -> CandidateBook:
    """The candidate records of a stored search, as its last commit left them."""
    book = CandidateBook()
    book.restore(stored.candidates, {t.id: t.candidate for t in engine.history()},
                 stored.inflight)
    if stored.legacy:  # a whole snapshot of an earlier version: store every trial as a row
        for trial in engine.history():
            book.changed(trial.id)
    return book


def _wire_accuracy(evaluation: Evaluation, estimator: AccuracyEstimator | None,
                   measurer: Measurer | None, executor: Executor | None,
                   on_value: Callable[[CandidateState], None], workdir: Path | None,
                   report: Callable[[str, str], None]) -> RemoteEstimates | None:
    """Where a search's accuracy values come from: each target's deployed model scored in
    this process (precision genes with a training estimator), else the executor's side of
    the estimates (returned; None: inline): tasks of the spec's kind, or a supernet's
    training and scoring tasks (its store under ``workdir``)."""
    config = evaluation.config
    space = evaluation.engine.space
    evaluation.deployed = deployed_accuracy_for(config, estimator,
                                                cache_dir=getattr(measurer, "cache_dir", None))
    remote: RemoteEstimates | None = None
    if evaluation.deployed is None:
        resources = None if config.executor is None else config.executor.resources
        remote = (remote_estimates(executor, config.accuracy, space, on_value,
                                   resources=resources)
                  or supernet_estimates(executor, config.accuracy, estimator, space, workdir,
                                        on_value, report, resources=resources))
    evaluation.remote = remote
    return remote


def _estimator_notes(evaluation: Evaluation, estimator: AccuracyEstimator | None,
                     executor: Executor | None, store: SearchStore | None,
                     remote: RemoteEstimates | None, report: Callable[[str, str], None]) -> list[str]:
    """What the estimator's ``prepare`` checked or did (a table's coverage, a supernet), and
    why estimates run inline when an executor was given."""
    space = network_space(evaluation.engine.space)  # estimators see the networks, not genes
    if isinstance(remote, SupernetEstimates):  # trained and scored by the executor's tasks
        notes = list(remote.notes)
    else:
        notes = _prepare(estimator, space, store, report) if estimator is not None else []
    if executor is not None and remote is None:
        notes.append(inline_note(evaluation.config.accuracy, executor,
                                 deployed=evaluation.deployed is not None))
    return notes


def _counters(evaluation: Evaluation, trials: int) -> Counters:
    """The search's counters now (``trials`` done; predicted: latency values not measured)."""
    return Counters(trials, evaluation.tally.measured, evaluation.tally.device_runs,
                    evaluation.predicted_count())


def _prepare(estimator: AccuracyEstimator, space: SearchSpace, store: SearchStore | None,
             report: Callable[[str, str], None]) -> list[str]:
    """``estimator.prepare`` on ``space``, keeping its files beside the cost DB (if any),
    its progress reported as ``estimate`` events. An estimator from a plugin that only
    has ``estimate`` (written before ``prepare`` existed) has nothing to prepare."""
    from fleetnas.controller.accuracy import EstimatorSetup

    if not callable(getattr(estimator, "prepare", None)):
        return []

    workdir = _workdir(store)

    def progress(task: str, done: int, total: int | None, detail: str) -> None:
        report("estimate", f"{task} {done}/{total or '?'}: {detail}")

    return estimator.prepare(space, EstimatorSetup(workdir=workdir, progress=progress))


def _workdir(store: SearchStore | None) -> Path | None:
    """Where an estimator keeps what outlives a search: the cost DB's folder (None: here)."""
    path = None if store is None else store.db.path
    return None if path is None else Path(path).resolve().parent


class _Pace:
    """How fast this run goes, for the ETA: its clock, start, deadline and the counts it
    started from."""

    def __init__(self, clock: Callable[[], float], started: float, deadline: float | None,
                 trials: int, measured: int) -> None:
        self.clock, self.started, self.deadline = clock, started, deadline
        self.trials, self.measured = trials, measured

    def eta(self, now: float, config: SearchConfig, counters: Counters) -> float | None:
        """The nearest bound's time left at this run's pace (see SearchProgress)."""
        elapsed = now - self.started
        left: list[float] = []
        done = counters.trials - self.trials
        if config.budget is not None and done > 0:
            left.append(max(0, config.budget - counters.trials) * elapsed / done)
        measured = counters.measured - self.measured
        if config.max_measurements is not None and measured > 0:
            left.append(max(0, config.max_measurements - counters.measured) * elapsed / measured)
        if self.deadline is not None:
            left.append(max(0.0, self.deadline - now))
        return min(left) if left else None


# -- building the parts a stored search needs ---------------------------------------------------


def _stored_predictors(
    config: SearchConfig, space: SearchSpace, luts: Mapping[str, LatencyPredictor],
    kernel_luts: Mapping[str, StoredKernelLut], transfers: Mapping[str, StoredTransfer],
    export_cache: str | Path | None,
) -> tuple[SearchConfig, dict[str, StoredPredictor]]:
    """The stored predictor of each target without a block LUT (its kernel LUT, else its
    transfer fit), and ``config`` keeping their ids."""
    kernels = {k: v for k, v in kernel_luts.items() if k not in luts}
    fits = {k: v for k, v in transfers.items() if k not in luts and k not in kernels}
    config = replace(config, kernel_luts={k: v.id for k, v in kernels.items()},
                     transfers={k: v.id for k, v in fits.items()})
    return config, {**transfer_predictors(space, fits, export_cache),
                    **kernel_lut_predictors(space, kernels, export_cache)}


def _lut_ids(luts: Mapping[str, LatencyPredictor]) -> dict[str, int]:
    ids = {}
    for key, predictor in luts.items():
        if predictor.lut is None:
            raise SearchConfigError(
                f"the LUT predictor of {key} is not a stored LUT; a stored search "
                "must be able to load it again on resume"
            )
        ids[key] = predictor.lut.id
    return ids


def _checked_luts(
    config: SearchConfig, source: type[LatencySource], luts: Mapping[str, LatencyPredictor],
    fixed: Mapping[str, StoredPredictor],
) -> dict[str, LatencyPredictor]:
    unknown = sorted((set(luts) | set(fixed)) - {t.key for t in config.targets})
    if unknown:
        raise SearchConfigError(
            f"LUTs, kernel LUTs or transfer fits given for {unknown}, which are not targets")
    if source.needs_luts:
        missing = [t.key for t in config.targets if t.key not in luts and t.key not in fixed]
        if missing:
            raise SearchConfigError(
                f"mode {config.mode}: no LUT for {missing}; build one with `fleetnas lut build` "
                "(or `fleetnas lut kernels`, or fit a new device with `fleetnas lut transfer`), "
                "or use --mode hybrid "
                "(a surrogate stands in where no LUT exists)"
            )
    return dict(luts)


def stored_luts(db: CostDB, space: SearchSpace, config: SearchConfig) -> dict[str, LatencyPredictor]:
    """The LUT predictors the stored search predicts with; SearchConfigError when one is gone."""
    luts = {}
    lut_store = LutStore(db)
    for key, lut_id in config.luts.items():
        try:
            info = lut_store.get(lut_id)
        except LutNotFound as exc:
            raise SearchConfigError(
                f"the search predicts {key} with LUT {lut_id}, which is gone: {exc}"
            ) from exc
        luts[key] = LatencyPredictor.from_lut(db, space, info)
    return luts
