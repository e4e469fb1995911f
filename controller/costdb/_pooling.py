"""Export files and foreign databases: reading and writing the records a team pools.

Two file formats carry the same records:

* **JSON lines** (``.jsonl``): line 1 is a header
  ``{"format": "fleetnas-costdb", "version": 1, ...}``; every further line is
  one record with a ``"type"`` of ``"device"``, ``"model"``,
  ``"measurement"``, ``"profile"`` (a measurement's operator profile, after
  the measurements) or ``"user_model"`` (a model's name and tags, after the
  models; local names win on import) and the record's fields (see
  ``docs/costdb.md``).
* **CSV** (``.csv``): one row per measurement, its fields as columns, followed
  by its device's fields (``device_*``, empty when the device row is unknown)
  and its model's (``model_*``), then its operator profile as JSON
  (``profile``, empty when not profiled); model names are not in CSV. Structured values (samples, settings,
  warnings, paired details, descriptions) are JSON in their cell; ``None`` is
  an empty cell; floats are written with ``repr`` so they read back exactly.

Reading validates every record and raises :class:`ImportFormatError` naming
the file and 1-based line of the first bad one; nothing is returned for a bad
file, so an import is all-or-nothing. Reading is done before the importing
database takes its write lock, so the whole file is held in memory
(roughly 1-2 KB per measurement).
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias

from fleetnas.controller.atomic_files import atomic_writer
from fleetnas.controller.costdb._codec import Column, decode_csv, encode_csv, named_rows
from fleetnas.controller.costdb._connection import damage, translated
from fleetnas.controller.costdb._errors import (
    CorruptRow,
    ImportFormatError,
    InvalidRecord,
    NotACostDB,
)
from fleetnas.controller.costdb._migrations import (
    LATEST_VERSION,
    backfill_hardware_ids,
    check_history,
)
from fleetnas.controller.costdb._profiles import (
    INSERT_PROFILE,
    PROFILE_COLUMNS,
    PROFILES_SINCE,
    Profile,
)
from fleetnas.controller.costdb._records import LATER_COLUMNS, Device, Measurement, Model
from fleetnas.controller.costdb._statements import (
    DEVICE_COLUMNS,
    INSERT_DEVICE_IF_NEW,
    MEASUREMENT_COLUMNS,
    MODEL_COLUMNS,
    UPSERT_MODEL,
    insert_measurements,
)
from fleetnas.controller.costdb._user_models import (
    INSERT_USER_MODEL_IF_NEW,
    USER_MODEL_COLUMNS,
    USER_MODELS_SINCE,
    UserModel,
)

ExportFormat = Literal["jsonl", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "csv")
JSONL_FORMAT_NAME = "fleetnas-costdb"
#: 2 added ``hardware_id`` to measurements (version 1 files import, without it);
#: 3 added ``profile`` records (older files import, with no profiles);
#: 4 added ``user_model`` records (older files import, with no names);
#: 5 added the ``energy_*`` fields to measurements (older files import, without energy)
JSONL_VERSION = 5
LOCAL_SOURCE = "local"
_CSV_FIELD_LIMIT = 1 << 28


@dataclass
class Records:
    """Devices, models and measurements read from one export file or database."""

    devices: list[Device] = field(default_factory=list)
    models: list[Model] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    user_models: list[UserModel] = field(default_factory=list)


@dataclass(frozen=True)
class ImportReport:
    """What an import or merge did. Malformed input raises instead of being counted."""

    added: int
    skipped_duplicates: int
    devices_added: int
    models_added: int
    profiles_added: int = 0
    names_added: int = 0


@dataclass(frozen=True)
class ExportReport:
    """How many records an export wrote."""

    devices: int
    models: int
    measurements: int
    profiles: int = 0
    names: int = 0


def detect_format(path: str | Path, fmt: str | None) -> ExportFormat:
    """The format to use: ``fmt`` when given, else ``csv`` for a ``.csv`` suffix, else jsonl."""
    if fmt is None:
        return "csv" if Path(path).suffix.lower() == ".csv" else "jsonl"
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt  # type: ignore[return-value]


def atomic_write(path: str | Path) -> AbstractContextManager[IO[str]]:
    """A text file that appears at ``path`` only once it has been written completely (fsynced)."""
    return atomic_writer(path, fsync=True, make_parents=False)


# -- JSON lines ------------------------------------------------------------------------


def write_jsonl(
    handle: IO[str],
    devices: Iterable[Device],
    models: Iterable[Model],
    measurements: Iterable[Measurement],
    profiles: Iterable[Profile] = (),
    user_models: Iterable[UserModel] = (),
) -> ExportReport:
    """Write a header then every record, one compact JSON object per line."""
    header = {
        "format": JSONL_FORMAT_NAME,
        "version": JSONL_VERSION,
        "schema_version": LATEST_VERSION,
        "exported_at": time.time(),
    }
    handle.write(json.dumps(header) + "\n")
    counts = {"device": 0, "model": 0, "measurement": 0, "profile": 0, "user_model": 0}
    groups: tuple[tuple[str, Iterable[Any]], ...] = (
        ("device", devices),
        ("model", models),
        ("user_model", user_models),
        ("measurement", measurements),
        ("profile", profiles),
    )
    for kind, records in groups:
        for record in records:
            line = {"type": kind, **record.to_dict()}
            handle.write(json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n")
            counts[kind] += 1
    return ExportReport(
        counts["device"], counts["model"], counts["measurement"], counts["profile"],
        counts["user_model"],
    )


Built: TypeAlias = Device | Model | Measurement | Profile | UserModel
_BUILDERS: dict[str, Callable[[dict[str, Any]], Built]] = {
    "device": Device.from_dict,
    "model": Model.from_dict,
    "measurement": Measurement.from_dict,
    "profile": Profile.from_dict,
    "user_model": UserModel.from_dict,
}


def _check_header(path: Path, line: str) -> None:
    try:
        header = json.loads(line)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != JSONL_FORMAT_NAME:
        raise ImportFormatError(
            path, 1, f"not a fleetnas export (expected a {JSONL_FORMAT_NAME!r} header line)"
        )
    version = header.get("version")
    if not isinstance(version, int) or version > JSONL_VERSION:
        raise ImportFormatError(
            path, 1, f"export format version {version!r}; this fleetnas reads {JSONL_VERSION}"
        )


def read_jsonl(path: str | Path) -> Records:
    """Every record of a JSON-lines export, validated (see the module docstring)."""
    path = Path(path)
    records = Records()
    uids: set[str] = set()
    models: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1:
                _check_header(path, line)
                continue
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImportFormatError(path, number, f"not JSON: {exc.msg}") from exc
            if not isinstance(data, dict):
                raise ImportFormatError(path, number, "expected a JSON object")
            kind = data.get("type")
            builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
            if builder is None:
                raise ImportFormatError(
                    path, number, f"type {kind!r} is not one of {', '.join(_BUILDERS)}"
                )
            try:
                record = builder(data)
            except InvalidRecord as exc:
                raise ImportFormatError(path, number, f"bad {kind}: {exc}") from exc
            if isinstance(record, Device):
                records.devices.append(record)
            elif isinstance(record, Model):
                records.models.append(record)
                models.add(record.sha256)
            elif isinstance(record, UserModel):
                if record.sha256 not in models:  # it must follow its model
                    raise ImportFormatError(path, number, f"name {record.name!r} of model "
                                            f"{record.sha256[:12]}: not in the file before it")
                records.user_models.append(record)
            elif isinstance(record, Profile):
                if record.measurement_uid not in uids:  # it must follow its measurement
                    raise ImportFormatError(path, number, f"profile of measurement "
                                            f"{record.measurement_uid}: not in the file before it")
                records.profiles.append(record)
            else:
                records.measurements.append(record)
                uids.add(record.uid)
    return records


# -- CSV -------------------------------------------------------------------------------


def _prefixed(prefix: str, column: Column) -> str:
    return column.name if column.name.startswith(prefix) else prefix + column.name


_DEVICE_CSV = tuple((c, _prefixed("device_", c)) for c in Device.COLUMNS if c.name != "name")
_MODEL_CSV = tuple((c, _prefixed("model_", c)) for c in Model.COLUMNS if c.name != "sha256")
_PROFILE_CSV = next(c for c in Profile.COLUMNS if c.name == "profile")
#: columns an older export may lack (added after version 1 of the formats)
_CSV_OPTIONAL = frozenset({*LATER_COLUMNS, _PROFILE_CSV.name})
CSV_HEADER: tuple[str, ...] = (
    *(c.name for c in Measurement.COLUMNS),
    *(name for _, name in _DEVICE_CSV),
    *(name for _, name in _MODEL_CSV),
    _PROFILE_CSV.name,
)


def write_csv(
    handle: IO[str],
    devices: Iterable[Device],
    models: Iterable[Model],
    measurements: Iterable[Measurement],
    profiles: Iterable[Profile] = (),
) -> ExportReport:
    """One row per measurement with its device, model and profile flattened into it."""
    by_name = {d.name: d for d in devices}
    by_sha = {m.sha256: m for m in models}
    by_uid = {p.measurement_uid: p for p in profiles}
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    count = profiled = 0
    devices_used: set[str] = set()
    models_used: set[str] = set()
    for m in measurements:
        row = [encode_csv(c, getattr(m, c.name)) for c in Measurement.COLUMNS]
        device = by_name.get(m.device)
        row += [encode_csv(c, getattr(device, c.name)) if device else "" for c, _ in _DEVICE_CSV]
        model = by_sha.get(m.model_sha256)
        row += [encode_csv(c, getattr(model, c.name)) if model else "" for c, _ in _MODEL_CSV]
        profile = by_uid.get(m.uid)
        row.append(encode_csv(_PROFILE_CSV, profile.profile) if profile else "")
        writer.writerow(row)
        count += 1
        profiled += profile is not None
        if device:
            devices_used.add(device.name)
        if model:
            models_used.add(model.sha256)
    return ExportReport(devices=len(devices_used), models=len(models_used), measurements=count,
                        profiles=profiled)


def _decode_group(
    cells: dict[str, str], group: tuple[tuple[Column, str], ...], key: tuple[str, str]
) -> dict[str, Any]:
    data = {column.name: decode_csv(column, cells[name]) for column, name in group}
    data[key[0]] = key[1]
    return data


def read_csv(path: str | Path) -> Records:
    """Every record of a CSV export, validated (see the module docstring)."""
    path = Path(path)
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    records = Records()
    seen_devices: set[str] = set()
    seen_models: set[str] = set()
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        missing = sorted(set(CSV_HEADER) - set(header or ()) - _CSV_OPTIONAL)
        if header is None or missing:
            raise ImportFormatError(
                path, 1, f"not a fleetnas CSV export (missing columns: {', '.join(missing)})"
            )
        for row in reader:
            if not any(row):
                continue
            if len(row) != len(header):
                raise ImportFormatError(
                    path, reader.line_num, f"{len(row)} cells, the header has {len(header)}"
                )
            cells = dict(zip(header, row, strict=True))
            try:
                fields = {
                    c.name: decode_csv(c, cells[c.name])
                    for c in Measurement.COLUMNS if c.name in cells
                }
                measurement = Measurement(**fields).validate()
                if cells["device_class"] and measurement.device not in seen_devices:
                    device = _decode_group(cells, _DEVICE_CSV, ("name", measurement.device))
                    records.devices.append(Device(**device).validate())
                    seen_devices.add(measurement.device)
                if cells["model_created_at"] and measurement.model_sha256 not in seen_models:
                    model = _decode_group(cells, _MODEL_CSV, ("sha256", measurement.model_sha256))
                    records.models.append(Model(**model).validate())
                    seen_models.add(measurement.model_sha256)
                if cells.get(_PROFILE_CSV.name):
                    profile = decode_csv(_PROFILE_CSV, cells[_PROFILE_CSV.name])
                    records.profiles.append(Profile(measurement.uid, profile).validate())
            except InvalidRecord as exc:
                raise ImportFormatError(path, reader.line_num, str(exc)) from exc
            except csv.Error as exc:
                raise ImportFormatError(path, reader.line_num, f"bad CSV: {exc}") from exc
            records.measurements.append(measurement)
    return records


def read_export(path: str | Path, fmt: str | None = None) -> Records:
    """Read a JSON-lines or CSV export (format from ``fmt`` or the file suffix)."""
    try:
        if detect_format(path, fmt) == "csv":
            return read_csv(path)
        return read_jsonl(path)
    except UnicodeDecodeError as exc:
        raise ImportFormatError(path, 1, f"not UTF-8 text: {exc.reason}") from exc
    except csv.Error as exc:
        raise ImportFormatError(path, 0, f"bad CSV: {exc}") from exc


# -- another cost database -------------------------------------------------------------


def read_costdb(path: str | Path) -> Records:
    """Every record of another cost database file, read in one snapshot, never written.

    Raises :class:`NotACostDB` when the file is missing, not SQLite, or has no
    fleetnas schema; :class:`SchemaTooNew` when a newer fleetnas wrote it.
    """
    path = Path(path)
    if not path.is_file():
        raise NotACostDB(path, "no such file")
    uri = f"{path.resolve().as_uri()}?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise NotACostDB(path, str(exc)) from exc
    try:
        conn.execute("BEGIN")
        try:
            history = list(conn.execute("SELECT version, name FROM migrations ORDER BY version"))
        except sqlite3.DatabaseError as exc:
            raise damage(str(path), exc, path) or NotACostDB(path, str(exc)) from exc
        check_history(path, history)
        if not history:
            raise NotACostDB(path, "it has no fleetnas migration history")
        records = Records()
        with translated(str(path), path):
            _read_table(path, conn, Device, "name", records.devices)
            _read_table(path, conn, Model, "sha256", records.models)
            _read_table(path, conn, Measurement, "id", records.measurements)
            if history[-1][0] >= PROFILES_SINCE:
                _read_table(path, conn, Profile, "measurement_uid", records.profiles)
            if history[-1][0] >= USER_MODELS_SINCE:
                _read_table(path, conn, UserModel, "name", records.user_models)
        conn.execute("COMMIT")
        return records
    finally:
        conn.close()


def _read_table(
    path: Path, conn: sqlite3.Connection, cls: Any, order: str, target: list[Any]
) -> None:
    """Read ``cls.TABLE``; columns an older schema lacks read as NULL (their default)."""
    table = cls.TABLE
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    columns = ", ".join(c.name if c.name in present else f"NULL AS {c.name}" for c in cls.COLUMNS)
    key = cls.COLUMNS[0].name
    for row in named_rows(conn.execute(f"SELECT {columns} FROM {table} ORDER BY {order}")):
        try:
            target.append(cls.from_row(row).validate())
        except CorruptRow as exc:
            raise CorruptRow(exc.table, exc.key, exc.column, exc.cause, str(path)) from exc
        except InvalidRecord as exc:
            raise InvalidRecord(f"{path}: {table} row {row[key]!r}: {exc}") from exc


# -- this database ---------------------------------------------------------------------


def read_all(conn: sqlite3.Connection) -> Records:
    """Every device, model and measurement of the database (call inside a read snapshot)."""

    def rows(sql: str) -> list[dict[str, Any]]:
        return named_rows(conn.execute(sql))

    return Records(
        devices=[Device.from_row(r) for r in rows(
            f"SELECT {DEVICE_COLUMNS} FROM devices ORDER BY name")],
        models=[Model.from_row(r) for r in rows(
            f"SELECT {MODEL_COLUMNS} FROM models ORDER BY sha256")],
        measurements=[Measurement.from_row(r) for r in rows(
            f"SELECT {MEASUREMENT_COLUMNS} FROM measurements ORDER BY id")],
        profiles=[Profile.from_row(r) for r in rows(
            f"SELECT {PROFILE_COLUMNS} FROM {Profile.TABLE} ORDER BY measurement_uid")],
        user_models=[UserModel.from_row(r) for r in rows(
            f"SELECT {USER_MODEL_COLUMNS} FROM {UserModel.TABLE} ORDER BY name")],
    )  # fmt: skip


def write_export(path: str | Path, fmt: ExportFormat, records: Records) -> ExportReport:
    """Write ``records`` to ``path`` in ``fmt``; the file appears only once complete."""
    with atomic_write(path) as handle:
        if fmt == "csv":
            return write_csv(
                handle, records.devices, records.models, records.measurements, records.profiles
            )
        return write_jsonl(handle, records.devices, records.models, records.measurements,
                           records.profiles, records.user_models)


def ingest(conn: sqlite3.Connection, records: Records, source: str) -> ImportReport:
    """Add imported records in the caller's write transaction (see ``CostDB.import_file``)."""
    incoming = [
        replace(m, source=source) if m.source == LOCAL_SOURCE else m for m in records.measurements
    ]

    def count(table: str) -> int:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    devices_before, models_before = count("devices"), count("models")
    profiles_before, names_before = count(Profile.TABLE), count(UserModel.TABLE)
    conn.executemany(INSERT_DEVICE_IF_NEW, (d.to_row() for d in records.devices))
    conn.executemany(UPSERT_MODEL, (m.to_row() for m in records.models))
    conn.executemany(INSERT_USER_MODEL_IF_NEW, (u.to_row() for u in records.user_models))
    added, skipped = insert_measurements(conn, incoming)
    # after the measurements they belong to; a known profile is kept as it is
    conn.executemany(INSERT_PROFILE, (p.to_row() for p in records.profiles))
    backfill_hardware_ids(conn)  # records from files that predate hardware_id
    return ImportReport(
        added=added,
        skipped_duplicates=skipped,
        devices_added=count("devices") - devices_before,
        models_added=count("models") - models_before,
        profiles_added=count(Profile.TABLE) - profiles_before,
        names_added=count(UserModel.TABLE) - names_before,
    )
