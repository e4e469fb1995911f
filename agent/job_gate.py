"""One benchmark at a time, with a bounded FIFO queue in front.

Contract:
- At most one holder runs at a time; others wait in arrival order.
- At most ``max_queue`` callers may wait. The next one gets QueueFull at once.
- A waiter whose RPC is cancelled leaves the queue (``is_active`` returns False).
- After ``close()``, new callers and every waiter get ShuttingDown; the
  current holder finishes normally (graceful drain).
Thread-safe.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fleetnas.agent.errors import QueueFull, ShuttingDown


class JobGate:
    """See the module docstring for the contract."""

    def __init__(self, max_queue: int) -> None:
        if max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {max_queue}")
        self.max_queue = max_queue
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._running: str | None = None
        self._closed = False

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._running is not None

    @property
    def running_label(self) -> str:
        with self._cond:
            return self._running or ""

    @property
    def queue_length(self) -> int:
        with self._cond:
            return len(self._waiting)

    def close(self) -> None:
        """Refuse new work and release every waiter with ShuttingDown."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing runs or waits; True if that happened in time."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._running is None and not self._waiting, timeout
            )

    @contextmanager
    def slot(self, label: str, is_active: Callable[[], bool] = lambda: True) -> Iterator[None]:
        """Hold the single run slot for the block; ``label`` shows in status."""
        ticket = object()
        with self._cond:
            if self._closed:
                raise ShuttingDown("agent is shutting down; send the job to another device")
            if self._running is not None or self._waiting:
                if len(self._waiting) >= self.max_queue:
                    raise QueueFull(
                        f"benchmark queue is full ({self.max_queue} waiting); "
                        "retry later or use another device of this class"
                    )
            self._waiting.append(ticket)
            try:
                while True:
                    if self._closed:
                        raise ShuttingDown(
                            "agent is shutting down; send the job to another device"
                        )
                    if self._running is None and self._waiting[0] is ticket:
                        break
                    if not is_active():
                        raise ShuttingDown("request cancelled while queued")
                    self._cond.wait(timeout=0.2)
            except BaseException:
                self._waiting.remove(ticket)
                self._cond.notify_all()
                raise
            self._waiting.popleft()
            self._running = label
        try:
            yield
        finally:
            with self._cond:
                self._running = None
                self._cond.notify_all()
