"""EvalTask/EstimatorSpec/Resources/DatasetRef and ``execute``; plus the probe estimators the
executor tests run in their workers (imported there as ``tests.controller.test_executor_tasks``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fleetnas.controller.accuracy import (
    AccuracyEstimator,
    Dataset,
    EstimatorError,
    ShortTrainingEstimator,
)
from fleetnas.controller.executor import (
    ESTIMATOR_KINDS,
    DatasetRef,
    EstimatorSpec,
    EvalTask,
    Resources,
    execute,
)
from fleetnas.controller.spaces import SearchSpace, get_space

HERE = "tests.controller.test_executor_tasks"
PROBE = f"{HERE}:probe"
LOGGED_TRAINING = f"{HERE}:logged_training"
_WAIT_LIMIT_S = 120.0  # a probe that waits for the test gives up after this (never hangs a run)


# -- estimators run inside the workers ------------------------------------------------
def arch_value(encoding: str) -> float:
    """The probe's value for an arch: a deterministic number in [0, 1)."""
    return int(hashlib.sha256(encoding.encode()).hexdigest()[:8], 16) / 2**32


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + _WAIT_LIMIT_S
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


class ProbeEstimator(AccuracyEstimator):
    """Logs ``<pid> <arch>`` per run to ``log``, then acts by ``mode``:

    ``value``: return :func:`arch_value`; ``threads``: torch's thread count;
    ``gate``: wait until the file ``gate`` exists, then ``value``; ``error``:
    raise EstimatorError; ``die``: SIGKILL its own process; ``die_once``: on
    the first run (no ``pidfile`` yet) write its pid to ``pidfile`` and wait to
    be killed, later runs ``value``; ``block``: write the pid and wait.
    """

    name = "probe"
    cost: ClassVar[str] = "whatever the test makes it"

    def __init__(self, *, log: str, mode: str = "value", gate: str = "", pidfile: str = "") -> None:
        self.log, self.mode, self.gate, self.pidfile = log, mode, gate, pidfile

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        encoding = space.encode(arch)
        _append(self.log, f"{os.getpid()} {encoding}")
        if self.mode == "threads":
            import torch

            return float(torch.get_num_threads())
        if self.mode == "gate":
            _wait_for(self.gate)
        elif self.mode == "error":
            raise EstimatorError(f"probe cannot score {encoding}")
        elif self.mode == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.mode in ("die_once", "block") and (
            self.mode == "block" or not os.path.exists(self.pidfile)
        ):
            Path(self.pidfile + ".tmp").write_text(str(os.getpid()))
            os.replace(self.pidfile + ".tmp", self.pidfile)
            _wait_for(self.pidfile + ".never")
        return arch_value(encoding)


def probe(dataset: Dataset | None, **options: Any) -> ProbeEstimator:
    return ProbeEstimator(**options)


class LoggedTraining(ShortTrainingEstimator):
    """A real short training that first logs ``<controller pid> <worker pid> <arch>`` to ``log``."""

    def __init__(self, dataset: Dataset, *, log: str, **options: Any) -> None:
        super().__init__(dataset, **options)
        self.log = log

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        _append(self.log, f"{os.getppid()} {os.getpid()} {space.encode(arch)}")
        return super().estimate(space, arch)


def logged_training(dataset: Dataset | None, **options: Any) -> LoggedTraining:
    assert dataset is not None
    return LoggedTraining(dataset, **options)


def log_lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line]


# -- the task description ---------------------------------------------------------------
SPACE = get_space("nb201", {"channels": 8, "cells_per_stage": 1})


def _task(task_id: str = "t1", **changes: Any) -> EvalTask:
    import random

    arch = SPACE.sample(random.Random(1))
    values: dict[str, Any] = dict(
        estimator=EstimatorSpec("short_training", {"epochs": 1, "max_train_samples": 64}),
        dataset=DatasetRef("digits"),
        resources=Resources(cpus=1),
    )
    values.update(changes)
    return EvalTask.of(task_id, SPACE, arch, **values)


def test_task_round_trips_through_pickle_and_json() -> None:
    task = _task(resources=Resources(cpus=2, gpus=0.5, memory_mb=512))
    assert pickle.loads(pickle.dumps(task)) == task
    assert EvalTask.from_dict(task.to_dict()) == task
    assert task.space == "nb201" and task.space_config == {"channels": 8, "cells_per_stage": 1}
    assert SPACE.decode(task.arch) == SPACE.sample(__import__("random").Random(1))


def test_key_names_the_evaluation_not_the_run() -> None:
    base = _task()
    assert _task("other-id", resources=Resources(cpus=4)).key == base.key
    assert _task(dataset=DatasetRef("digits", seed=1)).key != base.key
    assert _task(estimator=EstimatorSpec("short_training", {"epochs": 2,
                                                            "max_train_samples": 64})).key != base.key
    other_space = EvalTask(base.task_id, base.estimator, base.space, base.arch,
                           {"channels": 16, "cells_per_stage": 1}, base.dataset)
    assert other_space.key != base.key


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: EstimatorSpec("nope"), "estimator kind 'nope'"),
        (lambda: EstimatorSpec("naswot", {"x": object()}), "not JSON-safe"),
        (lambda: EstimatorSpec("naswot", {"x": float("nan")}), "not JSON-safe"),
        (lambda: Resources(cpus=0), "cpus=0"),
        (lambda: Resources(gpus=-1), "gpus=-1"),
        (lambda: Resources(memory_mb=0), "memory_mb=0"),
        (lambda: DatasetRef(""), "spec=''"),
        (lambda: DatasetRef("digits", val_fraction=1.0), "val_fraction=1.0"),
        (lambda: EvalTask("", EstimatorSpec("naswot"), "nb201", "x"), "task_id=''"),
    ],
)
def test_bad_descriptions_are_refused_with_the_field_named(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build()


def test_resources_threads_round_up() -> None:
    assert (Resources(cpus=0.5).threads, Resources(cpus=2).threads, Resources(cpus=2.5).threads) == (1, 2, 3)


def test_every_builtin_kind_builds_an_estimator(tmp_path: Path) -> None:
    from fleetnas.controller.accuracy.supernet import SupernetNotFound

    data = DatasetRef("synthetic").load()
    options: dict[str, dict[str, Any]] = {
        "plugin": {"spec": PROBE.replace(":probe", ":arch_value_plugin")},
        "supernet_train": {"store": str(tmp_path), "train_config": {"epochs": 1}},
        "supernet": {"store": str(tmp_path), "supernet": "nb201-0123456789abcdef"},
    }
    built = {kind: EstimatorSpec(kind, options.get(kind, {})).build(data)
             for kind in ESTIMATOR_KINDS if kind != "supernet"}  # fmt: skip
    assert {kind: type(e).__name__ for kind, e in built.items()} == {
        "naswot": "NaswotEstimator", "synflow": "SynflowEstimator",
        "short_training": "ShortTrainingEstimator", "plugin": "PluginEstimator",
        "supernet_train": "SupernetTraining",
    }  # fmt: skip
    # scoring loads a stored supernet when built, and never trains one (test_search_executor_supernet)
    with pytest.raises(SupernetNotFound, match="no supernet 'nb201-0123456789abcdef'"):
        EstimatorSpec("supernet", options["supernet"]).build(data)
    assert list(tmp_path.iterdir()) == []  # building trained nothing
    for kind in ("short_training", "supernet", "supernet_train"):
        with pytest.raises(ValueError, match="needs a dataset"):
            EstimatorSpec(kind, options.get(kind, {})).build(None)


def arch_value_plugin(space: SearchSpace, arch: Any) -> float:
    return arch_value(space.encode(arch))


@pytest.fixture
def torch_threads() -> Any:
    """``execute`` sets torch's thread count in this process: put it back afterwards."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_execute_reports_task_errors_as_data(torch_threads: None) -> None:
    outcome = execute(_task(estimator=EstimatorSpec("no_such_module_xyz:factory")))
    assert outcome.value is None and outcome.error is not None
    assert "no_such_module_xyz" in outcome.error
    bad_arch = EvalTask("t", EstimatorSpec("synflow"), "nb201", "not-an-arch")
    outcome = execute(bad_arch)
    assert outcome.value is None and outcome.error is not None and "UnknownArch" in outcome.error
    assert outcome.worker.endswith(f":{os.getpid()}")
