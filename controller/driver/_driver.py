"""The search driver: asks the engine, gets values from devices, LUTs and estimators, tells it, stores it.

One **step** of :meth:`SearchDriver.run`:

1. ask the engine for a batch of candidates (or take the pending ones a
   resumed search left) and store them as pending;
2. compute what needs no device: params, FLOPs, callables, the accuracy
   estimate (unless it is expensive and the mode is hybrid);
3. get latencies, by mode:

   * ``measured``: every candidate on every target through the
     :class:`~._measure.Measurer` (the scheduler: cost DB first, then devices);
   * ``lut``: every latency predicted by the target's LUT, no device at all;
   * ``hybrid``: every latency predicted (LUT where the target has one, the
     online surrogate elsewhere; accuracy too when it is expensive); only
     the candidates that could enter the Pareto front (see :mod:`._select`)
     are measured, and every candidate is measured until the predictors have
     enough data (``HybridOptions.warmup``). After telling, every predictor is
     refitted on all measurements so far; any predicted trial that is on the
     front is measured and :meth:`SearchEngine.revise`-d, until the front is
     all measured; every remaining prediction is refreshed;

4. tell the engine (or fail a candidate whose model cannot run or be scored)
   and commit the engine snapshot with the changed candidate rows in one
   transaction.

**Resume.** The engine is deterministic and the predictors are refitted from
the stored measurements, so the stored snapshot determines everything after
it. A search killed anywhere is resumed from its last commit: the step in
flight is redone, its measurements come back from the cost DB's cache (the
scheduler recorded each as it arrived), and the engine, the candidates and
what was measured stay consistent. Nothing is measured twice or lost.

Not thread-safe: one driver, one thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._accuracy import is_expensive, make_estimator
from fleetnas.controller.driver._config import SearchConfig
from fleetnas.controller.driver._errors import SearchAborted, SearchConfigError
from fleetnas.controller.driver._measure import CandidateMeasurement, Measurer, MeasureRequest
from fleetnas.controller.driver._predict import (
    LutValuePredictor,
    Prediction,
    SurrogateValuePredictor,
    ValuePredictor,
)
from fleetnas.controller.driver._select import Point, could_enter_front
from fleetnas.controller.driver._store import (
    CandidateRecord,
    Counters,
    SearchStore,
    owner_label,
)
from fleetnas.controller.driver._surrogate import arch_features
from fleetnas.controller.lut import LatencyPredictor, LutNotFound, LutStore
from fleetnas.controller.search import Candidate, SearchEngine, Trial, TrialState, split_name
from fleetnas.controller.spaces import Arch, SearchSpace, get_space

if TYPE_CHECKING:
    from fleetnas.controller.accuracy import AccuracyEstimator

log = logging.getLogger("fleetnas.search")

ACCURACY = "accuracy"
MEASURED = "measured"


@dataclass(frozen=True)
class SearchProgress:
    """Passed to the progress callback during a search.

    ``phase`` is ``"estimate"``, ``"measure"`` (``detail`` says which job)
    or ``"step"`` (after each commit). ``best`` holds, per objective, the best
    value on the current feasible front; ``front`` its size.
    """

    phase: str
    trials: int
    budget: int
    measured: int
    device_runs: int
    predicted: int
    front: int
    best: Mapping[str, float] = field(default_factory=dict)
    detail: str = ""


ProgressCallback = Callable[[SearchProgress], None]


@dataclass(frozen=True)
class SearchResult:
    """How a run ended. ``front`` is the engine's Pareto front, best first."""

    search_id: int | None
    status: str
    engine: SearchEngine
    counters: Counters
    front: list[Trial]


def _latency_key(name: str) -> str | None:
    base, qualifier = split_name(name)
    return qualifier if base == "latency" else None


class SearchDriver:
    """Runs one search (see the module docstring). Build with :meth:`create` or :meth:`resume`."""

    def __init__(
        self,
        config: SearchConfig,
        engine: SearchEngine,
        *,
        measurer: Measurer | None = None,
        luts: Mapping[str, LatencyPredictor] | None = None,
        estimator: AccuracyEstimator | None = None,
        callables: Mapping[str, Callable[[Arch], float]] | None = None,
        store: SearchStore | None = None,
        search_id: int | None = None,
        counters: Counters | None = None,
        on_progress: ProgressCallback | None = None,
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
        self.counters = counters or Counters()
        self.names = list(dict.fromkeys(
            [o.name for o in engine.objectives] + [c.name for c in engine.constraints]
        ))  # fmt: skip
        self.latency_names = [n for n in self.names if _latency_key(n) is not None]
        needs_accuracy = ACCURACY in self.names and ACCURACY not in self.callables
        self.estimator = estimator
        if needs_accuracy and estimator is None:
            assert config.accuracy is not None  # validate() checked
            self.estimator = make_estimator(config.accuracy)
        self.expensive_accuracy = bool(
            needs_accuracy and config.accuracy is not None
            and is_expensive(config.accuracy, config.accuracy_cost)
            and config.mode == "hybrid"
        )  # fmt: skip
        if config.mode != "lut" and self.measurer is None:
            raise SearchConfigError(f"mode {config.mode} measures candidates: pass a measurer")
        luts = dict(luts or {})
        unknown = sorted(set(luts) - {t.key for t in config.targets})
        if unknown:
            raise SearchConfigError(f"LUTs given for {unknown}, which are not targets")
        if config.mode == "lut":
            missing = [t.key for t in config.targets if t.key not in luts]
            if missing:
                raise SearchConfigError(
                    f"mode lut: no LUT for {missing}; build one with `fleetnas lut build`, "
                    "or use --mode hybrid (a surrogate stands in where no LUT exists)"
                )
        self._features: dict[str, list[float]] = {}
        self.predictors: dict[str, ValuePredictor] = {}
        if config.mode in ("lut", "hybrid"):
            h = config.hybrid
            for target in config.targets:
                if target.key in luts:
                    self.predictors[target.objective] = LutValuePredictor(
                        luts[target.key], z=h.z, min_margin=h.min_margin,
                        features=self._arch_features if config.mode == "hybrid" else None,
                        surrogate_rows=h.warmup,
                    )
                else:
                    self.predictors[target.objective] = SurrogateValuePredictor(
                        self._arch_features, relative=True, z=h.z, min_margin=h.min_margin
                    )
            if self.expensive_accuracy:
                self.predictors[ACCURACY] = SurrogateValuePredictor(
                    self._arch_features, relative=False, z=h.z, min_margin=h.min_margin
                )
        self._partial: dict[int, tuple[dict[str, float], dict[str, str]]] = {}
        self._asked_at: dict[int, float] = {}
        self._told_at: dict[int, float] = {}
        self._dirty: set[int] = set()
        self._steps = 0
        if self.predictors:
            self._refit()

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
        estimator: AccuracyEstimator | None = None,
        callables: Mapping[str, Callable[[Arch], float]] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> SearchDriver:
        """A new search; stored in ``db`` (and resumable) when one is given.

        ``space`` defaults to ``get_space(config.space, config.space_config)``.
        ``luts`` maps target keys to LUT predictors (mode ``lut``: every
        target; ``hybrid``: any). With a ``db``, each must come from a stored
        LUT (its id is kept in the config for resuming).
        """
        space = space or get_space(config.space, config.space_config)
        luts = dict(luts or {})
        if db is not None:
            ids = {}
            for key, predictor in luts.items():
                if predictor.lut is None:
                    raise SearchConfigError(
                        f"the LUT predictor of {key} is not a stored LUT; a stored search "
                        "must be able to load it again on resume"
                    )
                ids[key] = predictor.lut.id
            config = replace(config, luts=ids)
        engine = SearchEngine(
            space, config.make_strategy(), config.objective_list(),
            constraints=list(config.constraints), seed=config.seed,
        )  # fmt: skip
        store = None if db is None else SearchStore(db)
        driver = cls(config, engine, measurer=measurer, luts=luts, estimator=estimator,
                     callables=callables, store=store, on_progress=on_progress)
        if measurer is not None:
            measurer.check_targets(config.targets)
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
        force: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> SearchDriver:
        """The stored search ``search_id``, ready to :meth:`run` on from its last commit.

        ``budget`` replaces the stored budget (to extend a finished search).
        Raises SearchNotFound, SearchBusy (another live process runs it;
        ``force`` ignores a ``running`` mark from another host), or
        SearchConfigError when it cannot be rebuilt (a LUT was deleted...).
        """
        store = SearchStore(db)
        record = store.get(search_id)
        config = SearchConfig.from_dict(record.config)
        new_budget = budget if budget is not None and budget != config.budget else None
        if new_budget is not None:
            config = config.with_budget(new_budget)
        space = space or get_space(config.space, config.space_config)
        state = store.state(search_id)
        if state is None:
            engine = SearchEngine(space, config.make_strategy(), config.objective_list(),
                                  constraints=list(config.constraints), seed=config.seed)
        else:
            engine = SearchEngine.from_state_dict(state, space)
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
        store.claim(search_id, owner_label(), force=force)
        if new_budget is not None:  # only once it is ours: a refused resume changes nothing
            store.set_config(search_id, config.to_dict(), config.budget)
        counters = Counters(record.trials, record.measured, record.device_runs, record.predicted)
        driver = cls(config, engine, measurer=measurer, luts=luts, estimator=estimator,
                     callables=callables, store=store, search_id=search_id,
                     counters=counters, on_progress=on_progress)
        if measurer is not None:
            measurer.check_targets(config.targets)
        for row in store.candidates(search_id):
            driver._asked_at[row.candidate_id] = row.asked_at
            if row.told_at is not None:
                driver._told_at[row.candidate_id] = row.told_at
            if row.state == "pending" and row.metrics:
                driver._partial[row.candidate_id] = (dict(row.metrics), dict(row.sources))
        return driver

    # -- running -----------------------------------------------------------------------------

    def run(self, *, max_steps: int | None = None) -> SearchResult:
        """Step until the budget is spent (or ``max_steps`` steps); returns the result.

        The stored status becomes ``complete`` (budget spent), ``interrupted``
        (``max_steps``, Ctrl-C, or SearchAborted: devices unavailable, which
        is re-raised) or ``failed`` (any other exception, re-raised).
        """
        status = "interrupted"
        try:
            while max_steps is None or self._steps < max_steps:
                if not self.step():
                    status = "complete"
                    break
        except SearchAborted as exc:
            self._set_status("interrupted", str(exc))
            raise
        except KeyboardInterrupt:
            self._set_status("interrupted", "interrupted by the user")
            raise
        except Exception as exc:
            self._set_status("failed", f"{type(exc).__name__}: {exc}")
            raise
        self._set_status(status)
        return SearchResult(self.search_id, status, self.engine, self.counters,
                            self.engine.pareto_front())

    def trials_done(self) -> int:
        return sum(1 for t in self.engine.history() if t.state is not TrialState.PENDING)

    def step(self) -> bool:
        """One step (see the module docstring); False when the budget was already spent."""
        batch = self.engine.pending()
        if not batch:
            left = self.config.budget - self.trials_done()
            if left <= 0:
                return False
            batch = self.engine.ask(min(self.config.effective_batch_size(), left))
            now = time.time()
            for candidate in batch:
                self._asked_at[candidate.id] = now
                self._dirty.add(candidate.id)
            self._commit()
        alive = self._static_values(batch)
        if self.store is not None and self.search_id is not None and self.config.mode != "lut":
            # Accuracy can take a while (training): keep it, so a resume does not redo it.
            rows = [self._record(self.engine.trial(c.id)) for c in batch if c.id in self._partial]
            if rows:
                self.store.put_candidates(rows)
        if self.config.mode == "measured":
            self._tell_measured(alive, self._measure([c for c, _, _ in alive]))
        elif self.config.mode == "lut":
            predictions = self._predict([c.arch for c, _, _ in alive])
            for (candidate, values, sources), predicted in zip(alive, predictions, strict=True):
                self._tell_predicted(candidate, values, sources, predicted)
        else:
            self._hybrid_step(alive)
        self._steps += 1
        self._commit()
        self._report("step")
        return True

    # -- values that need no device -------------------------------------------------------

    def _static_values(
        self, batch: Sequence[Candidate]
    ) -> list[tuple[Candidate, dict[str, float], dict[str, str]]]:
        from fleetnas.controller.accuracy import EstimatorError

        alive = []
        for i, candidate in enumerate(batch):
            if candidate.id in self._partial:
                stored_values, stored_sources = self._partial[candidate.id]
                alive.append((candidate, dict(stored_values), dict(stored_sources)))
                continue
            values: dict[str, float] = {}
            sources: dict[str, str] = {}
            arch = candidate.arch
            for name in self.names:
                if name in self.callables:
                    values[name] = float(self.callables[name](arch))
                    sources[name] = "callable"
                elif name == "params":
                    values[name], sources[name] = float(self.space.count_params(arch)), "analytic"
                elif name == "flops":
                    values[name], sources[name] = float(self.space.count_flops(arch)), "analytic"
            if ACCURACY in self.names and ACCURACY not in values and not self.expensive_accuracy:
                assert self.estimator is not None
                self._report("estimate", f"accuracy {i + 1}/{len(batch)}")
                try:
                    values[ACCURACY] = float(self.estimator.estimate(self.space, arch))
                except EstimatorError as exc:
                    self._fail(candidate.id, f"accuracy: {exc}")
                    continue
                sources[ACCURACY] = "estimator"
            self._partial[candidate.id] = (values, sources)
            self._dirty.add(candidate.id)
            alive.append((candidate, dict(values), dict(sources)))
        return alive

    # -- measured values --------------------------------------------------------------------

    def _measure(self, candidates: Sequence[Candidate]) -> dict[int, CandidateMeasurement]:
        """Measure on every target; SearchAborted on a failure that is not the model's."""
        if not candidates:
            return {}
        assert self.measurer is not None
        requests = [MeasureRequest(c.id, c.arch, c.encoding) for c in candidates]

        def progress(done: int, total: int, label: str) -> None:
            self._report("measure", f"{done}/{total} {label}")

        results = self.measurer.measure(self.space, requests, self.config.targets,
                                        on_progress=progress)
        out: dict[int, CandidateMeasurement] = {}
        for measurement in results:
            for result in measurement.results.values():
                if result.ok:
                    self.counters = replace(
                        self.counters, measured=self.counters.measured + 1,
                        device_runs=self.counters.device_runs + int(result.ran),
                    )  # fmt: skip
            failure = measurement.failure()
            if failure is not None and not failure[1]:
                resume = f"`fleetnas search --resume {self.search_id}`" if self.search_id else "resume"
                raise SearchAborted(
                    f"candidate {measurement.candidate_id}: {failure[0]}; fix the cause "
                    f"(devices up? settings valid?) and {resume}"
                )
            out[measurement.candidate_id] = measurement
        return out

    def _measured_values(
        self, measurement: CandidateMeasurement
    ) -> tuple[dict[str, float], dict[str, str], dict[str, Any]]:
        values: dict[str, float] = {}
        sources: dict[str, str] = {}
        uids: dict[str, str] = {}
        devices: dict[str, str] = {}
        for target in self.config.targets:
            result = measurement.results[target.key]
            assert result.latency_ms is not None
            values[target.objective] = result.latency_ms
            sources[target.objective] = MEASURED
            memory = f"peak_memory[{target.key}]"
            if memory in self.names and result.peak_memory_bytes is not None:
                values[memory] = result.peak_memory_bytes
                sources[memory] = MEASURED
            if result.measurement_uid:
                uids[target.objective] = result.measurement_uid
            if result.device:
                devices[target.key] = result.device
        extra: dict[str, Any] = {"measurements": uids, "devices": devices}
        if measurement.model_sha256:
            extra["model_sha256"] = measurement.model_sha256
        return values, sources, extra

    def _estimate_expensive(self, candidate: Candidate) -> float | str:
        """The expensive accuracy estimate, or the failure text."""
        from fleetnas.controller.accuracy import EstimatorError

        assert self.estimator is not None
        try:
            return float(self.estimator.estimate(self.space, candidate.arch))
        except EstimatorError as exc:
            return f"accuracy: {exc}"

    def _tell_measured(
        self,
        alive: Sequence[tuple[Candidate, dict[str, float], dict[str, str]]],
        measurements: Mapping[int, CandidateMeasurement],
    ) -> None:
        for candidate, values, sources in alive:
            measurement = measurements[candidate.id]
            failure = measurement.failure()
            if failure is not None:
                self._fail(candidate.id, failure[0])
                continue
            if self.expensive_accuracy:
                accuracy = self._estimate_expensive(candidate)
                if isinstance(accuracy, str):
                    self._fail(candidate.id, accuracy)
                    continue
                values[ACCURACY], sources[ACCURACY] = accuracy, MEASURED
            measured, measured_sources, extra = self._measured_values(measurement)
            values.update(measured)
            sources.update(measured_sources)
            self._tell(candidate.id, values, sources, extra)

    # -- predicted values -------------------------------------------------------------------

    def _arch_features(self, arch: Arch) -> list[float]:
        key = self.space.encode(arch)
        if key not in self._features:
            self._features[key] = arch_features(self.space, arch)
        return self._features[key]

    def _predict(self, archs: Sequence[Arch]) -> list[dict[str, Prediction]]:
        by_name = {name: p.predict(archs) for name, p in self.predictors.items()}
        return [{name: by_name[name][i] for name in by_name} for i in range(len(archs))]

    def _tell_predicted(
        self,
        candidate: Candidate,
        values: dict[str, float],
        sources: dict[str, str],
        predicted: Mapping[str, Prediction],
    ) -> None:
        for name, prediction in predicted.items():
            values[name] = prediction.value
            sources[name] = prediction.source
        self._tell(candidate.id, values, sources, {})

    def _refit(self) -> None:
        """Refit every predictor on every measurement so far (complete trials, by id)."""
        trials = sorted(
            (t for t in self.engine.complete() if t.evaluation is not None), key=lambda t: t.id
        )
        for name, predictor in self.predictors.items():
            rows = [
                (t.candidate.arch, t.values[name]) for t in trials
                if t.evaluation is not None
                and t.evaluation.metadata.get("sources", {}).get(name) == MEASURED
            ]  # fmt: skip
            predictor.fit([a for a, _ in rows], [v for _, v in rows])

    def _warm(self) -> bool:
        h = self.config.hybrid
        for predictor in self.predictors.values():
            needed = h.lut_warmup if isinstance(predictor, LutValuePredictor) else h.warmup
            if predictor.n < needed:
                return False
        return True

    def _optimistic(self, values: Mapping[str, float], predicted: Mapping[str, Prediction]) -> Point:
        def bounds(name: str) -> tuple[float, float]:
            if name in predicted:
                return predicted[name].low, predicted[name].high
            return values[name], values[name]

        vector = []
        for objective in self.engine.objectives:
            low, high = bounds(objective.name)
            vector.append(objective.sign * (low if objective.direction == "minimize" else high))
        violation = 0.0
        for constraint in self.engine.constraints:
            low, high = bounds(constraint.name)
            violation += constraint.relative_violation(low if constraint.op == "<=" else high)
        return vector, violation

    def _measured_points(self) -> list[Point]:
        points = []
        for trial in self.engine.complete():
            if self._needs_measuring(trial) or trial.evaluation is None:
                continue
            vector = [o.sign * trial.values[o.name] for o in self.engine.objectives]
            points.append((vector, trial.evaluation.total_violation))
        return points

    def _needs_measuring(self, trial: Trial) -> bool:
        """A complete trial with a predicted value that has not failed to measure."""
        if trial.evaluation is None:
            return False
        metadata = trial.evaluation.metadata
        if metadata.get("measure_failed"):
            return False
        sources = metadata.get("sources", {})
        return any(sources.get(name) != MEASURED for name in self.predictors)

    def _hybrid_step(
        self, alive: Sequence[tuple[Candidate, dict[str, float], dict[str, str]]]
    ) -> None:
        predictions = self._predict([c.arch for c, _, _ in alive])
        if self._warm():
            optimistic = [self._optimistic(v, p) for (_, v, _), p in zip(alive, predictions, strict=True)]
            chosen = could_enter_front(optimistic, self._measured_points())
        else:
            chosen = [True] * len(alive)
        to_measure = [c for (c, _, _), pick in zip(alive, chosen, strict=True) if pick]
        measurements = self._measure(to_measure)
        for (candidate, values, sources), predicted in zip(alive, predictions, strict=True):
            if candidate.id in measurements:
                self._tell_measured([(candidate, values, sources)], measurements)
            else:
                self._tell_predicted(candidate, values, sources, predicted)
        self._refit()
        self._measure_front()
        self._refresh_predictions()

    def _measure_front(self) -> None:
        """Measure the predicted trials on the front until the front is all measured."""
        for _ in range(len(self.engine.complete()) + 1):
            todo = [t for t in self.engine.pareto_front() if self._needs_measuring(t)]
            if not todo:
                return
            measurements = self._measure([t.candidate for t in todo])
            for trial in todo:
                measurement = measurements[trial.id]
                failure = measurement.failure()
                accuracy: float | str | None = None
                if failure is None and self.expensive_accuracy:
                    accuracy = self._estimate_expensive(trial.candidate)
                    if isinstance(accuracy, str):
                        failure = (accuracy, True)
                if failure is not None:
                    # A told trial cannot be failed: keep its prediction, say so, stop trying.
                    self._revise(trial.id, {}, {}, {"measure_failed": failure[0]})
                    continue
                values, sources, extra = self._measured_values(measurement)
                if isinstance(accuracy, float):
                    values[ACCURACY], sources[ACCURACY] = accuracy, MEASURED
                self._revise(trial.id, values, sources, extra)
            self._refit()

    def _refresh_predictions(self) -> None:
        """Re-predict every predicted value with the refitted predictors."""
        trials = [t for t in self.engine.complete() if self._needs_measuring(t)]
        if not trials:
            return
        predictions = self._predict([t.candidate.arch for t in trials])
        for trial, predicted in zip(trials, predictions, strict=True):
            assert trial.evaluation is not None
            sources = trial.evaluation.metadata.get("sources", {})
            changed = {
                name: p.value for name, p in predicted.items()
                if sources.get(name) != MEASURED and trial.values[name] != p.value
            }  # fmt: skip
            if changed:
                self._revise(trial.id, changed, {n: predicted[n].source for n in changed}, {})

    # -- engine bookkeeping -----------------------------------------------------------------

    def _source_of(self, sources: Mapping[str, str]) -> str | None:
        kinds = {sources.get(name) == MEASURED for name in self.latency_names}
        if not kinds:
            return None
        if kinds == {True}:
            return MEASURED
        return "predicted" if kinds == {False} else "mixed"

    def _metadata(self, sources: Mapping[str, str], extra: Mapping[str, Any]) -> dict[str, Any]:
        return {"sources": dict(sources), "source": self._source_of(sources), **extra}

    def _tell(self, cid: int, values: Mapping[str, float], sources: Mapping[str, str],
              extra: Mapping[str, Any]) -> None:
        self.engine.tell(cid, values, metadata=self._metadata(sources, extra))
        self._told_at[cid] = time.time()
        self._partial.pop(cid, None)
        self._dirty.add(cid)

    def _revise(self, cid: int, values: Mapping[str, float], sources: Mapping[str, str],
                extra: Mapping[str, Any]) -> None:
        trial = self.engine.trial(cid)
        assert trial.evaluation is not None
        old = trial.evaluation.metadata
        merged_sources = {**old.get("sources", {}), **sources}
        metadata = {**extra, "sources": merged_sources, "source": self._source_of(merged_sources)}
        for key in ("measurements", "devices"):
            if key in extra:
                metadata[key] = {**old.get(key, {}), **extra[key]}
        self.engine.revise(cid, values, metadata=metadata)
        self._dirty.add(cid)

    def _fail(self, cid: int, reason: str) -> None:
        log.info("candidate %s failed: %s", cid, reason)
        self.engine.fail(cid, reason)
        self._dirty.add(cid)

    # -- storing and reporting --------------------------------------------------------------

    def _record(self, trial: Trial) -> CandidateRecord:
        c = trial.candidate
        now = time.time()
        base = CandidateRecord(
            search_id=self.search_id or 0, candidate_id=c.id, encoding=c.encoding,
            generation=c.generation, parents=c.parents, state=trial.state.value,
            asked_at=self._asked_at.get(c.id, now), told_at=self._told_at.get(c.id),
            updated_at=now,
        )  # fmt: skip
        if trial.evaluation is not None:
            e = trial.evaluation
            return replace(
                base, model_sha256=e.metadata.get("model_sha256"), metrics=dict(e.values),
                sources=dict(e.metadata.get("sources", {})), source=e.metadata.get("source"),
                measurements=dict(e.metadata.get("measurements", {})), feasible=e.feasible,
                violation=e.total_violation,
            )  # fmt: skip
        values, sources = self._partial.get(c.id, ({}, {}))
        return replace(base, metrics=dict(values), sources=dict(sources), failure=trial.failure)

    def _current_counters(self) -> Counters:
        predicted = 0
        for trial in self.engine.complete():
            sources = trial.evaluation.metadata.get("sources", {}) if trial.evaluation else {}
            predicted += sum(1 for n in self.latency_names if sources.get(n) != MEASURED)
        return replace(self.counters, trials=self.trials_done(), predicted=predicted)

    def _commit(self) -> None:
        self.counters = self._current_counters()
        if self.store is None or self.search_id is None:
            self._dirty.clear()
            return
        rows = [self._record(self.engine.trial(cid)) for cid in sorted(self._dirty)]
        self.store.commit(self.search_id, self.engine.state_dict(), rows, self.counters)
        self._dirty.clear()

    def _set_status(self, status: str, error: str | None = None) -> None:
        if self.store is not None and self.search_id is not None:
            self.store.set_status(self.search_id, status, error=error)

    def best_so_far(self) -> dict[str, float]:
        """Per objective, the best value among the feasible front (empty before any)."""
        front = [t for t in self.engine.pareto_front()
                 if t.evaluation is not None and t.evaluation.feasible]
        best: dict[str, float] = {}
        for o in self.engine.objectives:
            if front:
                values = [t.values[o.name] for t in front]
                best[o.name] = min(values) if o.direction == "minimize" else max(values)
        return best

    def _report(self, phase: str, detail: str = "") -> None:
        if self.on_progress is None:
            return
        counters = self._current_counters() if phase == "step" else self.counters
        front = self.engine.pareto_front() if phase == "step" else []
        self.on_progress(SearchProgress(
            phase=phase, trials=counters.trials, budget=self.config.budget,
            measured=counters.measured, device_runs=counters.device_runs,
            predicted=counters.predicted, front=len(front),
            best=self.best_so_far() if phase == "step" else {}, detail=detail,
        ))  # fmt: skip

    def describe_predictors(self) -> dict[str, str]:
        """One line per predicted value: what predicts it and how well."""
        return {name: p.describe() for name, p in self.predictors.items()}

