"""Schema migrations of the cost database.

A migration is a numbered function over a ``sqlite_utils.Database``; the list
:data:`MIGRATIONS` is the schema's history, in order, and is append-only: to
change the schema, add a migration at the end (never edit an applied one).
The tables of the records (devices, models, measurements, measurement
profiles) are not written out here: migration 1 creates them from the
records' fields that carry ``since=1``, and a later migration adds the fields
(or the table) that name it (see :mod:`._records`, :mod:`._profiles`), so the
schema is stated once.
Each applied migration is recorded in the ``migrations`` table
(``version``, ``name``, ``applied_at``).

:func:`migrate` runs on every open. When the database is already current it
only reads; otherwise it takes the write lock (``BEGIN IMMEDIATE``), re-reads
what is applied under that lock, applies the pending migrations and records
them in the same transaction. So two processes opening a fresh file at once
apply each migration exactly once, and a failing migration leaves nothing
half-done. Migrations must therefore not use statements that commit
(``executescript``, ``VACUUM``) or change ``PRAGMA``s that are refused inside
a transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from fleetnas.controller.costdb._codec import add_columns_sql, create_table_sql
from fleetnas.controller.costdb._errors import NotACostDB, SchemaTooNew
from fleetnas.controller.costdb._hardware import hardware_id
from fleetnas.controller.costdb._profiles import PROFILES_SINCE, Profile
from fleetnas.controller.costdb._records import ENERGY_SINCE, Device, Measurement, Model
from fleetnas.controller.costdb._user_models import USER_MODELS_SINCE, UserModel


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history."""

    version: int
    name: str
    apply: Callable[[sqlite_utils.Database], None]


def _run(db: sqlite_utils.Database, statements: tuple[str, ...]) -> None:
    for statement in statements:
        db.execute(statement)


# Version 1: the records' tables, from their definition in ._records (the
# columns with since=1), and their indexes.
_INITIAL_INDEXES = (
    "CREATE INDEX devices_by_class ON devices (device_class)",
    "CREATE INDEX devices_by_host ON devices (host_fingerprint)",
    "CREATE INDEX models_by_origin ON models (space, arch)",
    # The cache lookup: equality on the first three, newest first by a
    # backward scan over started_at (rowid breaks ties), no sort step.
    """
    CREATE INDEX measurements_cache
        ON measurements (model_sha256, device, settings_hash, started_at)
    """,
    "CREATE INDEX measurements_by_device ON measurements (device, started_at)",
)


def _initial_schema(db: sqlite_utils.Database) -> None:
    for cls in (Device, Model, Measurement):
        db.execute(create_table_sql(cls.TABLE, cls.COLUMNS, 1))
    _run(db, _INITIAL_INDEXES)


# Latency lookup tables (see docs/lut.md). A LUT is one (space identity,
# device, settings hash); its entries point at the measurement they came from
# by uid only (no foreign key): an imported LUT keeps the uids of another
# database's measurements. Reports are `lut eval` and `lut check` results.
_LUT_TABLES = (
    """
    CREATE TABLE luts (
        id            INTEGER PRIMARY KEY,
        space         TEXT NOT NULL,      -- SearchSpace.identity(): name + config
        space_name    TEXT NOT NULL,
        space_config  TEXT NOT NULL,      -- JSON object, {} for the defaults
        space_version INTEGER NOT NULL,
        device        TEXT NOT NULL,      -- devices.name (kept if removed)
        settings_hash TEXT NOT NULL,
        settings      TEXT NOT NULL,      -- resolved BenchmarkSettings, JSON
        status        TEXT NOT NULL CHECK (status IN ('building', 'complete')),
        blocks_total  INTEGER NOT NULL,   -- distinct blocks of the space
        calibration   TEXT,               -- JSON: a, b, n, archs, fitted_at ...
        source        TEXT NOT NULL,      -- 'local' or the import's label
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        UNIQUE (space, device, settings_hash)
    )
    """,
    "CREATE INDEX luts_by_device ON luts (device, space_name)",
    """
    CREATE TABLE lut_entries (
        lut_id          INTEGER NOT NULL REFERENCES luts (id) ON DELETE CASCADE,
        block_key       TEXT NOT NULL,
        model_sha256    TEXT NOT NULL REFERENCES models (sha256),
        latency_ms      REAL NOT NULL CHECK (latency_ms > 0),
        measurement_uid TEXT,             -- measurements.uid, here or where imported from
        PRIMARY KEY (lut_id, block_key)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE lut_reports (
        id          INTEGER PRIMARY KEY,
        lut_id      INTEGER NOT NULL REFERENCES luts (id) ON DELETE CASCADE,
        kind        TEXT NOT NULL CHECK (kind IN ('eval', 'check')),
        created_at  REAL NOT NULL,
        n           INTEGER NOT NULL,
        within_5    REAL NOT NULL,        -- shares in [0, 1]
        within_10   REAL NOT NULL,
        rmspe       REAL NOT NULL,        -- percent
        mape        REAL NOT NULL,        -- percent
        max_ape     REAL NOT NULL,        -- percent
        kendall_tau REAL,                 -- NULL when undefined (n < 2, ties)
        threshold   REAL,                 -- percent, check only
        stale       INTEGER NOT NULL,     -- 0/1, check only (0 for eval)
        calibration TEXT,                 -- JSON, the calibration used
        details     TEXT NOT NULL         -- JSON: per arch, and the check's reasons
    )
    """,
    "CREATE INDEX lut_reports_by_lut ON lut_reports (lut_id, kind, created_at)",
)


def _lut_tables(db: sqlite_utils.Database) -> None:
    _run(db, _LUT_TABLES)


# Searches (see docs/search.md). A search row holds its whole configuration
# and the latest engine snapshot (``state``), replaced in the same transaction
# as the candidate rows it describes, so the two never disagree. Candidates
# point at the model they were measured as (NULL while only predicted).
_SEARCH_TABLES = (
    """
    CREATE TABLE searches (
        id           INTEGER PRIMARY KEY,
        space        TEXT NOT NULL,      -- SearchSpace.identity()
        mode         TEXT NOT NULL CHECK (mode IN ('measured', 'lut', 'hybrid')),
        config       TEXT NOT NULL,      -- JSON: space, targets + settings, objectives, ...
        status       TEXT NOT NULL
                     CHECK (status IN ('running', 'interrupted', 'failed', 'complete')),
        budget       INTEGER NOT NULL,   -- candidates to evaluate
        trials       INTEGER NOT NULL,   -- evaluated so far (complete + failed)
        measured     INTEGER NOT NULL,   -- latency values taken from measurements
        device_runs  INTEGER NOT NULL,   -- of those, benchmarks run for this search
        predicted    INTEGER NOT NULL,   -- latency values predicted (LUT or surrogate)
        state        TEXT,               -- JSON: SearchEngine.state_dict() after the last step
        step         INTEGER NOT NULL,   -- commits so far
        owner        TEXT,               -- host:pid of the process running it
        error        TEXT,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        finished_at  REAL
    )
    """,
    """
    CREATE TABLE search_candidates (
        search_id     INTEGER NOT NULL REFERENCES searches (id) ON DELETE CASCADE,
        candidate_id  INTEGER NOT NULL,
        encoding      TEXT NOT NULL,
        generation    INTEGER NOT NULL,
        parents       TEXT NOT NULL,     -- JSON array of candidate ids
        state         TEXT NOT NULL CHECK (state IN ('pending', 'complete', 'failed')),
        model_sha256  TEXT REFERENCES models (sha256),
        metrics       TEXT NOT NULL,     -- JSON: value by name (objectives, constraints, extras)
        sources       TEXT NOT NULL,     -- JSON: where each value came from
        source        TEXT CHECK (source IN ('measured', 'predicted', 'mixed')),
        measurements  TEXT NOT NULL,     -- JSON: measurement uid by latency objective
        feasible      INTEGER,           -- 0/1 once complete
        violation     REAL,              -- total relative constraint violation
        failure       TEXT,
        asked_at      REAL NOT NULL,
        told_at       REAL,
        updated_at    REAL NOT NULL,
        PRIMARY KEY (search_id, candidate_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX search_candidates_by_model ON search_candidates (model_sha256)",
)


def _search_tables(db: sqlite_utils.Database) -> None:
    _run(db, _SEARCH_TABLES)


# Version 4: each measurement records the hardware it ran on (Measurement.hardware_id),
# and the cache looks up by it. Existing rows get the identity of their device's
# stored description when it was taken on the same host fingerprint, else NULL
# (they then no longer serve the cache: a miss, never a wrong hit).
_HARDWARE_INDEX = """
    CREATE INDEX measurements_cache_hw
        ON measurements (model_sha256, device, settings_hash, hardware_id, started_at)
"""


def backfill_hardware_ids(conn: sqlite3.Connection) -> int:
    """Set the unknown ``hardware_id`` of measurements from their device's description
    (same name and host fingerprint); returns how many rows were set."""
    changed = 0
    rows = conn.execute("SELECT name, description FROM devices WHERE description IS NOT NULL")
    for name, text in rows.fetchall():
        try:
            description = json.loads(text)
        except ValueError:
            continue  # a garbled row: reading it raises CorruptRow where it matters
        cursor = conn.execute(
            "UPDATE measurements SET hardware_id = ? WHERE device = ? AND host_fingerprint = ? "
            "AND hardware_id IS NULL",
            (hardware_id(description), name, description.get("host_fingerprint", "")),
        )
        changed += cursor.rowcount
    return changed


def _hardware_identity(db: sqlite_utils.Database) -> None:
    _run(db, tuple(add_columns_sql(Measurement.TABLE, Measurement.COLUMNS, 4)))
    db.execute(_HARDWARE_INDEX)
    backfill_hardware_ids(db.conn)


# Version 5: per-operator profiles, one row per profiled measurement (see ._profiles).
def _operator_profiles(db: sqlite_utils.Database) -> None:
    db.execute(create_table_sql(Profile.TABLE, Profile.COLUMNS, PROFILES_SINCE))


# Version 6: user models with names (see ._user_models), one row per named model.
def _user_models(db: sqlite_utils.Database) -> None:
    db.execute(create_table_sql(UserModel.TABLE, UserModel.COLUMNS, USER_MODELS_SINCE))


# Version 7: the robust statistic a LUT's entries are computed with from their
# measurement's raw samples (controller/lut/_robust.py); LUTs stored before it
# copied the measurement's latency_ms, the median.
def _lut_statistic(db: sqlite_utils.Database) -> None:
    db.execute("ALTER TABLE luts ADD COLUMN statistic TEXT NOT NULL DEFAULT 'median'")


# Version 8: each measurement's energy per inference (Measurement.energy_*; NULL where no
# meter read anything, and for every row measured before).
def _energy_columns(db: sqlite_utils.Database) -> None:
    _run(db, tuple(add_columns_sql(Measurement.TABLE, Measurement.COLUMNS, ENERGY_SINCE)))


# Version 9: stored transfer fits (controller/predict/_transfer_store.py), one row per fit,
# its id the sha256 of its parameters: a search that predicts with one keeps the id and
# reloads the very same model on resume, however much the cost DB grew since.
_TRANSFER_TABLES = (
    """
    CREATE TABLE transfer_fits (
        id             TEXT PRIMARY KEY,   -- sha256 of canonical_json(params)
        space          TEXT NOT NULL,      -- SearchSpace.identity()
        space_name     TEXT NOT NULL,
        space_version  INTEGER NOT NULL,
        device         TEXT NOT NULL,      -- the new device
        settings_hash  TEXT NOT NULL,      -- of its reference measurements
        settings       TEXT NOT NULL,      -- JSON: the resolved settings
        n              INTEGER NOT NULL,   -- reference archs fitted on
        loo_rmspe      REAL NOT NULL,
        params         TEXT NOT NULL,      -- JSON: sources, their models, the fit
        created_at     REAL NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX transfer_fits_by_device ON transfer_fits (space_name, device, created_at)",
)


def _transfer_fits(db: sqlite_utils.Database) -> None:
    _run(db, _TRANSFER_TABLES)


# Version 10: a LUT's precision (controller/compress: fp32, fp16, int8, int8-dynamic), the
# precision every entry's block model was converted to before it was measured; LUTs stored
# before it are fp32. The precision is part of a LUT's identity (an int8 LUT and the fp32 LUT
# of the same space, device and settings coexist), so the UNIQUE constraint changes: SQLite
# cannot alter one, so ``luts`` is rebuilt. Its children (lut_entries, lut_reports) hold
# ``ON DELETE CASCADE`` foreign keys and foreign keys are on (they cannot be turned off inside
# the migration's transaction), so dropping ``luts`` under them would delete their rows: they
# are copied aside, dropped, and created again (migration 2's statements) after the new
# ``luts`` takes the name; every id is kept.
_LUTS_V10 = """
    CREATE TABLE luts_v10 (
        id            INTEGER PRIMARY KEY,
        space         TEXT NOT NULL,      -- SearchSpace.identity(): name + config
        space_name    TEXT NOT NULL,
        space_config  TEXT NOT NULL,      -- JSON object, {} for the defaults
        space_version INTEGER NOT NULL,
        device        TEXT NOT NULL,      -- devices.name (kept if removed)
        settings_hash TEXT NOT NULL,
        settings      TEXT NOT NULL,      -- resolved BenchmarkSettings, JSON
        status        TEXT NOT NULL CHECK (status IN ('building', 'complete')),
        blocks_total  INTEGER NOT NULL,   -- distinct blocks of the space
        calibration   TEXT,               -- JSON: a, b, n, archs, fitted_at ...
        source        TEXT NOT NULL,      -- 'local' or the import's label
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        statistic     TEXT NOT NULL DEFAULT 'median',
        precision     TEXT NOT NULL DEFAULT 'fp32',  -- compress.Precision value
        UNIQUE (space, device, settings_hash, precision)
    )
"""
_LUT_COLUMNS_V9 = (
    "id, space, space_name, space_config, space_version, device, settings_hash, settings, "
    "status, blocks_total, calibration, source, created_at, updated_at, statistic"
)
_LUT_CHILDREN = ("lut_entries", "lut_reports")


def _lut_precision(db: sqlite_utils.Database) -> None:
    db.execute(_LUTS_V10)
    db.execute(f"INSERT INTO luts_v10 ({_LUT_COLUMNS_V9}, precision) "
               f"SELECT {_LUT_COLUMNS_V9}, 'fp32' FROM luts")
    for child in _LUT_CHILDREN:
        db.execute(f"CREATE TEMP TABLE {child}_v9 AS SELECT * FROM {child}")
        db.execute(f"DROP TABLE {child}")
    db.execute("DROP TABLE luts")  # no child references it now: nothing cascades
    db.execute("ALTER TABLE luts_v10 RENAME TO luts")
    _run(db, _LUT_TABLES[1:])  # luts_by_device, lut_entries, lut_reports and its index
    for child in _LUT_CHILDREN:
        db.execute(f"INSERT INTO {child} SELECT * FROM temp.{child}_v9")
        db.execute(f"DROP TABLE temp.{child}_v9")


# Version 11: stored kernel LUTs (controller/predict/_kernel_store.py), one row per calibrated
# LUT, its id the sha256 of the LUT's JSON: a search that predicts with one keeps the id and
# reloads the very same entries and calibration on resume.
_KERNEL_LUT_TABLES = (
    """
    CREATE TABLE kernel_luts (
        id             TEXT PRIMARY KEY,   -- sha256 of canonical_json(lut)
        space          TEXT NOT NULL,      -- SearchSpace.identity() it was calibrated on
        space_name     TEXT NOT NULL,
        space_version  INTEGER NOT NULL,
        device         TEXT NOT NULL,
        settings_hash  TEXT NOT NULL,      -- of its kernel measurements
        settings       TEXT NOT NULL,      -- JSON: the resolved settings
        level          TEXT NOT NULL,      -- optimisation level the kernels were extracted at
        kernels        INTEGER NOT NULL,   -- entries, the null model included
        loo_rmspe      REAL NOT NULL,      -- the calibration's leave-one-out RMSPE (NaN: none)
        lut            TEXT NOT NULL,      -- JSON: KernelLut.to_dict()
        created_at     REAL NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX kernel_luts_by_device ON kernel_luts (space_name, device, created_at)",
)


def _kernel_luts(db: sqlite_utils.Database) -> None:
    _run(db, _KERNEL_LUT_TABLES)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial_schema", _initial_schema),
    Migration(2, "lut_tables", _lut_tables),
    Migration(3, "search_tables", _search_tables),
    Migration(4, "hardware_identity", _hardware_identity),
    Migration(PROFILES_SINCE, "operator_profiles", _operator_profiles),
    Migration(USER_MODELS_SINCE, "user_models", _user_models),
    Migration(7, "lut_statistic", _lut_statistic),
    Migration(ENERGY_SINCE, "energy_per_inference", _energy_columns),
    Migration(9, "transfer_fits", _transfer_fits),
    Migration(10, "lut_precision", _lut_precision),
    Migration(11, "kernel_luts", _kernel_luts),
)
LATEST_VERSION = MIGRATIONS[-1].version

_MIGRATIONS_TABLE = """
    CREATE TABLE IF NOT EXISTS migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        applied_at REAL NOT NULL
    )
"""


def _table_names(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return {name for (name,) in rows}


def applied_versions(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """``(version, name)`` of every applied migration, oldest first; empty for a fresh file."""
    if "migrations" not in _table_names(conn):
        return []
    return list(conn.execute("SELECT version, name FROM migrations ORDER BY version"))


def check_history(path: str | Path, applied: list[tuple[int, str]]) -> None:
    """Raise unless ``applied`` is a prefix of (or equal to) :data:`MIGRATIONS`."""
    if applied and applied[-1][0] > LATEST_VERSION:
        raise SchemaTooNew(path, applied[-1][0], LATEST_VERSION)
    known = {m.version: m.name for m in MIGRATIONS}
    for version, name in applied:
        if known.get(version) != name:
            raise NotACostDB(path, f"migration {version} is {name!r}, expected {known.get(version)!r}")


def migrate(db: sqlite_utils.Database, path: str | Path) -> int:
    """Apply pending migrations; return the schema version (see the module docstring).

    The connection must be in autocommit mode (``isolation_level=None``) with
    no open transaction. Raises :class:`SchemaTooNew` when a newer fleetnas
    migrated the file, :class:`NotACostDB` when it holds other tables but no
    migration history, or a history this code does not know.
    """
    conn = db.conn
    applied = applied_versions(conn)
    check_history(path, applied)
    if applied and applied[-1][0] == LATEST_VERSION:
        return LATEST_VERSION
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = _table_names(conn)
        applied = applied_versions(conn)  # again, now that we hold the write lock
        check_history(path, applied)
        if not applied and tables - {"migrations"}:
            raise NotACostDB(path, "it has tables but no fleetnas migration history")
        db.execute(_MIGRATIONS_TABLE)
        done = {version for version, _ in applied}
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            migration.apply(db)
            db.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return LATEST_VERSION
