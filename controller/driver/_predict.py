"""Predicted values for hybrid and LUT searches: a value plus an interval it likely lies in.

Two predictors, both refitted from scratch on *every* measurement the search
has so far (so a resumed search, refitting on the same stored measurements,
predicts exactly what the original would have):

* :class:`LutValuePredictor` wraps a :class:`~fleetnas.controller.lut.LatencyPredictor`
  (a calibrated sum of block latencies) and recalibrates its line on the
  search's own end-to-end measurements once there are enough of them;
* :class:`SurrogateValuePredictor` is the online ridge surrogate of
  :mod:`._surrogate`, for a target without a LUT (latency, log scale) and for
  an expensive accuracy estimate (linear scale).

An interval is ``value`` moved ``z`` uncertainties either way: relative
(multiplicative) for latency, absolute for accuracy.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from fleetnas.controller.driver._surrogate import RidgeSurrogate
from fleetnas.controller.lut import MIN_CALIBRATION_ARCHS, CalibrationError, LatencyPredictor
from fleetnas.controller.spaces import Arch

#: relative uncertainty of a LUT prediction before the search has measured enough to refit it
DEFAULT_LUT_SIGMA = 0.10


@dataclass(frozen=True)
class Prediction:
    """A predicted value and the interval ``[low, high]`` it likely lies in."""

    value: float
    low: float
    high: float
    source: str


class ValuePredictor(abc.ABC):
    """Predicts one value of archs; refitted on the search's measurements."""

    source: ClassVar[str]

    def __init__(self, *, z: float, min_margin: float) -> None:
        self.z = z
        self.min_margin = min_margin
        self.n = 0

    @abc.abstractmethod
    def fit(self, archs: Sequence[Arch], values: Sequence[float]) -> None:
        """Refit on every measurement so far (``archs[i]`` measured ``values[i]``)."""

    @abc.abstractmethod
    def predict(self, archs: Sequence[Arch]) -> list[Prediction]:
        """A prediction per arch."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for logs and the CLI: what predicts, and how well."""


def _relative(value: float, sigma: float, z: float, source: str) -> Prediction:
    spread = math.exp(z * sigma) if math.isfinite(sigma) else math.inf
    low = value / spread if math.isfinite(spread) else 0.0
    return Prediction(value, low, value * spread, source)


class LutValuePredictor(ValuePredictor):
    """LUT latency, recalibrated on the search's own measurements.

    Until :data:`~fleetnas.controller.lut.MIN_CALIBRATION_ARCHS` archs are
    measured, predictions use the LUT's stored calibration (or the raw sum)
    with uncertainty :data:`DEFAULT_LUT_SIGMA`; then the calibration line is
    refitted on all of them, and the uncertainty is its residual RMS
    (relative, corrected for the two fitted parameters).
    """

    source = "lut"

    def __init__(self, predictor: LatencyPredictor, *, z: float, min_margin: float) -> None:
        super().__init__(z=z, min_margin=min_margin)
        # A private copy: calibrating must not change the caller's predictor.
        self.base = predictor
        self.predictor = LatencyPredictor(
            predictor.space, predictor.entries, device=predictor.device,
            calibration=predictor.calibration, lut=predictor.lut,
        )  # fmt: skip
        self.sigma = DEFAULT_LUT_SIGMA

    def fit(self, archs: Sequence[Arch], values: Sequence[float]) -> None:
        self.n = len(archs)
        if self.n < MIN_CALIBRATION_ARCHS:
            return
        try:
            self.predictor.calibrate(archs, values)
        except CalibrationError:
            return  # e.g. all sums equal; keep the previous line
        errors = [(self.predictor.predict(a) - v) / v for a, v in zip(archs, values, strict=True)]
        rms = math.sqrt(sum(e * e for e in errors) / len(errors))
        self.sigma = rms * math.sqrt(self.n / (self.n - 2)) if self.n > 2 else DEFAULT_LUT_SIGMA

    def predict(self, archs: Sequence[Arch]) -> list[Prediction]:
        sigma = max(self.sigma, self.min_margin)
        return [_relative(self.predictor.predict(a), sigma, self.z, self.source) for a in archs]

    def describe(self) -> str:
        lut = self.predictor.lut
        name = f"LUT {lut.id} ({lut.settings_hash})" if lut is not None else "LUT"
        return f"{name} on {self.predictor.device}, ±{100 * self.sigma:.1f}% after {self.n} measured"


class SurrogateValuePredictor(ValuePredictor):
    """The ridge surrogate on arch features (see :mod:`._surrogate`).

    ``features`` maps an arch to its feature row (the driver caches them).
    ``relative`` fits ``log(value)``: intervals are relative and
    ``min_margin`` is relative; otherwise absolute, with no floor.
    """

    source = "surrogate"

    def __init__(
        self,
        features: Callable[[Arch], Sequence[float]],
        *,
        relative: bool,
        z: float,
        min_margin: float,
    ) -> None:
        super().__init__(z=z, min_margin=min_margin)
        self.features = features
        self.relative = relative
        self.model = RidgeSurrogate(log_target=relative)

    def fit(self, archs: Sequence[Arch], values: Sequence[float]) -> None:
        self.n = len(archs)
        self.model.fit([self.features(a) for a in archs], values)

    def predict(self, archs: Sequence[Arch]) -> list[Prediction]:
        if not archs:
            return []
        values = self.model.predict([self.features(a) for a in archs])
        sigma = self.model.sigma
        if self.relative:
            sigma = max(sigma, self.min_margin)
            return [_relative(float(v), sigma, self.z, self.source) for v in values]
        half = self.z * sigma
        return [Prediction(float(v), float(v) - half, float(v) + half, self.source) for v in values]

    def describe(self) -> str:
        sigma = self.model.sigma
        error = (
            "untrained" if not math.isfinite(sigma)
            else f"±{100 * sigma:.1f}%" if self.relative else f"±{sigma:.4g}"
        )  # fmt: skip
        return f"surrogate {error} (leave-one-out) after {self.n} measured"
