"""The built-in latency sources that never choose: every latency measured, or every one predicted.

* :class:`Measured` (``measured``): every candidate on every target through
  the measurer (the scheduler: cost DB first, then devices);
* :class:`LutPredicted` (``lut``): every latency predicted by the target's
  block LUT, else its stored kernel LUT or transfer fit; no device at all.

:class:`PredictingSource` is the base of every source that predicts: it
builds the predictors and refits them on the engine's measured trials. The
hybrid source is in :mod:`._hybrid`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleetnas.controller.driver._blas import single_blas_thread
from fleetnas.controller.driver._candidates import CandidateState
from fleetnas.controller.driver._evaluation import ACCURACY, Evaluation
from fleetnas.controller.driver._predict import (
    LutValuePredictor,
    Prediction,
    SurrogateValuePredictor,
    ValuePredictor,
)
from fleetnas.controller.driver._predict_fixed import FixedFitValuePredictor
from fleetnas.controller.driver._source import LatencySource, SourceSetup
from fleetnas.controller.spaces import Arch


class Measured(LatencySource):
    """Every candidate measured on every target."""

    name = "measured"
    summary = "every candidate on every target"
    measures = True
    measures_every_candidate = True
    needs_targets = False
    knows_peak_memory = True
    knows_energy = True

    def evaluate(self, batch: list[CandidateState]) -> None:
        measurements = self.evaluation.measure([s.candidate for s in batch])
        for state in batch:
            self.evaluation.tell_measured(state, measurements[state.id])


class PredictingSource(LatencySource):
    """A source with value predictors, refitted from the engine on every call of :meth:`refit`.

    Subclasses say which predictor serves each value (:meth:`make_predictors`).
    The predictors are fitted once when the source is built (on what a
    resumed engine already holds).
    """

    def __init__(self, setup: SourceSetup, evaluation: Evaluation) -> None:
        super().__init__(setup, evaluation)
        self._predictors = self.make_predictors()
        self.refit()

    def make_predictors(self) -> dict[str, ValuePredictor]:
        """One predictor per latency objective: the target's block LUT, else its stored
        kernel LUT or transfer fit, else the surrogate.

        With ``setup.expensive_accuracy``, a surrogate predicts accuracy too.
        """
        setup, h = self.setup, self.setup.config.hybrid
        features = setup.features if self.uses_features else None
        predictors: dict[str, ValuePredictor] = {}
        for target in setup.config.targets:
            if target.key in setup.luts:
                predictors[target.objective] = LutValuePredictor(
                    setup.luts[target.key], z=h.z, min_margin=h.min_margin,
                    features=features, surrogate_rows=h.warmup,
                )  # fmt: skip
            elif target.key in setup.fixed:
                stored = setup.fixed[target.key]
                predictors[target.objective] = FixedFitValuePredictor(
                    stored.predictor, z=h.z, min_margin=h.min_margin, source=stored.source,
                    label=stored.label,
                )  # fmt: skip
            else:
                predictors[target.objective] = SurrogateValuePredictor(
                    setup.features, relative=True, z=h.z, min_margin=h.min_margin
                )
        if setup.expensive_accuracy:
            predictors[ACCURACY] = SurrogateValuePredictor(
                setup.features, relative=False, z=h.z, min_margin=h.min_margin
            )
        return predictors

    #: LUT predictors also fit the surrogate on the arch features (and pick the better)
    uses_features = False

    def predictors(self) -> Mapping[str, ValuePredictor]:
        return self._predictors

    def refit(self) -> None:
        """Refit every predictor on every measurement so far (complete trials, by id)."""
        with single_blas_thread():
            for name, predictor in self._predictors.items():
                archs, values = self.evaluation.measured_rows(name)
                predictor.fit(archs, values)

    def predict(self, archs: Sequence[Arch]) -> list[dict[str, Prediction]]:
        """Every predicted value of each arch."""
        with single_blas_thread():
            by_name = {name: p.predict(archs) for name, p in self._predictors.items()}
        return [{name: by_name[name][i] for name in by_name} for i in range(len(archs))]


class LutPredicted(PredictingSource):
    """Every latency predicted by its target's LUT (or stored kernel LUT or transfer fit); no device is
    contacted."""

    name = "lut"
    summary = "LUT (or stored kernel LUT or transfer fit) predictions only"
    measures = False
    uses_luts = True
    needs_luts = True

    def evaluate(self, batch: list[CandidateState]) -> None:
        predictions = self.predict([s.candidate.arch for s in batch])
        for state, predicted in zip(batch, predictions, strict=True):
            self.evaluation.tell_predicted(state, predicted)
