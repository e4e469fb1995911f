"""A target's latency predicted by a stored, fixed predictor: a kernel LUT or a transfer fit.

:class:`FixedFitValuePredictor` serves a target that has no block LUT but a
stored kernel LUT (``fleetnas lut kernels``,
:mod:`fleetnas.controller.predict._kernel_store`) or transfer fit (``fleetnas
lut transfer``, :mod:`fleetnas.controller.predict._transfer_store`), in modes
``lut`` and ``hybrid``. Its values are the stored predictor's
``predict_many`` (exactly, in mode ``lut``, which measures nothing), so a
search and its resume predict the same latencies however the cost DB grew:
the predictor is never refitted on the DB (more kernels or reference archs
make a new LUT or fit).

What the search's own measurements change (hybrid): once
:data:`~fleetnas.controller.lut.MIN_CALIBRATION_ARCHS` candidates are
measured, the predictor's *scale*: every value is the predictor's times one
factor, the median ratio measured / predicted over them (the stored
predictor was measured by the shared-host protocol, a robust low statistic,
while a search measures with its target's request, often a median of few
runs: on a loaded 2-core host the two differed by ~2x), and the
*uncertainty*: before that, every prediction carries the predictor's own
leave-one-out RMSPE (:attr:`FixedPredictor.prior_rmspe`); after, each arch's
sigma is the RMS of the rescaled relative errors of the measured archs
nearest it (by log predicted latency), blended with their robust scale, as
the LUT predictor does with its line. A kernel LUT's prediction of an arch
that runs kernels it never measured adds that stand-in's share of the sum
to the arch's sigma (in quadrature), so hybrid mode measures such archs
sooner. Everything is a function of the measured trials, so a resumed
hybrid search makes the same choices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._config import SearchConfig
from fleetnas.controller.driver._errors import SearchConfigError
from fleetnas.controller.driver._luts import identity_request, target_devices
from fleetnas.controller.driver._predict import (
    DEFAULT_LUT_SIGMA,
    Prediction,
    ValuePredictor,
    _relative,
)
from fleetnas.controller.driver._source import latency_source_class
from fleetnas.controller.driver._surrogate import BANDWIDTH, local_sigmas, robust_scale, spacing
from fleetnas.controller.fleet import Fleet
from fleetnas.controller.lut import MIN_CALIBRATION_ARCHS
from fleetnas.controller.spaces import Arch, SearchSpace


class FixedPredictor(Protocol):
    """What a stored predictor gives a search (``KernelPredictor``, ``TransferPredictor``)."""

    space: SearchSpace

    @property
    def prior_rmspe(self) -> float:
        """Its own leave-one-out RMSPE, percent (NaN: unknown)."""

    def predict_many(self, archs: Sequence[Arch]) -> list[float]:
        """The predicted latency (ms) per arch."""

    def estimated_shares(self, archs: Sequence[Arch]) -> list[float]:
        """Per arch, the share of its prediction that is a stand-in (0: none)."""


@dataclass(frozen=True)
class StoredPredictor:
    """A stored predictor a search predicts a target with: the predictor, the value source
    it is (``kernel-lut``, ``transfer``), and a label naming it (``kernel LUT 1a2b...``)."""

    predictor: FixedPredictor
    source: str
    label: str


class FixedFitValuePredictor(ValuePredictor):
    """A stored predictor's latency, with per-arch uncertainty from the search's
    measurements (see the module docstring). ``source`` is the value's source in the
    candidates' ``sources`` (``kernel-lut``, ``transfer``); ``label`` names the stored
    predictor in :meth:`describe`."""

    def __init__(self, predictor: FixedPredictor, *, z: float, min_margin: float,
                 source: str, label: str) -> None:
        super().__init__(z=z, min_margin=min_margin)
        self.predictor = predictor
        self.source = source
        self.label = label
        loo = predictor.prior_rmspe / 100.0
        self.prior_sigma = loo if math.isfinite(loo) and loo > 0 else DEFAULT_LUT_SIGMA
        self.sigma = self.prior_sigma
        #: the factor the fit's values are multiplied by (1 until enough are measured)
        self.scale = 1.0
        self._values: dict[str, float] = {}
        #: encoding -> share of the prediction that stood in for unmeasured kernels
        self._made_up: dict[str, float] = {}
        # measured archs' log predictions (standardised), their log errors, scale, bandwidth
        self._errors: tuple[np.ndarray, np.ndarray, float, float] | None = None

    def fitted(self, archs: Sequence[Arch]) -> list[float]:
        """The stored predictor's own prediction (ms) per arch (cached by encoding)."""
        space = self.predictor.space
        encodings = [space.encode(a) for a in archs]
        todo = [(e, a) for e, a in dict(zip(encodings, archs, strict=True)).items()
                if e not in self._values]
        if todo:
            predicted = self.predictor.predict_many([a for _, a in todo])
            self._values.update((e, v) for (e, _), v in zip(todo, predicted, strict=True))
            shares = self.predictor.estimated_shares([a for _, a in todo])
            self._made_up.update((e, s) for (e, _), s in zip(todo, shares, strict=True) if s)
        return [self._values[e] for e in encodings]

    def latency(self, archs: Sequence[Arch]) -> list[float]:
        """The prediction (ms) per arch: the stored predictor's, times :attr:`scale`."""
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
        sigmas = self._sigmas(values)
        if self._made_up:
            space = self.predictor.space
            extra = np.array([self._made_up.get(space.encode(a), 0.0) for a in archs])
            sigmas = np.sqrt(sigmas**2 + extra**2)
        return [_relative(float(v), max(float(s), self.min_margin), self.z, self.source)
                for v, s in zip(values, sigmas, strict=True)]

    def values(self, archs: Sequence[Arch]) -> list[tuple[float, str]]:
        return [(v, self.source) for v in self.latency(archs)]

    def describe(self) -> str:
        where = (f"x{self.scale:.3f}, ±{100 * self.sigma:.1f}% on the search's measurements"
                 if self._errors is not None
                 else f"leave-one-out ±{self.predictor.prior_rmspe:.1f}%")
        made_up = (f"; {len(self._made_up)} arch(s) had stand-ins in their prediction"
                   if self._made_up else "")
        return f"{self.label}: {where} (per-arch intervals; {self.n} measured{made_up})"


Row = TypeVar("Row")


def newest_serving(
    db: CostDB, space: SearchSpace, config: SearchConfig, fleet: Fleet | None,
    skip: Mapping[str, object] | None, rows: Callable[[str], Sequence[Row]],
    serves: Callable[[Row, agent_pb2.BenchmarkSettings], bool],
) -> dict[str, Row]:
    """Target key -> the first of ``rows(device)`` (newest first) that ``serves`` the
    target's identity request, over the target's devices (its class's: :func:`target_devices`),
    for every target not in ``skip``, when the search's source uses LUTs; targets that none
    serves are left out."""
    if not latency_source_class(config.mode).uses_luts:
        return {}
    found = {}
    for target in config.targets:
        if skip is not None and target.key in skip:
            continue
        request = identity_request(target)
        for device in target_devices(db, target, fleet):
            serving = [r for r in rows(device) if serves(r, request)]
            if serving:
                found[target.key] = serving[0]
                break
    return found


def stored_by_id(ids: Mapping[str, str], get: Callable[[str], Row],
                 not_found: type[LookupError], what: str) -> dict[str, Row]:
    """Target key -> the stored row of each id (``get``); SearchConfigError naming ``what``
    when one is gone."""
    out = {}
    for key, row_id in ids.items():
        try:
            out[key] = get(row_id)
        except not_found as exc:
            raise SearchConfigError(
                f"the search predicts {key} with {what} {row_id[:12]}, which is gone: {exc}"
            ) from exc
    return out
