"""Placement: which device runs which pending job next, one benchmark per physical host.

:class:`Placement` holds the queue of a batch's pending tasks and the set of
busy hosts. A device's worker thread calls :meth:`Placement.claim`, which
blocks until the device is usable (UP, described) and its host is free, then
hands it the first task it may run and marks the host busy until
:meth:`release_host`. The host is also locked across processes
(:mod:`._hostlock`): a host another controller on this machine is
benchmarking on counts as busy. A task that failed on a device goes back to the front
of the queue (:meth:`requeue`) with the devices it was tried on; it is
retried on one of those only when no untried device of its class is up.

Thread safety: every method may be called from any thread (one condition
variable guards the state).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetnas.controller.scheduler._hostlock import HostLocks
from fleetnas.controller.scheduler._jobs import Attempt, Job

POLL_S = 0.25

#: ``usable(device) -> host fingerprint`` when the device may take work now, else ``None``
Usable = Callable[[str], "str | None"]


@dataclass
class Task:
    """A job in flight: where it may run, where it failed, when it may run next.

    ``eligible`` is computed once per job, when the batch starts. ``pinned``
    names the device the next attempt waits for while it is up (a retry after
    the agent said it was overloaded); ``None``: any eligible device.
    ``overloads`` counts those retries.
    """

    index: int
    job: Job
    eligible: tuple[str, ...]
    tried: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    last_error: BaseException | None = None
    ready_at: float = 0.0
    stalled_since: float | None = None
    pinned: str | None = None
    overloads: int = 0


class Placement:
    """The pending tasks of one batch and the busy hosts (module docstring)."""

    def __init__(self, usable: Usable, host_locks: HostLocks | None = None) -> None:
        self._usable = usable
        self._host_locks = host_locks
        self._cv = threading.Condition()
        self._pending: list[Task] = []
        self._inflight = 0
        self._busy_hosts: set[str] = set()
        self._stopping = False

    def start(self, tasks: list[Task]) -> None:
        """Begin a batch with ``tasks`` pending."""
        with self._cv:
            self._pending = list(tasks)
            self._inflight = 0
            self._busy_hosts = set()
            self._stopping = False

    def stop(self) -> None:
        """End the batch: drop what is pending and let every worker return."""
        with self._cv:
            self._stopping = True
            self._pending.clear()
            self._cv.notify_all()

    def wake(self, _event: object = None) -> None:
        """Make waiting workers look again (a device changed state)."""
        with self._cv:
            self._cv.notify_all()

    def claim(self, name: str) -> tuple[Task, str] | None:
        """Block until ``name`` may run a task; return it with the host now held.

        ``None`` when the batch is over (stopped, or nothing pending nor in flight).
        """
        with self._cv:
            while True:
                if self._stopping or (not self._pending and self._inflight == 0):
                    self._cv.notify_all()
                    return None
                host = self._usable(name)
                if host is not None and host not in self._busy_hosts:
                    task = self._pick(name)
                    if task is not None and self._lock_host(host):
                        self._pending.remove(task)
                        self._busy_hosts.add(host)
                        self._inflight += 1
                        return task, host
                self._cv.wait(POLL_S)  # also: another process may free the host

    def _lock_host(self, host: str) -> bool:
        return self._host_locks is None or self._host_locks.try_acquire(host)

    def _pick(self, name: str) -> Task | None:
        """The first pending task ``name`` may run now (lock held)."""
        now = time.monotonic()
        for task in self._pending:
            if name not in task.eligible or task.ready_at > now:
                continue
            if task.pinned is not None and task.pinned != name and self._usable(task.pinned):
                continue  # kept for its pinned device while that one is up
            if task.pinned is None and name in task.tried:
                # Retry on a device already tried only when no untried one is up.
                others = [n for n in task.eligible if n not in task.tried]
                if any(self._usable(n) for n in others):
                    continue
            return task
        return None

    def release_host(self, host: str) -> None:
        """The benchmark on ``host`` is over; another device of the host may start."""
        with self._cv:
            if self._host_locks is not None:
                self._host_locks.release(host)
            self._busy_hosts.discard(host)
            self._cv.notify_all()

    def finish(self) -> None:
        """A claimed task was settled (measured, failed or requeued)."""
        with self._cv:
            self._inflight -= 1
            self._cv.notify_all()

    def requeue(self, task: Task) -> bool:
        """Put ``task`` back at the front; ``False`` (not queued) once the batch stopped."""
        with self._cv:
            if self._stopping:
                return False
            self._pending.insert(0, task)
            self._cv.notify_all()
            return True

    def stalled(self, device_wait_s: float) -> list[Task]:
        """Remove and return the pending tasks none of whose devices was up for ``device_wait_s``."""
        now = time.monotonic()
        failed: list[Task] = []
        with self._cv:
            for task in list(self._pending):
                if any(self._usable(name) for name in task.eligible):
                    task.stalled_since = None
                    continue
                if task.stalled_since is None:
                    task.stalled_since = now
                elif now - task.stalled_since >= device_wait_s:
                    self._pending.remove(task)
                    failed.append(task)
        return failed
