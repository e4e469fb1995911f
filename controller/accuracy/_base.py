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

A :class:`DeployableEstimator` can also hand over the network it scores,
weights included, with the dataset it is scored on: a search with precision
genes then evaluates each target's compressed model instead of trusting the
fp32 score (``fleetnas.controller.driver.DeployedScorer``). An estimator that
returns a number only (a proxy, a table, a ``plugin:MODULE:FUNCTION``) cannot
see precision.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fleetnas.controller.search import CallableObjective
from fleetnas.controller.spaces import SearchSpace

if TYPE_CHECKING:
    from torch import nn

    from fleetnas.controller.accuracy._data import Dataset

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


class DeployableEstimator(AccuracyEstimator):
    """An estimator whose score is a network's top-1 on a dataset's validation split, and
    which can hand that network over (see the module docstring).

    Contract: :meth:`deployable` returns the network :meth:`estimate` scores, with its
    weights, in eval mode, for the arch of the wrapped space (no precision genes); its
    input is ``dataset``'s images as
    :class:`fleetnas.controller.compress.DatasetInputs` preprocesses them (fitted to the
    input, standardised per channel with the training split's statistics) and its first
    ``dataset.num_classes`` logits are the classes. ``max_val_samples`` and ``seed`` say
    which validation samples the deployed models are evaluated on (as
    ``compress.evaluate_onnx`` picks them). Deterministic as :meth:`estimate` is.
    """

    dataset: Dataset
    max_val_samples: int | None
    seed: int

    @abc.abstractmethod
    def deployable(self, space: SearchSpace, arch: Any) -> nn.Module:
        """The network of ``arch`` that :meth:`estimate` scores (see the class docstring);
        EstimatorError when it cannot be made."""
