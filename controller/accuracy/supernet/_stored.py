"""The supernet estimator of a search: trained on first use, or reused from the store.

``--accuracy supernet:DATA[,epochs=N,...]`` makes a :class:`StoredSupernetEstimator`.
Its :meth:`~StoredSupernetEstimator.prepare` (run once by the search before
its first estimate) gets the space's supernet from the :class:`SupernetStore`
under ``workdir/supernets`` (the cost DB's folder: the same store that
``fleetnas supernet train|eval|show`` uses): loaded when a completely
trained one of the same (space, dataset hash, training config) is there,
resumed when a run was interrupted, trained otherwise, with progress. From
then on each estimate is a :class:`SupernetEstimator` evaluation: inherited
weights, BN recalibrated, validation top-1 in [0, 1].

On an executor (``--executor local|ray``) the same two phases are tasks
(:mod:`fleetnas.controller.executor`): :class:`SupernetTraining` (executor
kind ``supernet_train``) trains the supernet into the store once, as one
task, and :func:`stored_subnet_estimator` (kind ``supernet``) scores one
candidate per task on the stored supernet, never training it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fleetnas.controller.accuracy._base import (
    AccuracyEstimator,
    DeployableEstimator,
    EstimatorSetup,
)
from fleetnas.controller.accuracy._data import Dataset, load_dataset
from fleetnas.controller.accuracy.supernet._config import EvalConfig, TrainConfig
from fleetnas.controller.accuracy.supernet._errors import SupernetNotFound
from fleetnas.controller.accuracy.supernet._estimator import SupernetEstimator
from fleetnas.controller.accuracy.supernet._registry import resolved
from fleetnas.controller.accuracy.supernet._store import SupernetStore
from fleetnas.controller.accuracy.supernet._train import SupernetProgress
from fleetnas.controller.spaces import SearchSpace

if TYPE_CHECKING:
    from torch import nn

#: the store's folder under an estimator's workdir
STORE_FOLDER = "supernets"

_TRAIN_KEYS = ("epochs", "batch_size", "max_train_samples", "seed", "lr")
_EVAL_KEYS = {"max_val_samples": "max_val_samples", "bn_batches": "bn_batches",
              "eval_batch_size": "batch_size", "seed": "seed"}


def store_root(workdir: Path | None) -> Path:
    """Where the supernets of a project live: ``workdir/supernets`` (``./supernets``)."""
    return (workdir or Path(".")) / STORE_FOLDER


class StoredSupernetEstimator(DeployableEstimator):
    """A supernet's subnet accuracy, the supernet coming from the store (see module doc).

    ``estimate`` (or ``deployable``: the materialised subnet) before
    ``prepare`` prepares with the default setup (``./supernets``, no progress).
    Preparing again for the same space and store does nothing more and returns
    the first call's lines (a command that trains the supernet as a step of its
    own hands the estimator to the search, which prepares it again).
    """

    name = "supernet"
    cost: ClassVar[str] = "training the supernet once; then a BN recalibration + one validation pass"

    def __init__(self, dataset: Dataset, train_config: TrainConfig,
                 eval_config: EvalConfig | None = None) -> None:
        self.dataset = dataset
        self.train_config = train_config
        self.eval_config = eval_config or EvalConfig()
        self.max_val_samples = self.eval_config.max_val_samples
        self.seed = self.eval_config.seed
        self._ready: SupernetEstimator | None = None
        #: (store root, space identity) prepared for, and what prepare said
        self._prepared_for: tuple[Path, str, list[str]] | None = None

    @classmethod
    def from_options(cls, data: str, options: Mapping[str, int | float]) -> StoredSupernetEstimator:
        """From a spec's parts: ``data`` for :func:`load_dataset`, ``options`` TrainConfig
        fields (``epochs``, ``batch_size``, ``max_train_samples``, ``seed``, ``lr``) and
        EvalConfig's (``max_val_samples``, ``bn_batches``, ``eval_batch_size``). ValueError
        for a bad value; DatasetError for data that cannot be loaded."""
        train = TrainConfig(**{k: options[k] for k in _TRAIN_KEYS if k in options})  # type: ignore[arg-type]
        evaluation = EvalConfig(**{field: options[k] for k, field in _EVAL_KEYS.items()  # type: ignore[arg-type]
                                   if k in options})
        return cls(load_dataset(data), train, evaluation)

    def prepare(self, space: SearchSpace, setup: EstimatorSetup) -> list[str]:
        """Load, resume or train the supernet; one line saying which, with its key and folder."""
        store = SupernetStore(store_root(setup.workdir))
        done = self._prepared_for
        if done is not None and done[:2] == (store.root.resolve(), space.identity()):
            return list(done[2])
        config = resolved(self.train_config, space)
        key = store.key(space, self.dataset, config)
        try:
            before = store.manifest(key)
        except SupernetNotFound:
            before = None
        progress = setup.progress

        def on_progress(p: SupernetProgress) -> None:
            if progress is not None and p.phase == "train":
                progress("supernet training", (p.epoch - 1) * p.steps + p.step,
                         p.epochs * p.steps, f"epoch {p.epoch}/{p.epochs}, loss {p.loss:.3f}")

        self._ready = SupernetEstimator.from_store(
            store.root, space, self.dataset, config, eval_config=self.eval_config,
            progress=on_progress,
        )  # fmt: skip
        manifest = self._ready.trained.manifest
        if before is not None and before.complete:
            how = "reused"
        elif before is not None:
            how = f"resumed at epoch {before.epochs_done} and trained"
        else:
            how = "trained"
        accuracy = ", ".join(f"{k} subnet {v:.3f}" for k, v in (manifest.accuracy or {}).items())
        lines = [f"supernet {key} ({how}: {manifest.epochs_done} epochs on {self.dataset.name}; "
                 f"validation accuracy {accuracy or '-'}) in {store.root}"]
        self._prepared_for = (store.root.resolve(), space.identity(), lines)
        return list(lines)

    def _prepared(self, space: SearchSpace) -> SupernetEstimator:
        if self._ready is None:
            self.prepare(space, EstimatorSetup())
        assert self._ready is not None
        return self._ready

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        return self._prepared(space).estimate(space, arch)

    def deployable(self, space: SearchSpace, arch: Any) -> nn.Module:
        return self._prepared(space).deployable(space, arch)


def stored_subnet_estimator(dataset: Dataset, *, store: str, supernet: str,
                            eval_config: Mapping[str, Any] | None = None) -> SupernetEstimator:
    """The estimator of the completely trained supernet ``supernet`` (a store key) under
    ``store``, scoring with EvalConfig ``eval_config``: what an executor's ``supernet`` task runs.

    SupernetNotFound when the store lacks it (a multi-node cluster needs the store on
    shared storage); SupernetError when ``dataset`` is not its training data.
    """
    trained = SupernetStore(store).load(supernet)
    return SupernetEstimator(trained, dataset, eval_config=EvalConfig.from_dict(dict(eval_config or {})))


class SupernetTraining(AccuracyEstimator):
    """Trains the space's supernet into ``store`` on first use (or loads a complete one),
    then scores archs on it: what an executor's ``supernet_train`` task runs.

    ``estimate(space, arch)`` is :meth:`SupernetStore.get_or_train` (resuming the
    per-epoch checkpoint of an interrupted run; the store's lock makes two processes
    train once) followed by ``arch``'s :func:`~._eval.subnet_accuracy` with ``eval_config``.
    """

    name = "supernet_train"
    cost: ClassVar[str] = "training the supernet once (when the store lacks it); then one subnet score"

    def __init__(self, store: str | Path, dataset: Dataset, train_config: TrainConfig,
                 eval_config: EvalConfig | None = None) -> None:
        self.store = SupernetStore(store)
        self.dataset = dataset
        self.train_config = train_config
        self.eval_config = eval_config or EvalConfig()

    @classmethod
    def from_options(cls, dataset: Dataset, *, store: str, train_config: Mapping[str, Any],
                     eval_config: Mapping[str, Any] | None = None) -> SupernetTraining:
        """From an executor task's options (TrainConfig and EvalConfig as dicts)."""
        return cls(store, dataset, TrainConfig.from_dict(dict(train_config)),
                   EvalConfig.from_dict(dict(eval_config or {})))

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        # the store is asked every time (not a cached net): a worker kept alive must train
        # again a supernet someone deleted since, for the scoring tasks that load it
        trained = self.store.get_or_train(space, self.dataset, self.train_config,
                                          eval_config=self.eval_config)
        return SupernetEstimator(trained, self.dataset, eval_config=self.eval_config).estimate(
            space, arch)
