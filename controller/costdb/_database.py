"""The cost database: :class:`CostDB`, the store of devices, models, measurements and
their operator profiles.

It is built on :class:`~._connection.SQLiteFile` (plain :mod:`sqlite3`, WAL,
``BEGIN IMMEDIATE`` writes, migrations on open; see there for concurrency).
Why not the record methods of ``sqlite_utils``: the writes here are upserts
that merge (``COALESCE``: a known value is never replaced by an unknown one),
they must run inside one ``BEGIN IMMEDIATE`` transaction with bounded retries,
and the cache lookup is the hot path. So the SQL is explicit, built from the
records' column definitions (:mod:`._statements`), and rows are read by
column name; ``sqlite_utils`` serves the migrations and ad-hoc reads
(``CostDB.db``).

A :class:`CostDB` may be shared by the threads of one process; each process
must open its own.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb._codec import message_to_dict, named_row
from fleetnas.controller.costdb._connection import DEFAULT_BUSY_TIMEOUT_S, SQLiteFile
from fleetnas.controller.costdb._errors import DeviceNotFound
from fleetnas.controller.costdb._pooling import (
    LOCAL_SOURCE,
    ExportReport,
    ImportReport,
    detect_format,
    ingest,
    read_all,
    read_costdb,
    read_export,
    write_export,
)
from fleetnas.controller.costdb._profiles import INSERT_PROFILE, PROFILE_BY_UID, Profile
from fleetnas.controller.costdb._records import Device, Measurement, Model
from fleetnas.controller.costdb._statements import (
    BY_UID,
    DEVICE_BY_NAME,
    DEVICE_COLUMNS,
    INSERT_MEASUREMENT,
    LOOKUP,
    LOOKUP_ON_HARDWARE,
    MEASUREMENT_COLUMNS,
    MODEL_BY_SHA,
    MODEL_FOR_MEASUREMENT,
    UPSERT_DEVICE,
    UPSERT_MODEL,
    insert_measurements,
)
from fleetnas.controller.costdb._user_models import (
    UserModel,
    UserModelSummary,
    find_user_model,
    name_model,
    user_model_summaries,
)

__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "LOCAL_SOURCE", "CostDB", "DeviceSummary", "Summary"]


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


class CostDB(SQLiteFile):
    """The shared store of devices, models and measurements.

    ``CostDB(path)`` opens (creating if needed) a file; ``CostDB(memory=True)``
    a private in-memory database. Opening applies pending migrations and
    raises the errors listed on :class:`~._connection.SQLiteFile`.

    ``db`` is the underlying ``sqlite_utils.Database`` for ad-hoc reads.
    """

    def __enter__(self) -> CostDB:
        return self

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
        desc = None if description is None else message_to_dict(description)
        device = Device(name, device_class, address, host_fingerprint, desc, now, now).validate()
        with self.write_transaction() as conn:
            conn.execute(UPSERT_DEVICE, device.to_row())
            row = named_row(conn.execute(DEVICE_BY_NAME, (name,)))
        assert row is not None
        return Device.from_row(row)

    def get_device(self, name: str) -> Device | None:
        """The device named ``name``, or ``None``."""
        row = self.query_one(DEVICE_BY_NAME, (name,))
        return None if row is None else Device.from_row(row)

    def list_devices(self, *, device_class: str | None = None) -> list[Device]:
        """All devices (of one class when given), by name."""
        where, params = ("WHERE device_class = ?", (device_class,)) if device_class else ("", ())
        rows = self.query(f"SELECT {DEVICE_COLUMNS} FROM devices {where} ORDER BY name", params)
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
            conn.execute(UPSERT_MODEL, model.to_row())
            row = named_row(conn.execute(MODEL_BY_SHA, (sha256,)))
        assert row is not None
        return Model.from_row(row)

    def get_model(self, sha256: str) -> Model | None:
        """The model with that hash, or ``None``."""
        row = self.query_one(MODEL_BY_SHA, (sha256,))
        return None if row is None else Model.from_row(row)

    # -- user models (see ._user_models) ------------------------------------------------

    def name_model(
        self,
        sha256: str,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        format: str = "onnx",
        precision: str = "unknown",
        inputs: Mapping[str, Any] | None = None,
        size_bytes: int | None = None,
        params: int | None = None,
        flops: int | None = None,
        rename: bool = False,
    ) -> UserModel:
        """Name the model ``sha256`` (creating its ``models`` row, filling in its counts) under
        the naming rule of :mod:`._user_models`; returns the stored row. Raises NameTaken,
        ModelAlreadyNamed (unless ``rename``) and InvalidRecord."""
        now = time.time()
        model = UserModel(sha256, name, dict(tags or {}), format, precision, dict(inputs or {}),
                          now, now)
        counts = Model(sha256, size_bytes, None, None, params, flops, now)
        with self.write_transaction() as conn:
            return name_model(conn, model, counts, rename=rename)

    def get_user_model(self, key: str) -> UserModel | None:
        """The user model named ``key`` (or with sha256 ``key``), or ``None``."""
        with self.read_snapshot() as conn:
            return find_user_model(conn, key)

    def user_models(self) -> list[UserModelSummary]:
        """Every named model with its counts and measurements, by name."""
        with self.read_snapshot() as conn:
            return user_model_summaries(conn)

    # -- measurements ------------------------------------------------------------------

    def record_measurement(
        self,
        device: str,
        result: agent_pb2.BenchmarkResult,
        *,
        source: str = LOCAL_SOURCE,
        size_bytes: int | None = None,
    ) -> Measurement:
        """Store an agent's result for ``device``; returns the stored measurement.

        One transaction and one write of the model row: it is created if
        missing, and its ``size_bytes`` filled in when given and unknown; then
        the measurement, with the ``hardware_id`` of the device's stored
        description when that describes the host the result came from (same
        host fingerprint), else ``None``: record the device first
        (:meth:`upsert_device`) with the description of the agent that ran it.
        The result's operator profile, when it has one, is stored in the same
        transaction (:meth:`get_profile` reads it back). Recording the same
        result again (same ``uid``) changes nothing and returns the stored
        copy, with its original ``id`` and ``recorded_at``. Raises
        :class:`InvalidRecord` for a malformed result.
        """
        measurement = Measurement.from_result(
            device, result, source=source, recorded_at=time.time()
        )
        profile = (
            Profile.from_message(measurement.uid, result.profile)
            if result.HasField("profile") else None
        )  # fmt: skip
        with self.write_transaction() as conn:
            measurement = replace(measurement, hardware_id=_hardware_of(conn, measurement))
            conn.execute(
                MODEL_FOR_MEASUREMENT,
                (measurement.model_sha256, size_bytes, measurement.recorded_at),
            )
            cursor = conn.execute(INSERT_MEASUREMENT, measurement.to_row())
            if profile is not None:
                conn.execute(INSERT_PROFILE, profile.to_row())
            if cursor.rowcount == 1:
                return measurement.with_id(cursor.lastrowid)
            row = named_row(conn.execute(BY_UID, (measurement.uid,)))
        assert row is not None
        return Measurement.from_row(row)

    def insert_measurements(self, measurements: Iterable[Measurement]) -> tuple[int, int]:
        """Bulk-insert already built measurements in one transaction, streaming.

        Returns ``(added, skipped_duplicates)``. Missing model rows are
        created. The records are trusted: build them with
        :meth:`Measurement.from_result` or :meth:`Measurement.from_dict`.
        """
        with self.write_transaction() as conn:
            return insert_measurements(conn, measurements)

    def lookup(
        self,
        model_sha256: str,
        device: str,
        settings_hash: str,
        *,
        hardware_id: str | None = None,
    ) -> Measurement | None:
        """The cache: the newest measurement of this model on this device with these
        settings (latest ``started_at``), or ``None``.

        With ``hardware_id``, only a measurement taken on that hardware (the
        device's current identity, :attr:`Device.hardware_id`) counts. One
        indexed query and no validation; the row is read in the select list's
        column order (:meth:`Measurement.from_values`), the hot path's fast read.
        """
        if hardware_id is None:
            row = self.query_one_values(LOOKUP, (model_sha256, device, settings_hash))
        else:
            row = self.query_one_values(
                LOOKUP_ON_HARDWARE, (model_sha256, device, settings_hash, hardware_id)
            )
        return None if row is None else Measurement.from_values(row)

    def get_measurement(self, uid: str) -> Measurement | None:
        """The measurement with that ``uid``, or ``None``."""
        row = self.query_one(BY_UID, (uid,))
        return None if row is None else Measurement.from_row(row)

    def get_profile(self, uid: str) -> Profile | None:
        """The operator profile of the measurement with that ``uid``, or ``None`` (not
        profiled, or no such measurement). Raises CorruptRow for a garbled row."""
        row = self.query_one(PROFILE_BY_UID, (uid,))
        return None if row is None else Profile.from_row(row)

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
        where, params = _filters(
            device=device, model_sha256=model_sha256, settings_hash=settings_hash, source=source
        )
        sql = f"SELECT {MEASUREMENT_COLUMNS} FROM measurements {where} ORDER BY started_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [Measurement.from_row(row) for row in self.query(sql, params)]

    def count_measurements(
        self, *, device: str | None = None, model_sha256: str | None = None
    ) -> int:
        """How many measurements match every given filter."""
        where, params = _filters(device=device, model_sha256=model_sha256)
        row = self.query_one(f"SELECT count(*) AS n FROM measurements {where}", params)
        return int(row["n"]) if row is not None else 0

    def summary(self) -> Summary:
        """Totals and per-device counts, from one snapshot."""
        with self.read_snapshot() as conn:
            totals = named_row(conn.execute(
                "SELECT (SELECT count(*) FROM devices) AS devices, "
                "(SELECT count(*) FROM models) AS models, "
                "(SELECT count(*) FROM measurements) AS measurements"
            ))  # fmt: skip
            rows = conn.execute(
                """
                SELECT m.device, d.device_class, count(*), count(DISTINCT m.model_sha256),
                       min(m.started_at), max(m.started_at)
                FROM measurements AS m LEFT JOIN devices AS d ON d.name = m.device
                GROUP BY m.device ORDER BY m.device
                """
            ).fetchall()
        assert totals is not None
        return Summary(
            schema_version=self.schema_version,
            devices=totals["devices"],
            models=totals["models"],
            measurements=totals["measurements"],
            per_device=tuple(DeviceSummary(*row) for row in rows),
        )

    # -- pooling (see ._pooling) --------------------------------------------------------

    def export(self, path: str | Path, *, fmt: str | None = None) -> ExportReport:
        """Write every device, model and measurement to ``path`` (JSON lines or CSV,
        from ``fmt`` or the suffix). The file appears only once complete."""
        fmt_ = detect_format(path, fmt)
        with self.read_snapshot() as conn:
            records = read_all(conn)
        return write_export(path, fmt_, records)

    def export_jsonl(self, path: str | Path) -> ExportReport:
        """:meth:`export` as JSON lines."""
        return self.export(path, fmt="jsonl")

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
        with self.write_transaction() as conn:
            return ingest(conn, records, source or Path(path).stem)

    def merge(self, other_db_path: str | Path, *, source: str | None = None) -> ImportReport:
        """Add every record of another cost database file, as :meth:`import_file` does.

        The other file is only read. Raises :class:`NotACostDB` or
        :class:`SchemaTooNew` for a file that cannot be merged.
        """
        records = read_costdb(other_db_path)
        with self.write_transaction() as conn:
            return ingest(conn, records, source or Path(other_db_path).stem)


def _hardware_of(conn: sqlite3.Connection, measurement: Measurement) -> str | None:
    """The hardware identity of ``measurement``'s device, if its stored description is of
    the host the measurement ran on."""
    row = named_row(conn.execute(DEVICE_BY_NAME, (measurement.device,)))
    if row is None:
        return None
    device = Device.from_row(row)
    if device.description is None or device.host_fingerprint != measurement.host_fingerprint:
        return None
    if device.description.get("host_fingerprint", "") != measurement.host_fingerprint:
        return None
    return device.hardware_id


def _filters(**filters: str | None) -> tuple[str, list[Any]]:
    terms = [(name, value) for name, value in filters.items() if value is not None]
    if not terms:
        return "", []
    where = "WHERE " + " AND ".join(f"{name} = ?" for name, _ in terms)
    return where, [value for _, value in terms]
