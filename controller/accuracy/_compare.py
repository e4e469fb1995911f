"""Which cheap estimator ranks archs like training does: Kendall tau of each against a reference.

:func:`compare_estimators` scores the same archs once with a reference
(typically :class:`ShortTrainingEstimator` on the user's data: the
expensive side, so it runs once, not once per proxy) and with each
candidate estimator, and reports for each its Kendall tau-b against the
reference (:func:`fleetnas.controller.lut.kendall_tau_b`, the project's one
implementation; ``None`` when undefined, e.g. every score tied) and its
seconds per arch. ``fleetnas proxies`` prints it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetnas.controller.accuracy._base import AccuracyEstimator
from fleetnas.controller.lut import kendall_tau_b
from fleetnas.controller.spaces import SearchSpace

#: ``on_score(name, done, total)`` after each arch an estimator scored
ScoreProgress = Callable[[str, int, int], None]
#: ``on_value(name, index, score)`` after each arch an estimator scored (``index`` into archs)
ScoreValue = Callable[[str, int, float], None]


@dataclass(frozen=True)
class EstimatorRanking:
    """One estimator: Kendall tau-b against the reference, its scores and seconds per arch."""

    name: str
    tau: float | None
    scores: tuple[float, ...]
    seconds_per_arch: float


@dataclass(frozen=True)
class Comparison:
    """The reference's scores and seconds per arch, and each estimator's ranking, in order."""

    encodings: tuple[str, ...]
    reference: tuple[float, ...]
    reference_seconds_per_arch: float
    rankings: tuple[EstimatorRanking, ...]


def _score(space: SearchSpace, archs: Sequence[Any], estimator: AccuracyEstimator, name: str,
           on_score: ScoreProgress | None, on_value: ScoreValue | None) -> tuple[list[float], float]:
    """Scores of ``archs`` and seconds per arch (the callbacks' time not counted)."""
    scores = []
    spent = 0.0
    for i, arch in enumerate(archs):
        started = time.monotonic()
        scores.append(float(estimator.estimate(space, arch)))
        spent += time.monotonic() - started
        if on_value is not None:
            on_value(name, i, scores[-1])
        if on_score is not None:
            on_score(name, i + 1, len(archs))
    return scores, spent / len(archs)


def compare_estimators(
    space: SearchSpace,
    archs: Sequence[Any],
    estimators: Mapping[str, AccuracyEstimator],
    reference: AccuracyEstimator,
    *,
    reference_name: str = "reference",
    on_score: ScoreProgress | None = None,
    on_value: ScoreValue | None = None,
) -> Comparison:
    """Score ``archs`` with ``reference`` once, then with each of ``estimators`` (by name).

    ``on_value(name, i, score)`` and ``on_score(name, done, total)`` are
    called after every score (the reference's under ``reference_name``).
    ValueError for fewer than 2 archs; an estimator's own errors propagate.
    """
    if len(archs) < 2:
        raise ValueError(f"compare_estimators: {len(archs)} archs, need at least 2")
    reference_scores, reference_seconds = _score(space, archs, reference, reference_name,
                                                 on_score, on_value)
    rankings = []
    for name, estimator in estimators.items():
        scores, seconds = _score(space, archs, estimator, name, on_score, on_value)
        rankings.append(EstimatorRanking(name, kendall_tau_b(scores, reference_scores),
                                         tuple(scores), seconds))
    return Comparison(tuple(space.encode(a) for a in archs), tuple(reference_scores),
                      reference_seconds, tuple(rankings))
