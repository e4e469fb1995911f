"""The SQL of the record tables, built from the records' columns, and the batch writes.

Every statement names its columns (``SELECT`` lists, named ``INSERT``
parameters), so adding a column to a record never shifts a position. The
write helpers run on a connection inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from fleetnas.controller.costdb._codec import insert_sql, select_list
from fleetnas.controller.costdb._records import Device, Measurement, Model

DEVICE_COLUMNS = select_list(Device.COLUMNS)
MODEL_COLUMNS = select_list(Model.COLUMNS)
MEASUREMENT_COLUMNS = select_list(Measurement.COLUMNS)

INSERT_MEASUREMENT = (
    insert_sql("measurements", Measurement.COLUMNS, skip=("id",)) + " ON CONFLICT (uid) DO NOTHING"
)
LOOKUP = (
    f"SELECT {MEASUREMENT_COLUMNS} FROM measurements "
    "WHERE model_sha256 = ? AND device = ? AND settings_hash = ? "
    "ORDER BY started_at DESC, id DESC LIMIT 1"
)
LOOKUP_ON_HARDWARE = (
    f"SELECT {MEASUREMENT_COLUMNS} FROM measurements "
    "WHERE model_sha256 = ? AND device = ? AND settings_hash = ? AND hardware_id = ? "
    "ORDER BY started_at DESC, id DESC LIMIT 1"
)
BY_UID = f"SELECT {MEASUREMENT_COLUMNS} FROM measurements WHERE uid = ?"
DEVICE_BY_NAME = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE name = ?"
MODEL_BY_SHA = f"SELECT {MODEL_COLUMNS} FROM models WHERE sha256 = ?"

UPSERT_DEVICE = insert_sql("devices", Device.COLUMNS) + """
    ON CONFLICT (name) DO UPDATE SET
        device_class = excluded.device_class,
        address = excluded.address,
        host_fingerprint = excluded.host_fingerprint,
        description = COALESCE(excluded.description, devices.description),
        last_seen = excluded.last_seen
"""
INSERT_DEVICE_IF_NEW = insert_sql("devices", Device.COLUMNS) + " ON CONFLICT (name) DO NOTHING"
UPSERT_MODEL = insert_sql("models", Model.COLUMNS) + """
    ON CONFLICT (sha256) DO UPDATE SET
        size_bytes = COALESCE(excluded.size_bytes, models.size_bytes),
        space = COALESCE(excluded.space, models.space),
        arch = COALESCE(excluded.arch, models.arch),
        params = COALESCE(excluded.params, models.params),
        flops = COALESCE(excluded.flops, models.flops)
"""
# The one write of a model row that a measurement makes: create it if missing,
# and fill in its size when the caller knows it (a known size is kept).
MODEL_FOR_MEASUREMENT = """
    INSERT INTO models (sha256, size_bytes, created_at) VALUES (?, ?, ?)
    ON CONFLICT (sha256) DO UPDATE SET size_bytes = excluded.size_bytes
    WHERE models.size_bytes IS NULL AND excluded.size_bytes IS NOT NULL
"""
_MODEL_STUB = (
    "INSERT INTO models (sha256, created_at) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING"
)


def insert_measurements(
    conn: sqlite3.Connection, measurements: Iterable[Measurement]
) -> tuple[int, int]:
    """Insert trusted measurements, streaming, in the caller's transaction.

    Returns ``(added, skipped_duplicates)``; missing model rows are created.
    """
    # Model stubs go in after the measurements that need them, so the
    # input can be streamed once; the foreign key is checked at COMMIT.
    conn.execute("PRAGMA defer_foreign_keys = ON")
    stubs: dict[str, float] = {}
    seen = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal seen
        for m in measurements:
            stubs.setdefault(m.model_sha256, m.recorded_at)
            seen += 1
            yield m.to_row()

    before = conn.total_changes
    conn.executemany(INSERT_MEASUREMENT, rows())
    added = conn.total_changes - before
    conn.executemany(_MODEL_STUB, stubs.items())
    return added, seen - added
