"""Accuracy of latency predictions against measurements: the figures ``lut eval`` reports.

* ``within_5`` / ``within_10``: share of archs whose prediction is within
  +-5 % / +-10 % of the measurement (relative to the measurement);
* ``rmspe``: root mean square percentage error, ``100 * sqrt(mean(((p - m) / m)^2))``;
* ``mape`` and ``max_ape``: mean and largest absolute percentage error;
* ``kendall_tau``: Kendall's tau-b between predictions and measurements, the
  figure that matters to a search (does the predictor rank archs right?).
  Computed here in O(n^2) (n is at most a few hundred), so scipy is not needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Accuracy:
    """Prediction accuracy over ``n`` archs. Shares in [0, 1]; errors in percent.

    ``kendall_tau`` is ``None`` when undefined (fewer than two archs, or all
    predictions or all measurements equal).
    """

    n: int
    within_5: float
    within_10: float
    rmspe: float
    mape: float
    max_ape: float
    kendall_tau: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "within_5": self.within_5,
            "within_10": self.within_10,
            "rmspe": self.rmspe,
            "mape": self.mape,
            "max_ape": self.max_ape,
            "kendall_tau": self.kendall_tau,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Accuracy:
        tau = data.get("kendall_tau")
        return cls(
            n=int(data["n"]),
            within_5=float(data["within_5"]),
            within_10=float(data["within_10"]),
            rmspe=float(data["rmspe"]),
            mape=float(data["mape"]),
            max_ape=float(data["max_ape"]),
            kendall_tau=None if tau is None else float(tau),
        )


def relative_errors(predicted: Sequence[float], measured: Sequence[float]) -> list[float]:
    """``(p - m) / m`` per pair. Raises ValueError for unequal lengths or a measurement <= 0."""
    if len(predicted) != len(measured):
        raise ValueError(f"{len(predicted)} predictions but {len(measured)} measurements")
    out = []
    for p, m in zip(predicted, measured, strict=True):
        if not (math.isfinite(m) and m > 0):
            raise ValueError(f"measured latency {m!r} must be finite and > 0")
        out.append((p - m) / m)
    return out


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two equally long sequences; ``None`` when undefined.

    tau-b = (concordant - discordant) / sqrt((n0 - ties_x) * (n0 - ties_y)),
    n0 = n (n - 1) / 2, where a pair tied in both counts in both tie totals.
    Matches ``scipy.stats.kendalltau`` (its default, variant b).
    """
    if len(x) != len(y):
        raise ValueError(f"{len(x)} values against {len(y)}")
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        xi, yi = x[i], y[i]
        for j in range(i + 1, n):
            dx = (x[j] > xi) - (x[j] < xi)
            dy = (y[j] > yi) - (y[j] < yi)
            if dx == 0:
                ties_x += 1
            if dy == 0:
                ties_y += 1
            if dx and dy:
                if dx == dy:
                    concordant += 1
                else:
                    discordant += 1
    n0 = n * (n - 1) // 2
    denominator = math.sqrt((n0 - ties_x) * (n0 - ties_y))
    if denominator == 0:
        return None
    return (concordant - discordant) / denominator


def accuracy(predicted: Sequence[float], measured: Sequence[float]) -> Accuracy:
    """The figures of the module docstring. Raises ValueError for no pairs or bad input."""
    errors = relative_errors(predicted, measured)
    if not errors:
        raise ValueError("no predictions to score")
    n = len(errors)
    absolute = [abs(e) for e in errors]
    return Accuracy(
        n=n,
        # A hair of slack so that an error of exactly 10 % counts as within 10 %
        # despite floating-point rounding of p and m.
        within_5=sum(a <= 0.05 + 1e-12 for a in absolute) / n,
        within_10=sum(a <= 0.10 + 1e-12 for a in absolute) / n,
        rmspe=100.0 * math.sqrt(sum(e * e for e in errors) / n),
        mape=100.0 * sum(absolute) / n,
        max_ape=100.0 * max(absolute),
        kendall_tau=kendall_tau_b(predicted, measured),
    )
