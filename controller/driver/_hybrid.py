"""The hybrid latency source: predict every latency, measure what could change the front.

Per step:

1. predict every latency of the batch (the target's LUT where it has one, the
   online surrogate elsewhere; accuracy too when it is expensive);
2. once the predictors are warm (``HybridOptions.warmup`` measured, or
   ``lut_warmup`` with a LUT), measure only the candidates that could enter
   the Pareto front (:func:`~._select.could_enter_front` on each prediction's
   optimistic end); before that, measure every candidate;
3. tell measured candidates their measurements, the rest their predictions;
   refit every predictor on every measurement so far;
4. measure every predicted trial that is now on the front and revise it, until
   the front is all measured; re-predict every remaining prediction.

So the front a hybrid search reports is measured, never predicted.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleetnas.controller.driver._candidates import CandidateState
from fleetnas.controller.driver._predict import LutValuePredictor, Prediction
from fleetnas.controller.driver._select import Point, could_enter_front
from fleetnas.controller.driver._sources import PredictingSource
from fleetnas.controller.search import Trial


class Hybrid(PredictingSource):
    """Predict all, measure what could enter the front (see the module docstring)."""

    name = "hybrid"
    summary = "predict all, measure what could enter the front"
    measures = True
    uses_luts = True
    defers_expensive = True
    uses_features = True

    def evaluate(self, batch: list[CandidateState]) -> None:
        ev = self.evaluation
        predictions = self.predict([s.candidate.arch for s in batch])
        if self._warm():
            optimistic = [self._optimistic(s.values, p) for s, p in zip(batch, predictions, strict=True)]
            chosen = could_enter_front(optimistic, self._measured_points())
        else:
            chosen = [True] * len(batch)
        measurements = ev.measure([s.candidate for s, pick in zip(batch, chosen, strict=True) if pick])
        for state, predicted in zip(batch, predictions, strict=True):
            if state.id in measurements:
                ev.tell_measured(state, measurements[state.id])
            else:
                ev.tell_predicted(state, predicted)
        self.refit()
        self._measure_front()
        self._refresh_predictions()

    def _warm(self) -> bool:
        h = self.setup.config.hybrid
        for predictor in self.predictors().values():
            needed = h.lut_warmup if isinstance(predictor, LutValuePredictor) else h.warmup
            if predictor.n < needed:
                return False
        return True

    def _optimistic(self, values: Mapping[str, float], predicted: Mapping[str, Prediction]) -> Point:
        """The candidate's point with every prediction at the end of its interval that favours it."""

        def bounds(name: str) -> tuple[float, float]:
            if name in predicted:
                return predicted[name].low, predicted[name].high
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

    def _needs_measuring(self, trial: Trial) -> bool:
        """A complete trial with a predicted value that has not failed to measure."""
        if trial.evaluation is None or trial.evaluation.metadata.get("measure_failed"):
            return False
        return any(not self.evaluation.is_measured(trial, name) for name in self.predictors())

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
        predictions = self.predict([t.candidate.arch for t in trials])
        for trial, predicted in zip(trials, predictions, strict=True):
            changed = {
                name: p for name, p in predicted.items()
                if not ev.is_measured(trial, name) and trial.values[name] != p.value
            }  # fmt: skip
            if changed:
                ev.revise(trial, {n: p.value for n, p in changed.items()},
                          {n: p.source for n, p in changed.items()})
