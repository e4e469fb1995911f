"""Accuracy a search cannot know: a precision-blind estimate of a candidate deployed below fp32.

An estimator that is no
:class:`~fleetnas.controller.accuracy.DeployableEstimator` (``naswot``,
``synflow``, ``table:``, ``plugin:MODULE:FUNCTION``: it returns a number, not
a network) scores the fp32 network of an arch; it cannot see precision. In a
search with precision genes the driver estimates such an estimator on the
wrapped space's arch (the fp32 network, :func:`network_of`) and then:

- a candidate whose every gene is fp32 gets that score as ``accuracy``: it is
  the network every target runs;
- any other candidate's ``accuracy`` is **unknown**: absent from its values,
  its source ``unknown: REASON`` (:data:`UNKNOWN`), told to the engine as
  unknown, so it ranks as the worst possible accuracy (it can dominate no
  member on accuracy, and is on the front only when no member is as good on
  every other objective). The estimator's fp32 score is kept as the extra
  value ``accuracy_fp32`` (:data:`FP32_SCORE`), for people.

A constraint on such an accuracy cannot be checked, so the config refuses it
(:meth:`SearchConfig.validate`). Estimators that are deployable (``train:``,
``supernet:``) score each target's deployed model instead
(:mod:`._deployed_accuracy`); nothing here applies to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetnas.controller.driver._config import DEFAULT_PRECISIONS
from fleetnas.controller.spaces import PrecisionArch, PrecisionSpace, SearchSpace, UnknownArch

ACCURACY = "accuracy"
#: the source prefix of a value the search cannot know (the reason follows)
UNKNOWN = "unknown:"
#: the extra value holding a precision-blind estimator's score of the fp32 network
FP32_SCORE = "accuracy_fp32"


def network_space(space: SearchSpace) -> SearchSpace:
    """The space of the networks themselves: the wrapped one of a PrecisionSpace."""
    return space.base if isinstance(space, PrecisionSpace) else space


def network_of(space: SearchSpace, arch: Any) -> tuple[SearchSpace, Any]:
    """The space and arch of the network itself: the wrapped ones of a PrecisionSpace."""
    if isinstance(space, PrecisionSpace):
        if not isinstance(arch, PrecisionArch):
            raise UnknownArch(f"not an arch with precision genes: {arch!r}")
        return space.base, arch.arch
    return space, arch


def blind_accuracy(space: SearchSpace, arch: Any, value: float, source: str
                   ) -> tuple[dict[str, float], dict[str, str]]:
    """``(values, sources)`` of a precision-blind estimate ``value`` of ``arch`` (the module
    docstring): ``accuracy`` itself without genes or with every gene fp32, else unknown."""
    below = ({} if not isinstance(space, PrecisionSpace) else
             {k: p for k, p in space.genes_of(arch).items() if p not in DEFAULT_PRECISIONS})
    if not below:
        return {ACCURACY: value}, {ACCURACY: source}
    deployed = ", ".join(f"{k}={p}" for k, p in below.items())
    reason = f"the estimator scores the fp32 network only; deployed as {deployed}"
    return {FP32_SCORE: value}, {ACCURACY: f"{UNKNOWN} {reason}", FP32_SCORE: source}


def unknown_of(values: Mapping[str, float], sources: Mapping[str, str]) -> dict[str, str]:
    """The names ``sources`` marks unknown that ``values`` lacks, with their reasons."""
    return {name: source[len(UNKNOWN):].strip() for name, source in sources.items()
            if source.startswith(UNKNOWN) and name not in values}
