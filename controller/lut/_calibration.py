"""Per-device calibration of a LUT: ``predicted = a * sum_of_block_latencies + b``.

A network costs a little more or less than the sum of its blocks measured
alone: glue between blocks (adds, reshapes), cache effects, and the fixed
per-run overhead of a session that every block measurement paid once but the
network pays only once in total. A straight line through a few end-to-end
measurements absorbs both: ``a`` the proportional part, ``b`` the fixed one.

The fit is least squares on *relative* residuals,
``min over (a, b) of sum(((a * s_i + b) - m_i) / m_i) ** 2``, i.e. weighted
least squares with weights ``1 / m_i**2``: the accuracy figures we report
(within +-5 %, RMSPE) are relative, so a fit on absolute milliseconds would let
the largest archs dominate and the small ones drift. It is a 2x2 linear system;
no numerical library is needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetnas.controller.lut._errors import CalibrationError

#: fewer end-to-end measurements than this cannot calibrate a LUT
MIN_CALIBRATION_ARCHS = 5


@dataclass(frozen=True)
class Calibration:
    """A fitted line. ``archs`` are the encodings it was fitted on (never evaluated on).

    ``fit_rmspe`` is the RMSPE (percent) of the line on its own fitting set:
    a lower bound on the error to expect elsewhere. ``fitted_at`` is unix seconds.
    """

    a: float
    b: float
    n: int
    archs: tuple[str, ...]
    fit_rmspe: float
    fitted_at: float

    def apply(self, raw_sum_ms: float) -> float:
        """The calibrated prediction for a raw block sum (ms)."""
        return self.a * raw_sum_ms + self.b

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "n": self.n,
            "archs": list(self.archs),
            "fit_rmspe": self.fit_rmspe,
            "fitted_at": self.fitted_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Build and validate; raises CalibrationError naming the bad field."""
        try:
            a, b = float(data["a"]), float(data["b"])
            n = int(data["n"])
            archs = tuple(str(x) for x in data.get("archs", ()))
            fit_rmspe = float(data.get("fit_rmspe", math.nan))
            fitted_at = float(data.get("fitted_at", 0.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"bad calibration {dict(data)!r:.200}: {exc!r}") from exc
        if not (math.isfinite(a) and a > 0 and math.isfinite(b)):
            raise CalibrationError(f"bad calibration: a={a!r} must be finite and > 0, b={b!r} finite")
        if n < MIN_CALIBRATION_ARCHS:
            raise CalibrationError(f"bad calibration: n={n} < {MIN_CALIBRATION_ARCHS}")
        return cls(a, b, n, archs, fit_rmspe, fitted_at)


def fit_calibration(
    raw_sums_ms: Sequence[float],
    measured_ms: Sequence[float],
    archs: Sequence[str] = (),
    *,
    fitted_at: float | None = None,
) -> Calibration:
    """Fit ``measured ~ a * raw_sum + b`` by relative least squares (module docstring).

    Needs at least :data:`MIN_CALIBRATION_ARCHS` pairs of finite positive
    numbers with at least two distinct sums. Raises CalibrationError
    otherwise, or when the fitted slope is not positive (the sums do not
    explain the measurements at all: the LUT is wrong for this device).
    """
    if len(raw_sums_ms) != len(measured_ms):
        raise CalibrationError(
            f"{len(raw_sums_ms)} sums but {len(measured_ms)} measurements; pass one per arch"
        )
    if archs and len(archs) != len(raw_sums_ms):
        raise CalibrationError(f"{len(archs)} arch encodings for {len(raw_sums_ms)} sums")
    n = len(raw_sums_ms)
    if n < MIN_CALIBRATION_ARCHS:
        raise CalibrationError(
            f"calibration needs at least {MIN_CALIBRATION_ARCHS} end-to-end measurements, got {n}"
        )
    for s, m in zip(raw_sums_ms, measured_ms, strict=True):
        if not (math.isfinite(s) and math.isfinite(m) and s > 0 and m > 0):
            raise CalibrationError(f"calibration pair ({s!r}, {m!r}): both must be finite and > 0")
    # Relative residual r_i = (a*s_i + b)/m_i - 1 = a*x_i + b*y_i - 1 with
    # x_i = s_i/m_i and y_i = 1/m_i: ordinary least squares of 1 on (x, y).
    x = [s / m for s, m in zip(raw_sums_ms, measured_ms, strict=True)]
    y = [1.0 / m for m in measured_ms]
    sxx = sum(v * v for v in x)
    syy = sum(v * v for v in y)
    sxy = sum(u * v for u, v in zip(x, y, strict=True))
    sx, sy = sum(x), sum(y)
    det = sxx * syy - sxy * sxy
    if not det > 1e-12 * sxx * syy:
        raise CalibrationError(
            "calibration archs are degenerate (their block sums are all equal, so a slope "
            "cannot be fitted); calibrate on more varied archs"
        )
    a = (sx * syy - sy * sxy) / det
    b = (sy * sxx - sx * sxy) / det
    if not (math.isfinite(a) and a > 0):
        raise CalibrationError(
            f"calibration slope a={a:.4g} is not positive: the LUT's block sums do not track "
            "the measured latencies on this device; rebuild the LUT with `fleetnas lut build`"
        )
    residuals = [(a * s + b) / m - 1.0 for s, m in zip(raw_sums_ms, measured_ms, strict=True)]
    rmspe = 100.0 * math.sqrt(sum(r * r for r in residuals) / n)
    return Calibration(
        a=a,
        b=b,
        n=n,
        archs=tuple(archs),
        fit_rmspe=rmspe,
        fitted_at=time.time() if fitted_at is None else fitted_at,
    )
