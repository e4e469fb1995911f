"""Stored supernets: one folder per (space, dataset, training config), reused across searches.

Layout: ``<root>/<key>/checkpoint.pt`` (the training checkpoint, see
``_train.py``) and ``<root>/<key>/manifest.json`` (``_manifest.py``), with
``key`` from :func:`~._registry.supernet_key`. :meth:`SupernetStore.get_or_train`
returns the stored supernet when its training is complete, resumes it when a
run was interrupted, and trains it otherwise. Training holds an exclusive
``flock`` on ``<root>/<key>/.lock``, so two processes asking for the same
supernet train it once: the second waits, then loads. Readers need no lock:
both files are replaced atomically, the manifest after the checkpoint.
"""

from __future__ import annotations

import dataclasses
import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fleetnas.controller.accuracy._data import Dataset
from fleetnas.controller.accuracy.supernet._base import Supernet
from fleetnas.controller.accuracy.supernet._config import EvalConfig, TrainConfig
from fleetnas.controller.accuracy.supernet._errors import SupernetError, SupernetNotFound
from fleetnas.controller.accuracy.supernet._eval import subnet_accuracy
from fleetnas.controller.accuracy.supernet._inputs import PreparedData, dataset_hash
from fleetnas.controller.accuracy.supernet._manifest import Manifest, utc_now
from fleetnas.controller.accuracy.supernet._registry import (
    build_supernet,
    resolved,
    supernet_class,
    supernet_key,
)
from fleetnas.controller.accuracy.supernet._train import (
    ProgressCallback,
    TrainOutcome,
    load_checkpoint,
    train,
)
from fleetnas.controller.spaces import SearchSpace, get_space

CHECKPOINT = "checkpoint.pt"
MANIFEST = "manifest.json"
LOCK = ".lock"


@dataclass
class TrainedSupernet:
    """A supernet with its weights loaded, its manifest and its folder."""

    net: Supernet
    manifest: Manifest
    path: Path

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.manifest.config)

    def prepare(self, dataset: Dataset) -> PreparedData:
        """``dataset`` prepared as in training; SupernetError when it is not the training data."""
        if dataset_hash(dataset) != self.manifest.dataset["hash"]:
            raise SupernetError(
                f"supernet {self.manifest.key} was trained on dataset "
                f"{self.manifest.dataset['name']!r} ({self.manifest.dataset['hash'][:12]}), "
                f"not on {dataset.name!r}: train one for this dataset"
            )
        config = self.config
        return PreparedData(dataset, max_train_samples=config.max_train_samples, seed=config.seed)


class SupernetStore:
    """The supernets under ``root`` (created on first write). See the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def key(self, space: SearchSpace, dataset: Dataset, config: TrainConfig | None = None) -> str:
        return supernet_key(space, dataset_hash(dataset), config or TrainConfig())

    def folder(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise SupernetNotFound(f"not a supernet key: {key!r}")
        return self.root / key

    def manifests(self) -> list[Manifest]:
        """Every stored supernet's manifest (complete or not), sorted by key."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            if (folder / MANIFEST).is_file():
                found.append(Manifest.read(folder / MANIFEST))
        return found

    def manifest(self, key: str) -> Manifest:
        """The manifest of ``key``; SupernetNotFound when there is none."""
        path = self.folder(key) / MANIFEST
        if not path.is_file():
            raise SupernetNotFound(
                f"no supernet {key!r} under {self.root}; `fleetnas supernet show` lists them"
            )
        return Manifest.read(path)

    def load(self, key: str) -> TrainedSupernet:
        """The completely trained supernet ``key``; SupernetNotFound when missing or unfinished."""
        manifest = self.manifest(key)
        if not manifest.complete:
            raise SupernetNotFound(
                f"supernet {key} is trained {manifest.epochs_done}/{manifest.epochs} epochs; "
                "train it again (the same command) to resume"
            )
        space = get_space(manifest.space_name, manifest.space_config or None)
        if space.identity() != manifest.space:
            raise SupernetError(
                f"supernet {key}: space {manifest.space!r} now builds as {space.identity()!r}"
            )
        version = supernet_class(space).key_version(space)
        if manifest.supernet_version != version:
            raise SupernetError(
                f"supernet {key} was trained by {manifest.kind} supernet version "
                f"{manifest.supernet_version}, which scores {space.identity()} differently from "
                f"version {version}; train it again (the same command trains a new one under "
                f"a new key) and delete {self.folder(key)}"
            )
        config = TrainConfig.from_dict(manifest.config)
        net = build_supernet(space, int(manifest.dataset["num_classes"]), config)
        state = load_checkpoint(self.folder(key) / CHECKPOINT)
        net.load_state_dict(state["model"])
        return TrainedSupernet(net.eval(), manifest, self.folder(key))

    @contextmanager
    def _locked(self, key: str) -> Iterator[Path]:
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LOCK, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def get_or_train(
        self,
        space: SearchSpace,
        dataset: Dataset,
        config: TrainConfig | None = None,
        *,
        eval_config: EvalConfig | None = None,
        progress: ProgressCallback | None = None,
    ) -> TrainedSupernet:
        """The supernet of (space, dataset, config): loaded, resumed or trained (see module doc).

        ``eval_config`` scores the largest and smallest subnets for the
        manifest once training completes.
        """
        config = resolved(config or TrainConfig(), space)
        supernet_class(space)  # SupernetError before any folder is made
        data_hash = dataset_hash(dataset)
        key = supernet_key(space, data_hash, config)
        with self._locked(key) as folder:
            path = folder / MANIFEST
            manifest = Manifest.read(path) if path.is_file() else None
            if manifest is not None and manifest.complete:
                return self.load(key)
            if manifest is None:
                manifest = _new_manifest(key, space, dataset, data_hash, config)
                manifest.write(path)
            return self._train(space, dataset, config, manifest, folder, eval_config, progress)

    def _train(
        self,
        space: SearchSpace,
        dataset: Dataset,
        config: TrainConfig,
        manifest: Manifest,
        folder: Path,
        eval_config: EvalConfig | None,
        progress: ProgressCallback | None,
    ) -> TrainedSupernet:
        net = build_supernet(space, dataset.num_classes, config)
        data = PreparedData(dataset, max_train_samples=config.max_train_samples, seed=config.seed)
        current = manifest

        def on_epoch(outcome: TrainOutcome) -> None:
            nonlocal current
            current = _updated(
                current, epochs_done=outcome.epochs_done, epoch_seconds=list(outcome.epoch_seconds)
            )
            current.write(folder / MANIFEST)

        train(net, data, config, folder / CHECKPOINT, progress=progress, on_epoch=on_epoch)
        evaluation = eval_config or EvalConfig()
        started = time.monotonic()
        accuracy = {
            "largest": subnet_accuracy(net, net.largest(), data, evaluation),
            "smallest": subnet_accuracy(net, net.smallest(), data, evaluation),
        }
        current = _updated(
            current,
            accuracy=accuracy,
            eval_config=evaluation.to_dict(),
            eval_seconds=(time.monotonic() - started) / 2,
        )
        current.write(folder / MANIFEST)
        return TrainedSupernet(net.eval(), current, folder)


def _new_manifest(
    key: str, space: SearchSpace, dataset: Dataset, data_hash: str, config: TrainConfig
) -> Manifest:
    cls = supernet_class(space)
    now = utc_now()
    return Manifest(
        key=key,
        kind=cls.kind,
        supernet_version=cls.key_version(space),
        space=space.identity(),
        space_name=space.name,
        space_config=space.config(),
        space_version=space.version,
        dataset={
            "name": dataset.name,
            "hash": data_hash,
            "num_classes": dataset.num_classes,
            "train": len(dataset.y_train),
            "val": len(dataset.y_val),
            "image_shape": list(dataset.image_shape),
        },
        config=config.to_dict(),
        epochs=config.epochs,
        torch_version=torch.__version__,
        created=now,
        updated=now,
    )


def _updated(manifest: Manifest, **changes: Any) -> Manifest:
    return dataclasses.replace(manifest, updated=utc_now(), **changes)
