"""Executors: run accuracy evaluations in parallel, locally or on Ray, persisting each result at once.

An evaluation is an :class:`EvalTask` (estimator kind + options, space name +
config, arch encoding, dataset reference, resources: picklable, no live torch
objects). An :class:`Executor` runs tasks and hands back each
:class:`TaskResult` as it finishes; with a :class:`ResultStore` (e.g.
:class:`EvaluationStore`) a result is saved before anyone sees it and a task
already stored is never run again::

    from fleetnas.controller.executor import (
        DatasetRef, EstimatorSpec, EvalTask, EvaluationStore, LocalExecutor, Resources)

    spec = EstimatorSpec("short_training", {"epochs": 1})
    tasks = [EvalTask.of(f"c{i}", space, arch, spec, dataset=DatasetRef("digits"),
                         resources=Resources(cpus=1)) for i, arch in enumerate(archs)]
    with LocalExecutor(workers=2, store=EvaluationStore("evals.db")) as executor:
        executor.submit_all(tasks)
        for result in executor.results():
            print(result.task_id, result.value, result.failure, result.attempts)

:class:`LocalExecutor` (spawned worker processes, the default) and
:class:`RayExecutor` (``pip install 'fleetnas[ray]'``) implement one contract
(``_base.py``). :func:`make_executor` builds one from CLI-style options.
Importing this package imports neither torch nor Ray. See ``docs/executor.md``.
"""

from __future__ import annotations

from typing import Any

from fleetnas.controller.executor._base import (
    Executor,
    ExecutorClosed,
    ResultHookError,
    TaskHandle,
)
from fleetnas.controller.executor._local import LocalExecutor
from fleetnas.controller.executor._ray import RayExecutor
from fleetnas.controller.executor._results import (
    FAILURES,
    EvaluationStore,
    ResultStore,
    TaskResult,
)
from fleetnas.controller.executor._tasks import (
    ESTIMATOR_KINDS,
    STORED_ELSEWHERE,
    DatasetRef,
    EstimatorSpec,
    EvalTask,
    Outcome,
    Resources,
    execute,
)

EXECUTORS = ("local", "ray")


def make_executor(kind: str = "local", *, ray_address: str | None = None, **options: Any) -> Executor:
    """``local`` or ``ray`` (what ``--executor`` / ``--ray-address`` name); ``options`` go to the
    constructor (``workers``, ``max_retries``, ``on_result``, ``store``...). ValueError otherwise."""
    if kind == "local":
        if ray_address is not None:
            raise ValueError("--ray-address needs --executor ray")
        return LocalExecutor(**options)
    if kind == "ray":
        return RayExecutor(ray_address, **options)
    raise ValueError(f"executor {kind!r}: expected one of {', '.join(EXECUTORS)}")


__all__ = [
    "ESTIMATOR_KINDS",
    "EXECUTORS",
    "FAILURES",
    "STORED_ELSEWHERE",
    "DatasetRef",
    "EstimatorSpec",
    "EvalTask",
    "EvaluationStore",
    "Executor",
    "ExecutorClosed",
    "LocalExecutor",
    "Outcome",
    "RayExecutor",
    "Resources",
    "ResultHookError",
    "ResultStore",
    "TaskHandle",
    "TaskResult",
    "execute",
    "make_executor",
]
