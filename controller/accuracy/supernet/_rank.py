"""Rank correlation of two accuracy estimators over a sample of archs.

:func:`rank_correlation` scores the same archs with an estimator and a
reference (e.g. the supernet against stand-alone short training) and
reports Kendall's tau-b between the two score lists (the one implementation
of the project, :func:`fleetnas.controller.lut.kendall_tau_b`), with each
side's scores and seconds per arch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetnas.controller.accuracy._base import AccuracyEstimator
from fleetnas.controller.lut import kendall_tau_b
from fleetnas.controller.spaces import SearchSpace


@dataclass(frozen=True)
class RankCorrelation:
    """Kendall tau-b of ``scores`` against ``reference`` (None when undefined, e.g. all tied)."""

    tau: float | None
    encodings: tuple[str, ...]
    scores: tuple[float, ...]
    reference: tuple[float, ...]
    seconds_per_arch: float
    reference_seconds_per_arch: float


def rank_correlation(
    space: SearchSpace,
    archs: Sequence[Any],
    estimator: AccuracyEstimator,
    reference: AccuracyEstimator,
    *,
    on_arch: Callable[[int, str, float, float], None] | None = None,
) -> RankCorrelation:
    """Score ``archs`` with both estimators; ``on_arch(i, encoding, score, reference)`` after each."""
    if len(archs) < 2:
        raise ValueError(f"rank_correlation: {len(archs)} archs, need at least 2")
    scores: list[float] = []
    references: list[float] = []
    own = other = 0.0
    for i, arch in enumerate(archs):
        t0 = time.monotonic()
        scores.append(estimator.estimate(space, arch))
        t1 = time.monotonic()
        references.append(reference.estimate(space, arch))
        own += t1 - t0
        other += time.monotonic() - t1
        if on_arch is not None:
            on_arch(i, space.encode(arch), scores[-1], references[-1])
    return RankCorrelation(
        tau=kendall_tau_b(scores, references),
        encodings=tuple(space.encode(a) for a in archs),
        scores=tuple(scores),
        reference=tuple(references),
        seconds_per_arch=own / len(archs),
        reference_seconds_per_arch=other / len(archs),
    )
