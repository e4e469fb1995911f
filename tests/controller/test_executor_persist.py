"""A killed controller never repeats a finished evaluation.

A real controller process (``python CONTROLLER``) runs 6 short trainings (on
the synthetic dataset: no scikit-learn import per worker) with a
LocalExecutor and an EvaluationStore; it is SIGKILLed once 2 results are
stored. Started again on the same store, it runs exactly the
missing ones: each training appends ``<controller pid> <worker pid> <arch>``
to a log when it starts, so the second controller's runs can be counted.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import psutil

from tests.controller.test_executor_tasks import LOGGED_TRAINING, log_lines

REPO = Path(__file__).resolve().parents[2]

CONTROLLER = textwrap.dedent(
    f"""
    import random
    import sys

    from fleetnas.controller.executor import (
        DatasetRef, EstimatorSpec, EvalTask, EvaluationStore, LocalExecutor, Resources)
    from fleetnas.controller.spaces import get_space


    def main() -> None:
        store_path, log = sys.argv[1], sys.argv[2]
        space = get_space("nb201", {{"channels": 8, "cells_per_stage": 1}})
        archs = []
        rng = random.Random(0)
        while len(archs) < 6:
            arch = space.sample(rng)
            if arch not in archs:
                archs.append(arch)
        spec = EstimatorSpec({LOGGED_TRAINING!r}, {{"log": log, "epochs": 1,
                             "max_train_samples": 256, "max_val_samples": 128}})
        tasks = [EvalTask.of(f"c{{i}}", space, arch, spec, dataset=DatasetRef("synthetic"),
                             resources=Resources(cpus=1)) for i, arch in enumerate(archs)]
        store = EvaluationStore(store_path)
        stored = lambda result: print("stored", result.task_id, flush=True)
        with LocalExecutor(workers=2, cpus=2, store=store, on_result=stored) as executor:
            executor.submit_all(tasks)
            for result in executor.results(timeout=300):
                print("result", result.task_id, result.from_store, result.ok, flush=True)
        print("finished", flush=True)


    if __name__ == "__main__":
        main()
    """
)


def _start(script: Path, store: Path, log: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                                    os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, str(script), str(store), str(log)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


def _stored_ids(store: Path) -> set[str]:
    with sqlite3.connect(store) as conn:
        return {task_id for (task_id,) in conn.execute("SELECT task_id FROM evaluations")}


def _wait_gone(pids: set[int], limit_s: float = 30.0) -> set[int]:
    alive = []
    for pid in pids:
        try:
            alive.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, still = psutil.wait_procs(alive, timeout=limit_s)
    return {p.pid for p in still}


def test_a_killed_controller_runs_only_the_missing_evaluations(tmp_path: Path) -> None:
    script, store, log = tmp_path / "controller.py", tmp_path / "evals.db", tmp_path / "runs.log"
    script.write_text(CONTROLLER)

    first = _start(script, store, log)
    try:
        assert first.stdout is not None
        stored_lines = 0
        for line in first.stdout:
            stored_lines += line.startswith("stored ")
            if stored_lines == 2:
                break
        assert stored_lines == 2, "the controller ended before storing 2 results"
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(30)
    done_before = _stored_ids(store)
    assert len(done_before) >= 2  # more may have finished between the 2nd and the kill
    first_runs = [row for row in log_lines(log) if int(row[0]) == first.pid]
    assert _wait_gone({int(row[1]) for row in first_runs}) == set(), "workers outlived the controller"

    second = _start(script, store, log)
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0 and out.rstrip().endswith("finished"), out

    archs_by_id = {}
    for line in out.splitlines():
        if line.startswith("result "):
            _, task_id, from_store, ok = line.split()
            archs_by_id[task_id] = (from_store == "True", ok == "True")
    assert set(archs_by_id) == {f"c{i}" for i in range(6)}
    assert {i for i, (cached, _) in archs_by_id.items() if cached} == done_before
    assert all(ok for _, ok in archs_by_id.values())

    second_runs = Counter(row[2] for row in log_lines(log) if int(row[0]) == second.pid)
    assert sum(second_runs.values()) == 6 - len(done_before)  # exactly the missing ones, once each
    assert max(second_runs.values()) == 1
    finished_first = {row[2] for row in first_runs} - set(second_runs)
    assert len(finished_first) == len(done_before)  # what finished before did not run again
    assert _stored_ids(store) == {f"c{i}" for i in range(6)}
