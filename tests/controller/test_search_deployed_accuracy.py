"""Accuracy as deployed in a trained search with precision genes (issue 12, item 3), on two agents.

Two loopback agents (``d0`` sent int8 only, ``d1`` fp32 only), NAS-Bench-201
with 8 channels and one cell per stage, ``--accuracy train:digits`` with one
epoch on a few samples. Each trial's per-target values are checked against
the models themselves: the int8 model the value names (by sha256, in the
variant cache) is found on disk, detected as int8, and evaluated again with
``compress.evaluate_onnx``; the objective is the worst target's.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fleetnas.controller.accuracy import ShortTrainingEstimator, load_dataset
from fleetnas.controller.cli import main
from fleetnas.controller.compress import Precision, detect_precision, evaluate_onnx
from fleetnas.controller.driver import DEPLOYED_NOTE, DeployedModels, DeployedScorer
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.local_agents import LocalAgent, start_local_agents, stop_local_agents
from fleetnas.controller.spaces import PrecisionArch, PrecisionSpace, SearchSpace, get_space

SPACE_CONFIG = {"channels": 8, "cells_per_stage": 1}
TINY = ["--warmup", "1", "--min-runs", "3", "--max-runs", "5", "--min-duration", "0",
        "--max-duration", "0.05"]
VAL_SAMPLES = 120
TRAIN = f"train:digits,epochs=1,max_train_samples=256,batch_size=16,max_val_samples={VAL_SAMPLES}"
#: int8 static QDQ calibrated on digits may lose some top-1 against fp32, never this much
DROP_TOLERANCE = 0.15


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "240"})


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("deployed-accuracy")
    agents: list[LocalAgent] = start_local_agents(2, root / "agents", name_prefix="d")
    try:
        path = root / "fleet.toml"
        save_fleet(Fleet.of([Device("d0", "cpu", agents[0].address),
                             Device("d1", "cpu", agents[1].address)]), path)
        yield path, root
    finally:
        stop_local_agents(agents)


def _variants(cache: Path) -> dict[str, bytes]:
    """sha256 -> bytes of every file in the variant cache."""
    out = {}
    for path in (cache / "variants").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            out[hashlib.sha256(data).hexdigest()] = data
    return out


def test_each_target_is_scored_as_deployed_and_the_objective_is_the_worst(
    fleet: tuple[Path, Path], tmp_path: Path
) -> None:
    fleet_path, root = fleet
    cache = tmp_path / "cache"
    result = invoke(
        "--db", str(tmp_path / "cost.db"), "search", "--space", "nb201", "--space-config",
        json.dumps(SPACE_CONFIG), "--fleet", str(fleet_path), "--cache-dir", str(cache), *TINY,
        "--quiet", "--no-plot", "--mode", "measured", "--accuracy", TRAIN,
        "--precision", "int8", "--device", "d0", "--device", "d1:precision=fp32",
        "--budget", "3", "--population", "3", "--seed", "2",
        "--json", str(tmp_path / "s.json"), "--csv", str(tmp_path / "s.csv"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert DEPLOYED_NOTE in result.output and "precision not evaluated" not in result.output
    assert "calibrated on random" not in result.output  # int8 calibrated on digits

    document = json.loads((tmp_path / "s.json").read_text())
    assert document["search"]["notes"][0] == DEPLOYED_NOTE
    trials = document["trials"]
    assert len(trials) == 3
    variants = _variants(cache)
    digits = load_dataset("digits")
    for t in trials:
        assert t["precision"] == {"d0": "int8", "d1": "fp32"}
        worst = min(t["accuracy[d0]"], t["accuracy[d1]"])
        assert t["accuracy"] == worst  # a net is only as good as its worst deployment
        assert t["accuracy_drop[d1]"] == 0.0  # the fp32 target is the reference
        # the drop is fp32's top-1 minus int8's, on the same validation samples
        assert t["accuracy_drop[d0]"] == pytest.approx(t["accuracy[d1]"] - t["accuracy[d0]"])
        assert abs(t["accuracy_drop[d0]"]) <= DROP_TOLERANCE
        source = t["sources"]["accuracy[d0]"]
        assert source.startswith("deployed:")
        model = variants[source.removeprefix("deployed:")]  # the stored int8 variant
        assert detect_precision(model).precision == Precision.INT8
        again = evaluate_onnx(model, digits, max_samples=VAL_SAMPLES, seed=0)
        assert again.samples == VAL_SAMPLES
        assert again.top1 == t["accuracy[d0]"]
        # the evaluated int8 model is no model a device measured (its weights are trained)
        assert source.removeprefix("deployed:") != t["model_sha256"]

    with (tmp_path / "s.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {"accuracy[d0]", "accuracy[d1]", "accuracy_drop[d0]"} <= set(rows[0])
    by_id = {t["candidate_id"]: t for t in trials}
    for row in rows:
        assert float(row["accuracy[d0]"]) == by_id[int(row["candidate_id"])]["accuracy[d0]"]


def test_calibration_data_that_does_not_fit_the_trained_net_stops_the_search(
    fleet: tuple[Path, Path], tmp_path: Path
) -> None:
    import numpy as np

    data = tmp_path / "small.npz"  # 16x16 images for a 32x32 input
    np.savez(data, x=np.zeros((4, 3, 16, 16), dtype=np.float32))
    fleet_path, _ = fleet
    result = invoke(
        "--db", str(tmp_path / "cost.db"), "search", "--space", "nb201", "--space-config",
        json.dumps(SPACE_CONFIG), "--fleet", str(fleet_path), "--cache-dir",
        str(tmp_path / "cache"), *TINY, "--quiet", "--no-plot", "--mode", "measured",
        "--accuracy", "train:digits,epochs=1,max_train_samples=32,max_val_samples=8",
        "--device", "d0:precision=int8", "--calibration", str(data),
        "--budget", "2", "--population", "2",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "calibration:" in result.output and "(check --calibration)" in result.output
    assert "Traceback" not in result.output


class CountingEstimator(ShortTrainingEstimator):
    """The real estimator, counting its trainings."""

    trainings = 0

    def train(self, space: SearchSpace, arch: Any) -> Any:
        self.trainings += 1
        return super().train(space, arch)


def test_members_that_differ_only_in_precision_are_trained_once(tmp_path: Path) -> None:
    space = PrecisionSpace(get_space("nb201", SPACE_CONFIG), {"a": ("int8", "fp32"),
                                                              "b": ("fp32",)})
    estimator = CountingEstimator(load_dataset("digits"), max_train_samples=64,
                                  max_val_samples=40, batch_size=16)
    scorer = DeployedScorer(estimator, DeployedModels(None, "digits", tmp_path))
    base = space.base.sample(random.Random(3))
    int8, _ = scorer.values(space, PrecisionArch(base, ("int8", "fp32")))
    fp32, sources = scorer.values(space, PrecisionArch(base, ("fp32", "fp32")))
    assert estimator.trainings == 1
    assert fp32["accuracy[a]"] == fp32["accuracy[b]"] == int8["accuracy[b]"] == fp32["accuracy"]
    assert int8["accuracy"] == min(int8["accuracy[a]"], int8["accuracy[b]"])
    assert int8["accuracy_drop[a]"] == pytest.approx(int8["accuracy[b]"] - int8["accuracy[a]"])
    assert sources["accuracy[a]"] == sources["accuracy[b]"]  # the same trained fp32 model


SUPERNET = ("supernet:digits,epochs=1,batch_size=32,max_train_samples=128,"
            f"max_val_samples={VAL_SAMPLES},bn_batches=1")


def test_a_supernet_search_scores_each_target_as_deployed(
    fleet: tuple[Path, Path], tmp_path: Path
) -> None:
    from fleetnas.controller.accuracy.supernet import EvalConfig, SupernetEstimator, SupernetStore
    from fleetnas.controller.export import OPSET, module_to_onnx
    from fleetnas.controller.spaces import split_precision_genes

    fleet_path, _ = fleet
    cache = tmp_path / "cache"
    result = invoke(
        "--db", str(tmp_path / "cost.db"), "search", "--space", "nb201", "--space-config",
        json.dumps(SPACE_CONFIG), "--fleet", str(fleet_path), "--cache-dir", str(cache), *TINY,
        "--quiet", "--no-plot", "--mode", "measured", "--accuracy", SUPERNET,
        "--precision", "int8", "--device", "d0", "--device", "d1:precision=fp32",
        "--budget", "3", "--population", "3", "--seed", "4", "--json", str(tmp_path / "s.json"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert DEPLOYED_NOTE in result.output and "unknown for a member" not in result.output
    assert "calibrated on random" not in result.output  # int8 calibrated on digits

    trials = json.loads((tmp_path / "s.json").read_text())["trials"]
    assert len(trials) == 3
    # the subnet as the supernet materialises it (inherited weights, BN recalibrated)
    store = SupernetStore(tmp_path / "supernets")
    (manifest,) = store.manifests()
    digits = load_dataset("digits")
    reference = SupernetEstimator(store.load(manifest.key), digits,
                                  eval_config=EvalConfig(bn_batches=1, max_val_samples=VAL_SAMPLES))
    space = get_space("nb201", SPACE_CONFIG)
    variants = _variants(cache)
    for t in trials:
        assert t["precision"] == {"d0": "int8", "d1": "fp32"}
        assert t["supernet accuracy (held-out digits)"] == min(t["accuracy[d0]"], t["accuracy[d1]"])
        assert t["accuracy_drop[d1]"] == 0.0
        assert t["accuracy_drop[d0]"] == pytest.approx(t["accuracy[d1]"] - t["accuracy[d0]"])
        assert abs(t["accuracy_drop[d0]"]) <= DROP_TOLERANCE
        arch = space.decode(split_precision_genes(t["arch"])[0])
        fp32 = module_to_onnx(reference.deployable(space, arch),
                              tuple(space.input_shape(arch)), OPSET)
        assert evaluate_onnx(fp32, digits, max_samples=VAL_SAMPLES).top1 == t["accuracy[d1]"]
        source = t["sources"]["accuracy[d0]"]
        assert source.startswith("deployed:")
        model = variants[source.removeprefix("deployed:")]  # the int8 model onnxruntime ran
        assert detect_precision(model).precision == Precision.INT8
        assert evaluate_onnx(model, digits, max_samples=VAL_SAMPLES).top1 == t["accuracy[d0]"]
