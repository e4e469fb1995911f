"""A search's accuracy estimates on an executor (``--executor local|ray``), beside its measurements.

:class:`ExecutorOptions` is how a search says where its estimates run
(stored with the config, so ``--resume`` uses the same kind; the Ray address
may be overridden). :func:`open_executor` builds the executor, with an
:class:`~fleetnas.controller.executor.EvaluationStore` in
``evaluations.db`` beside the cost DB: every finished estimate is saved
there by the executor's thread the moment it finishes, while the driver
still waits on device measurements, so a killed search never runs one
again (the resumed search's task has the same key and is answered from the
store).

:class:`RemoteEstimates` is what the driver and its
:class:`~._evaluation.Evaluation` use: :meth:`~RemoteEstimates.submit` a
candidate's estimate (returns at once), :meth:`~RemoteEstimates.settle`
waits for every submitted one, writes each value into its candidate's state
and hands the state to ``on_value`` (which stores it in the search's rows),
and keeps the failure text of each candidate whose estimate failed
(``failures``: a permanent error of the estimator, or a worker that died on
every one of ``1 + max_retries`` attempts) for the driver to fail it with.

Which estimator kinds run remotely: those whose
:class:`~._accuracy.EstimatorKind` names an executor kind
(:meth:`~._accuracy.EstimatorKind.task`): ``train``, ``naswot``,
``synflow``, ``plugin``; and ``supernet``, whose training and per-candidate
scoring are tasks too (:mod:`._remote_supernet`). ``table`` stays inline.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetnas.controller.driver._accuracy import estimator_kind
from fleetnas.controller.driver._candidates import CandidateState
from fleetnas.controller.driver._errors import SearchConfigError

if TYPE_CHECKING:
    from fleetnas.controller.executor import EstimatorSpec, Executor, Resources
    from fleetnas.controller.executor._tasks import DatasetRef
    from fleetnas.controller.spaces import SearchSpace

EXECUTOR_KINDS = ("local", "ray")
#: the result store's file, beside the cost DB
EVALUATIONS_FILE = "evaluations.db"


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ExecutorOptions:
    """``--executor KIND [--workers N] [--ray-address ADDR] [--trial-cpus C] [--trial-gpus G]``.

    ``trial_cpus`` / ``trial_gpus`` are what each estimate declares
    (:class:`~fleetnas.controller.executor.Resources`): Ray places each task
    where they are free (and sets ``CUDA_VISIBLE_DEVICES``); the local pool
    runs ``workers`` estimates at once with a capacity of ``workers x
    trial_cpus`` CPUs (without ``workers``: as many as fit in this machine's
    CPUs) and every GPU torch sees. Every estimate runs torch on
    ``ceil(trial_cpus)`` threads.
    """

    kind: str
    workers: int | None = None
    ray_address: str | None = None
    max_retries: int = 2
    trial_cpus: float = 1.0
    trial_gpus: float = 0.0

    def __post_init__(self) -> None:
        if not (_number(self.trial_cpus) and self.trial_cpus > 0):
            raise SearchConfigError(f"--trial-cpus {self.trial_cpus!r}: expected a number > 0 "
                                    "(e.g. 1, 2 or 0.5)")
        if not (_number(self.trial_gpus) and self.trial_gpus >= 0):
            raise SearchConfigError(f"--trial-gpus {self.trial_gpus!r}: expected a number >= 0 "
                                    "(e.g. 0, 1 or 0.5)")
        if self.kind not in EXECUTOR_KINDS:
            raise SearchConfigError(f"--executor {self.kind!r}: choose one of {', '.join(EXECUTOR_KINDS)}")
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise SearchConfigError(f"--workers {self.workers!r}: expected an integer >= 1")
        if self.ray_address is not None and self.kind != "ray":
            raise SearchConfigError("--ray-address needs --executor ray")
        if self.ray_address is not None and self.workers is not None:
            raise SearchConfigError("--workers sizes a local Ray instance; a cluster at "
                                    "--ray-address has the size it was started with: drop --workers")
        if self.max_retries < 0:
            raise SearchConfigError(f"max_retries {self.max_retries!r}: expected >= 0")
        if self.kind == "ray" and self.workers is not None and self.trial_cpus > self.workers:
            raise SearchConfigError(f"--trial-cpus {self.trial_cpus:g}: a new local Ray instance "
                                    f"of --workers {self.workers} CPUs could never run one; "
                                    f"raise --workers to at least {math.ceil(self.trial_cpus)}")

    @property
    def resources(self) -> Resources:
        """What each estimate declares."""
        from fleetnas.controller.executor import Resources

        return Resources(cpus=float(self.trial_cpus), gpus=float(self.trial_gpus))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "workers": self.workers, "ray_address": self.ray_address,
                "max_retries": self.max_retries, "trial_cpus": self.trial_cpus,
                "trial_gpus": self.trial_gpus}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutorOptions:
        # searches stored before --trial-cpus/--trial-gpus declared one CPU per estimate
        return cls(str(data["kind"]), data.get("workers"), data.get("ray_address"),
                   int(data.get("max_retries", 2)), data.get("trial_cpus", 1.0),
                   data.get("trial_gpus", 0.0))

    def describe(self) -> str:
        where = f" at {self.ray_address}" if self.ray_address else ""
        workers = f", {self.workers} workers" if self.workers else ""
        trial = ""
        if (self.trial_cpus, self.trial_gpus) != (1.0, 0.0):
            gpus = f" + {self.trial_gpus:g} GPU" if self.trial_gpus else ""
            trial = f", {self.trial_cpus:g} CPU{gpus} per estimate"
        return f"{self.kind} executor{where}{workers}{trial}"


def _local_capacity(options: ExecutorOptions) -> tuple[int, float, float]:
    """``(workers, cpus, gpus)`` of the local pool for ``options`` (see ExecutorOptions)."""
    trial = float(options.trial_cpus)
    if options.workers is None:
        cpus = float(os.cpu_count() or 1)
        if trial > cpus:
            raise SearchConfigError(f"--trial-cpus {trial:g}: this machine has {cpus:g} CPUs; "
                                    "lower it (or pass --workers N to run N at once anyway)")
        workers = max(1, int(cpus // trial))
    else:
        # --workers N: N tasks at once, whatever the CPU count
        workers, cpus = options.workers, options.workers * trial
    gpus = 0.0
    if options.trial_gpus > 0:
        import torch

        gpus = float(torch.cuda.device_count())
        if gpus < options.trial_gpus:
            raise SearchConfigError(
                f"--trial-gpus {options.trial_gpus:g}: torch sees {gpus:g} GPUs on this machine; "
                "drop --trial-gpus, or use --executor ray on a cluster with GPUs")
    return workers, cpus, gpus


def remote_task_spec(spec: str) -> tuple[EstimatorSpec, DatasetRef | None] | None:
    """The executor's estimator (and dataset) for accuracy ``spec``; None when it runs inline."""
    from fleetnas.controller.executor import DatasetRef, EstimatorSpec

    kind, argument = estimator_kind(spec)
    task = kind.task(spec, argument)
    if task is None:
        return None
    name, options, data = task
    return EstimatorSpec(name, options), None if data is None else DatasetRef(data)


@contextmanager
def open_executor(options: ExecutorOptions | None, db_path: str | Path | None, *,
                  ray_address: str | None = None) -> Iterator[Executor | None]:
    """The executor ``options`` name (None without), closed (its workers gone) on exit.

    ``ray_address`` overrides the stored address (a resumed search on another
    cluster). SearchConfigError when it cannot start (Ray not installed...).
    """
    if options is None:
        if ray_address is not None:
            raise SearchConfigError("--ray-address: this search runs its estimates inline "
                                    "(it was started without --executor ray)")
        yield None
        return
    from fleetnas.controller.executor import EvaluationStore, LocalExecutor, RayExecutor

    store = None
    if db_path is not None and str(db_path) != ":memory:":
        store = EvaluationStore(Path(db_path).resolve().parent / EVALUATIONS_FILE)
    executor: Executor
    try:
        if options.kind == "local":
            if ray_address is not None:
                raise SearchConfigError("--ray-address: this search uses the local executor")
            workers, cpus, gpus = _local_capacity(options)
            executor = LocalExecutor(workers=workers, cpus=cpus, gpus=gpus,
                                     max_retries=options.max_retries, store=store)
        else:
            address = ray_address or options.ray_address
            executor = RayExecutor(address, num_cpus=None if address else options.workers,
                                   max_retries=options.max_retries, store=store)
    except (ImportError, ValueError, ConnectionError, RuntimeError) as exc:
        if store is not None:
            store.close()
        raise SearchConfigError(f"{options.describe()}: cannot start it ({exc})") from exc
    try:
        yield executor
    finally:
        executor.close()
        if store is not None:
            store.close()


def remote_estimates(executor: Executor | None, spec: str | None, space: SearchSpace,
                     on_value: Callable[[CandidateState], None], *,
                     resources: Resources | None = None) -> RemoteEstimates | None:
    """The executor's side of accuracy ``spec``'s estimates (None: they run inline), each
    declaring ``resources`` (default: one CPU)."""
    task = None if executor is None or spec is None else remote_task_spec(spec)
    if executor is None or task is None:
        return None
    return RemoteEstimates(executor, space, *task, on_value=on_value, resources=resources)


def inline_note(spec: str | None, executor: Executor, *, deployed: bool = False) -> str:
    """What a search says when its estimator kind runs inline despite an executor
    (``deployed``: a training search with precision genes, whose deployed models are scored
    in the search's process)."""
    if deployed:
        return (f"accuracy {spec} runs inline: each target's deployed model is scored here, not "
                f"on the {executor.kind} executor")
    return (f"accuracy {spec} runs inline: the {executor.kind} executor runs train, supernet, "
            "naswot, synflow and plugin estimates")


class RemoteEstimates:
    """A search's accuracy estimates on ``executor`` (see the module docstring). One thread."""

    def __init__(self, executor: Executor, space: SearchSpace, estimator: EstimatorSpec,
                 dataset: DatasetRef | None,
                 on_value: Callable[[CandidateState], None] = lambda state: None, *,
                 resources: Resources | None = None) -> None:
        from fleetnas.controller.executor import Resources

        self.executor = executor
        self.resources = resources or Resources(cpus=1)
        self.space = space
        self.estimator = estimator
        self.dataset = dataset
        self.on_value = on_value
        self.failures: dict[int, str] = {}
        self._waiting: dict[str, tuple[CandidateState, str]] = {}

    def submit(self, state: CandidateState, source: str) -> None:
        """Start the estimate of ``state``'s candidate; ``source`` labels its value when it comes."""
        from fleetnas.controller.driver._unknown import network_of  # _config imports this module
        from fleetnas.controller.executor import EvalTask

        task_id = f"candidate-{state.id}"
        if task_id in self._waiting:
            return
        space, arch = network_of(self.space, state.candidate.arch)  # the fp32 network
        task = EvalTask.of(task_id, space, arch, self.estimator,
                           dataset=self.dataset, resources=self.resources)
        try:
            self.executor.submit(task)
        except ValueError as exc:  # declared resources this executor can never give
            raise SearchConfigError(f"accuracy on the {self.executor.kind} executor: {exc} "
                                    "(see --trial-cpus / --trial-gpus)") from None
        self._waiting[task_id] = (state, source)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def settle(self) -> None:
        """Wait for every submitted estimate; each value goes into its state, then ``on_value``."""
        from fleetnas.controller.driver._unknown import blind_accuracy

        if not self._waiting:
            return
        for result in self.executor.results():
            entry = self._waiting.pop(result.task_id, None)
            if entry is None:
                continue
            state, source = entry
            if result.ok:
                assert result.value is not None
                values, sources = blind_accuracy(self.space, state.candidate.arch,
                                                 float(result.value), source)
                state.values.update(values)
                state.sources.update(sources)
                self.on_value(state)
            else:
                tries = f"{result.attempts} attempt{'s' if result.attempts != 1 else ''}"
                self.failures[state.id] = (f"accuracy: {result.error} ({result.failure} failure "
                                           f"on the {self.executor.kind} executor, {tries})")
            if not self._waiting:
                return
