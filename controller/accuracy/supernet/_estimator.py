"""Supernet accuracy as an :class:`~fleetnas.controller.accuracy.AccuracyEstimator`.

:class:`SupernetEstimator` scores an arch with :func:`~._eval.subnet_accuracy`
on a trained supernet (validation top-1 after BN recalibration, in [0, 1]);
:func:`evaluate_archs` scores a list of archs with progress, for a CLI.
Deterministic: the same supernet, dataset, settings and arch give the same
score (the calibration batches do not depend on the arch or on call order).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fleetnas.controller.accuracy._base import DeployableEstimator
from fleetnas.controller.accuracy._data import Dataset
from fleetnas.controller.accuracy.supernet._config import EvalConfig, TrainConfig
from fleetnas.controller.accuracy.supernet._errors import SupernetError
from fleetnas.controller.accuracy.supernet._eval import materialised_subnet, subnet_accuracy
from fleetnas.controller.accuracy.supernet._store import SupernetStore, TrainedSupernet
from fleetnas.controller.accuracy.supernet._train import ProgressCallback, SupernetProgress
from fleetnas.controller.spaces import SearchSpace

if TYPE_CHECKING:
    from torch import nn


class SupernetEstimator(DeployableEstimator):
    """Validation accuracy of the subnet ``arch`` of a trained supernet (see module doc).

    ``dataset`` must be the one the supernet was trained on (checked by
    hash). ``estimate`` raises SupernetError for a space other than the
    supernet's. :meth:`deployable` is the materialised subnet (inherited
    weights, BN recalibrated on the same batches as ``estimate``'s).
    """

    name = "supernet"
    cost: ClassVar[str] = (
        "bn_batches forward passes (BN recalibration) + one validation pass, no training"
    )

    def __init__(
        self, trained: TrainedSupernet, dataset: Dataset, *, eval_config: EvalConfig | None = None
    ) -> None:
        self.trained = trained
        self.dataset = dataset
        self.data = trained.prepare(dataset)
        self.eval_config = eval_config or EvalConfig()
        self.max_val_samples = self.eval_config.max_val_samples
        self.seed = self.eval_config.seed

    def _check_space(self, space: SearchSpace) -> None:
        mine = self.trained.net.space.identity()
        if space.identity() != mine:
            raise SupernetError(
                f"supernet {self.trained.manifest.key} covers {mine!r}, not {space.identity()!r}"
            )

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        self._check_space(space)
        return subnet_accuracy(self.trained.net, arch, self.data, self.eval_config)

    def deployable(self, space: SearchSpace, arch: Any) -> nn.Module:
        """The subnet :meth:`estimate` scores as a stand-alone ``space.build(arch)`` module."""
        self._check_space(space)
        return materialised_subnet(self.trained.net, arch, self.data, self.eval_config)

    @classmethod
    def from_store(
        cls,
        root: str | Path,
        space: SearchSpace,
        dataset: Dataset,
        config: TrainConfig | None = None,
        *,
        eval_config: EvalConfig | None = None,
        progress: ProgressCallback | None = None,
    ) -> SupernetEstimator:
        """The estimator of the supernet stored under ``root``, trained first when needed."""
        trained = SupernetStore(root).get_or_train(
            space, dataset, config, eval_config=eval_config, progress=progress
        )
        return cls(trained, dataset, eval_config=eval_config)


@dataclass(frozen=True)
class SubnetScore:
    """One evaluated subnet: its encoding, validation top-1 and the seconds it took."""

    encoding: str
    accuracy: float
    seconds: float


def evaluate_archs(
    estimator: SupernetEstimator,
    archs: Sequence[Any],
    *,
    progress: ProgressCallback | None = None,
) -> list[SubnetScore]:
    """Score every arch of ``archs`` in order; ``progress`` after each (phase ``"eval"``)."""
    space = estimator.trained.net.space
    out = []
    started = time.monotonic()
    for n, arch in enumerate(archs, start=1):
        encoding = space.encode(arch)
        t0 = time.monotonic()
        accuracy = estimator.estimate(space, arch)
        out.append(SubnetScore(encoding, accuracy, time.monotonic() - t0))
        if progress is not None:
            seconds = time.monotonic() - started
            progress(SupernetProgress("eval", 0, 0, n, len(archs), accuracy, seconds, encoding))
    return out
