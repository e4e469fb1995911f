"""The local executor: a pool of spawned worker processes on this machine (the default).

Workers are started with the ``spawn`` start method (a fresh interpreter:
no forked torch state, no inherited locks) on first need, up to
``workers``, and kept for further tasks; each runs one task at a time with
torch's intra-op threads set from the task's ``cpus``. A task is dispatched
only while the CPUs of the running tasks plus its own fit in ``cpus`` (the
capacity, default: this machine's CPU count), in submission order (a task
that does not fit yet waits, and so do those behind it, so a wide task is
never starved). ``gpus`` is the capacity for tasks that ask for GPUs
(default 0: such a task is refused at submit); ``memory_mb`` is not enforced
here (Ray enforces it), only recorded.

One thread per executor does all process work: starting workers, sending
tasks, waiting on every worker's result pipe and process sentinel at once,
and noticing deaths. A worker that dies mid-task (killed, crashed, out of
memory) makes that attempt :class:`Lost` (transient, retried by the base
class) and is replaced on next need. Workers exit when their pipe closes, so
they die with the executor's process (see ``_local_worker``); :meth:`close`
kills the busy ones, lets the idle ones exit, and reaps them all.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from fleetnas.controller.executor._base import Attempt, Executor, Lost
from fleetnas.controller.executor._local_worker import worker_main
from fleetnas.controller.executor._results import ResultStore, TaskResult
from fleetnas.controller.executor._tasks import EvalTask, Outcome

_REAP_TIMEOUT_S = 5.0


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    tasks: Connection
    outcomes: Connection
    attempt: Attempt | None = None
    alive: bool = field(default=True)

    @property
    def label(self) -> str:
        return f"{socket.gethostname()}:{self.process.pid}"


class LocalExecutor(Executor):
    """Runs tasks in spawned worker processes on this machine (see the module docstring)."""

    kind = "local"

    def __init__(
        self,
        *,
        workers: int | None = None,
        cpus: float | None = None,
        gpus: float = 0.0,
        max_retries: int = 2,
        on_result: Callable[[TaskResult], None] | None = None,
        store: ResultStore | None = None,
    ) -> None:
        super().__init__(max_retries=max_retries, on_result=on_result, store=store)
        self.cpus = float(cpus if cpus is not None else (os.cpu_count() or 1))
        if self.cpus <= 0:
            raise ValueError(f"LocalExecutor: cpus={cpus!r}, expected a number > 0")
        self.workers = workers if workers is not None else max(1, int(self.cpus))
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"LocalExecutor: workers={workers!r}, expected an integer >= 1")
        if gpus < 0:
            raise ValueError(f"LocalExecutor: gpus={gpus!r}, expected a number >= 0")
        self.gpus = float(gpus)
        self._context = multiprocessing.get_context("spawn")
        self._state = threading.Lock()  # guards _queue, _aborts, _stopping
        self._queue: collections.deque[Attempt] = collections.deque()
        self._aborts: list[Attempt] = []
        self._pool: list[_Worker] = []  # only the loop thread touches it
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)  # a full pipe already wakes the loop
        self._thread: threading.Thread | None = None

    # -- hooks -----------------------------------------------------------------------
    def _check(self, task: EvalTask) -> None:
        need = task.resources
        if need.cpus > self.cpus:
            raise ValueError(
                f"task {task.task_id!r} asks for {need.cpus:g} CPUs; this LocalExecutor has "
                f"{self.cpus:g} (pass cpus=, or lower the task's Resources(cpus=))"
            )
        if need.gpus > self.gpus:
            raise ValueError(
                f"task {task.task_id!r} asks for {need.gpus:g} GPUs; this LocalExecutor has "
                f"{self.gpus:g} (pass gpus=, or run on a Ray cluster with GPUs: RayExecutor)"
            )

    def _launch(self, attempt: Attempt) -> None:
        with self._state:
            self._queue.append(attempt)
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._loop, name="fleetnas-local-executor",
                                                daemon=True)  # fmt: skip
                self._thread.start()
        self._wake()

    def _abort(self, attempt: Attempt) -> None:
        with self._state:
            self._aborts.append(attempt)
        self._wake()

    def _shutdown(self) -> None:
        with self._state:
            self._stopping = True
            thread = self._thread
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._state:
            fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    # -- the loop thread -------------------------------------------------------------
    def _wake(self) -> None:
        with self._state:  # never write to a closed (maybe reused) descriptor
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"x")
                except BlockingIOError:
                    pass

    def _loop(self) -> None:
        try:
            while True:
                with self._state:
                    if self._stopping:
                        return
                    aborts, self._aborts = self._aborts, []
                for attempt in aborts:
                    self._do_abort(attempt)
                self._dispatch()
                self._wait_once()
        except Exception as exc:  # noqa: BLE001 - a bug here must fail the tasks, not hang them
            self._fail_everything(f"the local executor's thread failed: {exc!r}")
        finally:
            self._reap_all()

    def _fail_everything(self, reason: str) -> None:
        """Stop taking work and end every queued and running attempt as lost, without retry."""
        with self._state:
            self._stopping = True
            attempts, self._queue = list(self._queue), collections.deque()
        attempts += [w.attempt for w in self._pool if w.attempt is not None]
        for worker in self._pool:
            worker.attempt = None
        for attempt in attempts:
            self._attempt_finished(attempt, Lost(reason, retry=False))

    def _wait_once(self) -> None:
        busy = [w for w in self._pool if w.attempt is not None]
        waitables: list[Any] = [self._wake_r, *(w.outcomes for w in busy),
                                *(w.process.sentinel for w in self._pool)]  # fmt: skip
        ready = set(wait(waitables))
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        for worker in busy:  # outcomes first: a worker may die right after answering
            if worker.outcomes in ready:
                self._receive(worker)
        for worker in list(self._pool):
            if worker.process.sentinel in ready:
                self._lost(worker)

    def _receive(self, worker: _Worker) -> None:
        try:
            token, outcome = worker.outcomes.recv()
        except (EOFError, OSError):
            self._lost(worker)
            return
        attempt, worker.attempt = worker.attempt, None
        if attempt is not None and isinstance(outcome, Outcome) and token == attempt.token:
            self._attempt_finished(attempt, outcome)

    def _lost(self, worker: _Worker) -> None:
        """``worker`` died: retire it; its attempt (if any) is lost."""
        if not worker.alive:
            return
        worker.alive = False
        self._pool.remove(worker)
        worker.process.join(_REAP_TIMEOUT_S)
        code = worker.process.exitcode
        self._close_pipes(worker)
        attempt, worker.attempt = worker.attempt, None
        if attempt is not None:
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self._attempt_finished(
                attempt, Lost(f"worker {worker.label} died ({how}) running the task", worker.label)
            )

    def _dispatch(self) -> None:
        """Send queued attempts to idle (or new) workers while they fit, in order."""
        while (attempt := self._head()) is not None:
            worker = next((w for w in self._pool if w.attempt is None), None)
            if worker is None:
                if len(self._pool) >= self.workers:
                    return
                try:
                    worker = self._start_worker()
                except (OSError, RuntimeError) as exc:  # e.g. spawn from an unguarded __main__
                    if self._pop(attempt):
                        self._attempt_finished(
                            attempt, Lost(f"cannot start a worker process: {exc!r}", retry=False)
                        )
                    continue
            if not self._pop(attempt):
                continue  # aborted meanwhile
            worker.attempt = attempt
            try:
                worker.tasks.send((attempt.token, attempt.task))
            except (OSError, ValueError):
                self._lost(worker)

    def _head(self) -> Attempt | None:
        """The first queued attempt still open, if it fits now (stale ones are dropped)."""
        with self._state:
            while self._queue and not self._is_open(self._queue[0]):
                self._queue.popleft()
            if not self._queue or not self._fits(self._queue[0]):
                return None
            return self._queue[0]

    def _pop(self, attempt: Attempt) -> bool:
        with self._state:
            if self._queue and self._queue[0] is attempt:
                self._queue.popleft()
                return True
            return False

    def _fits(self, attempt: Attempt) -> bool:
        running = [w.attempt.task.resources for w in self._pool if w.attempt is not None]
        need = attempt.task.resources
        return (sum(r.cpus for r in running) + need.cpus <= self.cpus + 1e-9
                and sum(r.gpus for r in running) + need.gpus <= self.gpus + 1e-9)  # fmt: skip

    def _start_worker(self) -> _Worker:
        task_r, task_w = self._context.Pipe(duplex=False)
        out_r, out_w = self._context.Pipe(duplex=False)
        process = self._context.Process(target=worker_main, args=(task_r, out_w),
                                        name="fleetnas-executor-worker", daemon=True)  # fmt: skip
        process.start()
        task_r.close()  # the child holds its own copies; ours would hide its death
        out_w.close()
        worker = _Worker(process, task_w, out_r)
        self._pool.append(worker)
        return worker

    def _is_open(self, attempt: Attempt) -> bool:
        with self._lock:
            entry = self._open.get(attempt.task.task_id)
        return entry is not None and entry[1].token == attempt.token

    def _do_abort(self, attempt: Attempt) -> None:
        with self._state:
            if attempt in self._queue:
                self._queue.remove(attempt)
                return
        for worker in self._pool:
            if worker.attempt is not None and worker.attempt.token == attempt.token:
                worker.attempt = None  # so its death is not reported as a lost attempt
                self._kill(worker)

    def _kill(self, worker: _Worker) -> None:
        if worker.process.pid is not None and worker.process.exitcode is None:
            try:
                os.kill(worker.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        worker.alive = False
        if worker in self._pool:
            self._pool.remove(worker)
        worker.process.join(_REAP_TIMEOUT_S)
        self._close_pipes(worker)

    @staticmethod
    def _close_pipes(worker: _Worker) -> None:
        for conn in (worker.tasks, worker.outcomes):
            try:
                conn.close()
            except OSError:
                pass

    def _reap_all(self) -> None:
        """Busy workers are killed; idle ones exit when their pipe closes; all are joined."""
        for worker in list(self._pool):
            if worker.attempt is not None:
                self._kill(worker)
            else:
                self._close_pipes(worker)
        for worker in list(self._pool):
            worker.process.join(_REAP_TIMEOUT_S)
            if worker.process.exitcode is None:
                self._kill(worker)
            worker.alive = False
        self._pool.clear()
