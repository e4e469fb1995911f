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

**Uncertainty.** Every fit is also refitted once without each of its archs
(leave-one-out, a jackknife): the spread of those ``a`` and ``b`` is the
interval the fit reports (:attr:`Calibration.a_interval`, ``b_interval``),
each arch's error when predicted by the line fitted without it gives the
leave-one-out RMSPE (an honest estimate of the error elsewhere, where
``fit_rmspe`` is a lower bound), and an arch whose leave-one-out error is
over :data:`DISAGREEMENT_PCT` disagrees with the rest of the set: it is
named in :attr:`Calibration.warnings` (re-measure it, or calibrate on more
archs).
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
#: an arch predicted worse than this (percent) by the line fitted without it disagrees
#: with the rest of its calibration set
DISAGREEMENT_PCT = 10.0


@dataclass(frozen=True)
class Calibration:
    """A fitted line. ``archs`` are the encodings it was fitted on (never evaluated on).

    ``fit_rmspe`` is the RMSPE (percent) of the line on its own fitting set:
    a lower bound on the error to expect elsewhere. ``fitted_at`` is unix seconds.
    ``a_interval``/``b_interval`` are the ``(min, max)`` of the leave-one-out
    fits, ``loo_rmspe`` their prediction RMSPE (percent) and ``disagreeing``
    the archs (encodings, else ``#i``) whose leave-one-out error is over
    :data:`DISAGREEMENT_PCT` (module docstring); calibrations stored before
    these existed read back with ``None``/NaN/``()``.
    """

    a: float
    b: float
    n: int
    archs: tuple[str, ...]
    fit_rmspe: float
    fitted_at: float
    a_interval: tuple[float, float] | None = None
    b_interval: tuple[float, float] | None = None
    loo_rmspe: float = math.nan
    disagreeing: tuple[str, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line per problem of the fitting set; empty when it agrees with itself."""
        if not self.disagreeing:
            return ()
        return (
            f"calibration set disagrees with itself: {', '.join(self.disagreeing)} "
            f"predicted more than {DISAGREEMENT_PCT:g} % off by the line fitted without "
            f"{'it' if len(self.disagreeing) == 1 else 'them'} (leave-one-out RMSPE "
            f"{self.loo_rmspe:.1f} % vs {self.fit_rmspe:.1f} % on the fit); re-measure "
            "them or calibrate on more archs",
        )

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
            "a_interval": None if self.a_interval is None else list(self.a_interval),
            "b_interval": None if self.b_interval is None else list(self.b_interval),
            "loo_rmspe": self.loo_rmspe,
            "disagreeing": list(self.disagreeing),
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
            a_interval = _interval(data.get("a_interval"))
            b_interval = _interval(data.get("b_interval"))
            loo_rmspe = float(data.get("loo_rmspe", math.nan))
            disagreeing = tuple(str(x) for x in data.get("disagreeing", ()))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"bad calibration {dict(data)!r:.200}: {exc!r}") from exc
        if not (math.isfinite(a) and a > 0 and math.isfinite(b)):
            raise CalibrationError(f"bad calibration: a={a!r} must be finite and > 0, b={b!r} finite")
        if n < MIN_CALIBRATION_ARCHS:
            raise CalibrationError(f"bad calibration: n={n} < {MIN_CALIBRATION_ARCHS}")
        return cls(a, b, n, archs, fit_rmspe, fitted_at, a_interval, b_interval, loo_rmspe,
                   disagreeing)


def _interval(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    low, high = (float(v) for v in value)  # ValueError/TypeError unless two numbers
    return low, high


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
    solved = _solve(raw_sums_ms, measured_ms)
    if solved is None:
        raise CalibrationError(
            "calibration archs are degenerate (their block sums are all equal, so a slope "
            "cannot be fitted); calibrate on more varied archs"
        )
    a, b = solved
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
        **_leave_one_out(raw_sums_ms, measured_ms, archs),
    )


def _solve(sums: Sequence[float], measured: Sequence[float]) -> tuple[float, float] | None:
    """``(a, b)`` of the relative least-squares line, ``None`` when degenerate."""
    # Relative residual r_i = (a*s_i + b)/m_i - 1 = a*x_i + b*y_i - 1 with
    # x_i = s_i/m_i and y_i = 1/m_i: ordinary least squares of 1 on (x, y).
    x = [s / m for s, m in zip(sums, measured, strict=True)]
    y = [1.0 / m for m in measured]
    sxx = sum(v * v for v in x)
    syy = sum(v * v for v in y)
    sxy = sum(u * v for u, v in zip(x, y, strict=True))
    sx, sy = sum(x), sum(y)
    det = sxx * syy - sxy * sxy
    if not det > 1e-12 * sxx * syy:
        return None
    return (sx * syy - sy * sxy) / det, (sy * sxx - sx * sxy) / det


def _leave_one_out(
    sums: Sequence[float], measured: Sequence[float], archs: Sequence[str]
) -> dict[str, Any]:
    """The leave-one-out fields of a :class:`Calibration` (module docstring). An arch
    without which the rest is degenerate counts as disagreeing (the line rests on it)
    and has no share in the interval or the RMSPE."""
    fits: list[tuple[float, float]] = []
    errors: list[float] = []
    disagreeing: list[str] = []
    for i, (s, m) in enumerate(zip(sums, measured, strict=True)):
        solved = _solve([*sums[:i], *sums[i + 1:]], [*measured[:i], *measured[i + 1:]])
        error = math.inf if solved is None else 100.0 * ((solved[0] * s + solved[1]) / m - 1.0)
        if solved is not None:
            fits.append(solved)
            errors.append(error)
        if not abs(error) <= DISAGREEMENT_PCT:
            disagreeing.append(archs[i] if archs else f"#{i}")
    a_values, b_values = [f[0] for f in fits], [f[1] for f in fits]
    return {
        "a_interval": (min(a_values), max(a_values)) if fits else None,
        "b_interval": (min(b_values), max(b_values)) if fits else None,
        "loo_rmspe": math.sqrt(sum(e * e for e in errors) / len(errors)) if errors else math.nan,
        "disagreeing": tuple(disagreeing),
    }
