"""One SQLite connection to a cost database file: opening, migrating, transactions.

Every write is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's write
lock up front, waiting up to the busy timeout for another process to finish,
so concurrent writers queue instead of failing halfway. If the lock is still
held after the timeout the attempt is repeated a bounded number of times, then
:class:`DatabaseBusy` is raised. Files use WAL (readers never block the
writer) and ``synchronous=FULL``: a measurement costs seconds of device time,
an fsync a fraction of a millisecond.

The connection is plain :mod:`sqlite3`; ``sqlite_utils`` serves the
migrations and ad-hoc reads (``.db``). Rows are read by column name
(:func:`~._codec.named_rows`).

A :class:`SQLiteFile` may be shared by the threads of one process (an
internal lock serialises its connection); each process must open its own.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from fleetnas.controller.costdb._codec import named_row, named_rows
from fleetnas.controller.costdb._errors import (
    CostDBError,
    DatabaseBusy,
    DatabaseDamaged,
    NotACostDB,
)
from fleetnas.controller.costdb._migrations import migrate

DEFAULT_BUSY_TIMEOUT_S = 30.0
LOCK_ATTEMPTS = 3
WAL_SIZE_LIMIT_BYTES = 64 << 20
_SQLITE_HEADER = b"SQLite format 3\x00"


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _has_sqlite_header(path: Path | None) -> bool:
    if path is None:
        return False
    try:
        with path.open("rb") as handle:
            return handle.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return False


def damage(label: str, exc: sqlite3.DatabaseError, path: Path | None = None) -> DatabaseDamaged | None:
    """:class:`DatabaseDamaged` when SQLite says the pages of the file at ``path`` are damaged
    (malformed; or "not a database" although it starts with SQLite's header), else ``None``."""
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError)):
        return None
    message = str(exc).lower()
    if "malformed" in message or ("not a database" in message and _has_sqlite_header(path)):
        return DatabaseDamaged(label, str(exc))
    return None


@contextmanager
def translated(label: str, path: Path | None = None) -> Iterator[None]:
    """Raise :class:`DatabaseDamaged` for damage SQLite finds while reading or writing."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        damaged = damage(label, exc, path)
        if damaged is None:
            raise
        raise damaged from exc


def _open_error(path: Path | None, label: str, exc: sqlite3.DatabaseError) -> CostDBError:
    """The named error for a file SQLite refused while opening it."""
    if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
        return DatabaseBusy(f"{label} stayed locked while opening it")
    damaged = damage(label, exc, path)
    if damaged is not None:
        return damaged
    message = str(exc).lower()
    if "not a database" in message and path is not None and path.stat().st_size > 0:
        return NotACostDB(label, f"{exc}; if it was one, its header is damaged: "
                                 f"try `sqlite3 {label} .recover | sqlite3 recovered.db`")
    return NotACostDB(label, str(exc))


class SQLiteFile:
    """An open, migrated cost database file (or ``memory=True``), with its transactions.

    Raises :class:`NotACostDB` for a file that is not one,
    :class:`DatabaseDamaged` for one whose pages are damaged,
    :class:`SchemaTooNew` for one written by a newer fleetnas,
    :class:`DatabaseBusy` when the write lock cannot be had, and a plain
    :class:`CostDBError` naming the path when the file cannot be opened at
    all (a missing folder, a directory).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        memory: bool = False,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        if (path is None) == (not memory):
            raise ValueError("pass exactly one of a path or memory=True")
        self.path: Path | None = None if memory else Path(path)  # type: ignore[arg-type]
        self._label = ":memory:" if memory else str(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                ":memory:" if memory else str(path),
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.OperationalError as exc:
            # Typically a missing folder (SQLite creates the file, never its directory).
            raise CostDBError(
                f"cannot open the cost database {self._label} ({exc}); create its folder "
                "or pass another --db"
            ) from exc
        try:
            self.db = sqlite_utils.Database(self._conn, execute_plugins=False)
            self.schema_version = self._open(memory)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise _open_error(self.path, self._label, exc) from exc
        except BaseException:
            self._conn.close()
            raise

    def _open(self, memory: bool) -> int:
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA synchronous = FULL")
        # After a big import the WAL shrinks back at the next checkpoint.
        self._conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # is it SQLite?
        for attempt in range(1, LOCK_ATTEMPTS + 1):
            try:
                if not memory:
                    self.db.enable_wal()
                return migrate(self.db, self._label)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == LOCK_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; the object is unusable afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._label!r})"

    # -- transactions ------------------------------------------------------------------

    @contextmanager
    def write_transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), holding the write lock from the start.

        For stores built on this database (LUTs, searches): everything done on
        the yielded connection commits together or not at all, serialised with
        this object's other writes and, through SQLite's lock, with other
        processes. Raises DatabaseBusy when the lock stays taken.
        """
        with self._lock:
            for attempt in range(1, LOCK_ATTEMPTS + 1):
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                    if attempt == LOCK_ATTEMPTS:
                        raise DatabaseBusy(
                            f"{self._label} stayed locked by another process through "
                            f"{LOCK_ATTEMPTS} busy timeouts"
                        ) from exc
            try:
                with translated(self._label, self.path):
                    yield self._conn
                    self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def read_snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same database state."""
        with self._lock, translated(self._label, self.path):
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """Every row of one read, by column name."""
        with self._lock, translated(self._label, self.path):
            return named_rows(self._conn.execute(sql, params))

    def query_one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        """The first row of one read by column name, or ``None``."""
        with self._lock, translated(self._label, self.path):
            return named_row(self._conn.execute(sql, params))

    def query_one_values(self, sql: str, params: Any = ()) -> tuple[Any, ...] | None:
        """The first row of one read as the ``SELECT`` list orders it, or ``None``: for a
        select list generated from a record's columns (``RowReader.values``)."""
        with self._lock, translated(self._label, self.path):
            row = self._conn.execute(sql, params).fetchone()
        return None if row is None else tuple(row)
