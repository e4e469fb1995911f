"""``fleetnas supernet train|eval|show`` and ``--accuracy supernet:DATA`` on a tiny real supernet.

NAS-Bench-201 with 4 channels and one cell per stage, trained one epoch on
128 of scikit-learn's digits (4 steps), validation capped at 64 images:
seconds, not minutes. What is checked is the plumbing (store beside the DB,
reuse, labels, determinism), not the supernet's quality (test_supernet.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from fleetnas.controller.accuracy import load_digits
from fleetnas.controller.accuracy.supernet import EvalConfig, SupernetEstimator, SupernetStore
from fleetnas.controller.cli import main
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import CallableMeasurer, SearchConfig, SearchDriver, Target
from fleetnas.controller.spaces import get_space

SPACE_CONFIG = {"channels": 4, "cells_per_stage": 1}
SPACE = get_space("nb201", SPACE_CONFIG)
FLAGS = ["--space", "nb201", "--space-config", json.dumps(SPACE_CONFIG), "--data", "digits",
         "--epochs", "1", "--batch-size", "32", "--max-train-samples", "128"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "240"}, catch_exceptions=False)


def test_train_show_and_eval_share_one_store_beside_the_db(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "cost.db")]
    trained = invoke(*db, "supernet", "train", *FLAGS, "--max-val-samples", "64", "--bn-batches", "1",
                     "--quiet")
    assert trained.exit_code == 0, trained.output
    assert "(trained: 1 epochs on digits" in trained.stdout
    assert str(tmp_path / "supernets") in trained.stdout
    again = invoke(*db, "supernet", "train", *FLAGS, "--max-val-samples", "64", "--bn-batches", "1",
                     "--quiet")
    assert "(reused: 1 epochs on digits" in again.stdout

    (manifest,) = json.loads(invoke(*db, "supernet", "show", "--json").stdout)
    assert manifest["epochs_done"] == manifest["epochs"] == 1
    assert manifest["dataset"]["name"] == "digits" and manifest["space"] == SPACE.identity()
    assert (tmp_path / "supernets" / manifest["key"] / "manifest.json").is_file()
    shown = invoke(*db, "supernet", "show")
    assert manifest["key"] in shown.stdout and manifest["dataset"]["hash"][:12] in shown.stdout

    scored = invoke(*db, "supernet", "eval", *FLAGS, "--n", "2", "--bn-batches", "1",
                    "--max-val-samples", "64", "--json", "--quiet")
    assert scored.exit_code == 0, scored.output
    document = json.loads(scored.stdout)
    assert document["key"] == manifest["key"] and len(document["scores"]) == 2
    first = document["scores"][0]
    assert 0.0 <= first["accuracy"] <= 1.0
    one = invoke(*db, "supernet", "eval", *FLAGS, first["arch"], "--bn-batches", "1",
                 "--max-val-samples", "64", "--json", "--quiet")
    assert json.loads(one.stdout)["scores"][0]["accuracy"] == first["accuracy"]  # deterministic


def test_eval_of_an_untrained_supernet_and_bad_input_say_what_to_do(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "cost.db")]
    untrained = invoke(*db, "supernet", "eval", *FLAGS, "--n", "1")
    assert untrained.exit_code == 1 and len(untrained.output.strip().splitlines()) == 1
    assert "no supernet" in untrained.output and "fleetnas supernet train" in untrained.output
    both = invoke(*db, "supernet", "eval", *FLAGS, "--n", "1", "|x|")
    assert both.exit_code == 2 and "not both" in both.output
    bad_arch = invoke(*db, "supernet", "eval", *FLAGS, "|nope~0|")
    assert bad_arch.exit_code == 1 and "Traceback" not in bad_arch.output
    no_space = invoke(*db, "supernet", "train", "--space", "bogus", "--data", "digits")
    assert no_space.exit_code == 2 and "bogus" in no_space.output
    empty = invoke(*db, "supernet", "show")
    assert empty.exit_code == 0 and "no supernets under" in empty.stdout
    assert not (tmp_path / "supernets").exists()


def test_a_search_with_supernet_accuracy_trains_once_then_reuses(tmp_path: Path) -> None:
    spec = "supernet:digits,epochs=1,batch_size=32,max_train_samples=128,max_val_samples=64,bn_batches=1"
    config = SearchConfig.build(space="nb201", space_config=SPACE_CONFIG,
                                targets=[Target.device("d")], mode="measured", accuracy=spec,
                                budget=3, strategy={"kind": "random"})
    assert config.objective_list()[0].display_name == "supernet accuracy (held-out digits)"
    measurer = CallableMeasurer(lambda arch, target: SPACE.count_flops(arch) / 1e6)
    with CostDB(tmp_path / "cost.db") as db:
        driver = SearchDriver.create(config, db=db, space=SPACE, measurer=measurer)
        (note,) = driver.estimator_notes
        assert "(trained: 1 epochs on digits" in note and str(tmp_path / "supernets") in note
        result = driver.run()
        (manifest,) = SupernetStore(tmp_path / "supernets").manifests()
        reference = SupernetEstimator(SupernetStore(tmp_path / "supernets").load(manifest.key),
                                      load_digits(), eval_config=EvalConfig(bn_batches=1,
                                                                            max_val_samples=64))
        trials = result.engine.complete()
        assert len(trials) == 3
        for trial in trials:
            assert trial.values["accuracy"] == reference.estimate(SPACE, trial.candidate.arch)
        second = SearchDriver.create(config, db=db, space=SPACE, measurer=measurer)
        assert "(reused: 1 epochs on digits" in second.estimator_notes[0]
