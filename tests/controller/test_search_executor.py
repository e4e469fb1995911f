"""``fleetnas search --executor local|ray``: accuracy estimates as tasks on an executor, for real.

A real loopback agent measures; the estimates are short trainings on
scikit-learn's digits (seeded) run by a real process pool or a real local
Ray instance (``ray.init(num_cpus=2)``), or a logging plugin for the kill
test. What is checked: the same front as the inline search, every estimate
saved in ``evaluations.db`` beside the cost DB, a failing estimate fails its
candidate with the reason, the executor is stored with the search and
reopened by ``--resume``, and a SIGKILL mid-step costs no saved estimate.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fleetnas.controller.cli import main
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import EVALUATIONS_FILE, SearchStore
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.local_agents import LocalAgent, start_local_agents, stop_local_agents

SPACE_CONFIG = {"channels": 4, "cells_per_stage": 1}
TINY = ["--warmup", "2", "--min-runs", "5", "--max-runs", "20", "--min-duration", "0",
        "--max-duration", "0.2"]
TRAIN = "train:digits,epochs=1,max_train_samples=64,max_val_samples=64"
FLEETNAS = [sys.executable, "-c", "from fleetnas.controller.cli import main; main()"]
PLUGIN = '''
import os, time, zlib

def score(space, arch):
    encoding = space.encode(arch)
    if os.environ.get("REFUSE") and zlib.crc32(encoding.encode()) % 3 == 0:
        raise ValueError("this plugin refuses " + encoding)
    with open(os.environ["ESTIMATES_LOG"], "a") as log:
        log.write(f"start {encoding}\\n")
    time.sleep(float(os.environ.get("ESTIMATE_S", "0.3")))
    with open(os.environ["ESTIMATES_LOG"], "a") as log:
        log.write(f"done {encoding}\\n")
    return (zlib.crc32(encoding.encode()) % 1000) / 1000
'''


RESOURCES_PLUGIN = "plugin:tests.controller.test_search_executor:declared_resources"


def declared_resources(space: Any, arch: Any) -> float:
    """A plugin estimate that reports what its task was given: on a Ray worker, the CPUs Ray
    assigned it x 10 plus torch's threads (2 CPUs, 2 threads -> 22); elsewhere the threads."""
    import torch

    threads = torch.get_num_threads()
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            assigned = ray.get_runtime_context().get_assigned_resources()
            return 10 * float(assigned.get("CPU", 0.0)) + threads
    return float(threads)


@dataclass
class Setup:
    agent: LocalAgent
    root: Path
    fleet_path: Path

    def args(self, *more: str) -> list[str]:
        return ["search", "--space", "nb201", "--space-config", json.dumps(SPACE_CONFIG),
                "--class", "cpu", "--fleet", str(self.fleet_path), "--cache-dir",
                str(self.root / "onnx"), *TINY, "--mode", "measured", "--population", "4",
                "--seed", "1", "--no-plot", "--quiet", *more]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("search-executor")
    (agent,) = start_local_agents(1, root / "agents", name_prefix="x")
    try:
        fleet_path = root / "fleet.toml"
        save_fleet(Fleet.of([Device("x0", "cpu", agent.address)]), fleet_path)
        (root / "executor_plugin.py").write_text(PLUGIN)
        yield Setup(agent, root, fleet_path)
    finally:
        stop_local_agents([agent])


def invoke(db: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", str(db), *args], env={"COLUMNS": "240"},
                              catch_exceptions=False)


def _front(path: Path) -> list[tuple[str, float, str]]:
    document = json.loads(path.read_text())
    return [(row["arch"], row["accuracy"], row["sources"]["accuracy"]) for row in document["front"]]


def _evaluations(db: Path) -> list[tuple[str, float | None, str | None, str]]:
    path = db.parent / EVALUATIONS_FILE
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT task, value, error, worker FROM evaluations").fetchall()


def _accuracies(db: Path) -> dict[str, float]:
    """Every candidate's accuracy by arch (the front also depends on measured latencies,
    which differ from run to run; the trainings, seeded, do not)."""
    with CostDB(db) as database:
        return {c.encoding: c.metrics["accuracy"] for c in SearchStore(database).candidates(1)
                if "accuracy" in c.metrics}


def _config(db: Path) -> dict[str, Any]:
    with CostDB(db) as database:
        return SearchStore(database).get(1).config


def test_a_local_pool_gives_the_inline_front_and_saves_every_estimate(setup: Setup,
                                                                       tmp_path: Path) -> None:
    inline_db, pool_db = tmp_path / "inline" / "cost.db", tmp_path / "pool" / "cost.db"
    inline_db.parent.mkdir()
    pool_db.parent.mkdir()
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each task runs: a training's arithmetic depends on it
    try:
        inline = invoke(inline_db, *setup.args("--budget", "4", "--accuracy", TRAIN,
                                               "--json", str(tmp_path / "inline.json")))
    finally:
        torch.set_num_threads(threads)
    assert inline.exit_code == 0, inline.output
    pool = invoke(pool_db, *setup.args("--budget", "4", "--accuracy", TRAIN, "--executor", "local",
                                       "--workers", "2", "--json", str(tmp_path / "pool.json")))
    assert pool.exit_code == 0, pool.output
    assert f"accuracy estimates on the local executor, 2 workers, each saved in {pool_db.parent}" \
        in " ".join(pool.output.split())
    front = _front(tmp_path / "pool.json")
    accuracies = _accuracies(pool_db)
    assert front and len(accuracies) == 4
    assert accuracies == _accuracies(inline_db)  # seeded, same threads: the same trainings
    assert _config(pool_db)["executor"] == {"kind": "local", "workers": 2, "ray_address": None,
                                            "max_retries": 2, "trial_cpus": 1.0,
                                            "trial_gpus": 0.0}
    assert "executor" not in _config(inline_db) and _evaluations(inline_db) == []
    saved = _evaluations(pool_db)
    assert len(saved) == 4 and all(value is not None for _, value, _, _ in saved)
    assert len({worker for *_, worker in saved}) == 2  # both workers trained
    values = {json.loads(task)["arch"]: value for task, value, _, _ in saved}
    assert all(values[arch] == accuracy for arch, accuracy, _ in front)


def test_ray_runs_the_trainings(setup: Setup, tmp_path: Path, ray_instance: None) -> None:
    db = tmp_path / "cost.db"
    result = invoke(db, *setup.args("--budget", "4", "--accuracy", TRAIN, "--executor", "ray",
                                    "--json", str(tmp_path / "ray.json")))
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "ray.json").read_text())
    assert document["search"]["status"] == "complete" and len(document["trials"]) == 4
    assert _config(db)["executor"]["kind"] == "ray"
    values = {json.loads(task)["arch"]: value for task, value, _, _ in _evaluations(db)}
    assert len(values) == 4 and all(0.0 <= v <= 1.0 for v in values.values() if v is not None)
    assert all(values[row["arch"]] == row["accuracy"] for row in document["trials"])


def test_bad_executor_flags_are_one_line_errors(setup: Setup, tmp_path: Path) -> None:
    db = tmp_path / "cost.db"
    workers = invoke(db, *setup.args("--budget", "2", "--workers", "2"))
    assert workers.exit_code == 2 and "--workers and --ray-address need --executor" in workers.output
    address = invoke(db, *setup.args("--budget", "2", "--executor", "local", "--ray-address", "auto"))
    assert address.exit_code == 2 and "--ray-address needs --executor ray" in address.output
    assert "Traceback" not in workers.output + address.output and not db.exists()


def test_declared_trial_cpus_reach_ray(setup: Setup, tmp_path: Path, ray_instance: None) -> None:
    db = tmp_path / "cost.db"
    result = invoke(db, *setup.args("--budget", "4", "--accuracy", RESOURCES_PLUGIN,
                                    "--executor", "ray", "--trial-cpus", "2"))
    assert result.exit_code == 0, result.output
    values = [value for _, value, _, _ in _evaluations(db)]
    assert values == [22.0] * 4  # Ray assigned each task 2 CPUs; torch ran 2 threads
    assert _config(db)["executor"]["trial_cpus"] == 2.0
    # more GPUs than the cluster has: a one-line error at the first step, not a traceback
    gpus = invoke(tmp_path / "gpus.db", *setup.args("--budget", "2", "--accuracy", RESOURCES_PLUGIN,
                                                    "--executor", "ray", "--trial-gpus", "1"))
    assert gpus.exit_code == 1, gpus.output
    assert "asks for 1 GPUs; the Ray cluster has 0" in gpus.output
    assert "--trial-gpus" in gpus.output and "Traceback" not in gpus.output


def test_declared_trial_cpus_set_the_local_pool(setup: Setup, tmp_path: Path) -> None:
    db = tmp_path / "cost.db"
    result = invoke(db, *setup.args("--budget", "4", "--accuracy", RESOURCES_PLUGIN,
                                    "--executor", "local", "--workers", "1", "--trial-cpus", "2"))
    assert result.exit_code == 0, result.output
    assert [value for _, value, _, _ in _evaluations(db)] == [2.0] * 4  # 2 torch threads each
    assert "1 workers, 2 CPU per estimate" in " ".join(result.output.split())


@pytest.mark.parametrize(("flags", "message"), [
    (["--executor", "local", "--trial-cpus", "0"], "Invalid value for '--trial-cpus'"),
    (["--executor", "local", "--trial-cpus", "-1"], "Invalid value for '--trial-cpus'"),
    (["--executor", "local", "--trial-cpus", "two"], "Invalid value for '--trial-cpus'"),
    (["--executor", "local", "--trial-cpus", "nan"], "--trial-cpus nan: expected a number > 0"),
    (["--executor", "ray", "--trial-gpus", "-0.5"], "Invalid value for '--trial-gpus'"),
    (["--executor", "ray", "--trial-gpus", "inf"], "--trial-gpus inf: expected a number >= 0"),
    (["--trial-cpus", "2"], "--trial-cpus and --trial-gpus need --executor local|ray"),
    (["--executor", "ray", "--workers", "1", "--trial-cpus", "2"], "raise --workers to at least 2"),
])  # fmt: skip
def test_bad_trial_resources_are_usage_errors(setup: Setup, tmp_path: Path, flags: list[str],
                                              message: str) -> None:
    db = tmp_path / "cost.db"
    result = invoke(db, *setup.args("--budget", "2", *flags))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not db.exists()


def test_trial_cpus_beyond_this_machine_are_refused_without_workers(setup: Setup,
                                                                     tmp_path: Path) -> None:
    result = invoke(tmp_path / "cost.db", *setup.args("--budget", "2", "--executor", "local",
                                                      "--trial-cpus", "100000"))
    assert result.exit_code == 1, result.output
    assert "--trial-cpus 100000: this machine has" in " ".join(result.output.split())


def test_executor_options_of_older_searches_declare_one_cpu() -> None:
    from fleetnas.controller.driver import ExecutorOptions
    from fleetnas.controller.executor import Resources

    old = ExecutorOptions.from_dict({"kind": "local", "workers": 2, "ray_address": None,
                                     "max_retries": 2})  # fmt: skip
    assert old.resources == Resources(cpus=1.0, gpus=0.0)
    new = ExecutorOptions("ray", trial_cpus=0.5, trial_gpus=1)
    assert ExecutorOptions.from_dict(new.to_dict()) == new
    assert new.resources == Resources(cpus=0.5, gpus=1.0)


def _lines(log: Path, kind: str) -> list[str]:
    if not log.exists():
        return []
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()
            if line.startswith(kind + " ")]


def test_a_sigkill_mid_step_repeats_no_saved_estimate_and_a_failing_one_fails_its_candidate(
        setup: Setup, tmp_path: Path) -> None:
    db, log = tmp_path / "cost.db", tmp_path / "estimates.log"
    path = os.pathsep.join(p for p in (str(setup.root), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "ESTIMATES_LOG": str(log), "COLUMNS": "200",
           "REFUSE": "1"}  # the plugin refuses about a third of the archs
    argv = [*FLEETNAS, "--db", str(db), *setup.args(
        "--budget", "12", "--accuracy", "plugin:executor_plugin:score",
        "--executor", "local", "--workers", "2")]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 120
        while len(_lines(log, "start")) < 5:  # into the 2nd step
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the search never got that far"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    saved = _evaluations(db)
    assert len(saved) >= 4  # the first step's, at least
    saved_before = {json.loads(task)["arch"] for task, value, _, _ in saved if value is not None}
    resumed = subprocess.run([*FLEETNAS, "--db", str(db), "search", "--resume", "1", "--fleet",
                              str(setup.fleet_path), "--cache-dir", str(setup.root / "onnx"),
                              "--quiet", "--no-plot"],
                             env=env, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert "search 1: 12 candidates evaluated" in resumed.stdout
    done = Counter(_lines(log, "done"))
    assert all(done[arch] == 1 for arch in saved_before), done
    saved = _evaluations(db)
    assert len(saved) == 12  # the resumed run used the executor (and its store) again
    refused = sorted(json.loads(task)["arch"] for task, value, _, _ in saved if value is None)
    assert refused, "the seed should ask for an arch the plugin refuses"
    with CostDB(db) as database:
        failed = SearchStore(database).candidates(1, state="failed")
    assert sorted(r.encoding for r in failed) == refused  # a permanent failure is never retried
    for row in failed:
        assert row.failure is not None and "ValueError: this plugin refuses" in row.failure
        assert "(permanent failure on the local executor, 1 attempt)" in row.failure
