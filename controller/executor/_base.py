"""The executor contract: run evaluation tasks somewhere, get each result the moment it is final.

An :class:`Executor` takes :class:`EvalTask` s (:meth:`Executor.submit`) and
runs them in worker processes (:class:`LocalExecutor`) or on a Ray cluster
(:class:`RayExecutor`). What every implementation guarantees:

* **Results as they finish.** :meth:`Executor.results` yields each final
  :class:`TaskResult` as soon as it is final, in completion order, never
  waiting for a batch; :meth:`Executor.poll` returns those final now without
  blocking (for an ask/tell loop that also measures devices); each result is
  delivered once through the two. :meth:`TaskHandle.result` waits for one.
* **Persisted first.** With a ``store``, a task whose result is stored is not
  run: its handle is complete at once with the stored result
  (``from_store=True``), which is delivered like any other. A storable result
  (a value or a permanent failure) is saved to the store *before* it is
  delivered; then ``on_result(result)`` is called, for every result of a run
  (not for stored or cancelled ones). Both are called from the executor's own
  thread, one result at a time; an exception from either is re-raised by
  ``results()``/``poll()`` as :class:`ResultHookError` (the task is not run
  again, the result is in ``exc.result``).
* **Bounded retries of transient failures only.** A worker process or node
  that dies mid-task is a transient failure: the task runs again, at most
  ``max_retries`` more times. The task's own error (anything the estimator
  raises) is permanent and never retried. ``attempts`` counts runs.
* **Declared resources.** Each task says what one run needs
  (:class:`Resources`); the executor never runs more at once than its
  capacity holds, and refuses at :meth:`submit` (``ValueError`` naming the
  fix) a task that could never fit.
* **Nothing left behind.** :meth:`cancel` stops a task (its worker is killed
  when it is running); :meth:`close` (or leaving a ``with`` block) cancels
  every unfinished task, stops every worker process the executor started,
  and returns once they are gone. Workers also die when the process that
  owns the executor dies, however it dies.
* **Deterministic.** A task's value depends on the task alone (its key and
  thread count), not on the executor, worker or attempt that ran it.

Thread safety: ``submit``, ``cancel``, ``poll`` and ``close`` may be called
from any thread; ``results()`` should be consumed by one thread at a time.
"""

from __future__ import annotations

import abc
import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType

from fleetnas.controller.executor._results import ResultStore, TaskResult
from fleetnas.controller.executor._tasks import EvalTask, Outcome


class ExecutorClosed(RuntimeError):
    """The executor was closed; it takes no more tasks."""


class ResultHookError(RuntimeError):
    """``store.save`` or ``on_result`` raised for a result; ``result`` is that result."""

    def __init__(self, result: TaskResult, cause: BaseException) -> None:
        super().__init__(f"task {result.task_id!r}: persisting or reporting its result failed: {cause!r}")
        self.result = result
        self.__cause__ = cause


@dataclass(frozen=True)
class Attempt:
    """One run of a task; ``token`` is unique per executor, so a stale run is recognised."""

    task: EvalTask
    number: int
    token: int


@dataclass(frozen=True)
class Lost:
    """An attempt that ended without an outcome (transient): its worker or node died, or
    (``retry=False``) the executor itself cannot run anything (e.g. cannot start a worker)."""

    reason: str
    worker: str = ""
    retry: bool = True


class TaskHandle:
    """A submitted task: ``done()``, ``result(timeout)``, ``cancel()``."""

    def __init__(self, executor: Executor, task: EvalTask) -> None:
        self.task = task
        self._executor = executor
        self._done = threading.Event()
        self._result: TaskResult | None = None

    @property
    def task_id(self) -> str:
        return self.task.task_id

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> TaskResult:
        """The final result; TimeoutError when it is not final within ``timeout`` seconds."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"task {self.task_id!r} not finished after {timeout} s")
        assert self._result is not None
        return self._result

    def cancel(self) -> bool:
        """:meth:`Executor.cancel` of this task."""
        return self._executor.cancel(self.task_id)

    def _set(self, result: TaskResult) -> None:
        self._result = result
        self._done.set()


class Executor(abc.ABC):
    """Runs :class:`EvalTask` s (see the module docstring for the contract).

    Implementations provide :meth:`_check`, :meth:`_launch`, :meth:`_abort`
    and :meth:`_shutdown`, and report every launched attempt's end exactly
    once through :meth:`_attempt_finished` (an :class:`Outcome`, or
    :class:`Lost` when the worker died).
    """

    #: short name, e.g. ``"local"``
    kind: str

    def __init__(
        self,
        *,
        max_retries: int = 2,
        on_result: Callable[[TaskResult], None] | None = None,
        store: ResultStore | None = None,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries={max_retries!r}, expected an integer >= 0")
        self.max_retries = max_retries
        self.on_result = on_result
        self.store = store
        self._lock = threading.Lock()
        self._open: dict[str, tuple[TaskHandle, Attempt]] = {}
        self._undelivered = 0
        self._final: queue.SimpleQueue[TaskResult | ResultHookError] = queue.SimpleQueue()
        self._tokens = itertools.count(1)
        self._closed = False

    # -- the public contract -------------------------------------------------------
    def submit(self, task: EvalTask) -> TaskHandle:
        """Start ``task`` (or complete it from the store). ValueError for a task that can never
        run here or whose ``task_id`` is still open; ExecutorClosed after :meth:`close`."""
        if not isinstance(task, EvalTask):
            raise TypeError(f"submit takes an EvalTask, got {type(task).__name__}")
        self._raise_if_closed()
        self._check(task)
        handle = TaskHandle(self, task)
        stored = self.store.load(task) if self.store is not None else None
        with self._lock:
            self._raise_if_closed()
            if task.task_id in self._open:
                raise ValueError(f"task_id {task.task_id!r} is already running; ids must be unique")
            self._undelivered += 1
            if stored is None:
                attempt = Attempt(task, 1, next(self._tokens))
                self._open[task.task_id] = (handle, attempt)
        if stored is not None:
            self._deliver(handle, stored, ran=False)
        else:
            self._launch(attempt)
        return handle

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise ExecutorClosed(f"{self.kind} executor is closed; create a new one")

    def submit_all(self, tasks: Iterable[EvalTask]) -> list[TaskHandle]:
        return [self.submit(task) for task in tasks]

    def results(self, timeout: float | None = None) -> Iterator[TaskResult]:
        """Each final result as it comes, until every submitted task's result was delivered.

        ``timeout``: the most seconds to wait for the next one (TimeoutError).
        Tasks submitted while iterating are waited for too.
        """
        while True:
            with self._lock:
                if self._undelivered == 0:
                    return
            try:
                item = self._final.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no result within {timeout} s ({self.pending} pending)") from None
            yield self._take(item)

    def poll(self) -> list[TaskResult]:
        """The results final now and not yet delivered (never blocks)."""
        taken: list[TaskResult] = []
        while True:
            try:
                item = self._final.get_nowait()
            except queue.Empty:
                return taken
            taken.append(self._take(item))

    @property
    def pending(self) -> int:
        """Tasks submitted and not yet final."""
        with self._lock:
            return len(self._open)

    def cancel(self, task_id: str) -> bool:
        """Stop ``task_id`` (killing its worker when it runs); False when it is not open.

        Its result (``failure="cancelled"``) is delivered like any other.
        """
        with self._lock:
            entry = self._open.pop(task_id, None)
        if entry is None:
            return False
        handle, attempt = entry
        self._abort(attempt)
        self._deliver(handle, TaskResult(attempt.task, None, "cancelled", "cancelled",
                                         attempt.number - 1), ran=False)  # fmt: skip
        return True

    def close(self) -> None:
        """Cancel every open task and stop every worker; idempotent."""
        with self._lock:
            self._closed = True
            open_ids = list(self._open)
        for task_id in open_ids:
            self.cancel(task_id)
        self._shutdown()

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- for implementations -------------------------------------------------------
    @abc.abstractmethod
    def _check(self, task: EvalTask) -> None:
        """Raise ValueError (saying what to change) if ``task`` can never run here."""

    @abc.abstractmethod
    def _launch(self, attempt: Attempt) -> None:
        """Start ``attempt`` without blocking; its end goes to :meth:`_attempt_finished`."""

    @abc.abstractmethod
    def _abort(self, attempt: Attempt) -> None:
        """Stop ``attempt`` (queued: drop it; running: kill its worker). Reports nothing."""

    @abc.abstractmethod
    def _shutdown(self) -> None:
        """Stop every worker process and thread; return once they are gone. Idempotent."""

    def _attempt_finished(self, attempt: Attempt, outcome: Outcome | Lost) -> None:
        """Record an attempt's end: retry a lost one within budget, else deliver the result."""
        task = attempt.task
        with self._lock:
            entry = self._open.get(task.task_id)
            if entry is None or entry[1].token != attempt.token:
                return  # cancelled meanwhile: its result was delivered already
            handle = entry[0]
            retry = (isinstance(outcome, Lost) and outcome.retry
                     and attempt.number <= self.max_retries)  # fmt: skip
            if retry:
                following = Attempt(task, attempt.number + 1, next(self._tokens))
                self._open[task.task_id] = (handle, following)
            else:
                del self._open[task.task_id]
        if retry:
            self._launch(following)
            return
        if isinstance(outcome, Lost):
            result = TaskResult(task, None, outcome.reason, "transient", attempt.number, 0.0,
                                outcome.worker)  # fmt: skip
        elif outcome.error is not None:
            result = TaskResult(task, None, outcome.error, "permanent", attempt.number,
                                outcome.seconds, outcome.worker)  # fmt: skip
        else:
            result = TaskResult(task, outcome.value, None, None, attempt.number, outcome.seconds,
                                outcome.worker)  # fmt: skip
        self._deliver(handle, result, ran=True)

    # -- delivery -------------------------------------------------------------------
    def _deliver(self, handle: TaskHandle, result: TaskResult, *, ran: bool) -> None:
        hook_error: BaseException | None = None
        if ran:
            try:
                if self.store is not None and result.storable:
                    self.store.save(result)
                if self.on_result is not None:
                    self.on_result(result)
            except Exception as exc:  # noqa: BLE001 - the caller's hook; re-raised to the caller
                hook_error = exc
        handle._set(result)
        self._final.put(result if hook_error is None else ResultHookError(result, hook_error))

    def _take(self, item: TaskResult | ResultHookError) -> TaskResult:
        with self._lock:
            self._undelivered -= 1
        if isinstance(item, ResultHookError):
            raise item
        return item
