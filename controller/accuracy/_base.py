"""The accuracy-estimator contract.

An :class:`AccuracyEstimator` scores an arch of a space; higher means the
network is expected to be more accurate. Scores of one estimator are only
comparable with each other (a proxy's log-determinant is not an accuracy).
Estimators are deterministic: the same estimator configuration, space and
arch give the same score on the same machine (they seed torch inside a forked
RNG, so the caller's global torch RNG is left untouched).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from fleetnas.controller.search import CallableObjective
from fleetnas.controller.spaces import SearchSpace


class AccuracyEstimator(abc.ABC):
    """Scores archs: ``estimate(space, arch) -> float``, higher is better."""

    #: short stable name, e.g. ``"naswot"``; instances may refine it
    name: str
    #: what one :meth:`estimate` costs, in words (e.g. "one forward pass of 32 inputs")
    cost: ClassVar[str]

    @abc.abstractmethod
    def estimate(self, space: SearchSpace, arch: Any) -> float:
        """The score of ``arch`` (a finite float); EstimatorError when it cannot be scored."""

    def as_objective(self, space: SearchSpace, name: str = "accuracy") -> CallableObjective:
        """A maximised :class:`CallableObjective` that calls :meth:`estimate` on ``space``."""
        return CallableObjective(name, lambda arch: self.estimate(space, arch), "maximize")
