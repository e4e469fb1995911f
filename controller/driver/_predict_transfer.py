"""A target's latency predicted by a stored transfer fit (``fleetnas lut transfer``).

:class:`TransferValuePredictor` serves a target that has no LUT but a stored
transfer fit (:mod:`fleetnas.controller.predict._transfer_store`), in modes
``lut`` and ``hybrid``. Its values are the stored fit's ``predict_many``
(exactly, in mode ``lut``, which measures nothing), so a search and its
resume predict the same latencies however the cost DB grew: the fit is
never refitted on the DB (a fit with more reference archs is a new ``lut
transfer``).

What the search's own measurements change (hybrid): once
:data:`~fleetnas.controller.lut.MIN_CALIBRATION_ARCHS` candidates are
measured, the fit's *scale*: every value is the fit's times one factor, the
median ratio measured / fitted over them (the fit's reference archs are
measured by the shared-host protocol, a robust low statistic, while a
search measures with its target's request, often a median of few runs: on
a loaded 2-core host the two differed by ~2x), and the *uncertainty*:
before that, every prediction carries the fit's own leave-one-out RMSPE;
after, each arch's sigma is the RMS of the rescaled relative errors of the
measured archs nearest it (by log predicted latency), blended with their
robust scale, as the LUT predictor does with its line. Everything is a
function of the measured trials, so a resumed hybrid search makes the same
choices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fleetnas.controller.driver._predict import (
    DEFAULT_LUT_SIGMA,
    Prediction,
    ValuePredictor,
    _relative,
)
from fleetnas.controller.driver._surrogate import BANDWIDTH, local_sigmas, robust_scale, spacing
from fleetnas.controller.lut import MIN_CALIBRATION_ARCHS
from fleetnas.controller.predict import TransferPredictor
from fleetnas.controller.spaces import Arch


class TransferValuePredictor(ValuePredictor):
    """The stored transfer fit's latency, with per-arch uncertainty from the search's
    measurements (see the module docstring). ``label`` names the fit in :meth:`describe`."""

    source = "transfer"

    def __init__(self, predictor: TransferPredictor, *, z: float, min_margin: float,
                 label: str = "transfer fit") -> None:
        super().__init__(z=z, min_margin=min_margin)
        self.predictor = predictor
        self.label = label
        loo = predictor.fit.loo_rmspe / 100.0
        self.prior_sigma = loo if math.isfinite(loo) and loo > 0 else DEFAULT_LUT_SIGMA
        self.sigma = self.prior_sigma
        #: the factor the fit's values are multiplied by (1 until enough are measured)
        self.scale = 1.0
        self._values: dict[str, float] = {}
        # measured archs' log predictions (standardised), their log errors, scale, bandwidth
        self._errors: tuple[np.ndarray, np.ndarray, float, float] | None = None

    def fitted(self, archs: Sequence[Arch]) -> list[float]:
        """The stored fit's own prediction (ms) per arch (cached by encoding)."""
        space = self.predictor.space
        encodings = [space.encode(a) for a in archs]
        todo = [(e, a) for e, a in dict(zip(encodings, archs, strict=True)).items()
                if e not in self._values]
        if todo:
            predicted = self.predictor.predict_many([a for _, a in todo])
            self._values.update((e, v) for (e, _), v in zip(todo, predicted, strict=True))
        return [self._values[e] for e in encodings]

    def latency(self, archs: Sequence[Arch]) -> list[float]:
        """The prediction (ms) per arch: the fit's, times :attr:`scale`."""
        if self.scale == 1.0:
            return self.fitted(archs)
        return [self.scale * v for v in self.fitted(archs)]

    def fit(self, archs: Sequence[Arch], values: Sequence[float]) -> None:
        self.n = len(archs)
        self._errors = None
        self.sigma = self.prior_sigma
        self.scale = 1.0
        if self.n < MIN_CALIBRATION_ARCHS:
            return
        fitted = np.maximum(np.asarray(self.fitted(archs)), 1e-12)
        ratios = np.log(np.asarray(values, dtype=np.float64) / fitted)
        shift = float(np.median(ratios))
        self.scale = math.exp(shift)
        errors = ratios - shift
        predicted = fitted * self.scale
        self.sigma = robust_scale(errors)
        logs = np.log(predicted)
        scale = float(np.std(logs)) or 1.0
        self._errors = (logs[:, None] / scale, errors, scale,
                        BANDWIDTH * spacing(logs[:, None] / scale))

    def _sigmas(self, predicted: np.ndarray) -> np.ndarray:
        if self._errors is None:
            return np.full(len(predicted), self.sigma)
        train, errors, scale, bandwidth = self._errors
        query = np.log(np.maximum(predicted, 1e-12))[:, None] / scale
        return local_sigmas(train, errors, query, self.sigma, bandwidth=bandwidth)

    def predict(self, archs: Sequence[Arch]) -> list[Prediction]:
        if not archs:
            return []
        values = np.asarray(self.latency(archs))
        return [_relative(float(v), max(float(s), self.min_margin), self.z, self.source)
                for v, s in zip(values, self._sigmas(values), strict=True)]

    def values(self, archs: Sequence[Arch]) -> list[tuple[float, str]]:
        return [(v, self.source) for v in self.latency(archs)]

    def describe(self) -> str:
        fit = self.predictor.fit
        where = (f"x{self.scale:.3f}, ±{100 * self.sigma:.1f}% on the search's measurements"
                 if self._errors is not None else f"leave-one-out ±{fit.loo_rmspe:.1f}%")
        return (f"{self.label}: {len(self.predictor.sources)} source(s), {where} "
                f"(per-arch intervals; {self.n} measured)")
