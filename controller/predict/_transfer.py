"""Latencies of a new device from a few of its own measurements and the fleet's cost DB.

The method combines two published ideas:

* **HELP** (Lee et al., NeurIPS 2021): a device is described by its
  latencies on a fixed set of *reference* networks (its hardware embedding),
  so a new device is placed among the known ones by measuring those first.
  Here the new device measures the first ``n`` archs of one seeded reference
  sequence of the space (:func:`reference_archs`); every device that joined
  before measured the same sequence, so the known devices' latencies on them
  are measurements, not guesses.
* **Proxy-device transfer** (Lu et al., "One Proxy Device Is Enough for
  Hardware-Aware Neural Architecture Search", SIGMETRICS 2022): latencies of
  one network on two devices are strongly related (close to affine), so a
  known device's predictions, refitted with a handful of measurements of the
  new one, rank the new device's archs well.

The model. Every known *source* (a device and settings hash in the cost DB
with at least ``min_source_archs`` measured archs of the space, never the
new device) gets a latency model over arch features: a non-negative
combination of the arch's :mod:`._descriptors` (MACs per operator family,
elements moved, operators launched) plus a constant, fitted on all its
measurements by relative least squares. A source's latency for an arch is
its measurement when it has one, else its model's prediction. The new
device's latency is

    L(a) = sum_s w_s * L_s(a) + x(a) . delta + c

where ``w`` (the device's coordinates among the known devices: its
*embedding*), ``delta`` (its own correction per feature, for what no source
has) and ``c`` are fitted on its ``n`` measurements by relative ridge
regression around the prior "a scaled average of the sources"; the two
penalties are chosen by exact leave-one-out error over a small grid. With 5
measurements the fit stays near the prior; with 50, ``delta`` can move.

Known limits: the sources must span the new device (a device unlike every
known one is predicted as the nearest mixture; the leave-one-out error
says how well that went), and archs of one space identity only.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut import sample_archs
from fleetnas.controller.predict._descriptors import FEATURES, descriptor
from fleetnas.controller.predict._protocol import (
    Progress,
    Protocol,
    ProtocolReport,
    measure_robust,
)
from fleetnas.controller.scheduler import ModelRef, Scheduler
from fleetnas.controller.spaces import Arch, SearchSpace, UnknownArch

REFERENCE_PURPOSE = "transfer-reference"
DEFAULT_MIN_SOURCE_ARCHS = 20
#: how many of a source's measurements of one arch the robust value averages (the lowest)
KEEP_LOWEST = 3
_W_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
_DELTA_GRID = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e4)

class TransferError(ValueError):
    """Transfer cannot run: no usable source device, or too few measurements."""


# -- the math: arrays in, arrays out ------------------------------------------------------


def nnls(a: np.ndarray, b: np.ndarray, *, max_iter: int = 500) -> np.ndarray:
    """``argmin ||a x - b||`` subject to ``x >= 0`` (Lawson and Hanson's active set method)."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    gradient = a.T @ (b - a @ x)
    tol = 1e-10 * max(1.0, float(np.abs(a).max(initial=0.0))) * max(m, n)
    for _ in range(max_iter):
        if passive.all() or gradient[~passive].max(initial=-np.inf) <= tol:
            break
        j = int(np.argmax(np.where(passive, -np.inf, gradient)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > tol).all():
                x = z
                break
            shrinking = passive & (z <= tol)
            alpha = float(np.min(x[shrinking] / (x[shrinking] - z[shrinking] + 1e-300)))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        gradient = a.T @ (b - a @ x)
    return x


def fit_source(features: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
    """Non-negative ``theta`` with ``[features, 1] @ theta ~ latency`` in relative error."""
    design = np.hstack([features, np.ones((len(features), 1))]) / latency_ms[:, None]
    scale = np.linalg.norm(design, axis=0)
    scale[scale == 0] = 1.0
    return nnls(design / scale, np.ones(len(latency_ms))) / scale


@dataclass(frozen=True)
class TransferFit:
    """Coefficients over ``[source latencies (S), features (F), 1]``, the penalties
    chosen, and the fit's leave-one-out RMSPE (percent)."""

    coef: np.ndarray
    sources: int
    lambda_w: float
    lambda_delta: float
    loo_rmspe: float

    @property
    def embedding(self) -> np.ndarray:
        """The weights of the source devices."""
        return self.coef[: self.sources]

    def predict(self, source_ms: np.ndarray, features: np.ndarray) -> np.ndarray:
        return _design(source_ms, features) @ self.coef


def _design(source_ms: np.ndarray, features: np.ndarray) -> np.ndarray:
    return np.hstack([source_ms, features, np.ones((len(features), 1))])


def fit_transfer(source_ms: np.ndarray, features: np.ndarray, latency_ms: np.ndarray,
                 ) -> TransferFit:
    """Fit the new device's model (module docstring) on its ``n`` measurements.

    ``source_ms`` is ``(n, S)``: each source's latency for each measured arch;
    ``features`` ``(n, F)``. Needs ``n >= 2``.
    """
    n, sources = source_ms.shape
    if n < 2:
        raise TransferError(f"transfer needs at least 2 measurements of the new device, got {n}")
    design = _design(source_ms, features) / latency_ms[:, None]
    target = np.ones(n)
    mean_source = design[:, :sources].mean(axis=1)
    alpha = float(mean_source @ target / max(float(mean_source @ mean_source), 1e-300))
    prior = np.zeros(design.shape[1])
    prior[:sources] = alpha / sources
    residual = target - design @ prior
    scale = np.sqrt((design**2).mean(axis=0))
    scale[scale == 0] = 1.0
    best: TransferFit | None = None
    for lw in _W_GRID:
        for ld in _DELTA_GRID:
            penalty = np.concatenate([np.full(sources, lw), np.full(design.shape[1] - sources - 1,
                                                                     ld), [1e-6]]) * scale**2 * n
            gram_inv = np.linalg.inv(design.T @ design + np.diag(penalty))
            coef = prior + gram_inv @ design.T @ residual
            hat = np.einsum("ij,jk,ik->i", design, gram_inv, design)
            loo = (design @ coef - target) / np.maximum(1.0 - hat, 1e-9)
            rmspe = 100.0 * float(np.sqrt(np.mean(loo**2)))
            if best is None or rmspe < best.loo_rmspe:
                best = TransferFit(coef, sources, lw, ld, rmspe)
    assert best is not None
    return best


# -- the cost DB side -----------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A known device configuration: its measured archs (encoding -> ms) and its model."""

    device: str
    settings_hash: str
    threads: int
    measured: Mapping[str, float]
    theta: np.ndarray
    fit_rmspe: float

    @property
    def label(self) -> str:
        return f"{self.device}/{self.settings_hash[:8]} ({self.threads} thr)"


def measured_archs(db: CostDB, space: SearchSpace) -> dict[tuple[str, str], dict[str, float]]:
    """(device, settings hash) -> encoding -> robust latency (ms), for every arch of
    ``space``'s identity in the DB: the mean of the ``KEEP_LOWEST`` lowest of its
    measurements. Models whose ``arch`` is not an encoding of the space (a LUT's
    ``block:...`` models carry the space's name) are left out."""
    query = (
        "SELECT m.device, m.settings_hash, mo.arch, m.latency_ms FROM measurements AS m "
        "JOIN models AS mo ON mo.sha256 = m.model_sha256 "
        "WHERE mo.space = ? AND mo.arch IS NOT NULL"
    )
    values: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with db.read_snapshot() as conn:
        rows = conn.execute(query, (space.identity(),)).fetchall()
    encodings: dict[str, bool] = {}
    for device, s_hash, arch, latency in rows:
        if arch not in encodings:
            encodings[arch] = _is_encoding(space, arch)
        if encodings[arch]:
            values[(device, s_hash)][arch].append(float(latency))
    return {
        key: {arch: statistics.fmean(sorted(v)[:KEEP_LOWEST]) for arch, v in archs.items()}
        for key, archs in values.items()
    }


def _is_encoding(space: SearchSpace, text: str) -> bool:
    try:
        space.decode(text)
    except UnknownArch:
        return False
    return True


def _threads(db: CostDB, device: str, s_hash: str) -> int:
    found = db.measurements(device=device, settings_hash=s_hash, limit=1)
    return found[0].intra_op_threads if found else 0


class Descriptors:
    """Arch descriptors by encoding, computed once from the exported ONNX (export cache)."""

    def __init__(self, space: SearchSpace, cache_dir: str | Path | None = None) -> None:
        self.space = space
        self.cache_dir = cache_dir
        self._known: dict[str, np.ndarray] = {}

    def model(self, arch: Arch) -> Any:
        from fleetnas.controller.export import export_arch

        return export_arch(self.space, arch, cache_dir=self.cache_dir)

    def of(self, encoding: str) -> np.ndarray:
        if encoding not in self._known:
            exported = self.model(self.space.decode(encoding))
            self._known[encoding] = descriptor(exported.onnx_bytes)
        return self._known[encoding]

    def matrix(self, encodings: Sequence[str]) -> np.ndarray:
        return np.vstack([self.of(e) for e in encodings]) if encodings else np.zeros(
            (0, len(FEATURES)))


def load_sources(
    db: CostDB, space: SearchSpace, device: str, descriptors: Descriptors, *,
    min_archs: int = DEFAULT_MIN_SOURCE_ARCHS, only: Collection[str] | None = None,
    on_progress: Progress | None = None,
) -> list[Source]:
    """Every source of ``space`` in the DB except ``device`` itself (and only devices named
    in ``only``, when given), with its model fitted."""
    table = {k: v for k, v in measured_archs(db, space).items()
             if k[0] != device and len(v) >= min_archs and (only is None or k[0] in only)}
    encodings = sorted({e for archs in table.values() for e in archs})
    for i, encoding in enumerate(encodings, start=1):
        descriptors.of(encoding)
        if on_progress is not None:
            on_progress("describe", i, len(encodings))
    sources = []
    for (dev, s_hash), archs in sorted(table.items()):
        names = sorted(archs)
        y = np.array([archs[e] for e in names])
        features = descriptors.matrix(names)
        theta = fit_source(features, y)
        pred = np.hstack([features, np.ones((len(y), 1))]) @ theta
        rmspe = 100.0 * float(np.sqrt(np.mean(((pred - y) / y) ** 2)))
        sources.append(Source(dev, s_hash, _threads(db, dev, s_hash), dict(archs), theta, rmspe))
    return sources


def reference_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Arch]:
    """The first ``n`` archs of the space's reference sequence (the same for every device)."""
    return sample_archs(space, n, REFERENCE_PURPOSE, seed)


# -- the predictor ------------------------------------------------------------------------


#: no prediction is below this share of the fastest arch the new device was measured at
FLOOR_FRACTION = 0.5


def prediction_floor(measured: Mapping[str, float]) -> float:
    """The least latency (ms) a transfer fitted on ``measured`` predicts (0 without data).

    The fit is linear in arch features: far from its data it can reach zero or go
    negative, and a search would take such an arch for the fastest of all.
    """
    return FLOOR_FRACTION * min(measured.values()) if measured else 0.0


class TransferPredictor:
    """Latency predictions (ms) for ``space`` on the new device (see the module docstring),
    never below ``floor_ms`` (:func:`prediction_floor`)."""

    def __init__(self, space: SearchSpace, sources: Sequence[Source], fit: TransferFit,
                 descriptors: Descriptors, floor_ms: float = 0.0) -> None:
        self.space = space
        self.sources = tuple(sources)
        self.fit = fit
        self.descriptors = descriptors
        self.floor_ms = floor_ms

    def source_ms(self, encodings: Sequence[str], features: np.ndarray) -> np.ndarray:
        """``(len(encodings), S)``: each source's measurement, or its model's prediction."""
        out = np.empty((len(encodings), len(self.sources)))
        design = np.hstack([features, np.ones((len(encodings), 1))])
        for j, source in enumerate(self.sources):
            modelled = design @ source.theta
            for i, encoding in enumerate(encodings):
                out[i, j] = source.measured.get(encoding, modelled[i])
        return out

    def predict_many(self, archs: Sequence[Arch]) -> list[float]:
        encodings = [self.space.encode(a) for a in archs]
        features = self.descriptors.matrix(encodings)
        predicted = self.fit.predict(self.source_ms(encodings, features), features)
        return [max(float(v), self.floor_ms) for v in predicted]

    def predict(self, arch: Arch) -> float:
        return self.predict_many([arch])[0]

    @property
    def prior_rmspe(self) -> float:
        """The fit's leave-one-out RMSPE (percent)."""
        return self.fit.loo_rmspe

    def estimated_shares(self, archs: Sequence[Arch]) -> list[float]:
        """0 for every arch: a transfer prediction has no stand-in parts."""
        return [0.0] * len(archs)


@dataclass(frozen=True)
class TransferResult:
    """A fitted transfer: the predictor, the new device's measurements (encoding -> ms,
    by the shared-host protocol), the sources used, the nearest source on those archs
    (by relative distance), the device time the measurements took, and the settings
    hash the new device recorded them with (``None`` when it could not be known)."""

    predictor: TransferPredictor
    measured: dict[str, float]
    sources: tuple[Source, ...]
    nearest: str
    device_s: float
    fit_s: float
    settings_hash: str | None = None

    @property
    def fit(self) -> TransferFit:
        return self.predictor.fit


def measure_archs(
    db: CostDB,
    space: SearchSpace,
    device: str,
    archs: Sequence[Arch],
    descriptors: Descriptors,
    *,
    scheduler: Scheduler,
    request: agent_pb2.BenchmarkSettings | None,
    protocol: Protocol | None,
    reuse_since: float | None,
    on_progress: Progress | None,
) -> tuple[dict[str, float], ProtocolReport]:
    """Record ``archs``' models in the cost DB and measure them on ``device`` by the shared-host
    protocol: latency (ms) by arch encoding, and the protocol's report. TransferError when
    fewer than 2 could be measured."""
    refs: dict[str, ModelRef] = {}
    for arch in archs:
        exported = descriptors.model(arch)
        encoding = space.encode(arch)
        db.record_model(exported.sha256, len(exported.onnx_bytes), space=space.identity(),
                        arch=encoding, params=space.count_params(arch),
                        flops=space.count_flops(arch))
        refs[encoding] = ModelRef.from_bytes(exported.onnx_bytes)
    report = measure_robust(
        refs, device, request or agent_pb2.BenchmarkSettings(), db=db, scheduler=scheduler,
        protocol=protocol, reuse_since=reuse_since, on_progress=on_progress,
    )  # fmt: skip
    measured = {tag: r.latency_ms for tag, r in report.results.items()}
    if len(measured) < 2:
        raise TransferError(f"only {len(measured)} of {len(archs)} archs could be measured on "
                            f"{device}: {dict(list(report.failed.items())[:3])}")
    return measured, report


def transfer(
    db: CostDB,
    space: SearchSpace,
    device: str,
    n: int,
    *,
    scheduler: Scheduler,
    request: agent_pb2.BenchmarkSettings | None = None,
    protocol: Protocol | None = None,
    cache_dir: str | Path | None = None,
    min_source_archs: int = DEFAULT_MIN_SOURCE_ARCHS,
    sources: Collection[str] | None = None,
    reuse_since: float | None = 0.0,
    seed: int = 0,
    on_progress: Progress | None = None,
) -> TransferResult:
    """Measure ``n`` reference archs on ``device`` and fit its transfer model.

    The API of ``fleetnas lut transfer --device NEW --n 20``. The archs are
    measured by the shared-host protocol with ``request`` (default: the
    agent's defaults); protocol rounds already in the DB since
    ``reuse_since`` are reused (by default all: a second call measures
    nothing). ``sources`` restricts the known devices used to those named.
    Raises TransferError when the DB has no
    source with ``min_source_archs`` measured archs of the space, or when
    fewer than 2 archs could be measured; UnknownDevice for a device outside
    the scheduler's fleet. ``on_progress`` gets phases ``describe`` (source
    archs), ``measure`` and ``fit``.
    """
    if n < 2:
        raise TransferError(f"--n must be at least 2, got {n}")
    scheduler.fleet.get(device)
    descriptors = Descriptors(space, cache_dir)
    known = load_sources(db, space, device, descriptors, min_archs=min_source_archs,
                         only=sources, on_progress=on_progress)
    if not known:
        raise TransferError(
            f"no other device has {min_source_archs} measured archs of {space.identity()} in "
            "the cost DB; measure archs on at least one other device first (or import a "
            "colleague's measurements with `fleetnas db import`)"
        )
    measured, report = measure_archs(db, space, device, reference_archs(space, n, seed), descriptors,
                                     scheduler=scheduler, request=request, protocol=protocol,
                                     reuse_since=reuse_since, on_progress=on_progress)
    started = time.monotonic()
    predictor = fit_predictor(space, known, measured, descriptors)
    if on_progress is not None:
        on_progress("fit", 1, 1)
    return TransferResult(predictor, measured, tuple(known), _nearest(known, measured),
                          report.device_s, time.monotonic() - started, report.settings_hash)


def fit_predictor(space: SearchSpace, sources: Sequence[Source], measured: Mapping[str, float],
                  descriptors: Descriptors) -> TransferPredictor:
    """The transfer predictor fitted on ``measured`` (encoding -> ms of the new device)."""
    encodings = sorted(measured)
    features = descriptors.matrix(encodings)
    unfitted = TransferPredictor(space, sources, TransferFit(np.zeros(0), 0, 0, 0, math.nan),
                                 descriptors)
    source_ms = unfitted.source_ms(encodings, features)
    fit = fit_transfer(source_ms, features, np.array([measured[e] for e in encodings]))
    return TransferPredictor(space, sources, fit, descriptors, prediction_floor(measured))


def _nearest(sources: Sequence[Source], measured: Mapping[str, float]) -> str:
    """The source whose latencies on the measured archs are closest up to a scale."""
    best, best_error = "", math.inf
    for source in sources:
        pairs = [(source.measured[e], m) for e, m in measured.items() if e in source.measured]
        if len(pairs) < 2:
            continue
        ratio = statistics.median(m / s for s, m in pairs)
        error = statistics.fmean(abs(ratio * s / m - 1.0) for s, m in pairs)
        if error < best_error:
            best, best_error = source.label, error
    return best
