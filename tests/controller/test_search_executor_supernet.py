"""``--accuracy supernet:DATA --executor local|ray``: the supernet trained and scored by tasks.

A tiny NAS-Bench-201 supernet (4 channels, one cell per stage) trained one
epoch on 128 of scikit-learn's digits; candidates scored on 64 validation
images after one BN-recalibration batch. Latencies come from a callable (the
executor side is under test, not the devices). What is checked: the
training and every candidate's score ran in worker processes (their
``host:pid`` is not this process's) of a real local Ray instance
(``ray.init(num_cpus=2)``) and of a real process pool; each score equals the
inline score of the same arch on the same stored supernet; a worker scores
later candidates on the supernet it loaded first; the training is not kept
in ``evaluations.db`` (the supernet store is its record), and one that fails
stops the search; and a
search SIGKILLed mid-run resumes without scoring again any candidate whose
score was saved, nor training the supernet again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from fleetnas.controller.accuracy import load_digits
from fleetnas.controller.accuracy.supernet import EvalConfig, SupernetEstimator, SupernetStore
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (
    EVALUATIONS_FILE,
    CallableMeasurer,
    ExecutorOptions,
    SearchAborted,
    SearchConfig,
    SearchDriver,
    SearchStore,
    Target,
    open_executor,
)
from fleetnas.controller.driver._remote_supernet import SupernetEstimates
from fleetnas.controller.executor import (
    DatasetRef,
    EstimatorSpec,
    EvalTask,
    EvaluationStore,
    TaskResult,
    execute,
)
from fleetnas.controller.spaces import get_space

SPACE_CONFIG = {"channels": 4, "cells_per_stage": 1}
SPACE = get_space("nb201", SPACE_CONFIG)
SPEC = "supernet:digits,epochs=1,batch_size=32,max_train_samples=128,max_val_samples=64,bn_batches=1"
EVAL = EvalConfig(bn_batches=1, max_val_samples=64)


def _config(budget: int, kind: str, workers: int | None = None) -> SearchConfig:
    return SearchConfig.build(space="nb201", space_config=SPACE_CONFIG, targets=[Target.device("d")],
                              mode="measured", accuracy=SPEC, budget=budget, batch_size=4,
                              strategy={"kind": "random"}, seed=3,
                              executor=ExecutorOptions(kind, workers=workers))


def _rows(db: Path) -> dict[str, tuple[str, float | None, str | None, str, float]]:
    """evaluations.db by key: (arch, value, error, worker, finished_at) of supernet scores;
    every row must be one (a training is not kept there)."""
    path = db.parent / EVALUATIONS_FILE
    if not path.exists():
        return {}
    with sqlite3.connect(path) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'evaluations'").fetchone():
            return {}  # the executor is still creating it
        rows = conn.execute("SELECT key, task, value, error, worker, finished_at FROM evaluations")
        out = {}
        for key, text, value, error, worker, finished in rows:
            task = json.loads(text)
            assert task["estimator"]["kind"] == "supernet", task
            out[key] = (task["arch"], value, error, worker, finished)
        return out


def _pid(worker: str) -> int:
    return int(worker.rsplit(":", 1)[1])


def _inline(root: Path) -> SupernetEstimator:
    (manifest,) = SupernetStore(root).manifests()
    return SupernetEstimator(SupernetStore(root).load(manifest.key), load_digits(), eval_config=EVAL)


def test_the_supernet_tasks_train_once_and_score_as_inline(tmp_path: Path) -> None:
    """The two task kinds, run here as a worker runs them; the training is not kept."""
    root = tmp_path / "supernets"
    data = DatasetRef("digits")
    arch = SPACE.sample(random.Random(5))
    config = {"epochs": 1, "batch_size": 32, "max_train_samples": 128, "sampling": "uniform"}
    training = EvalTask.of("t", SPACE, arch, EstimatorSpec(
        "supernet_train", {"store": str(root), "train_config": config,
                           "eval_config": EVAL.to_dict()}), dataset=data)  # fmt: skip
    missing = execute(EvalTask.of("m", SPACE, arch, EstimatorSpec(
        "supernet", {"store": str(root), "supernet": "nb201-0123456789abcdef"}), dataset=data))
    assert missing.value is None and missing.error is not None and "no supernet" in missing.error
    trained = execute(training)
    assert trained.error is None and trained.value is not None
    (manifest,) = SupernetStore(root).manifests()
    assert manifest.complete and manifest.epochs_done == 1
    reference = _inline(root)
    assert trained.value == pytest.approx(reference.estimate(SPACE, arch), abs=1e-9)
    scoring = EvalTask.of("s", SPACE, arch, EstimatorSpec(
        "supernet", {"store": str(root), "supernet": manifest.key,
                     "eval_config": EVAL.to_dict()}), dataset=data)  # fmt: skip
    scored = execute(scoring)
    assert scored.error is None
    assert scored.value == pytest.approx(reference.estimate(SPACE, arch), abs=1e-9)
    # the next candidate's task is scored on the supernet this process already loaded
    other = SPACE.sample(random.Random(6))
    expected = reference.estimate(SPACE, other)
    root.rename(tmp_path / "moved")
    again = execute(replace(scoring, task_id="s2", arch=SPACE.encode(other)))
    assert again.error is None and again.value == pytest.approx(expected, abs=1e-9)
    (tmp_path / "moved").rename(root)
    store = EvaluationStore(tmp_path / "evals.db")
    try:
        store.save(TaskResult(training, trained.value, attempts=1))
        store.save(TaskResult(scoring, scored.value, attempts=1))
        assert store.load(training) is None and len(store) == 1  # the training is not kept
        loaded = store.load(scoring)
        assert loaded is not None and loaded.value == scored.value
    finally:
        store.close()


def test_a_supernet_search_on_ray_trains_and_scores_on_ray_workers(tmp_path: Path,
                                                                    ray_instance: None) -> None:
    db_path = tmp_path / "cost.db"
    config = _config(4, "ray")
    measurer = CallableMeasurer(lambda arch, target: SPACE.count_flops(arch) / 1e6)
    with CostDB(db_path) as db, open_executor(config.executor, db.path) as executor:
        assert executor is not None and executor.kind == "ray"
        driver = SearchDriver.create(config, db=db, space=SPACE, measurer=measurer,
                                     executor=executor)
        remote = driver.remote
        assert isinstance(remote, SupernetEstimates)
        (note,) = driver.estimator_notes
        assert "trains as one task on the ray executor" in note and str(tmp_path / "supernets") in note
        result = driver.run()
        trials = result.engine.complete()
        assert len(trials) == 4
    assert remote.training is not None and remote.training.ok
    assert _pid(remote.training.worker) != os.getpid()  # trained on a Ray worker
    (manifest,) = SupernetStore(tmp_path / "supernets").manifests()
    assert manifest.complete and manifest.accuracy is not None
    assert remote.training.value == manifest.accuracy["largest"]
    rows = _rows(db_path)
    archs = {SPACE.encode(t.candidate.arch) for t in trials}
    assert len(rows) == len(archs) and {arch for arch, *_ in rows.values()} == archs
    assert all(_pid(worker) != os.getpid() for _, _, _, worker, _ in rows.values())
    reference = _inline(tmp_path / "supernets")
    for trial in trials:
        inline = reference.estimate(SPACE, trial.candidate.arch)
        assert trial.values["accuracy"] == pytest.approx(inline, abs=1e-9)
    for arch, value, error, _, _ in rows.values():
        assert error is None
        assert value == pytest.approx(reference.estimate(SPACE, SPACE.decode(arch)), abs=1e-9)


def test_a_failed_supernet_training_stops_the_search_and_is_not_kept(tmp_path: Path) -> None:
    """A learning rate that blows the loss up fails the training task on the worker: the
    search stops (nothing can be scored) saying why, and nothing is saved as done."""
    spec = SPEC.replace("epochs=1", "epochs=1,lr=1e12")
    config = replace(_config(4, "local", workers=1), accuracy=spec)
    measurer = CallableMeasurer(lambda arch, target: SPACE.count_flops(arch) / 1e6)
    with CostDB(tmp_path / "cost.db") as db, open_executor(config.executor, db.path) as executor:
        driver = SearchDriver.create(config, db=db, space=SPACE, measurer=measurer,
                                     executor=executor)
        with pytest.raises(SearchAborted, match="training failed on the local executor") as caught:
            driver.run()
        record = SearchStore(db).get(1)
        told = [c for c in SearchStore(db).candidates(1) if "accuracy" in c.metrics]
    assert "(permanent failure, 1 attempt): SupernetError: the training loss became" \
        in str(caught.value)
    assert record.status == "interrupted" and told == []
    assert _rows(tmp_path / "cost.db") == {}
    (manifest,) = SupernetStore(tmp_path / "supernets").manifests()
    assert not manifest.complete  # a resumed search trains it again


SCRIPT = '''
import sys, time

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (CallableMeasurer, ExecutorOptions, SearchConfig,
                                        SearchDriver, Target, open_executor)
from fleetnas.controller.spaces import get_space

SPACE = get_space("nb201", {space_config!r})


def latency(arch, target):
    time.sleep(1.5)  # a device's measurement: the step's scores finish meanwhile
    return SPACE.count_flops(arch) / 1e6


if __name__ == "__main__":
    db_path, how = sys.argv[1], sys.argv[2]
    config = SearchConfig.build(space="nb201", space_config={space_config!r},
                                targets=[Target.device("d")], mode="measured", accuracy={spec!r},
                                budget=12, batch_size=4, strategy={{"kind": "random"}}, seed=3,
                                executor=ExecutorOptions("local", workers=2))
    measurer = CallableMeasurer(latency)
    with CostDB(db_path) as db, open_executor(config.executor, db_path) as executor:
        if how == "resume":
            driver = SearchDriver.resume(1, db=db, space=SPACE, measurer=measurer,
                                         executor=executor)
        else:
            driver = SearchDriver.create(config, db=db, space=SPACE, measurer=measurer,
                                         executor=executor)
        driver.run()
'''


def test_a_sigkilled_supernet_search_resumes_without_scoring_or_training_again(
        tmp_path: Path) -> None:
    db_path, script = tmp_path / "cost.db", tmp_path / "run_search.py"
    script.write_text(SCRIPT.format(space_config=SPACE_CONFIG, spec=SPEC))
    process = subprocess.Popen([sys.executable, str(script), str(db_path), "create"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        # the second step's 4 scores are saved while its devices still measure (6 s)
        while len(_rows(db_path)) < 8:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the search never scored 8 candidates"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    before = _rows(db_path)
    assert 8 <= len(before) < 12  # killed mid-search
    assert all(_pid(worker) != process.pid for _, _, _, worker, _ in before.values())
    with CostDB(db_path) as db:
        store = SearchStore(db)
        assert store.get(1).status == "running"  # it never got to say otherwise
        unscored = {c.encoding for c in store.candidates(1) if "accuracy" not in c.metrics}
    saved = {arch for arch, *_ in before.values()}
    # scores saved in evaluations.db that the search's own rows did not hold yet: the
    # resumed search asks for them again, and the executor must answer from the store
    assert saved & unscored, (saved, unscored)
    checkpoint = next((tmp_path / "supernets").glob("*/checkpoint.pt"))
    trained_at = checkpoint.stat().st_mtime_ns
    (manifest,) = SupernetStore(tmp_path / "supernets").manifests()
    assert manifest.complete
    resumed = subprocess.run([sys.executable, str(script), str(db_path), "resume"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = _rows(db_path)
    for key, row in before.items():
        assert after[key] == row  # same worker, same finish time: not scored again
    assert checkpoint.stat().st_mtime_ns == trained_at  # the supernet was not trained again
    assert SupernetStore(tmp_path / "supernets").manifests() == [manifest]
    with CostDB(db_path) as db:
        store = SearchStore(db)
        assert store.get(1).status == "complete"
        done = [c for c in store.candidates(1) if "accuracy" in c.metrics]
    assert len(done) == 12 and len(after) == len({c.encoding for c in done}) > len(before)
    values = {arch: value for arch, value, *_ in after.values()}
    reference = _inline(tmp_path / "supernets")
    for candidate in done:
        accuracy = candidate.metrics["accuracy"]
        assert values[candidate.encoding] == accuracy
        assert accuracy == pytest.approx(reference.estimate(SPACE, SPACE.decode(candidate.encoding)),
                                         abs=1e-9)
