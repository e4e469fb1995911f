"""Results of evaluation tasks, and where finished ones are kept so they never run twice.

A :class:`TaskResult` is final: the value, or a failure of one of three
kinds (:data:`FAILURES`):

* ``"permanent"``: the task's own error (a bad arch, an estimator that
  cannot score it, a dataset that does not load). Deterministic, so it is
  never retried, and stored like a value.
* ``"transient"``: the worker process or its node died on every one of the
  ``1 + max_retries`` attempts. Not stored: another run may succeed.
* ``"cancelled"``: :meth:`Executor.cancel` or :meth:`Executor.close` stopped
  it. Not stored.

A :class:`ResultStore` is what an executor consults before running a task
(``load``) and writes every storable result to the moment it is final
(``save``), before anyone else sees it. :class:`EvaluationStore` is one in a
SQLite file, keyed by :attr:`EvalTask.key`; the search driver can implement
the protocol over its own candidate rows instead.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from fleetnas.controller.executor._tasks import STORED_ELSEWHERE, EvalTask

FAILURES = ("permanent", "transient", "cancelled")


@dataclass(frozen=True)
class TaskResult:
    """The final result of one task (see the module docstring).

    ``seconds`` and ``worker`` (``host:pid``) are those of the last attempt
    that ran (0 and ``""`` when none did); ``from_store`` marks a result read
    back from a :class:`ResultStore` instead of run.
    """

    task: EvalTask
    value: float | None
    error: str | None = None
    failure: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    worker: str = ""
    from_store: bool = False

    def __post_init__(self) -> None:
        if (self.failure is None) != (self.value is not None):
            raise ValueError(f"TaskResult {self.task_id!r}: exactly one of value and failure")
        if self.failure is not None and self.failure not in FAILURES:
            raise ValueError(f"TaskResult {self.task_id!r}: failure={self.failure!r}, expected {FAILURES}")

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def storable(self) -> bool:
        """A value or a permanent failure: the same task would give it again."""
        return self.failure in (None, "permanent")


@runtime_checkable
class ResultStore(Protocol):
    """Finished evaluations. ``load`` and ``save`` may be called from different threads."""

    def load(self, task: EvalTask) -> TaskResult | None:
        """The stored result for ``task`` (``from_store=True``), or ``None`` when none is."""

    def save(self, result: TaskResult) -> None:
        """Persist ``result`` (only storable ones are passed); durable when it returns."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    task TEXT NOT NULL,
    value REAL,
    error TEXT,
    failure TEXT,
    attempts INTEGER NOT NULL,
    seconds REAL NOT NULL,
    worker TEXT NOT NULL,
    finished_at REAL NOT NULL
)
"""


class EvaluationStore:
    """A :class:`ResultStore` in a SQLite file (or ``":memory:"``), keyed by ``EvalTask.key``.

    WAL and ``synchronous=FULL``: a save survives the process being killed
    right after it returns; several processes may share one file. One
    instance may be used from several threads (a lock serialises its
    connection). A result loaded for a task with another ``task_id`` but the
    same key (the same evaluation) comes back under the asking task.

    Tasks of the kinds in :data:`~._tasks.STORED_ELSEWHERE` (a supernet
    training) are neither loaded nor saved: the supernet store is their
    record, so a training whose supernet was deleted runs again instead of
    being answered from here.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = str(path)
        try:
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s,
                                         check_same_thread=False, isolation_level=None)  # fmt: skip
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise ValueError(f"evaluation store {self.path}: cannot open it ({exc})") from exc
        self._lock = threading.Lock()

    def load(self, task: EvalTask) -> TaskResult | None:
        if task.estimator.kind in STORED_ELSEWHERE:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT value, error, failure, attempts, seconds, worker FROM evaluations "
                "WHERE key = ?", (task.key,),
            ).fetchone()  # fmt: skip
        if row is None:
            return None
        value, error, failure, attempts, seconds, worker = row
        return TaskResult(task, value, error, failure, attempts, seconds, worker, from_store=True)

    def save(self, result: TaskResult) -> None:
        if not result.storable:
            raise ValueError(f"result {result.task_id!r} ({result.failure}) is not storable")
        if result.task.estimator.kind in STORED_ELSEWHERE:
            return
        stored = replace(result, from_store=False)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (stored.task.key, stored.task_id, json.dumps(stored.task.to_dict(), sort_keys=True),
                 stored.value, stored.error, stored.failure, stored.attempts, stored.seconds,
                 stored.worker, time.time()),
            )  # fmt: skip

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT count(*) FROM evaluations").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
