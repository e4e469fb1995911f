"""The hybrid latency source: predict every latency, measure what could change the front.

Per step:

1. predict every latency of the batch (the target's LUT where it has one, the
   online surrogate elsewhere; accuracy too when it is expensive), each with
   its **own** uncertainty (per arch: wide where the predictor has seen
   nothing alike or misses archs alike, narrow elsewhere);
2. once the predictors are warm (``HybridOptions.warmup`` measured, or
   ``lut_warmup`` with a LUT or a stored transfer fit), measure only the candidates that could enter
   the Pareto front (:func:`~._select.dominated_counts` on each prediction's
   optimistic end, ``z`` of its uncertainties in its favour); before that,
   measure every candidate;
3. tell measured candidates their measurements, the rest their predictions;
   refit every predictor on every measurement so far;
4. measure every predicted trial that is now on the front and revise it, until
   the front is all measured; re-predict every remaining prediction.

So the front a hybrid search reports is measured, never predicted.

**A measurement budget is spent.** With ``max_measurements``, the source
measures at most what is left of it (the candidates most likely to enter the
front first: those that could at the smallest ``z``), and in a step where no
candidate could enter the front at ``z`` it widens the intervals along
:data:`WIDER` until one could, or, past the last, measures the candidate the
fewest measured trials dominate. Every step then measures something, so the
budget is spent in at most ``max_measurements / targets`` steps, however few
candidates late in a search could still enter the front. Only the front's own
completion (step 4) may go past the budget, by the few members it measures.
Everything here is a function of the engine's trials and the predictors
refitted from them, so a resumed search makes the same choices.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from fleetnas.controller.driver._blas import single_blas_thread
from fleetnas.controller.driver._candidates import MEASURED, CandidateState
from fleetnas.controller.driver._predict import LutValuePredictor, Prediction
from fleetnas.controller.driver._predict_fixed import FixedFitValuePredictor
from fleetnas.controller.driver._select import Point, dominated_counts
from fleetnas.controller.driver._sources import PredictingSource
from fleetnas.controller.search import Trial

#: how much wider than ``z`` (added to it) the intervals go in a step where nothing could
#: enter the front but a measurement budget is left to spend
WIDER: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)


class Hybrid(PredictingSource):
    """Predict all, measure what could enter the front (see the module docstring)."""

    name = "hybrid"
    summary = "predict all, measure what could enter the front"
    measures = True
    uses_luts = True
    defers_expensive = True
    uses_features = True

    @functools.cached_property
    def _names(self) -> tuple[str, ...]:
        """The predicted values' names (the predictors are made once, with the source)."""
        return tuple(self.predictors())

    def evaluate(self, batch: list[CandidateState]) -> None:
        with single_blas_thread():  # small matrices: more BLAS threads only spin (see _blas)
            self._evaluate(batch)

    def _evaluate(self, batch: list[CandidateState]) -> None:
        ev = self.evaluation
        predictions = self.predict([s.candidate.arch for s in batch])
        chosen = self._choose(batch, predictions)
        measurements = ev.measure([batch[i].candidate for i in chosen])
        for state, predicted in zip(batch, predictions, strict=True):
            if state.id in measurements:
                ev.tell_measured(state, measurements[state.id])
            else:
                ev.tell_predicted(state, predicted)
        self.refit()
        self._measure_front()
        self._refresh_predictions()

    # -- choosing ------------------------------------------------------------------------

    def _choose(self, batch: Sequence[CandidateState],
                predictions: Sequence[Mapping[str, Prediction]]) -> list[int]:
        """Indexes of the batch to measure, most promising first, within the budget left."""
        allowance = self.evaluation.candidates_left()
        if allowance is not None and allowance <= 0:
            return []
        if not self._warm():
            return list(range(len(batch)))[:allowance]
        measured = self._measured_points()
        z = self.setup.config.hybrid.z
        counts = self._counts(batch, predictions, measured, z)
        chosen = [i for i in range(len(batch)) if counts[i] == 0]
        if allowance is None:
            return chosen
        order = chosen
        for extra in WIDER:  # a budget to spend and nothing could enter: look wider
            if order:
                break
            counts = self._counts(batch, predictions, measured, z + extra)
            order = [i for i in range(len(batch)) if counts[i] == 0]
        if not order and batch:  # nothing could enter even at the widest: the least dominated
            order = [int(np.argmin(counts))]
        return order[:allowance]

    def _counts(self, batch: Sequence[CandidateState], predictions: Sequence[Mapping[str, Prediction]],
                measured: Sequence[Point], z: float) -> np.ndarray:
        optimistic = [self._optimistic(s.values, p, z)
                      for s, p in zip(batch, predictions, strict=True)]
        return dominated_counts(optimistic, measured)

    def _warm(self) -> bool:
        h = self.setup.config.hybrid
        for predictor in self.predictors().values():
            prior = isinstance(predictor, (LutValuePredictor, FixedFitValuePredictor))
            needed = h.lut_warmup if prior else h.warmup
            if predictor.n < needed:
                return False
        return True

    def _optimistic(self, values: Mapping[str, float], predicted: Mapping[str, Prediction],
                    z: float) -> Point:
        """The candidate's point with every prediction ``z`` of its own uncertainties in its
        favour (each constraint at the end that violates it least)."""

        def bounds(name: str) -> tuple[float, float]:
            if name in predicted:
                return predicted[name].interval(z)
            return values[name], values[name]

        engine = self.evaluation.engine
        vector = []
        for objective in engine.objectives:
            low, high = bounds(objective.name)
            vector.append(objective.sign * (low if objective.direction == "minimize" else high))
        violation = 0.0
        for constraint in engine.constraints:
            low, high = bounds(constraint.name)
            violation += constraint.relative_violation(low if constraint.op == "<=" else high)
        return vector, violation

    def _measured_points(self) -> list[Point]:
        engine = self.evaluation.engine
        points = []
        for trial in engine.complete():
            if self._needs_measuring(trial) or trial.evaluation is None:
                continue
            vector = [o.sign * trial.values[o.name] for o in engine.objectives]
            points.append((vector, trial.evaluation.total_violation))
        return points

    # -- after the tells -----------------------------------------------------------------

    def _needs_measuring(self, trial: Trial) -> bool:
        """A complete trial with a predicted value that has not failed to measure."""
        if trial.evaluation is None or trial.evaluation.metadata.get("measure_failed"):
            return False
        sources = trial.evaluation.metadata.get("sources", {})  # what is_measured reads
        return any(sources.get(name) != MEASURED for name in self._names)

    def _measure_front(self) -> None:
        """Measure the predicted trials on the front until the front is all measured."""
        ev = self.evaluation
        for _ in range(len(ev.engine.complete()) + 1):
            todo = [t for t in ev.engine.pareto_front() if self._needs_measuring(t)]
            if not todo:
                return
            measurements = ev.measure([t.candidate for t in todo])
            for trial in todo:
                ev.revise_measured(trial, measurements[trial.id])
            self.refit()

    def _refresh_predictions(self) -> None:
        """Re-predict every predicted value with the refitted predictors."""
        ev = self.evaluation
        trials = [t for t in ev.engine.complete() if self._needs_measuring(t)]
        if not trials:
            return
        archs = [t.candidate.arch for t in trials]
        by_name = {name: p.values(archs) for name, p in self.predictors().items()}
        for i, trial in enumerate(trials):
            assert trial.evaluation is not None
            sources = trial.evaluation.metadata.get("sources", {})  # what is_measured reads
            changed = {
                name: by_name[name][i] for name in by_name
                if sources.get(name) != MEASURED and trial.values[name] != by_name[name][i][0]
            }  # fmt: skip
            if changed:
                ev.revise(trial, {n: v for n, (v, _) in changed.items()},
                          {n: source for n, (_, source) in changed.items()})
