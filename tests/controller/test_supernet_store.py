"""Stored supernets: keys, reuse, resume after SIGKILL, manifests, the estimator, rank correlation."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from fleetnas.controller.accuracy import AccuracyEstimator, Dataset, load_digits
from fleetnas.controller.accuracy.supernet import (
    EvalConfig,
    SupernetError,
    SupernetEstimator,
    SupernetNotFound,
    SupernetProgress,
    SupernetStore,
    TrainConfig,
    dataset_hash,
    evaluate_archs,
    rank_correlation,
    supernet_key,
)
from fleetnas.controller.spaces import NB201Space, SearchSpace
from tests.controller.test_search_toyspace import ToySpace
from tests.controller.test_supernet import single_thread  # noqa: F401 - autouse fixture

SPACE = NB201Space(channels=4, cells_per_stage=1)
CONFIG = TrainConfig(epochs=3, batch_size=64, lr=0.1, seed=3, max_train_samples=384)
EVAL = EvalConfig(bn_batches=2, batch_size=64, max_val_samples=120)

# Trains CONFIG in a child process and blocks (waiting for SIGKILL) at epoch 2 step 2.
CHILD = """
import sys
import torch
torch.set_num_threads(1)
from fleetnas.controller.accuracy import load_digits
from fleetnas.controller.accuracy.supernet import EvalConfig, SupernetStore, TrainConfig
from fleetnas.controller.spaces import NB201Space

def progress(p):
    if p.epoch == 2 and p.step == 2:
        print("epoch 2 step 2", flush=True)
        sys.stdin.readline()

config = TrainConfig(**__CONFIG__)
SupernetStore(sys.argv[1]).get_or_train(
    NB201Space(channels=4, cells_per_stage=1), load_digits(), config,
    eval_config=EvalConfig(**__EVAL__), progress=progress,
)
print("finished", flush=True)
"""


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits()


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_key_changes_with_config_data_and_space(digits: Dataset) -> None:
    h = dataset_hash(digits)
    key = supernet_key(SPACE, h, CONFIG)
    assert key.startswith("nb201-") and len(key) == len("nb201-") + 16
    assert supernet_key(NB201Space(channels=4, cells_per_stage=1), h, dataclasses.replace(CONFIG)) == key
    # None means the supernet's default rule: the same training, the same key
    assert supernet_key(SPACE, h, dataclasses.replace(CONFIG, sampling="uniform")) == key
    for change in ({"epochs": 4}, {"lr": 0.05}, {"seed": 4}, {"sampling": "sandwich"},
                   {"max_train_samples": None}):  # fmt: skip
        assert supernet_key(SPACE, h, dataclasses.replace(CONFIG, **change)) != key, change
    assert supernet_key(NB201Space(channels=8, cells_per_stage=1), h, CONFIG) != key
    x = digits.x_train.copy()
    x[0, 0, 0, 0] += 0.5
    one_pixel = Dataset(x, digits.y_train, digits.x_val, digits.y_val, 10, "digits")
    assert dataset_hash(one_pixel) != h
    assert supernet_key(SPACE, dataset_hash(one_pixel), CONFIG) != key
    renamed = Dataset(digits.x_train, digits.y_train, digits.x_val, digits.y_val, 10, "other")
    assert dataset_hash(renamed) == h


def test_trained_once_then_reused(tmp_path: Path, digits: Dataset) -> None:
    store = SupernetStore(tmp_path / "supernets")
    seen: list[SupernetProgress] = []
    trained = store.get_or_train(SPACE, digits, CONFIG, eval_config=EVAL, progress=seen.append)
    assert len(seen) == 3 * 6 and {p.phase for p in seen} == {"train"}
    m = trained.manifest
    assert m.complete and m.epochs_done == 3 and len(m.epoch_seconds) == 3
    assert m.key == store.key(SPACE, digits, CONFIG) == trained.path.name
    assert m.space == SPACE.identity() and m.kind == "nb201" and m.config["sampling"] == "uniform"
    assert m.dataset["hash"] == dataset_hash(digits) and m.dataset["num_classes"] == 10
    assert m.eval_config == EVAL.to_dict() and m.accuracy is not None
    assert sorted(m.accuracy) == ["largest", "smallest"]
    assert all(0.0 <= v <= 1.0 for v in m.accuracy.values()) and m.eval_seconds
    on_disk = json.loads((trained.path / "manifest.json").read_text())
    assert on_disk["accuracy"] == m.accuracy and on_disk["epochs_done"] == 3
    assert sorted(p.name for p in trained.path.iterdir()) == [".lock", "checkpoint.pt", "manifest.json"]

    again: list[SupernetProgress] = []
    reused = SupernetStore(tmp_path / "supernets").get_or_train(
        SPACE, digits, CONFIG, eval_config=EVAL, progress=again.append
    )
    assert again == [] and reused.manifest == m and _same_weights(reused.net, trained.net)
    assert [x.key for x in store.manifests()] == [m.key]

    # the manifest's figure is what the estimator computes from the stored weights
    estimator = SupernetEstimator(reused, digits, eval_config=EVAL)
    assert estimator.estimate(SPACE, reused.net.largest()) == m.accuracy["largest"]
    archs = [SPACE.sample(random.Random(i)) for i in range(3)]
    events: list[SupernetProgress] = []
    scores = evaluate_archs(estimator, archs, progress=events.append)
    assert [0.0 <= s.accuracy <= 1.0 and s.seconds > 0 for s in scores] == [True] * 3
    assert [(e.phase, e.step, e.steps, e.detail) for e in events] == [
        ("eval", i + 1, 3, SPACE.encode(a)) for i, a in enumerate(archs)
    ]
    assert [e.loss for e in events] == [s.accuracy for s in scores]


def test_killed_training_resumes_to_the_same_weights(
    tmp_path: Path, digits: Dataset
) -> None:
    killed_root = tmp_path / "killed"
    script = CHILD.replace("__CONFIG__", repr(CONFIG.to_dict())).replace(
        "__EVAL__", repr(EVAL.to_dict())
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(killed_root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "epoch 2 step 2\n", (line, child.stderr.read() if child.stderr else "")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    store = SupernetStore(killed_root)
    key = store.key(SPACE, digits, CONFIG)
    interrupted = store.manifest(key)
    assert interrupted.epochs_done == 1 and not interrupted.complete
    with pytest.raises(SupernetNotFound, match="trained 1/3 epochs"):
        store.load(key)

    seen: list[SupernetProgress] = []
    resumed = store.get_or_train(SPACE, digits, CONFIG, eval_config=EVAL, progress=seen.append)
    assert [p.epoch for p in seen] == [2] * 6 + [3] * 6  # epoch 1 is not trained again
    uninterrupted = SupernetStore(tmp_path / "straight").get_or_train(
        SPACE, digits, CONFIG, eval_config=EVAL
    )
    assert _same_weights(resumed.net, uninterrupted.net)
    assert resumed.manifest.accuracy == uninterrupted.manifest.accuracy
    assert resumed.manifest.epochs_done == 3 and len(resumed.manifest.epoch_seconds) == 3


def test_store_errors_name_the_fix(tmp_path: Path, digits: Dataset) -> None:
    store = SupernetStore(tmp_path)
    with pytest.raises(SupernetNotFound, match="supernet show"):
        store.manifest("nb201-0000")
    with pytest.raises(SupernetNotFound, match="not a supernet key"):
        store.manifest("../etc")

    key = store.key(SPACE, digits, CONFIG)
    folder = tmp_path / key
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SupernetError, match="unreadable supernet checkpoint.*delete its folder"):
        store.get_or_train(SPACE, digits, CONFIG, eval_config=EVAL)
    (folder / "manifest.json").write_text("{")
    with pytest.raises(SupernetError, match="unreadable supernet manifest"):
        store.manifests()
    with pytest.raises(SupernetError, match="supernets exist for: mbv3, nb201"):
        store.get_or_train(ToySpace(), digits, CONFIG)
    assert not (tmp_path / "toy").exists()


class _ParamsEstimator(AccuracyEstimator):
    """A cheap reference: the parameter count (sign ``+1``) or its negation."""

    name = "params"
    cost: ClassVar[str] = "counting"

    def __init__(self, sign: float) -> None:
        self.sign = sign

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        return self.sign * space.count_params(arch)


def test_estimator_contract_and_rank_correlation(tmp_path: Path, digits: Dataset) -> None:
    trained = SupernetStore(tmp_path).get_or_train(SPACE, digits, CONFIG, eval_config=EVAL)
    estimator = SupernetEstimator(trained, digits, eval_config=EVAL)
    with pytest.raises(SupernetError, match="covers 'nb201.*not 'nb201"):
        estimator.estimate(NB201Space(channels=8), SPACE.sample(random.Random(0)))
    shuffled = Dataset(digits.x_train[::-1].copy(), digits.y_train[::-1].copy(),
                       digits.x_val, digits.y_val, 10, "shuffled")  # fmt: skip
    with pytest.raises(SupernetError, match="trained on dataset 'digits'.*not on 'shuffled'"):
        SupernetEstimator(trained, shuffled)
    objective = estimator.as_objective(SPACE)
    arch = SPACE.sample(random.Random(2))
    assert objective.fn(arch) == estimator.estimate(SPACE, arch)  # type: ignore[attr-defined]

    archs = [SPACE.sample(random.Random(i)) for i in range(6)]
    counted = rank_correlation(SPACE, archs, _ParamsEstimator(1), _ParamsEstimator(1))
    params = [SPACE.count_params(a) for a in archs]
    if len(set(params)) > 1:
        assert counted.tau == 1.0
        reversed_ = rank_correlation(SPACE, archs, _ParamsEstimator(1), _ParamsEstimator(-1))
        assert reversed_.tau == -1.0
    calls: list[int] = []
    result = rank_correlation(
        SPACE, archs, estimator, _ParamsEstimator(1), on_arch=lambda i, *_: calls.append(i)
    )
    assert calls == list(range(6)) and len(result.scores) == 6
    assert result.tau is None or -1.0 <= result.tau <= 1.0
    assert result.seconds_per_arch > 0
    assert np.allclose(result.reference, params)
