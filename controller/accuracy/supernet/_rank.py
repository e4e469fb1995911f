"""Rank correlation of two accuracy estimators over a sample of archs.

:func:`rank_correlation` scores the same archs with an estimator and a
reference (e.g. the supernet against stand-alone short training) and
reports Kendall's tau-b between the two score lists (the one implementation
of the project, :func:`fleetnas.controller.lut.kendall_tau_b`), with each
side's scores and seconds per arch. It is a one-estimator view of
:func:`fleetnas.controller.accuracy.compare_estimators` (the one scoring
loop): the reference scores every arch first, then the estimator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetnas.controller.accuracy._base import AccuracyEstimator
from fleetnas.controller.accuracy._compare import compare_estimators
from fleetnas.controller.spaces import SearchSpace

_REFERENCE, _ESTIMATOR = "reference", "estimator"


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
    """Score ``archs`` with both estimators; ``on_arch(i, encoding, score, reference)`` after
    the estimator scored arch ``i`` (the reference scored them all first)."""
    if len(archs) < 2:
        raise ValueError(f"rank_correlation: {len(archs)} archs, need at least 2")
    references: dict[int, float] = {}

    def on_value(name: str, i: int, value: float) -> None:
        if name == _REFERENCE:
            references[i] = value
        elif on_arch is not None:
            on_arch(i, space.encode(archs[i]), value, references[i])

    comparison = compare_estimators(space, archs, {_ESTIMATOR: estimator}, reference,
                                    reference_name=_REFERENCE, on_value=on_value)
    (ranking,) = comparison.rankings
    return RankCorrelation(
        tau=ranking.tau,
        encodings=comparison.encodings,
        scores=ranking.scores,
        reference=comparison.reference,
        seconds_per_arch=ranking.seconds_per_arch,
        reference_seconds_per_arch=comparison.reference_seconds_per_arch,
    )
