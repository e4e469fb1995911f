"""The cost database: :class:`CostDB`, a thin layer over ``sqlite_utils.Database``.

Every write is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's write
lock up front, waiting up to the busy timeout for another process to finish,
so concurrent writers queue instead of failing halfway. If the lock is still
held after the timeout the attempt is repeated a bounded number of times, then
:class:`DatabaseBusy` is raised. Files use WAL (readers never block the
writer) and ``synchronous=FULL``: a measurement costs seconds of device time,
an fsync a fraction of a millisecond.

A :class:`CostDB` may be shared by the threads of one process (an internal
lock serialises its connection); each process must open its own.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlite_utils
from google.protobuf import json_format

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb._errors import (
    CostDBError,
    DatabaseBusy,
    DeviceNotFound,
    NotACostDB,
)
from fleetnas.controller.costdb._migrations import migrate
from fleetnas.controller.costdb._pooling import (
    ExportReport,
    ImportReport,
    Records,
    atomic_write,
    detect_format,
    read_costdb,
    read_export,
    write_csv,
    write_jsonl,
)
from fleetnas.controller.costdb._records import Device, Measurement, Model

DEFAULT_BUSY_TIMEOUT_S = 30.0
LOCK_ATTEMPTS = 3
WAL_SIZE_LIMIT_BYTES = 64 << 20
LOCAL_SOURCE = "local"

_M_COLUMNS = ", ".join(c.name for c in Measurement.COLUMNS)
_M_INSERT_COLUMNS = [c.name for c in Measurement.COLUMNS if c.name != "id"]
_INSERT_MEASUREMENT = (
    f"INSERT INTO measurements ({', '.join(_M_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _M_INSERT_COLUMNS)}) ON CONFLICT (uid) DO NOTHING"
)
_LOOKUP = (
    f"SELECT {_M_COLUMNS} FROM measurements "
    "WHERE model_sha256 = ? AND device = ? AND settings_hash = ? "
    "ORDER BY started_at DESC, id DESC LIMIT 1"
)
_BY_UID = f"SELECT {_M_COLUMNS} FROM measurements WHERE uid = ?"
_D_COLUMNS = ", ".join(c.name for c in Device.COLUMNS)
_MODEL_COLUMNS = ", ".join(c.name for c in Model.COLUMNS)
_UPSERT_MODEL = f"""
    INSERT INTO models ({_MODEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (sha256) DO UPDATE SET
        size_bytes = COALESCE(excluded.size_bytes, models.size_bytes),
        space = COALESCE(excluded.space, models.space),
        arch = COALESCE(excluded.arch, models.arch),
        params = COALESCE(excluded.params, models.params),
        flops = COALESCE(excluded.flops, models.flops)
"""
_MODEL_STUB = (
    "INSERT INTO models (sha256, created_at) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING"
)


@dataclass(frozen=True)
class DeviceSummary:
    """Measurement counts of one device name (``device_class`` is ``None`` once removed)."""

    device: str
    device_class: str | None
    measurements: int
    models: int
    first_started_at: float
    last_started_at: float


@dataclass(frozen=True)
class Summary:
    """Totals of a cost database, for ``fleetnas db stats``."""

    schema_version: int
    devices: int
    models: int
    measurements: int
    per_device: tuple[DeviceSummary, ...]


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


class CostDB:
    """The shared store of devices, models and measurements.

    ``CostDB(path)`` opens (creating if needed) a file; ``CostDB(memory=True)``
    a private in-memory database. Opening applies pending migrations. Raises
    :class:`NotACostDB` for a file that is not one, :class:`SchemaTooNew` for
    one written by a newer fleetnas, :class:`DatabaseBusy` when the write lock
    cannot be had, and a plain :class:`CostDBError` naming the path when the
    file cannot be opened at all (a missing folder, a directory).

    ``db`` is the underlying ``sqlite_utils.Database`` for ad-hoc reads.
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
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise DatabaseBusy(f"{self._label} stayed locked while opening it") from exc
            raise NotACostDB(self._label, str(exc)) from exc
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

    def __enter__(self) -> CostDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CostDB({self._label!r})"

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
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def read_snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same database state."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # -- devices -----------------------------------------------------------------------

    def upsert_device(
        self,
        name: str,
        *,
        device_class: str,
        address: str,
        host_fingerprint: str,
        description: agent_pb2.DeviceDescription | None = None,
        seen_at: float | None = None,
    ) -> Device:
        """Add a device or update it; returns the stored row.

        ``first_seen`` is kept from the first call; ``last_seen`` becomes
        ``seen_at`` (default: now). A ``None`` description keeps the stored
        one. Raises :class:`InvalidRecord` for a bad name or an address that
        could carry credentials.
        """
        now = time.time() if seen_at is None else seen_at
        desc = (
            None
            if description is None
            else json_format.MessageToDict(description, preserving_proto_field_name=True)
        )
        device = Device(name, device_class, address, host_fingerprint, desc, now, now).validate()
        with self.write_transaction() as conn:
            conn.execute(
                f"""
                INSERT INTO devices ({_D_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET
                    device_class = excluded.device_class,
                    address = excluded.address,
                    host_fingerprint = excluded.host_fingerprint,
                    description = COALESCE(excluded.description, devices.description),
                    last_seen = excluded.last_seen
                """,
                device.to_row(),
            )
            row = conn.execute(f"SELECT {_D_COLUMNS} FROM devices WHERE name = ?", (name,))
            return Device.from_row(row.fetchone())

    def get_device(self, name: str) -> Device | None:
        """The device named ``name``, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_D_COLUMNS} FROM devices WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else Device.from_row(row)

    def list_devices(self, *, device_class: str | None = None) -> list[Device]:
        """All devices (of one class when given), by name."""
        where, params = ("WHERE device_class = ?", (device_class,)) if device_class else ("", ())
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_D_COLUMNS} FROM devices {where} ORDER BY name", params
            ).fetchall()
        return [Device.from_row(row) for row in rows]

    def remove_device(self, name: str) -> None:
        """Forget a device. Its measurements stay (they name the device, and keep
        serving the cache if a device of that name comes back).

        Raises :class:`DeviceNotFound`.
        """
        with self.write_transaction() as conn:
            if conn.execute("DELETE FROM devices WHERE name = ?", (name,)).rowcount == 0:
                raise DeviceNotFound(name)

    # -- models ------------------------------------------------------------------------

    def record_model(
        self,
        sha256: str,
        size_bytes: int | None,
        *,
        space: str | None = None,
        arch: str | None = None,
        params: int | None = None,
        flops: int | None = None,
    ) -> Model:
        """Add a model or fill in what is known about it; returns the stored row.

        A ``None`` (or empty) field never overwrites a known value. Raises
        :class:`InvalidRecord` for a bad hash or a negative count.
        """
        model = Model(sha256, size_bytes, space, arch, params, flops, time.time()).validate()
        with self.write_transaction() as conn:
            conn.execute(_UPSERT_MODEL, model.to_row())
            row = conn.execute(
                f"SELECT {_MODEL_COLUMNS} FROM models WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return Model.from_row(row)

    def get_model(self, sha256: str) -> Model | None:
        """The model with that hash, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_MODEL_COLUMNS} FROM models WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return None if row is None else Model.from_row(row)

    # -- measurements ------------------------------------------------------------------

    def record_measurement(
        self, device: str, result: agent_pb2.BenchmarkResult, *, source: str = LOCAL_SOURCE
    ) -> Measurement:
        """Store an agent's result for ``device``; returns the stored measurement.

        One transaction: creates the model row if missing, then the
        measurement. Recording the same result again (same ``uid``) changes
        nothing and returns the stored copy, with its original ``id`` and
        ``recorded_at``. Raises :class:`InvalidRecord` for a malformed result.
        """
        measurement = Measurement.from_result(
            device, result, source=source, recorded_at=time.time()
        )
        with self.write_transaction() as conn:
            conn.execute(_MODEL_STUB, (measurement.model_sha256, measurement.recorded_at))
            cursor = conn.execute(_INSERT_MEASUREMENT, measurement.to_row()[:-1])
            if cursor.rowcount == 1:
                return measurement.with_id(cursor.lastrowid)
            return Measurement.from_row(conn.execute(_BY_UID, (measurement.uid,)).fetchone())

    def insert_measurements(self, measurements: Iterable[Measurement]) -> tuple[int, int]:
        """Bulk-insert already built measurements in one transaction, streaming.

        Returns ``(added, skipped_duplicates)``. Missing model rows are
        created. The records are trusted: build them with
        :meth:`Measurement.from_result` or :meth:`Measurement.from_dict`.
        """
        with self.write_transaction() as conn:
            return self._insert_batch(conn, measurements)

    @staticmethod
    def _insert_batch(
        conn: sqlite3.Connection, measurements: Iterable[Measurement]
    ) -> tuple[int, int]:
        # Model stubs go in after the measurements that need them, so the
        # input can be streamed once; the foreign key is checked at COMMIT.
        conn.execute("PRAGMA defer_foreign_keys = ON")
        stubs: dict[str, float] = {}
        seen = 0

        def rows() -> Iterator[tuple[Any, ...]]:
            nonlocal seen
            for m in measurements:
                stubs.setdefault(m.model_sha256, m.recorded_at)
                seen += 1
                yield m.to_row()[:-1]  # without id

        before = conn.total_changes
        conn.executemany(_INSERT_MEASUREMENT, rows())
        added = conn.total_changes - before
        conn.executemany(_MODEL_STUB, stubs.items())
        return added, seen - added

    def lookup(self, model_sha256: str, device: str, settings_hash: str) -> Measurement | None:
        """The cache: the newest measurement of this model on this device with these
        settings (latest ``started_at``), or ``None``.

        One indexed query (``measurements_cache``) and no validation.
        """
        with self._lock:
            row = self._conn.execute(_LOOKUP, (model_sha256, device, settings_hash)).fetchone()
        return None if row is None else Measurement.from_row(row)

    def get_measurement(self, uid: str) -> Measurement | None:
        """The measurement with that ``uid``, or ``None``."""
        with self._lock:
            row = self._conn.execute(_BY_UID, (uid,)).fetchone()
        return None if row is None else Measurement.from_row(row)

    def measurements(
        self,
        *,
        device: str | None = None,
        model_sha256: str | None = None,
        settings_hash: str | None = None,
        source: str | None = None,
        limit: int | None = None,
    ) -> list[Measurement]:
        """Measurements matching every given filter, oldest first (by ``started_at``)."""
        where, params = self._filters(
            device=device, model_sha256=model_sha256, settings_hash=settings_hash, source=source
        )
        sql = f"SELECT {_M_COLUMNS} FROM measurements {where} ORDER BY started_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [Measurement.from_row(row) for row in rows]

    def count_measurements(
        self, *, device: str | None = None, model_sha256: str | None = None
    ) -> int:
        """How many measurements match every given filter."""
        where, params = self._filters(device=device, model_sha256=model_sha256)
        with self._lock:
            return int(
                self._conn.execute(f"SELECT count(*) FROM measurements {where}", params).fetchone()[
                    0
                ]
            )

    @staticmethod
    def _filters(**filters: str | None) -> tuple[str, list[Any]]:
        terms = [(name, value) for name, value in filters.items() if value is not None]
        if not terms:
            return "", []
        return "WHERE " + " AND ".join(f"{name} = ?" for name, _ in terms), [
            value for _, value in terms
        ]

    def summary(self) -> Summary:
        """Totals and per-device counts, from one snapshot."""
        with self.read_snapshot() as conn:
            devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
            models = conn.execute("SELECT count(*) FROM models").fetchone()[0]
            total = conn.execute("SELECT count(*) FROM measurements").fetchone()[0]
            rows = conn.execute(
                """
                SELECT m.device, d.device_class, count(*), count(DISTINCT m.model_sha256),
                       min(m.started_at), max(m.started_at)
                FROM measurements AS m LEFT JOIN devices AS d ON d.name = m.device
                GROUP BY m.device ORDER BY m.device
                """
            ).fetchall()
        return Summary(
            schema_version=self.schema_version,
            devices=devices,
            models=models,
            measurements=total,
            per_device=tuple(DeviceSummary(*row) for row in rows),
        )

    # -- pooling -----------------------------------------------------------------------

    def _read_all(self) -> Records:
        with self.read_snapshot() as conn:
            return Records(
                devices=[
                    Device.from_row(r)
                    for r in conn.execute(f"SELECT {_D_COLUMNS} FROM devices ORDER BY name")
                ],
                models=[
                    Model.from_row(r)
                    for r in conn.execute(f"SELECT {_MODEL_COLUMNS} FROM models ORDER BY sha256")
                ],
                measurements=[
                    Measurement.from_row(r)
                    for r in conn.execute(f"SELECT {_M_COLUMNS} FROM measurements ORDER BY id")
                ],
            )

    def export(self, path: str | Path, *, fmt: str | None = None) -> ExportReport:
        """Write every device, model and measurement to ``path`` (JSON lines or CSV,
        from ``fmt`` or the suffix). The file appears only once complete."""
        fmt_ = detect_format(path, fmt)
        records = self._read_all()
        writer = write_csv if fmt_ == "csv" else write_jsonl
        with atomic_write(path) as handle:
            return writer(handle, records.devices, records.models, records.measurements)

    def export_jsonl(self, path: str | Path) -> ExportReport:
        """:meth:`export` as JSON lines."""
        return self.export(path, fmt="jsonl")

    def export_csv(self, path: str | Path) -> ExportReport:
        """:meth:`export` as CSV (one row per measurement, devices and models flattened)."""
        return self.export(path, fmt="csv")

    def import_file(
        self, path: str | Path, *, source: str | None = None, fmt: str | None = None
    ) -> ImportReport:
        """Add the records of an export file; all or nothing.

        Measurements whose ``source`` is ``"local"`` (recorded by the exporting
        database itself) take ``source`` (default: the file's stem); others keep
        theirs. Duplicates (same ``uid``) are skipped; devices already known
        here are kept as they are; model origins fill gaps. Raises
        :class:`ImportFormatError` (naming the line) before touching the database.
        """
        records = read_export(path, fmt)
        return self._ingest(records, source or Path(path).stem)

    def merge(self, other_db_path: str | Path, *, source: str | None = None) -> ImportReport:
        """Add every record of another cost database file, as :meth:`import_file` does.

        The other file is only read. Raises :class:`NotACostDB` or
        :class:`SchemaTooNew` for a file that cannot be merged.
        """
        records = read_costdb(other_db_path)
        return self._ingest(records, source or Path(other_db_path).stem)

    def _ingest(self, records: Records, source: str) -> ImportReport:
        incoming = [
            replace(m, source=source) if m.source == LOCAL_SOURCE else m
            for m in records.measurements
        ]
        with self.write_transaction() as conn:
            devices_before = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
            models_before = conn.execute("SELECT count(*) FROM models").fetchone()[0]
            conn.executemany(
                f"INSERT INTO devices ({_D_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (d.to_row() for d in records.devices),
            )
            conn.executemany(_UPSERT_MODEL, (m.to_row() for m in records.models))
            added, skipped = self._insert_batch(conn, incoming)
            devices_after = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
            models_after = conn.execute("SELECT count(*) FROM models").fetchone()[0]
        return ImportReport(
            added=added,
            skipped_duplicates=skipped,
            devices_added=devices_after - devices_before,
            models_added=models_after - models_before,
        )

