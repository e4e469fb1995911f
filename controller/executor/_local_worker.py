"""One worker process of :class:`LocalExecutor`: receive tasks, run them, send outcomes.

Protocol (two one-way ``multiprocessing`` pipes, pickled frames): the
executor sends ``(token, EvalTask)``; the worker answers ``(token, Outcome)``
for each, one task at a time. A reader thread owns the inbound pipe: when it
reads EOF (the executor closed it, or the owning process died however it
died, which closes it in the kernel) the worker exits at once, even in the
middle of a task, so a worker never outlives its executor.
"""

from __future__ import annotations

import os
import queue
import threading
from multiprocessing.connection import Connection

from fleetnas.controller.executor._tasks import EvalTask, execute

Inbound = tuple[int, EvalTask]


def _read(tasks: Connection, inbox: queue.SimpleQueue[Inbound]) -> None:
    try:
        while True:
            inbox.put(tasks.recv())
    except (EOFError, OSError):
        pass
    os._exit(0)  # the executor is gone or closed us: stop now, mid-task or not


def worker_main(tasks: Connection, outcomes: Connection) -> None:
    """The worker's main loop (the target of the spawned process)."""
    inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
    threading.Thread(target=_read, args=(tasks, inbox), name="fleetnas-executor-inbox",
                     daemon=True).start()  # fmt: skip
    import fleetnas.controller.accuracy  # noqa: F401 - torch's import is not a task's seconds

    while True:
        token, task = inbox.get()
        outcomes.send((token, execute(task)))
