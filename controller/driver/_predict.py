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

import numpy as np

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


def line_loo_errors(sums: Sequence[float], measured: Sequence[float]) -> list[float]:
    """Leave-one-out relative errors of the calibration line ``a * sum + b``.

    The line is fitted as :func:`~fleetnas.controller.lut.fit_calibration`
    fits it (least squares on relative residuals, i.e. weights ``1 / m**2``);
    leaving one arch out only subtracts its terms from the 2x2 normal
    equations, so all ``n`` refits cost one pass. An arch whose refit is
    degenerate (all other sums equal) gets an infinite error.
    """
    s = np.asarray(sums, dtype=np.float64)
    m = np.asarray(measured, dtype=np.float64)
    w = 1.0 / m**2
    terms = np.stack([w * s * s, w * s, w, w * s * m, w * m])
    rest = terms.sum(axis=1, keepdims=True) - terms
    ss, s1, n0, sm, m1 = rest
    det = ss * n0 - s1 * s1
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (sm * n0 - s1 * m1) / det
        b = (ss * m1 - s1 * sm) / det
        errors = (a * s + b - m) / m
    return [float(e) if math.isfinite(e) else math.inf for e in errors]


class LutValuePredictor(ValuePredictor):
    """LUT latency, recalibrated on the search's own measurements, checked against a surrogate.

    Until :data:`~fleetnas.controller.lut.MIN_CALIBRATION_ARCHS` archs are
    measured, predictions use the LUT's stored calibration (or the raw sum)
    with uncertainty :data:`DEFAULT_LUT_SIGMA`; then the calibration line is
    refitted on all of them, its uncertainty being its leave-one-out relative
    RMSE. A block sum can miss a lot on some devices (per-run overheads that
    dominate small networks; several threads): so once ``surrogate_rows``
    archs are measured, the ridge surrogate is fitted too, on the arch
    features plus ``log`` of the LUT sum, and whichever of the two has the
    lower leave-one-out error predicts (``source`` then says ``surrogate``).
    """

    source = "lut"

    def __init__(
        self,
        predictor: LatencyPredictor,
        *,
        z: float,
        min_margin: float,
        features: Callable[[Arch], Sequence[float]] | None = None,
        surrogate_rows: int = 10,
    ) -> None:
        super().__init__(z=z, min_margin=min_margin)
        # A private copy: calibrating must not change the caller's predictor.
        self.base = predictor
        self.predictor = LatencyPredictor(
            predictor.space, predictor.entries, device=predictor.device,
            calibration=predictor.calibration, lut=predictor.lut,
        )  # fmt: skip
        self.sigma = DEFAULT_LUT_SIGMA
        self.features = features
        self.surrogate_rows = surrogate_rows
        self.surrogate: RidgeSurrogate | None = None
        self.use_surrogate = False

    def _row(self, arch: Arch) -> list[float]:
        assert self.features is not None
        return [*self.features(arch), math.log(self.predictor.raw_sum(arch))]

    def fit(self, archs: Sequence[Arch], values: Sequence[float]) -> None:
        self.n = len(archs)
        self.use_surrogate = False
        if self.n < MIN_CALIBRATION_ARCHS:
            return
        try:
            self.predictor.calibrate(archs, values)
        except CalibrationError:
            return  # e.g. all sums equal; keep the previous line
        errors = line_loo_errors([self.predictor.raw_sum(a) for a in archs], values)
        self.sigma = math.sqrt(sum(e * e for e in errors) / len(errors))
        if self.features is not None and self.n >= self.surrogate_rows:
            self.surrogate = RidgeSurrogate(log_target=True).fit(
                [self._row(a) for a in archs], values)
            self.use_surrogate = self.surrogate.sigma < self.sigma

    def predict(self, archs: Sequence[Arch]) -> list[Prediction]:
        if self.use_surrogate and self.surrogate is not None:
            sigma = max(self.surrogate.sigma, self.min_margin)
            values = self.surrogate.predict([self._row(a) for a in archs])
            return [_relative(float(v), sigma, self.z, "surrogate") for v in values]
        sigma = max(self.sigma, self.min_margin)
        return [_relative(self.predictor.predict(a), sigma, self.z, self.source) for a in archs]

    def describe(self) -> str:
        lut = self.predictor.lut
        name = f"LUT {lut.id} ({lut.settings_hash})" if lut is not None else "LUT"
        text = f"{name} on {self.predictor.device}: calibrated sum ±{100 * self.sigma:.1f}%"
        if self.surrogate is not None:
            text += f", surrogate on the sum ±{100 * self.surrogate.sigma:.1f}%"
            text += " (used)" if self.use_surrogate else " (not used)"
        return text + f" (leave-one-out, {self.n} measured)"


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
