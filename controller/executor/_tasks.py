"""An evaluation task: a picklable, JSON-safe description of one accuracy evaluation.

An :class:`EvalTask` names *what* to compute, never a live object: the
estimator (:class:`EstimatorSpec`: a kind plus JSON-safe options), the search
space (name + config, as :func:`~fleetnas.controller.spaces.get_space`
takes), the arch (the space's string encoding), the dataset
(:class:`DatasetRef`, resolved by
:func:`~fleetnas.controller.accuracy.load_dataset` on the worker) and the
resources one run needs (:class:`Resources`). So a task crosses a process or
network boundary as a few hundred bytes, and the worker rebuilds the same
estimator, space and data it would have built locally.

Estimator kinds: the names in :data:`ESTIMATOR_KINDS` (``naswot``,
``synflow``, ``short_training``, ``supernet``, ``supernet_train``,
``plugin``), or ``"module:function"``, a factory importable on the worker,
called as ``factory(dataset, **options)`` (``dataset`` is ``None`` when the
task has none) and returning an
:class:`~fleetnas.controller.accuracy.AccuracyEstimator`. A new built-in
kind is one entry in :data:`ESTIMATOR_KINDS`.

The two supernet kinds share a supernet store folder (option ``store``, a
path every worker reads and writes at the same place: shared storage on a
multi-node cluster). ``supernet_train`` (options ``store``,
``train_config``: a TrainConfig dict, ``eval_config``: an EvalConfig dict)
trains the supernet of the task's space and dataset into the store,
resuming its per-epoch checkpoint, or loads it when it is complete there,
and returns the task arch's accuracy on it. ``supernet`` (options
``store``, ``supernet``: the stored supernet's key, ``eval_config``) only
loads, never trains: a supernet missing from the store is the task's error.
Both keep the loaded supernet in the per-process estimator cache, so a
worker loads it once, not per candidate. The store's path is an option, so
it is part of a task's key (a moved project re-scores its candidates).

Identity: :attr:`EvalTask.key` is a sha256 over everything that decides the
value (estimator, space identity, arch, dataset) and nothing that does not
(``task_id``, ``resources``): it is what a result store keys finished
evaluations by, so a restarted search recognises work already done. Values
are deterministic for a key *and a thread count*: torch's intra-op thread
count (set from ``resources.cpus`` by :func:`execute`, the same in every
executor) can change the last bits of a training.

Worker side: :func:`execute` runs a task in the calling process and returns
an :class:`Outcome` (the value or the error text; never raises for the
task's own errors). It caches datasets, spaces and estimators per process,
so a worker that runs many tasks loads a dataset once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetnas.controller.accuracy import AccuracyEstimator, Dataset
    from fleetnas.controller.spaces import SearchSpace


def _json_safe(where: str, value: Mapping[str, Any]) -> dict[str, Any]:
    try:
        text = json.dumps(dict(value), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {dict(value)!r} is not JSON-safe ({exc})") from None
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Resources:
    """What one run of a task needs: CPUs (torch threads), GPUs, memory (MiB, Ray only)."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.cpus, (int, float)) and math.isfinite(self.cpus) and self.cpus > 0):
            raise ValueError(f"Resources: cpus={self.cpus!r}, expected a number > 0")
        if not (isinstance(self.gpus, (int, float)) and math.isfinite(self.gpus) and self.gpus >= 0):
            raise ValueError(f"Resources: gpus={self.gpus!r}, expected a number >= 0")
        if self.memory_mb is not None and (
            isinstance(self.memory_mb, bool) or not isinstance(self.memory_mb, int)
            or self.memory_mb < 1
        ):
            raise ValueError(f"Resources: memory_mb={self.memory_mb!r}, expected a positive int")

    @property
    def threads(self) -> int:
        """torch's intra-op thread count for a run: ``cpus`` rounded up, at least 1."""
        return max(1, math.ceil(self.cpus))


@dataclass(frozen=True)
class DatasetRef:
    """A dataset by reference: ``load_dataset(spec, val_fraction=..., seed=...)`` on the worker.

    ``spec`` is ``digits``, ``mnist5k``, ``synthetic``, a ``.npz`` path or an image-folder
    path; a path must name the same data on every worker (shared storage).
    """

    spec: str
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str) or not self.spec:
            raise ValueError(f"DatasetRef: spec={self.spec!r}, expected a non-empty string")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"DatasetRef: val_fraction={self.val_fraction!r}, expected (0, 1)")

    def load(self) -> Dataset:
        """The dataset (DatasetError when it cannot be read)."""
        return _load_dataset(self)


@dataclass(frozen=True, eq=True)
class EstimatorSpec:
    """An estimator by kind and options (see the module docstring). Not hashable; use ``key``."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ESTIMATOR_KINDS and not _is_factory_path(self.kind):
            raise ValueError(
                f"estimator kind {self.kind!r}: expected one of {', '.join(ESTIMATOR_KINDS)} "
                "or 'module:function' (a factory(dataset, **options) importable on the workers)"
            )
        object.__setattr__(self, "options", _json_safe(f"estimator {self.kind!r} options", self.options))

    def build(self, dataset: Dataset | None) -> AccuracyEstimator:
        """The estimator (imports torch); ValueError/EstimatorError/PluginError from the factory."""
        factory = ESTIMATOR_KINDS.get(self.kind) or _import_factory(self.kind)
        return factory(dataset, **self.options)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "options": dict(self.options)}


@dataclass(frozen=True, eq=True)
class EvalTask:
    """One evaluation (see the module docstring). Picklable; ``to_dict``/``from_dict`` round-trip JSON."""

    task_id: str
    estimator: EstimatorSpec
    space: str
    arch: str
    space_config: Mapping[str, Any] = field(default_factory=dict)
    dataset: DatasetRef | None = None
    resources: Resources = field(default_factory=Resources)

    def __post_init__(self) -> None:
        for name in ("task_id", "space", "arch"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"EvalTask: {name}={value!r}, expected a non-empty string")
        object.__setattr__(
            self, "space_config", _json_safe(f"task {self.task_id!r} space_config", self.space_config)
        )

    @classmethod
    def of(
        cls,
        task_id: str,
        space: SearchSpace,
        arch: Any,
        estimator: EstimatorSpec,
        *,
        dataset: DatasetRef | None = None,
        resources: Resources | None = None,
    ) -> EvalTask:
        """A task for ``arch`` of the live ``space`` (encoded here; rebuilt on the worker)."""
        return cls(task_id, estimator, space.name, space.encode(arch), space.config(), dataset,
                   resources or Resources())  # fmt: skip

    @property
    def key(self) -> str:
        """sha256 of what decides the value (not ``task_id``, not ``resources``)."""
        identity = {
            "estimator": self.estimator.to_dict(),
            "space": self.space,
            "space_config": dict(self.space_config),
            "arch": self.arch,
            "dataset": None if self.dataset is None else _dataclass_dict(self.dataset),
        }
        return hashlib.sha256(_canonical(identity).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "estimator": self.estimator.to_dict(),
            "space": self.space,
            "space_config": dict(self.space_config),
            "arch": self.arch,
            "dataset": None if self.dataset is None else _dataclass_dict(self.dataset),
            "resources": _dataclass_dict(self.resources),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalTask:
        estimator = data["estimator"]
        dataset = data.get("dataset")
        return cls(
            str(data["task_id"]),
            EstimatorSpec(str(estimator["kind"]), dict(estimator.get("options") or {})),
            str(data["space"]),
            str(data["arch"]),
            dict(data.get("space_config") or {}),
            None if dataset is None else DatasetRef(**dataset),
            Resources(**dict(data.get("resources") or {})),
        )


def _dataclass_dict(value: DatasetRef | Resources) -> dict[str, Any]:
    return dict(value.__dict__)


# -- estimator kinds ----------------------------------------------------------------
def _naswot(dataset: Dataset | None, **options: Any) -> AccuracyEstimator:
    from fleetnas.controller.accuracy import NaswotEstimator

    return NaswotEstimator(data=dataset, **options)


def _synflow(dataset: Dataset | None, **options: Any) -> AccuracyEstimator:
    from fleetnas.controller.accuracy import SynflowEstimator

    return SynflowEstimator(**options)


def _short_training(dataset: Dataset | None, **options: Any) -> AccuracyEstimator:
    from fleetnas.controller.accuracy import ShortTrainingEstimator

    if dataset is None:
        raise ValueError("estimator short_training needs a dataset: give the task a DatasetRef")
    return ShortTrainingEstimator(dataset, **options)


def _supernet(dataset: Dataset | None, **options: Any) -> AccuracyEstimator:
    from fleetnas.controller.accuracy.supernet import stored_subnet_estimator

    if dataset is None:
        raise ValueError("estimator supernet needs a dataset: give the task a DatasetRef")
    return stored_subnet_estimator(dataset, **options)


def _supernet_train(dataset: Dataset | None, **options: Any) -> AccuracyEstimator:
    from fleetnas.controller.accuracy.supernet import SupernetTraining

    if dataset is None:
        raise ValueError("estimator supernet_train needs a dataset: give the task a DatasetRef")
    return SupernetTraining.from_options(dataset, **options)


def _plugin(dataset: Dataset | None, **options: Any) -> AccuracyEstimator:
    from fleetnas.controller.accuracy import PluginEstimator

    if set(options) != {"spec"}:
        raise ValueError(f"estimator plugin takes one option, spec='module:function'; got {options}")
    return PluginEstimator(str(options["spec"]))


Factory = Callable[..., "AccuracyEstimator"]

#: built-in estimator kinds -> ``factory(dataset, **options)``
ESTIMATOR_KINDS: Mapping[str, Factory] = {
    "naswot": _naswot,
    "synflow": _synflow,
    "short_training": _short_training,
    "supernet": _supernet,
    "supernet_train": _supernet_train,
    "plugin": _plugin,
}

#: kinds whose result a :class:`~._results.EvaluationStore` does not keep: the supernet
#: store (checkpoint per epoch, manifest) is a supernet training's own record
STORED_ELSEWHERE = frozenset({"supernet_train"})


def _is_factory_path(kind: str) -> bool:
    module, sep, attr = kind.partition(":")
    return bool(sep and module and attr and ":" not in attr)


def _import_factory(path: str) -> Factory:
    from fleetnas.controller.accuracy import load_callable

    return load_callable(path)


# -- worker side --------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What one run of a task gave: ``value``, or ``error`` (the task's own failure)."""

    value: float | None
    error: str | None
    seconds: float
    worker: str


@functools.lru_cache(maxsize=4)
def _load_dataset(ref: DatasetRef) -> Dataset:
    from fleetnas.controller.accuracy import load_dataset

    return load_dataset(ref.spec, val_fraction=ref.val_fraction, seed=ref.seed)


@functools.lru_cache(maxsize=8)
def _space(name: str, config_json: str) -> SearchSpace:
    from fleetnas.controller.spaces import get_space

    return get_space(name, json.loads(config_json))


@functools.lru_cache(maxsize=8)
def _estimator(spec_json: str, dataset: DatasetRef | None) -> AccuracyEstimator:
    spec = json.loads(spec_json)
    data = None if dataset is None else _load_dataset(dataset)
    return EstimatorSpec(spec["kind"], spec["options"]).build(data)


def worker_label() -> str:
    """``host:pid`` of this process, as results name their worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


def execute(task: EvalTask) -> Outcome:
    """Run ``task`` here (torch threads = ``task.resources.threads``); never raises for task errors.

    Any exception from loading the data, building the space or estimator, or
    estimating is the task's own (deterministic) failure: it becomes
    ``Outcome.error`` (``"TypeName: message"``). Only the death of this
    process is left to the executor, which may retry it.
    """
    started = time.perf_counter()
    try:
        import torch

        torch.set_num_threads(task.resources.threads)
        space = _space(task.space, _canonical(dict(task.space_config)))
        arch = space.decode(task.arch)
        estimator = _estimator(_canonical(task.estimator.to_dict()), task.dataset)
        value = float(estimator.estimate(space, arch))
        if not math.isfinite(value):
            raise ValueError(f"the estimator returned {value}, not a finite number")
    except Exception as exc:  # noqa: BLE001 - the task's own failure, reported as data
        return Outcome(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started,
                       worker_label())  # fmt: skip
    return Outcome(value, None, time.perf_counter() - started, worker_label())
