"""An online surrogate: robust ridge regression on arch features, with a per-arch error estimate.

Hybrid search without a LUT (a new device, a user's own space) predicts
latency, and accuracy when it is expensive, from the candidates measured so
far. The model must be cheap to refit after every batch, need no tuning, and
say *for each arch* how far off it is likely to be, so that the driver
measures where a prediction cannot be trusted and only there:

* features are ``space.features(arch)`` (the space's own encoding of its
  choices) plus ``log(1 + FLOPs)`` and ``log(1 + params)``, standardised;
  latency is fitted as ``log(latency)``, so errors are relative;
* the penalty is chosen among a fixed grid by the leave-one-out error, which
  ridge regression gives in closed form from one decomposition of the
  features' Gram matrix (``e_i / (1 - H_ii)``
  with ``H`` the hat matrix, intercept unpenalised; exact for the features'
  standardisation on the full set, so close to, not equal to, explicit refits);
* **outliers** do not steer the fit or inflate every interval: the fit is
  iteratively reweighted, first with Huber's weights (rows whose residual is
  past :data:`HUBER_K` robust scales count less), then with Tukey's bisquare
  (past :data:`BISQUARE_C` they count not at all), and the typical error ``sigma``
  is a robust scale of the leave-one-out residuals (1.4826 x their median
  absolute value), not their RMS. Degenerate archs (a disconnected NAS-Bench-201
  cell runs in a fraction of the time of every other arch, and no linear model
  of its ops sees that) once made a ±15–35 % global error out of a ±3 % one;
* the **per-arch** error :meth:`RidgeSurrogate.sigmas` is ``local x sqrt(1 +
  leverage)``: ``local`` blends the squared leave-one-out residuals of the
  arch's :data:`NEIGHBOURS` nearest measured archs (in the standardised
  feature space), each weighted by a Gaussian kernel of its distance
  (width :data:`BANDWIDTH` median nearest-neighbour spacings of the measured
  archs), with ``sigma`` (weight :data:`PRIOR_WEIGHT`), so archs close to
  an outlier get wide intervals and the rest keep narrow ones (equal weights
  for the neighbours would widen the interval of every arch that merely has
  an outlier among its nearest few, however far: in a space of many
  features, most of them);
  ``leverage`` (the ridge prediction variance over the noise variance) grows
  for archs unlike anything measured.

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
#: Huber's threshold, in robust scales (95 % efficiency under normal errors)
HUBER_K = 1.345
#: Tukey's bisquare threshold, in robust scales (95 % efficiency under normal errors)
BISQUARE_C = 4.685
#: reweighting passes: Huber's (a safe start), then bisquare's (gross outliers out)
HUBER_PASSES = 2
BISQUARE_PASSES = 3
#: a residual past this many robust scales makes a row an outlier (``outliers``)
OUTLIER_SCALES = 3.0
#: measured archs whose errors say how far off a prediction near them is
NEIGHBOURS = 7
#: weight of the global robust error against the neighbours' (in rows)
PRIOR_WEIGHT = 3.0
#: the neighbours' kernel width, in median nearest-neighbour spacings of the measured rows:
#: a neighbour one typical spacing away counts exp(-4) of a row, a twin counts one
BANDWIDTH = 0.5
#: 1 / Phi^-1(3/4): a median absolute deviation as a normal standard deviation
MAD_SCALE = 1.4826
_CHUNK = 64
#: rows whose nearest-neighbour distance :func:`spacing` takes the median of
SPACING_ROWS = 256


def arch_features(space: SearchSpace, arch: Arch) -> list[float]:
    """``space.features(arch)`` + log(1 + FLOPs) + log(1 + params)."""
    return [
        *(float(v) for v in space.features(arch)),
        math.log1p(space.count_flops(arch)),
        math.log1p(space.count_params(arch)),
    ]


def robust_scale(errors: np.ndarray) -> float:
    """1.4826 x the median absolute error (a standard deviation for normal errors)."""
    return float(MAD_SCALE * np.median(np.abs(errors))) if len(errors) else math.inf


def _squared_distances(rows: np.ndarray, train: np.ndarray, train_sq: np.ndarray) -> np.ndarray:
    """``|r - t|^2`` for every pair, as ``|r|^2 + |t|^2 - 2 r.t`` (one matrix product;
    clipped at 0 against rounding)."""
    return np.maximum((rows**2).sum(axis=1)[:, None] + train_sq[None, :] - 2.0 * rows @ train.T,
                      0.0)


def spacing(rows: np.ndarray) -> float:
    """The median distance from a row to its nearest other row (1.0 when undefined: fewer
    than two distinct rows); duplicates (within rounding) are not each other's.

    Over at most :data:`SPACING_ROWS` rows evenly spread through ``rows`` (each
    against all of them): a median needs no more, and every refit computes it.
    """
    if len(rows) < 2:
        return 1.0
    rows_sq = (rows**2).sum(axis=1)
    tolerance = 1e-9 * max(float(rows_sq.max()), 1.0)
    picked = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), SPACING_ROWS)).astype(int))
    distances = _squared_distances(rows[picked], rows, rows_sq)
    distances[distances <= tolerance] = math.inf  # itself and its duplicates
    nearest = distances.min(axis=1)
    finite = nearest[np.isfinite(nearest)]
    return float(np.median(np.sqrt(finite))) if len(finite) else 1.0


#: the last rows :func:`shared_spacing` measured and their spacing (one tuple: replaced whole)
_last_spacing: tuple[np.ndarray, float] | None = None


def shared_spacing(rows: np.ndarray) -> float:
    """:func:`spacing` of ``rows``, remembered for the next call: the surrogates of a
    search's targets fit on the same standardised rows (every target measures the same
    candidates), so all but the first get it by one comparison. Exact: a hit needs rows
    equal to the remembered ones element for element."""
    global _last_spacing
    last = _last_spacing
    if last is not None and last[0].shape == rows.shape and np.array_equal(last[0], rows):
        return last[1]
    value = spacing(rows)
    _last_spacing = (rows.copy(), value)
    return value


def local_sigmas(train: np.ndarray, errors: np.ndarray, query: np.ndarray, prior: float,
                 *, bandwidth: float, neighbours: int = NEIGHBOURS,
                 prior_weight: float = PRIOR_WEIGHT) -> np.ndarray:
    """Per query row, the kernel-weighted RMS of the errors of its nearest ``train`` rows
    blended with ``prior``: ``sqrt((sum_j k_j e_j^2 + W prior^2) / (sum_j k_j + W))``
    over the ``neighbours`` nearest, ``k_j = exp(-(d_j / bandwidth)^2)``,
    ``W = prior_weight``.

    ``train`` and ``query`` are rows in one (standardised) space; ties in
    distance go to the earlier train row, so the result is deterministic.
    """
    if len(query) == 0:
        return np.zeros(0)
    k = min(neighbours, len(train))
    if k == 0 or not math.isfinite(prior):
        return np.full(len(query), prior)
    out = np.empty(len(query))
    train_sq = (train**2).sum(axis=1)
    for start in range(0, len(query), _CHUNK):  # bounded memory: chunk x train
        rows = query[start:start + _CHUNK]
        squared_distances = _squared_distances(rows, train, train_sq)
        nearest = np.argsort(squared_distances, axis=1, kind="stable")[:, :k]
        kernel = np.exp(-np.take_along_axis(squared_distances, nearest, axis=1) / bandwidth**2)
        weighted = (kernel * errors[nearest] ** 2).sum(axis=1)
        out[start:start + _CHUNK] = np.sqrt((weighted + prior_weight * prior**2)
                                            / (kernel.sum(axis=1) + prior_weight))
    return out


class RidgeSurrogate:
    """Robust ridge regression with leave-one-out penalty choice and per-arch errors
    (see the module docstring).

    ``log_target`` fits ``log(y)`` (y must be > 0) and predicts ``exp`` of it,
    so ``sigma`` and :meth:`sigmas` are relative. After :meth:`fit`,
    ``outliers`` counts the rows whose leave-one-out residual is past
    :data:`OUTLIER_SCALES` typical errors.
    ``robust=False`` is plain ridge: every row weighs the same and ``sigma``
    is the RMS of the leave-one-out residuals. Not thread-safe while fitting.
    """

    def __init__(self, *, log_target: bool, alphas: Sequence[float] = ALPHAS,
                 robust: bool = True) -> None:
        if not alphas or any(a <= 0 for a in alphas):
            raise ValueError(f"alphas={alphas!r}: expected positive penalties")
        self.log_target = log_target
        self.robust = robust
        self.alphas = tuple(alphas)
        self.n = 0
        self.alpha: float | None = None
        self.sigma = math.inf
        self.outliers = 0
        self._mean_x: np.ndarray | None = None
        self._scale_x: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._intercept = 0.0
        self._train: np.ndarray = np.zeros((0, 0))
        self._bandwidth = 1.0
        self._loo: np.ndarray = np.zeros(0)
        self._center: np.ndarray = np.zeros(0)  # the weighted mean of the standardised rows
        self._basis: np.ndarray = np.zeros((0, 0))  # columns v_k * s_k / (s_k^2 + alpha)

    def _targets(self, features: Sequence[Sequence[float]],
                 targets: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
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
        return x, y

    def fit(self, features: Sequence[Sequence[float]], targets: Sequence[float]) -> RidgeSurrogate:
        """Fit on rows ``features`` -> ``targets``; returns self. ValueError on bad shapes/values."""
        self._weights, self.sigma, self.outliers, self.alpha = None, math.inf, 0, None
        if len(features) == 0 and len(targets) == 0:
            self.n, self._intercept = 0, 0.0
            return self
        x, y = self._targets(features, targets)
        self.n = len(y)
        self._intercept = float(np.median(y) if self.robust else np.mean(y))
        if self.n < MIN_ROWS:
            return self
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        xc = (x - mean) / scale
        w = np.ones(self.n)
        passes = ["huber"] * HUBER_PASSES + ["bisquare"] * BISQUARE_PASSES
        for kind in passes if self.robust else []:
            fitted = _weighted_ridge(xc, y, w, self.alphas)
            residual = y - fitted.predict(xc)
            spread = robust_scale(residual)
            if not spread > 0:
                break
            w = _robust_weights(residual / spread, kind)
        fitted = _weighted_ridge(xc, y, w, self.alphas)
        self.alpha, self._weights, self._intercept = fitted.alpha, fitted.weights, fitted.intercept
        self._mean_x, self._scale_x = mean, scale
        self._train, self._loo = xc, fitted.loo
        self._bandwidth = BANDWIDTH * shared_spacing(xc)
        self._center, self._basis = fitted.center, fitted.basis
        self.sigma = (robust_scale(fitted.loo) if self.robust
                      else float(np.sqrt(np.mean(fitted.loo**2))))
        self.outliers = int(np.sum(np.abs(fitted.loo) > OUTLIER_SCALES * self.sigma))
        return self

    def _standardised(self, features: Sequence[Sequence[float]]) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be rows, got shape {x.shape}")
        if self._mean_x is None or self._scale_x is None:
            return x
        return (x - self._mean_x) / self._scale_x

    def predict(self, features: Sequence[Sequence[float]]) -> np.ndarray:
        """Predictions for rows ``features`` (in the target's own units)."""
        xc = self._standardised(features)
        if self._weights is None:
            out = np.full(len(xc), self._intercept)
        else:
            out = xc @ self._weights + self._intercept
        return np.exp(out) if self.log_target else out

    def sigmas(self, features: Sequence[Sequence[float]]) -> np.ndarray:
        """The per-arch error of each row's prediction (relative with ``log_target``):
        infinite before a fit (see the module docstring)."""
        xc = self._standardised(features)
        if self._weights is None or not math.isfinite(self.sigma):
            return np.full(len(xc), math.inf)
        local = local_sigmas(self._train, self._loo, xc, self.sigma, bandwidth=self._bandwidth)
        leverage = 1.0 / self.n + (((xc - self._center) @ self._basis) ** 2).sum(axis=1)
        return local * np.sqrt(1.0 + leverage)


def _robust_weights(scaled: np.ndarray, kind: str) -> np.ndarray:
    """Huber's or Tukey's bisquare weights of residuals in robust scales."""
    magnitude = np.abs(scaled)
    if kind == "huber":
        return np.asarray(np.minimum(1.0, HUBER_K / np.maximum(magnitude, 1e-300)))
    return np.asarray(np.where(magnitude < BISQUARE_C, (1.0 - (scaled / BISQUARE_C) ** 2) ** 2, 0.0))


class _Fitted:
    """One weighted ridge fit at the penalty with the lowest weighted leave-one-out error."""

    def __init__(self, alpha: float, weights: np.ndarray, intercept: float, loo: np.ndarray,
                 center: np.ndarray, basis: np.ndarray) -> None:
        self.alpha, self.weights, self.intercept = alpha, weights, intercept
        self.loo, self.center, self.basis = loo, center, basis

    def predict(self, xc: np.ndarray) -> np.ndarray:
        return np.asarray(xc @ self.weights + self.intercept)


def _weighted_ridge(xc: np.ndarray, y: np.ndarray, w: np.ndarray,
                    alphas: Sequence[float]) -> _Fitted:
    """Ridge on rows weighted ``w`` (intercept unpenalised, the weighted mean), the penalty
    chosen by the weighted mean squared leave-one-out residual (closed form).

    From the features' small Gram matrix ``G = Xw' Xw = V diag(s^2) V'`` (one
    features x features decomposition: an SVD of the rows themselves costs
    rows x features^2 in LAPACK and dominated a hybrid search's CPU time):
    with ``P = Xw V``, the coefficients are ``V (V' Xw' yw / (s^2 + alpha))``
    and the hat matrix's diagonal ``w_i / sum(w) + sum_k P_ik^2 / (s_k^2 + alpha)``.
    """
    total = w.sum()
    mx = (w[:, None] * xc).sum(axis=0) / total
    my = float((w * y).sum() / total)
    root = np.sqrt(w)
    xw = root[:, None] * (xc - mx)
    yw = root * (y - my)
    _, s2, vt = np.linalg.svd(xw.T @ xw)  # symmetric PSD: s2 are its eigenvalues, vt its vectors
    s2 = np.maximum(s2, 0.0)
    projected = xw @ vt.T
    projected_sq = projected**2
    vty = vt @ (xw.T @ yw)
    best: _Fitted | None = None
    best_mse = math.inf
    for alpha in alphas:
        coef = vt.T @ (vty / (s2 + alpha))
        hat = w / total + projected_sq @ (1.0 / (s2 + alpha))
        residual = y - ((xc - mx) @ coef + my)
        loo = residual / np.maximum(1.0 - hat, 1e-9)
        mse = float((w * loo**2).sum() / total)
        if best is None or mse < best_mse:
            basis = vt.T * (np.sqrt(s2) / (s2 + alpha))
            best, best_mse = _Fitted(alpha, coef, my - float(mx @ coef), loo, mx, basis), mse
    assert best is not None
    return best
