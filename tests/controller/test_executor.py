"""The executor contract, run against every implementation: LocalExecutor and RayExecutor.

Ray runs for real: one local instance per module (``ray.init(num_cpus=2)``,
shut down after), each test's RayExecutor joining it. Workers run the probe
estimators of ``test_executor_tasks``; Ray's workers find them through
PYTHONPATH, set before the instance starts.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from fleetnas.controller.executor import (
    DatasetRef,
    EstimatorSpec,
    EvalTask,
    EvaluationStore,
    Executor,
    ExecutorClosed,
    LocalExecutor,
    RayExecutor,
    Resources,
    ResultHookError,
    TaskResult,
    make_executor,
)
from fleetnas.controller.spaces import get_space
from tests.controller.test_executor_tasks import PROBE, arch_value, log_lines

SPACE = get_space("nb201", {"channels": 8, "cells_per_stage": 1})
ARCHS = [SPACE.encode(SPACE.sample(random.Random(i))) for i in range(6)]
RESULT_TIMEOUT_S = 180.0


MakeExecutor = Callable[..., Executor]


@pytest.fixture(params=["local", "ray"])
def make(request: pytest.FixtureRequest) -> Iterator[MakeExecutor]:
    """``make(**options)`` -> an executor of the parametrised kind, closed after the test."""
    if request.param == "ray":
        request.getfixturevalue("ray_instance")
    made: list[Executor] = []

    def build(**options: Any) -> Executor:
        if request.param == "local":
            options.setdefault("workers", 2)
            executor: Executor = LocalExecutor(cpus=2, **options)
        else:
            executor = RayExecutor(**options)
        made.append(executor)
        return executor

    yield build
    for executor in made:
        executor.close()


def probe_task(task_id: str, arch: str, tmp: Path, mode: str = "value", *, cpus: float = 1,
               **options: str) -> EvalTask:  # fmt: skip
    spec = EstimatorSpec(PROBE, {"log": str(tmp / "runs.log"), "mode": mode, **options})
    return EvalTask(task_id, spec, SPACE.name, arch, SPACE.config(), None, Resources(cpus=cpus))


def wait_for_file(path: Path, limit_s: float = RESULT_TIMEOUT_S) -> str:
    deadline = time.monotonic() + limit_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text()


def wait_gone(pid: int, limit_s: float = 60.0) -> bool:
    try:
        psutil.Process(pid).wait(limit_s)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


def all_results(executor: Executor) -> dict[str, TaskResult]:
    return {r.task_id: r for r in executor.results(timeout=RESULT_TIMEOUT_S)}


class TestExecutorContract:
    def test_values_come_back_with_attempts_seconds_and_worker(self, make: MakeExecutor,
                                                               tmp_path: Path) -> None:  # fmt: skip
        executor = make()
        handles = executor.submit_all(probe_task(f"c{i}", a, tmp_path) for i, a in enumerate(ARCHS[:3]))
        results = all_results(executor)
        assert set(results) == {"c0", "c1", "c2"}
        for i, arch in enumerate(ARCHS[:3]):
            result = results[f"c{i}"]
            assert result.ok and result.value == arch_value(arch)
            assert (result.attempts, result.failure, result.from_store) == (1, None, False)
            assert result.seconds > 0
            host, pid = result.worker.rsplit(":", 1)
            assert host and int(pid) != os.getpid()
            assert handles[i].done() and handles[i].result() == result
        assert executor.pending == 0 and executor.poll() == []

    def test_results_arrive_as_they_finish_not_per_batch(self, make: MakeExecutor,
                                                         tmp_path: Path) -> None:  # fmt: skip
        executor = make()
        gate = tmp_path / "gate"
        slow = executor.submit(probe_task("slow", ARCHS[0], tmp_path, "gate", gate=str(gate)))
        executor.submit(probe_task("fast", ARCHS[1], tmp_path))
        stream = executor.results(timeout=RESULT_TIMEOUT_S)
        first = next(stream)
        assert first.task_id == "fast" and not slow.done() and executor.pending == 1
        gate.touch()
        second = next(stream)
        assert second.task_id == "slow" and second.ok
        assert list(stream) == []

    def test_permanent_error_is_not_retried_and_the_executor_keeps_serving(
        self, make: MakeExecutor, tmp_path: Path
    ) -> None:
        executor = make(max_retries=3)
        executor.submit(probe_task("bad", ARCHS[0], tmp_path, "error"))
        (bad,) = executor.results(timeout=RESULT_TIMEOUT_S)
        assert (bad.failure, bad.attempts, bad.value) == ("permanent", 1, None)
        assert bad.error is not None and "EstimatorError" in bad.error and ARCHS[0] in bad.error
        assert len(log_lines(tmp_path / "runs.log")) == 1
        executor.submit(probe_task("good", ARCHS[1], tmp_path))
        (good,) = executor.results(timeout=RESULT_TIMEOUT_S)
        assert good.ok and good.value == arch_value(ARCHS[1])

    def test_worker_killed_mid_task_is_retried(self, make: MakeExecutor, tmp_path: Path) -> None:
        executor = make(max_retries=2)
        pidfile = tmp_path / "pid"
        handle = executor.submit(probe_task("k", ARCHS[2], tmp_path, "die_once", pidfile=str(pidfile)))
        killed = int(wait_for_file(pidfile))
        os.kill(killed, 9)
        result = handle.result(timeout=RESULT_TIMEOUT_S)
        assert result.ok and result.value == arch_value(ARCHS[2])
        assert result.attempts == 2 and not result.worker.endswith(f":{killed}")
        assert [int(pid) for pid, _ in log_lines(tmp_path / "runs.log")][0] == killed
        assert wait_gone(killed)

    def test_retries_of_lost_workers_are_bounded(self, make: MakeExecutor, tmp_path: Path) -> None:
        executor = make(max_retries=1)
        executor.submit(probe_task("dies", ARCHS[3], tmp_path, "die"))
        (result,) = executor.results(timeout=RESULT_TIMEOUT_S)
        assert (result.failure, result.attempts) == ("transient", 2)
        assert result.error
        assert len(log_lines(tmp_path / "runs.log")) == 2

    def test_torch_threads_follow_the_declared_cpus(self, make: MakeExecutor, tmp_path: Path) -> None:
        executor = make()
        executor.submit(probe_task("one", ARCHS[0], tmp_path, "threads", cpus=1))
        executor.submit(probe_task("two", ARCHS[1], tmp_path, "threads", cpus=2))
        results = all_results(executor)
        assert (results["one"].value, results["two"].value) == (1.0, 2.0)

    def test_a_task_that_can_never_fit_is_refused_at_submit(self, make: MakeExecutor,
                                                             tmp_path: Path) -> None:  # fmt: skip
        executor = make()
        with pytest.raises(ValueError, match="asks for 64 CPUs"):
            executor.submit(probe_task("wide", ARCHS[0], tmp_path, cpus=64))
        gpu = EvalTask("gpu", EstimatorSpec("synflow"), SPACE.name, ARCHS[0], SPACE.config(),
                       None, Resources(gpus=1))  # fmt: skip
        with pytest.raises(ValueError, match="asks for 1 GPUs"):
            executor.submit(gpu)
        assert executor.pending == 0

    def test_cancel_kills_the_running_task_and_close_leaves_no_worker(
        self, make: MakeExecutor, tmp_path: Path
    ) -> None:
        executor = make()
        first, second = tmp_path / "pid1", tmp_path / "pid2"
        a = executor.submit(probe_task("a", ARCHS[0], tmp_path, "block", pidfile=str(first)))
        executor.submit(probe_task("b", ARCHS[1], tmp_path, "block", pidfile=str(second)))
        pid_a = int(wait_for_file(first))
        assert a.cancel() and not a.cancel()
        assert a.result(timeout=5).failure == "cancelled"
        assert wait_gone(pid_a)
        pid_b = int(wait_for_file(second))
        executor.close()
        assert wait_gone(pid_b)
        assert {r.task_id: r.failure for r in executor.poll()} == {"a": "cancelled", "b": "cancelled"}
        with pytest.raises(ExecutorClosed):
            executor.submit(probe_task("c", ARCHS[2], tmp_path))

    def test_a_stored_result_is_not_run_again_and_results_are_saved_before_delivery(
        self, make: MakeExecutor, tmp_path: Path
    ) -> None:
        store = EvaluationStore(tmp_path / "evals.db")
        seen_stored: list[bool] = []
        executor = make(store=store, on_result=lambda r: seen_stored.append(store.load(r.task) is not None))
        executor.submit(probe_task("x", ARCHS[0], tmp_path))
        executor.submit(probe_task("y", ARCHS[1], tmp_path, "error"))
        first = all_results(executor)
        assert seen_stored == [True, True] and len(store) == 2
        again = make(store=store)
        again.submit(probe_task("x-again", ARCHS[0], tmp_path))
        again.submit(probe_task("y-again", ARCHS[1], tmp_path, "error"))
        second = all_results(again)
        assert all(r.from_store for r in second.values())
        assert second["x-again"].value == first["x"].value
        assert second["y-again"].failure == "permanent" and second["y-again"].error == first["y"].error
        assert len(log_lines(tmp_path / "runs.log")) == 2  # nothing ran the second time

    def test_a_failing_result_hook_is_raised_to_the_caller(self, make: MakeExecutor,
                                                           tmp_path: Path) -> None:  # fmt: skip
        def hook(result: TaskResult) -> None:
            raise OSError("disk full")

        executor = make(on_result=hook)
        handle = executor.submit(probe_task("h", ARCHS[0], tmp_path))
        with pytest.raises(ResultHookError, match="disk full") as info:
            list(executor.results(timeout=RESULT_TIMEOUT_S))
        assert info.value.result.task_id == "h" and handle.result().ok
        assert executor.pending == 0


def test_duplicate_open_task_ids_are_refused(tmp_path: Path) -> None:
    with LocalExecutor(workers=1, cpus=1) as executor:
        gate = tmp_path / "gate"
        executor.submit(probe_task("same", ARCHS[0], tmp_path, "gate", gate=str(gate)))
        with pytest.raises(ValueError, match="already running"):
            executor.submit(probe_task("same", ARCHS[1], tmp_path))
        gate.touch()
        (result,) = executor.results(timeout=RESULT_TIMEOUT_S)
        assert result.ok


def test_local_capacity_bounds_how_many_run_at_once(tmp_path: Path) -> None:
    """Two 1-CPU tasks on a 1-CPU executor with 2 workers: the second starts after the first."""
    with LocalExecutor(workers=2, cpus=1) as executor:
        gate = tmp_path / "gate"
        first = executor.submit(probe_task("first", ARCHS[0], tmp_path, "gate", gate=str(gate)))
        executor.submit(probe_task("second", ARCHS[1], tmp_path))
        wait_for_file(tmp_path / "runs.log")
        assert executor.poll() == [] and not first.done()
        assert len(log_lines(tmp_path / "runs.log")) == 1  # the second has not started
        gate.touch()
        order = [r.task_id for r in executor.results(timeout=RESULT_TIMEOUT_S)]
        assert order == ["first", "second"]


def test_same_training_gives_the_same_value_on_every_executor(ray_instance: None) -> None:
    spec = EstimatorSpec("short_training", {"epochs": 1, "max_train_samples": 128,
                                            "max_val_samples": 64, "batch_size": 32})  # fmt: skip
    tasks = [EvalTask(f"t{i}", spec, SPACE.name, arch, SPACE.config(), DatasetRef("digits"))
             for i, arch in enumerate(ARCHS[:2])]  # fmt: skip
    values: dict[str, list[float | None]] = {}
    for executor in (LocalExecutor(workers=2, cpus=2), RayExecutor()):
        with executor:
            executor.submit_all(tasks)
            got = all_results(executor)
            values[executor.kind] = [got[t.task_id].value for t in tasks]
    assert values["local"] == values["ray"]
    assert all(v is not None and 0.0 <= v <= 1.0 for v in values["local"])


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_retries=-1"):
        LocalExecutor(max_retries=-1)
    with pytest.raises(ValueError, match="workers=0"):
        LocalExecutor(workers=0)
    with pytest.raises(ValueError, match="expected one of local, ray"):
        make_executor("dask")
    with pytest.raises(ValueError, match="--ray-address needs --executor ray"):
        make_executor("local", ray_address="auto")
    with LocalExecutor() as executor, pytest.raises(TypeError, match="EvalTask"):
        executor.submit("c0")  # type: ignore[arg-type]


def test_ray_refuses_sizing_a_cluster_it_only_joins() -> None:
    with pytest.raises(ValueError, match="num_cpus/num_gpus size a new local instance"):
        RayExecutor("127.0.0.1:6379", num_cpus=2)
