"""The accuracy-estimator contract.

An :class:`AccuracyEstimator` scores an arch of a space; higher means the
network is expected to be more accurate. Scores of one estimator are only
comparable with each other (a proxy's log-determinant is not an accuracy).
Estimators are deterministic: the same estimator configuration, space and
arch give the same score on the same machine (they seed torch inside a forked
RNG, so the caller's global torch RNG is left untouched).

A search calls :meth:`AccuracyEstimator.prepare` once before its first
estimate: the estimator checks it fits the space (a table: every row parses)
and does its one-off work (a supernet: trained, or loaded from the store
under :attr:`EstimatorSetup.workdir`), and says what it did in lines for
people.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from fleetnas.controller.search import CallableObjective
from fleetnas.controller.spaces import SearchSpace

#: ``progress(task, done, total, detail)`` during an estimator's one-off work
SetupProgress = Callable[[str, int, "int | None", str], None]


@dataclass(frozen=True)
class EstimatorSetup:
    """What :meth:`AccuracyEstimator.prepare` may use.

    ``workdir``: where to keep what outlives a search (trained supernets go to
    ``workdir/supernets``); the search's cost-DB folder, ``None`` for the
    current folder. ``progress``: called during long one-off work; ``None``
    for silence.
    """

    workdir: Path | None = None
    progress: SetupProgress | None = None


class AccuracyEstimator(abc.ABC):
    """Scores archs: ``estimate(space, arch) -> float``, higher is better."""

    #: short stable name, e.g. ``"naswot"``; instances may refine it
    name: str
    #: what one :meth:`estimate` costs, in words (e.g. "one forward pass of 32 inputs")
    cost: ClassVar[str]

    @abc.abstractmethod
    def estimate(self, space: SearchSpace, arch: Any) -> float:
        """The score of ``arch`` (a finite float); EstimatorError when it cannot be scored."""

    def prepare(self, space: SearchSpace, setup: EstimatorSetup) -> list[str]:
        """Get ready to score archs of ``space`` (see the module docstring).

        Returns lines for people saying what was checked or done (the base
        estimator has nothing to do: ``[]``). Raises DatasetError (a table
        or dataset that does not fit ``space``) or EstimatorError.
        """
        return []

    def as_objective(self, space: SearchSpace, name: str = "accuracy",
                     label: str | None = None) -> CallableObjective:
        """A maximised :class:`CallableObjective` that calls :meth:`estimate` on ``space``;
        ``label`` is what people read (e.g. ``"naswot score"``)."""
        return CallableObjective(name, lambda arch: self.estimate(space, arch), "maximize",
                                 label=label)
