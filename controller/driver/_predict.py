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

Every prediction carries its own uncertainty (per arch, not one figure for
the predictor): an interval is ``value`` moved ``z`` of them either way,
relative (multiplicative) for latency, absolute for accuracy.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fleetnas.controller.driver._surrogate import (
    BANDWIDTH,
    RidgeSurrogate,
    local_sigmas,
    robust_scale,
    spacing,
)
from fleetnas.controller.lut import (
    MIN_CALIBRATION_ARCHS,
    CalibrationError,
    LatencyPredictor,
    fit_calibration,
)
from fleetnas.controller.spaces import Arch

#: relative uncertainty of a LUT prediction before the search has measured enough to refit it
DEFAULT_LUT_SIGMA = 0.10


@dataclass(frozen=True)
class Prediction:
    """A predicted value, its own uncertainty, and the interval ``[low, high]`` it likely lies in.

    ``sigma`` is this prediction's error scale: relative (on a log scale) when
    ``relative``, else in the value's units; ``low``/``high`` are ``z``
    sigmas either way (:meth:`interval` gives any other ``z``).
    """

    value: float
    low: float
    high: float
    source: str
    sigma: float = 0.0
    relative: bool = True

    def interval(self, z: float) -> tuple[float, float]:
        """The interval ``z`` sigmas either way (``[0, inf]`` when sigma is infinite)."""
        if not math.isfinite(self.sigma):
            return (0.0 if self.relative else -math.inf), math.inf
        if self.relative:
            spread = math.exp(z * self.sigma)
            return self.value / spread, self.value * spread
        return self.value - z * self.sigma, self.value + z * self.sigma


def _relative(value: float, sigma: float, z: float, source: str) -> Prediction:
    low, high = Prediction(value, value, value, source, sigma).interval(z)
    return Prediction(value, low, high, source, sigma)


def _absolute(value: float, sigma: float, z: float, source: str) -> Prediction:
    low, high = Prediction(value, value, value, source, sigma, relative=False).interval(z)
    return Prediction(value, low, high, source, sigma, relative=False)


class ValuePredictor(abc.ABC):
    """Predicts one value of archs, each with its own uncertainty; refitted on the
    search's measurements."""

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
        """A prediction per arch, with its own uncertainty."""

    @abc.abstractmethod
    def values(self, archs: Sequence[Arch]) -> list[tuple[float, str]]:
        """``(value, source)`` per arch: what :meth:`predict` says, without the
        uncertainties (cheaper: for refreshing many told predictions)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for logs and the CLI: what predicts, and how well."""


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


def line_leverage(sums: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray,
                  query: Sequence[float] | np.ndarray,
                  predicted: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per query sum, the relative prediction variance of the calibration line over the
    noise variance: ``p^2 [1 s] N^-1 [1 s]'`` with ``N`` the line's weighted normal
    matrix (weights ``1 / m**2``) and ``p`` the prediction. Zero when ``N`` is singular."""
    s = np.asarray(sums, dtype=np.float64)
    w = 1.0 / np.asarray(measured, dtype=np.float64) ** 2
    normal = np.array([[w.sum(), (w * s).sum()], [(w * s).sum(), (w * s * s).sum()]])
    q = np.asarray(query, dtype=np.float64)
    if len(q) == 0 or abs(np.linalg.det(normal)) < 1e-300:
        return np.zeros(len(q))
    rows = np.stack([np.ones_like(q), q], axis=1)
    quad = np.einsum("ij,jk,ik->i", rows, np.linalg.inv(normal), rows)
    return np.asarray(predicted, dtype=np.float64) ** 2 * np.maximum(quad, 0.0)


class LutValuePredictor(ValuePredictor):
    """LUT latency, recalibrated on the search's own measurements, checked against a surrogate.

    Until :data:`~fleetnas.controller.lut.MIN_CALIBRATION_ARCHS` archs are
    measured, predictions use the LUT's stored calibration (or the raw sum)
    with uncertainty :data:`DEFAULT_LUT_SIGMA`; then the calibration line is
    refitted on all of them, its typical error being a robust scale of its
    leave-one-out relative errors (an arch the line misses badly, such as a
    degenerate one, widens the intervals near it, not everywhere), and each
    arch's own error that, blended with its neighbours' (by block sum), times
    the line's leverage at its sum. A block sum can miss a lot on some
    devices (per-run overheads that dominate small networks; several
    threads): so once ``surrogate_rows`` archs are measured, the ridge
    surrogate is fitted too, on the arch features plus ``log`` of the LUT
    sum, and whichever of the two has the lower typical leave-one-out error
    predicts (``source`` then says ``surrogate``).
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
        self._sums: dict[str, float] = {}
        self._sums_by_id: dict[int, tuple[Arch, float]] = {}
        # the fitted line's data: sums, measured, loo errors, log sums in their std, bandwidth
        self._line: tuple[np.ndarray, np.ndarray, np.ndarray, float, float] | None = None

    def raw_sum(self, arch: Arch) -> float:
        """The LUT's block sum of ``arch`` (cached: archs come back every refit)."""
        seen = self._sums_by_id.get(id(arch))  # the entry holds the arch: its id stays its
        if seen is not None and seen[0] is arch:
            return seen[1]
        key = self.predictor.space.encode(arch)
        if key not in self._sums:
            self._sums[key] = self.predictor.raw_sum(arch)
        self._sums_by_id[id(arch)] = (arch, self._sums[key])
        return self._sums[key]

    def _rows(self, archs: Sequence[Arch]) -> np.ndarray:
        """The surrogate's rows: each arch's features, then ``log`` of its LUT sum."""
        assert self.features is not None
        log_sums = np.asarray([math.log(self.raw_sum(a)) for a in archs], dtype=np.float64)
        return np.column_stack([feature_matrix(self.features, archs), log_sums])

    def fit(self, archs: Sequence[Arch], values: Sequence[float]) -> None:
        self.n = len(archs)
        self.use_surrogate = False
        if self.n < MIN_CALIBRATION_ARCHS:
            return
        sums = [self.raw_sum(a) for a in archs]
        encodings = [self.predictor.space.encode(a) for a in archs]
        try:
            self.predictor.calibration = fit_calibration(sums, values, encodings)
        except CalibrationError:
            return  # e.g. all sums equal; keep the previous line
        errors = np.asarray(line_loo_errors(sums, values))
        finite = errors[np.isfinite(errors)]
        self.sigma = robust_scale(finite) if len(finite) else math.inf
        log_sums = np.log(np.asarray(sums, dtype=np.float64))
        scale = float(np.std(log_sums)) or 1.0
        self._line = (np.asarray(sums), np.asarray(values, dtype=np.float64),
                      np.where(np.isfinite(errors), errors, 0.0), scale,
                      BANDWIDTH * spacing(log_sums[:, None] / scale))
        if self.features is not None and self.n >= self.surrogate_rows:
            self.surrogate = RidgeSurrogate(log_target=True).fit(
                self._rows(archs), values)
            self.use_surrogate = self.surrogate.sigma < self.sigma

    def _line_sigmas(self, sums: Sequence[float], predicted: np.ndarray) -> np.ndarray:
        if self._line is None or not math.isfinite(self.sigma):
            return np.full(len(sums), self.sigma)
        fitted_sums, measured, loo, scale, bandwidth = self._line
        local = local_sigmas(np.log(fitted_sums)[:, None] / scale, loo,
                             np.log(np.asarray(sums))[:, None] / scale, self.sigma,
                             bandwidth=bandwidth)
        return local * np.sqrt(1.0 + line_leverage(fitted_sums, measured, sums, predicted))

    def predict(self, archs: Sequence[Arch]) -> list[Prediction]:
        if not archs:
            return []
        if self.use_surrogate and self.surrogate is not None:
            rows = self._rows(archs)
            values = self.surrogate.predict(rows)
            sigmas = self.surrogate.sigmas(rows)
            source = "surrogate"
        else:
            sums = [self.raw_sum(a) for a in archs]
            calibration = self.predictor.calibration
            values = np.asarray([s if calibration is None else calibration.apply(s) for s in sums])
            sigmas = self._line_sigmas(sums, values)
            source = self.source
        return [_relative(float(v), max(float(sg), self.min_margin), self.z, source)
                for v, sg in zip(values, sigmas, strict=True)]

    def values(self, archs: Sequence[Arch]) -> list[tuple[float, str]]:
        if self.use_surrogate and self.surrogate is not None:
            predicted = self.surrogate.predict(self._rows(archs))
            return [(float(v), "surrogate") for v in predicted]
        calibration = self.predictor.calibration
        return [(s if calibration is None else calibration.apply(s), self.source)
                for s in (self.raw_sum(a) for a in archs)]

    def describe(self) -> str:
        lut = self.predictor.lut
        name = f"LUT {lut.id} ({lut.settings_hash})" if lut is not None else "LUT"
        text = f"{name} on {self.predictor.device}: calibrated sum ±{100 * self.sigma:.1f}%"
        if self.surrogate is not None:
            text += f", surrogate on the sum ±{100 * self.surrogate.sigma:.1f}%"
            text += " (used)" if self.use_surrogate else " (not used)"
        return text + f" (typical leave-one-out error, per-arch intervals; {self.n} measured)"


def feature_matrix(features: Callable[[Arch], Sequence[float]], archs: Sequence[Arch]) -> np.ndarray:
    """The rows of ``archs`` as a matrix: ``features.rows(archs)`` when the callable has it
    (the driver's :class:`~._features.FeatureCache`, which shares one matrix between the
    predictors of a step), else one row per arch."""
    rows = getattr(features, "rows", None)
    if rows is not None:
        return np.asarray(rows(archs))
    return np.asarray([features(a) for a in archs], dtype=np.float64)


class SurrogateValuePredictor(ValuePredictor):
    """The robust ridge surrogate on arch features (see :mod:`._surrogate`).

    ``features`` maps an arch to its feature row (the driver caches them).
    ``relative`` fits ``log(value)``: intervals are relative and
    ``min_margin`` is relative; otherwise absolute, with no floor. Each
    prediction carries the surrogate's per-arch error.
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
        self.model.fit(feature_matrix(self.features, archs), values)

    def predict(self, archs: Sequence[Arch]) -> list[Prediction]:
        if not archs:
            return []
        rows = feature_matrix(self.features, archs)
        values = self.model.predict(rows)
        sigmas = self.model.sigmas(rows)
        if self.relative:
            return [_relative(float(v), max(float(sg), self.min_margin), self.z, self.source)
                    for v, sg in zip(values, sigmas, strict=True)]
        return [_absolute(float(v), float(sg), self.z, self.source)
                for v, sg in zip(values, sigmas, strict=True)]

    def values(self, archs: Sequence[Arch]) -> list[tuple[float, str]]:
        if not archs:
            return []
        return [(float(v), self.source)
                for v in self.model.predict(feature_matrix(self.features, archs))]

    def describe(self) -> str:
        sigma = self.model.sigma
        error = (
            "untrained" if not math.isfinite(sigma)
            else f"±{100 * sigma:.1f}%" if self.relative else f"±{sigma:.4g}"
        )  # fmt: skip
        outliers = f", {self.model.outliers} outliers down-weighted" if self.model.outliers else ""
        return (f"surrogate {error} (typical leave-one-out error, per-arch intervals{outliers}) "
                f"after {self.n} measured")
