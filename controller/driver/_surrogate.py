"""An online surrogate: ridge regression on arch features, with its own error estimate.

Hybrid search without a LUT (a new device, a user's own space) predicts
latency, and accuracy when it is expensive, from the candidates measured so
far. The model must be cheap to refit after every batch, need no tuning, and
say how far off it is likely to be, so that the driver knows which
predictions it can trust:

* features are ``space.features(arch)`` (the space's own encoding of its
  choices) plus ``log(1 + FLOPs)`` and ``log(1 + params)``, standardised;
* the penalty is chosen among a fixed grid by the leave-one-out error, which
  ridge regression gives in closed form from one SVD (``e_i / (1 - H_ii)``
  with ``H`` the hat matrix, intercept unpenalised; exact for the features'
  standardisation on the full set, so close to, not equal to, explicit refits);
* that leave-one-out RMSE is the prediction's uncertainty ``sigma``. With a
  log target (latency), it is a relative error.

Deterministic: no randomness, and the fit depends only on the rows given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fleetnas.controller.spaces import Arch, SearchSpace

ALPHAS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
#: fewer rows than this: no fit, predictions are the mean with infinite sigma
MIN_ROWS = 3


def arch_features(space: SearchSpace, arch: Arch) -> list[float]:
    """``space.features(arch)`` + log(1 + FLOPs) + log(1 + params)."""
    return [
        *(float(v) for v in space.features(arch)),
        math.log1p(space.count_flops(arch)),
        math.log1p(space.count_params(arch)),
    ]


class RidgeSurrogate:
    """Ridge regression with leave-one-out penalty choice and error (see the module docstring).

    ``log_target`` fits ``log(y)`` (y must be > 0) and predicts ``exp`` of it,
    so ``sigma`` is relative. Not thread-safe while fitting.
    """

    def __init__(self, *, log_target: bool, alphas: Sequence[float] = ALPHAS) -> None:
        if not alphas or any(a <= 0 for a in alphas):
            raise ValueError(f"alphas={alphas!r}: expected positive penalties")
        self.log_target = log_target
        self.alphas = tuple(alphas)
        self.n = 0
        self.alpha: float | None = None
        self.sigma = math.inf
        self._mean_x: np.ndarray | None = None
        self._scale_x: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._intercept = 0.0

    def fit(self, features: Sequence[Sequence[float]], targets: Sequence[float]) -> RidgeSurrogate:
        """Fit on rows ``features`` -> ``targets``; returns self. ValueError on bad shapes/values."""
        if len(features) == 0 and len(targets) == 0:
            self.n, self._intercept, self.sigma, self._weights = 0, 0.0, math.inf, None
            return self
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"features {x.shape} and targets {y.shape} do not match")
        if self.log_target:
            if np.any(y <= 0):
                raise ValueError("log_target needs targets > 0")
            y = np.log(y)
        if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
            raise ValueError("features and targets must be finite")
        self.n = len(y)
        self._intercept = float(y.mean())
        if self.n < MIN_ROWS:
            self._weights, self.sigma = None, math.inf
            return self
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        xc = (x - mean) / scale
        yc = y - self._intercept
        u, s, vt = np.linalg.svd(xc, full_matrices=False)
        uty = u.T @ yc
        best: tuple[float, float, np.ndarray] | None = None
        for alpha in self.alphas:
            shrink = s / (s**2 + alpha)
            weights = vt.T @ (shrink * uty)
            hat = 1.0 / self.n + (u**2) @ (s**2 / (s**2 + alpha))
            residual = yc - xc @ weights
            loo = residual / np.maximum(1.0 - hat, 1e-9)
            mse = float(np.mean(loo**2))
            if best is None or mse < best[0]:
                best = (mse, alpha, weights)
        assert best is not None
        mse, self.alpha, self._weights = best
        self._mean_x, self._scale_x = mean, scale
        self.sigma = math.sqrt(mse)
        return self

    def predict(self, features: Sequence[Sequence[float]]) -> np.ndarray:
        """Predictions for rows ``features`` (in the target's own units)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be rows, got shape {x.shape}")
        if self._weights is None or self._mean_x is None or self._scale_x is None:
            out = np.full(len(x), self._intercept)
        else:
            out = ((x - self._mean_x) / self._scale_x) @ self._weights + self._intercept
        return np.exp(out) if self.log_target else out
