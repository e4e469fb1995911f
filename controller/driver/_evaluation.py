"""What a latency source may do with a step's candidates: measure, tell, revise, fail.

The driver builds one :class:`Evaluation` per search and hands it to its
:class:`~._source.LatencySource`. It keeps the engine, the candidate book and
the counters consistent whatever the source decides: every measurement is
counted, every tell and revision carries the canonical metadata
(:func:`~._candidates.trial_metadata`) and marks the candidate's row for the
next commit, and a failure that is not the model's stops the search
(:class:`~._errors.SearchAborted`) so the user can fix it and resume.

A *deferred* value (an expensive accuracy estimate in hybrid mode) is
computed only for candidates that are measured, here, right after their
measurement; each finished estimate is handed to ``on_estimate`` at once so
that the driver can store it before anything else runs. With an executor
(``remote``), the deferred estimates of the candidates about to be measured
are submitted before the measurement starts and collected after it ends, so
both run at once; estimates the driver submitted before the step
(:meth:`Evaluation.settle`) are collected there too, before any tell.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetnas.controller.driver._candidates import (
    MEASURED,
    CandidateBook,
    CandidateState,
    trial_metadata,
)
from fleetnas.controller.driver._config import SearchConfig
from fleetnas.controller.driver._errors import SearchAborted, SearchConfigError
from fleetnas.controller.driver._measure import (
    CandidateMeasurement,
    Measurer,
    MeasureRequest,
    TargetResult,
)
from fleetnas.controller.driver._predict import Prediction
from fleetnas.controller.driver._unknown import blind_accuracy, network_of, unknown_of
from fleetnas.controller.search import Candidate, SearchEngine, Trial, TrialState, split_name
from fleetnas.controller.spaces import Arch

if TYPE_CHECKING:
    from fleetnas.controller.accuracy import AccuracyEstimator
    from fleetnas.controller.driver._deployed_accuracy import DeployedScorer
    from fleetnas.controller.driver._remote import RemoteEstimates

log = logging.getLogger("fleetnas.search")

ACCURACY = "accuracy"

Report = Callable[[str, str], None]
"""``(phase, detail)``: progress of the step in flight."""


def energy_missing(key: str, candidate_id: int, result: TargetResult) -> str:
    """Why a measured candidate has no ``energy[key]``: the device, the measurement, the
    meter's reason and what to do."""
    where = f"device {result.device}" if result.device else f"target {key}"
    reason = result.energy_reason or "the agent reported no energy meter"
    return (
        f"energy[{key}]: {where} measured candidate {candidate_id} "
        f"(measurement {result.measurement_uid or '?'}) without energy: {reason}. Give the "
        "agent a readable meter (see docs/telemetry.md), or drop the energy objective"
    )


def latency_key(name: str) -> str | None:
    """The target key of ``latency[KEY]``; ``None`` for any other name."""
    base, qualifier = split_name(name)
    return qualifier if base == "latency" else None


@dataclass
class Tally:
    """Latency values taken from measurements, and how many of those ran on a device."""

    measured: int = 0
    device_runs: int = 0


@dataclass
class PhaseTimes:
    """Seconds this run spent per phase of a candidate: exporting, measuring (scheduling,
    uploads, benchmarks, cache look-ups) and estimating accuracy."""

    export_s: float = 0.0
    measure_s: float = 0.0
    accuracy_s: float = 0.0

    @contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        """Add the time the block takes to ``phase`` (``export``, ``measure`` or ``accuracy``)."""
        started = time.monotonic()
        try:
            yield
        finally:
            name = f"{phase}_s"
            setattr(self, name, getattr(self, name) + time.monotonic() - started)

    def per_candidate(self, candidates: int) -> dict[str, float]:
        """Each phase's seconds per candidate over ``candidates`` (empty when none)."""
        if candidates <= 0:
            return {}
        return {"export": self.export_s / candidates, "measure": self.measure_s / candidates,
                "accuracy": self.accuracy_s / candidates}  # fmt: skip


class Evaluation:
    """The driver's services to a latency source for one search (see the module docstring).

    ``names`` are every objective and constraint name; ``deferred`` those of
    them a source computes only for measured candidates (with
    ``estimator``). Not thread-safe.
    """

    def __init__(
        self,
        config: SearchConfig,
        engine: SearchEngine,
        book: CandidateBook,
        *,
        names: Sequence[str],
        measurer: Measurer | None,
        estimator: AccuracyEstimator | None,
        deferred: Sequence[str] = (),
        tally: Tally | None = None,
        report: Report | None = None,
        search_id: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.book = book
        self.names = list(names)
        self.latency_names = [n for n in self.names if latency_key(n) is not None]
        self.energy_keys = [t.key for t in config.energy_targets()]
        self.measurer = measurer
        self.estimator = estimator
        self.deferred = tuple(deferred)
        self.tally = tally or Tally()
        self.times = PhaseTimes()
        self.report = report or (lambda phase, detail: None)
        self.search_id = search_id
        self.on_estimate: Callable[[CandidateState], None] = lambda state: None
        #: scores each target's deployed model instead of the estimator (set by the driver)
        self.deployed: DeployedScorer | None = None
        #: where accuracy estimates run when an executor runs them (None: here, inline)
        self.remote: RemoteEstimates | None = None

    # -- measuring -----------------------------------------------------------------------

    def measurements_left(self) -> int | None:
        """What is left of ``max_measurements`` (latency values); None without one."""
        if self.config.max_measurements is None:
            return None
        return max(0, self.config.max_measurements - self.tally.measured)

    def candidates_left(self) -> int | None:
        """Candidates that may still be measured on every target within ``max_measurements``
        (rounded up: the last one may pass the budget by less than a candidate's targets);
        None without a measurement budget."""
        left = self.measurements_left()
        if left is None:
            return None
        return -(-left // max(len(self.config.targets), 1))

    def measure(self, candidates: Sequence[Candidate]) -> dict[int, CandidateMeasurement]:
        """Measure on every target; SearchAborted on a failure that is not the model's."""
        if not candidates:
            return {}
        assert self.measurer is not None, "a source that measures needs a measurer"
        requests = [MeasureRequest(c.id, c.arch, c.encoding) for c in candidates]

        def progress(done: int, total: int, label: str) -> None:
            self.report("measure", f"{done}/{total} {label}")

        if self.remote is not None and ACCURACY in self.deferred:
            for candidate in candidates:  # the executor estimates while the devices measure
                state = self.book.get(candidate)
                if state.sources.get(ACCURACY) != MEASURED:
                    self.remote.submit(state, MEASURED)
        exported = self.measurer.export_seconds()
        with self.times.timing("measure"):
            results = self.measurer.measure(self.engine.space, requests, self.config.targets,
                                            on_progress=progress)
        self.settle()
        export_s = self.measurer.export_seconds() - exported
        self.times.export_s += export_s
        self.times.measure_s -= export_s
        out: dict[int, CandidateMeasurement] = {}
        for measurement in results:
            for result in measurement.results.values():
                if result.ok:
                    self.tally.measured += 1
                    self.tally.device_runs += int(result.ran)
            failure = measurement.failure()
            if failure is not None and not failure[1]:
                sid = self.search_id()
                resume = f"`fleetnas search --resume {sid}`" if sid else "resume"
                raise SearchAborted(
                    f"candidate {measurement.candidate_id}: {failure[0]}; fix the cause "
                    f"(devices up? settings valid?) and {resume}"
                )
            self._check_energy(measurement)
            out[measurement.candidate_id] = measurement
        return out

    def _check_energy(self, measurement: CandidateMeasurement) -> None:
        """SearchAborted when a measured result lacks an ``energy[T]`` the search needs: the
        device's meter cannot be read (its Describe looked fine, or a cached measurement
        was taken without one)."""
        for key in self.energy_keys:
            result = measurement.results.get(key)
            if result is not None and result.ok and result.energy_mj is None:
                raise SearchAborted(energy_missing(key, measurement.candidate_id, result))

    def measured_values(
        self, measurement: CandidateMeasurement
    ) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
        """(values, sources, measurement uids) of a successful measurement."""
        values: dict[str, float] = {}
        sources: dict[str, str] = {}
        uids: dict[str, str] = {}
        for target in self.config.targets:
            result = measurement.results[target.key]
            assert result.latency_ms is not None
            values[target.objective] = result.latency_ms
            sources[target.objective] = MEASURED
            memory = f"peak_memory[{target.key}]"
            if memory in self.names and result.peak_memory_bytes is not None:
                values[memory] = result.peak_memory_bytes
                sources[memory] = MEASURED
            energy = f"energy[{target.key}]"
            if target.key in self.energy_keys and result.energy_mj is not None:
                values[energy] = result.energy_mj
                sources[energy] = MEASURED
            if result.measurement_uid:
                uids[target.objective] = result.measurement_uid
        return values, sources, uids

    def settle(self) -> None:
        """Wait for the executor's estimates in flight (see the module docstring)."""
        if self.remote is not None and self.remote.waiting:
            self.report("estimate", f"waiting for {self.remote.waiting} accuracy estimates "
                        f"on the {self.remote.executor.kind} executor")
            with self.times.timing("accuracy"):
                self.remote.settle()

    def remote_failure(self, state: CandidateState) -> str | None:
        """Why the executor could not estimate ``state``'s candidate (None: it could, or none ran)."""
        self.settle()
        return None if self.remote is None else self.remote.failures.pop(state.id, None)

    def finish_step(self) -> None:
        """Collect estimates still in flight; fail a pending candidate whose estimate failed."""
        if self.remote is None:
            return
        self.settle()
        for candidate_id, reason in sorted(self.remote.failures.items()):
            if self.engine.trial(candidate_id).state is TrialState.PENDING:
                self.fail(candidate_id, reason)
        self.remote.failures.clear()

    def _estimate_deferred(self, state: CandidateState) -> str | None:
        """Compute the deferred values of a measured candidate into ``state``; the failure text."""
        from fleetnas.controller.accuracy import EstimatorError

        failed = self.remote_failure(state)
        if failed is not None:
            return failed
        for name in self.deferred:
            if state.sources.get(name) == MEASURED:
                continue  # estimated before a resume
            assert name == ACCURACY
            try:
                values, sources = self.estimate_accuracy(state.candidate.arch, MEASURED)
            except EstimatorError as exc:
                return f"accuracy: {exc}"
            state.values.update(values)
            state.sources.update(sources)
            self.on_estimate(state)
        return None

    def estimate_accuracy(self, arch: Arch, source: str) -> tuple[dict[str, float], dict[str, str]]:
        """``({"accuracy": v}, {"accuracy": source})`` from the estimator (of the fp32
        network: unknown for a candidate with a gene below fp32, :mod:`._unknown`), or with
        :attr:`deployed` the deployed values (``accuracy`` the worst target's; see
        :mod:`._deployed_accuracy`). EstimatorError when the candidate cannot be scored;
        SearchConfigError when the calibration data cannot be used."""
        from fleetnas.controller.accuracy import EstimatorError
        from fleetnas.controller.compress import CalibrationError, CompressError
        from fleetnas.controller.export import ExportError

        assert self.estimator is not None
        with self.times.timing("accuracy"):
            if self.deployed is None:  # the fp32 network's score (unknown below fp32: ._unknown)
                value = float(self.estimator.estimate(*network_of(self.engine.space, arch)))
                return blind_accuracy(self.engine.space, arch, value, source)
            try:
                values, sources = self.deployed.values(self.engine.space, arch)
            except CalibrationError as exc:
                raise SearchConfigError(f"calibration: {exc} (check --calibration)") from exc
            except (CompressError, ExportError) as exc:
                raise EstimatorError(f"deployed model: {exc}") from exc
            return values, {**sources, ACCURACY: source}

    # -- telling -------------------------------------------------------------------------

    def tell_measured(self, state: CandidateState, measurement: CandidateMeasurement) -> None:
        """Tell a pending candidate its measurement (and deferred values), or fail it."""
        failure = measurement.failure()
        reason = failure[0] if failure is not None else (self.remote_failure(state)
                                                         or self._estimate_deferred(state))
        if reason is not None:
            self.fail(state.id, reason)
            return
        values, sources, uids = self.measured_values(measurement)
        self._tell(state, {**state.values, **values}, {**state.sources, **sources},
                   measurements=uids, model_sha256=measurement.model_sha256)

    def tell_predicted(self, state: CandidateState, predicted: Mapping[str, Prediction]) -> None:
        """Tell a pending candidate its pre-tell values plus these predictions (or fail it,
        when the executor could not estimate it)."""
        reason = self.remote_failure(state)
        if reason is not None:
            self.fail(state.id, reason)
            return
        values = {**state.values, **{n: p.value for n, p in predicted.items()}}
        sources = {**state.sources, **{n: p.source for n, p in predicted.items()}}
        self._tell(state, values, sources)

    def _tell(self, state: CandidateState, values: Mapping[str, float],
              sources: Mapping[str, str], **extra: Any) -> None:
        metadata = trial_metadata(sources, self.latency_names, **extra)
        self.engine.tell(state.id, values, metadata=metadata, unknown=unknown_of(values, sources))
        self.book.told(state.id)

    def revise_measured(self, trial: Trial, measurement: CandidateMeasurement) -> None:
        """Replace a complete trial's predictions by its measurement (and deferred values).

        A trial whose measurement fails keeps its predictions and says why
        (``measure_failed``), so it is never tried again.
        """
        failure = measurement.failure()
        state = self.book.get(trial.candidate)  # holds deferred values estimated before a resume
        reason = failure[0] if failure is not None else self._estimate_deferred(state)
        if reason is not None:
            self.revise(trial, {}, {}, measure_failed=reason)
        else:
            values, sources, uids = self.measured_values(measurement)
            self.revise(trial, {**state.values, **values}, {**state.sources, **sources},
                        measurements=uids, model_sha256=measurement.model_sha256)
        state.values, state.sources = {}, {}

    def revise(self, trial: Trial, values: Mapping[str, float], sources: Mapping[str, str], *,
               measurements: Mapping[str, str] | None = None, model_sha256: str | None = None,
               measure_failed: str | None = None) -> None:
        """Merge ``values`` and their sources over a complete trial's (metadata the same
        as the trial's is not told again: the engine keeps the one it has)."""
        assert trial.evaluation is not None
        old = trial.evaluation.metadata
        if (measurements is None and model_sha256 is None and measure_failed is None
                and _same_sources(old, sources)):
            # new values only (a refreshed prediction): trial_metadata would rebuild ``old``
            self.engine.revise(trial.id, values, unknown=unknown_of(values, sources))
            self.book.changed(trial.id)
            return
        metadata = trial_metadata(
            {**old.get("sources", {}), **sources}, self.latency_names,
            measurements={**old.get("measurements", {}), **(measurements or {})},
            model_sha256=model_sha256 or old.get("model_sha256"),
            measure_failed=measure_failed or old.get("measure_failed"),
        )  # fmt: skip
        self.engine.revise(trial.id, values, metadata=None if metadata == old else metadata,
                           unknown=unknown_of(values, sources))
        self.book.changed(trial.id)

    def fail(self, candidate_id: int, reason: str) -> None:
        log.info("candidate %s failed: %s", candidate_id, reason)
        self.engine.fail(candidate_id, reason)
        self.book.changed(candidate_id)

    # -- reading -------------------------------------------------------------------------

    def is_measured(self, trial: Trial, name: str) -> bool:
        """Whether ``trial``'s value ``name`` was measured (not predicted)."""
        if trial.evaluation is None:
            return False
        return trial.evaluation.metadata.get("sources", {}).get(name) == MEASURED

    def measured_rows(self, name: str) -> tuple[list[Arch], list[float]]:
        """Every complete trial's measured ``name``, by candidate id: what predictors fit on."""
        trials = sorted(self.engine.complete(), key=lambda t: t.id)
        archs: list[Arch] = []
        values: list[float] = []
        for t in trials:
            if t.evaluation is not None and t.evaluation.metadata.get("sources", {}).get(name) == MEASURED:
                archs.append(t.candidate.arch)
                values.append(t.values[name])
        return archs, values

    def predicted_count(self) -> int:
        """Latency values of complete trials that are not measured (predicted)."""
        names = self.latency_names
        predicted = 0
        for trial in self.engine.complete():
            sources = {} if trial.evaluation is None else trial.evaluation.metadata.get("sources", {})
            predicted += sum(1 for n in names if sources.get(n) != MEASURED)
        return predicted


def _same_sources(metadata: Mapping[str, Any], sources: Mapping[str, str]) -> bool:
    """Whether ``metadata`` is :func:`trial_metadata`'s and already says ``sources``."""
    old = metadata.get("sources")
    return (old is not None and "source" in metadata and "measurements" in metadata
            and all(old.get(n) == s for n, s in sources.items()))
