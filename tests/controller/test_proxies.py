"""``compare_estimators`` and ``fleetnas proxies``: Kendall tau of estimators against a reference."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fleetnas.controller.accuracy import AccuracyEstimator, SynflowEstimator, compare_estimators
from fleetnas.controller.cli import main
from fleetnas.controller.spaces import SearchSpace, get_space

SPACE_CONFIG = {"channels": 4, "cells_per_stage": 1}
SPACE = get_space("nb201", SPACE_CONFIG)


class Scaled(AccuracyEstimator):
    """``factor × params`` (+ a constant): a known order to rank against."""

    name = "scaled"
    cost = "counting"

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        return self.factor * space.count_params(arch)


def test_each_estimator_is_ranked_against_one_reference_run() -> None:
    rng = random.Random(0)
    archs = [SPACE.sample(rng) for _ in range(12)]
    params = [SPACE.count_params(a) for a in archs]
    assert len(set(params)) > 3  # the sample has an order to find
    calls: list[str] = []
    comparison = compare_estimators(
        SPACE, archs, {"same": Scaled(2.0), "reversed": Scaled(-1.0), "constant": Scaled(0.0)},
        Scaled(1.0), reference_name="ref", on_score=lambda name, done, total: calls.append(name),
    )  # fmt: skip
    taus = {r.name: r.tau for r in comparison.rankings}
    assert taus["same"] == pytest.approx(1.0) and taus["reversed"] == pytest.approx(-1.0)
    assert taus["constant"] is None  # every score tied: undefined, not 0
    assert comparison.reference == tuple(float(p) for p in params)
    assert calls.count("ref") == 12 and calls.count("same") == 12  # the reference ran once
    with pytest.raises(ValueError, match="need at least 2"):
        compare_estimators(SPACE, archs[:1], {}, Scaled(1.0))


def test_the_proxies_command_ranks_the_proxies_against_short_training(tmp_path: Path) -> None:
    args = ["--db", str(tmp_path / "cost.db"), "proxies", "--space", "nb201", "--space-config",
            json.dumps(SPACE_CONFIG), "--data", "digits", "--n", "3", "--max-train-samples", "64",
            "--max-val-samples", "64", "--json", "--quiet"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [e["spec"] for e in document["estimators"]] == ["naswot", "synflow"]
    assert [e["measures"] for e in document["estimators"]] == ["naswot score", "synflow score"]
    assert all(0.0 <= a <= 1.0 for a in document["reference"]["scores"])
    synflow = document["estimators"][1]
    assert synflow["scores"] == [SynflowEstimator().estimate(SPACE, SPACE.decode(a))
                                 for a in document["archs"]]
    assert all(e["tau"] is None or -1.0 <= e["tau"] <= 1.0 for e in document["estimators"])
    bad = CliRunner().invoke(main, [*args[:-2], "--estimator", "bogus"])
    assert bad.exit_code == 2 and "bogus" in bad.output


def test_compare_accuracy_specs_checks_every_spec_first_and_times_one_off_work(
        tmp_path: Path) -> None:
    from fleetnas.controller.driver import SearchConfigError, compare_accuracy_specs, train_spec

    archs = [SPACE.sample(random.Random(i)) for i in range(2)]
    reference = train_spec("digits", epochs=1, seed=0, max_train_samples=32, max_val_samples=32)
    assert reference == "train:digits,epochs=1,seed=0,max_train_samples=32,max_val_samples=32"
    with pytest.raises(SearchConfigError, match="bogus"):  # before the supernet would train
        compare_accuracy_specs(SPACE, archs, ["supernet:digits,epochs=1", "bogus"], reference,
                               workdir=tmp_path)
    assert not (tmp_path / "supernets").exists()
    seen: list[tuple[str, int]] = []
    compared = compare_accuracy_specs(SPACE, archs, ["synflow"], reference, workdir=tmp_path,
                                      progress=lambda task, done, total, detail: seen.append(
                                          (task, done)))  # fmt: skip
    assert set(compared.prepare_seconds) == {"synflow", reference}
    assert [r.name for r in compared.comparison.rankings] == ["synflow"]
    assert ("short training", 2) in seen and ("synflow", 2) in seen
    values: list[tuple[str, int, float]] = []
    direct = compare_estimators(SPACE, archs, {"s": SynflowEstimator()}, Scaled(1.0),
                                on_value=lambda name, i, v: values.append((name, i, v)))
    assert values[:2] == [("reference", 0, direct.reference[0]), ("reference", 1, direct.reference[1])]
    assert values[2:] == [("s", 0, direct.rankings[0].scores[0]), ("s", 1, direct.rankings[0].scores[1])]
