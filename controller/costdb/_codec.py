"""Typed columns and their encodings: SQLite row, JSON object, CSV cell, SQL schema.

A record class (a frozen dataclass decorated with :func:`record`) states its
columns once, as its fields: the name and the type annotation give the
column's name, value kind and nullability; :func:`column` adds what only the
schema needs (a constraint, the migration that added the column). From that
one definition come the ``CREATE TABLE`` of the migration that made the table
(:func:`create_table_sql`), the ``ALTER TABLE`` of a later one
(:func:`add_columns_sql`), the ``SELECT`` and ``INSERT`` column lists, and
the conversions to and from each representation, so they never drift apart.

Rows are read by column name, never by position. Decoding JSON or CSV
validates types and raises :class:`InvalidRecord` naming the field; decoding
an SQLite row trusts the types (it is the hot path of the cache) but turns a
garbled JSON cell into :class:`CorruptRow` naming the table, row and column.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from google.protobuf import json_format

from fleetnas.controller.costdb._errors import CorruptRow, InvalidRecord

Kind = Literal["int", "float", "str", "bool", "floats", "strs", "object"]
_JSON_KINDS = ("floats", "strs", "object")
# Type annotation (as written, without "| None") -> value kind.
_KIND_OF_ANNOTATION: dict[str, Kind] = {
    "int": "int",
    "float": "float",
    "str": "str",
    "bool": "bool",
    "tuple[float, ...]": "floats",
    "tuple[str, ...]": "strs",
    "dict[str, Any]": "object",
}
_SQL_TYPE: dict[str, str] = {
    "int": "INTEGER", "float": "REAL", "str": "TEXT", "bool": "INTEGER",
    "floats": "TEXT", "strs": "TEXT", "object": "TEXT",
}  # fmt: skip
_METADATA_KEY = "fleetnas.column"


@dataclass(frozen=True)
class Column:
    """One field of a record: name, value kind, nullability and its SQL extras.

    ``constraint`` is SQL after the type (``PRIMARY KEY``, ``UNIQUE``,
    ``REFERENCES models (sha256)``, ``CHECK (...)``); ``since`` is the
    migration version that added the column to its table.
    """

    name: str
    kind: Kind
    nullable: bool = False
    constraint: str = ""
    since: int = 1

    def definition(self) -> str:
        """The column's definition in ``CREATE TABLE`` / ``ADD COLUMN``."""
        parts = [self.name, _SQL_TYPE[self.kind]]
        # A PRIMARY KEY column keeps SQLite's own rule (INTEGER PRIMARY KEY is the rowid).
        if not self.nullable and "PRIMARY KEY" not in self.constraint:
            parts.append("NOT NULL")
        if self.constraint:
            parts.append(self.constraint)
        return " ".join(parts)


def column(*, constraint: str = "", since: int = 1) -> dict[str, Any]:
    """Schema extras of one record field (see :class:`Column`), as ``field(metadata=...)``."""
    return {_METADATA_KEY: {"constraint": constraint, "since": since}}


R = TypeVar("R")


def record(table: str) -> Callable[[type[R]], type[R]]:
    """Class decorator: set ``TABLE`` and ``COLUMNS`` (one :class:`Column` per field)."""

    def decorate(cls: type[R]) -> type[R]:
        columns = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            annotation = str(f.type)
            nullable = annotation.endswith(" | None")
            kind = _KIND_OF_ANNOTATION.get(annotation.removesuffix(" | None"))
            if kind is None:
                raise TypeError(f"{cls.__name__}.{f.name}: no column kind for {annotation!r}")
            extras = f.metadata.get(_METADATA_KEY, {})
            columns.append(Column(f.name, kind, nullable, **extras))
        cls.TABLE = table  # type: ignore[attr-defined]
        cls.COLUMNS = tuple(columns)  # type: ignore[attr-defined]
        return cls

    return decorate


# -- SQL schema ------------------------------------------------------------------------


def create_table_sql(table: str, columns: Sequence[Column], version: int) -> str:
    """``CREATE TABLE`` with the columns that migration ``version`` (or an earlier one) added."""
    body = ",\n    ".join(c.definition() for c in columns if c.since <= version)
    return f"CREATE TABLE {table} (\n    {body}\n)"


def add_columns_sql(table: str, columns: Sequence[Column], version: int) -> list[str]:
    """``ALTER TABLE ... ADD COLUMN`` for each column that migration ``version`` adds."""
    return [
        f"ALTER TABLE {table} ADD COLUMN {c.definition()}" for c in columns if c.since == version
    ]


def select_list(columns: Sequence[Column]) -> str:
    """The columns, comma-separated, for ``SELECT``."""
    return ", ".join(c.name for c in columns)


def insert_sql(table: str, columns: Sequence[Column], *, skip: Sequence[str] = ()) -> str:
    """``INSERT INTO table (...) VALUES (:name, ...)`` with named parameters."""
    names = [c.name for c in columns if c.name not in skip]
    return (
        f"INSERT INTO {table} ({', '.join(names)}) "
        f"VALUES ({', '.join(':' + n for n in names)})"
    )


def dumps(value: Any) -> str:
    """Compact JSON that refuses NaN and infinities (they are not JSON), UTF-8 kept as is."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the text that settings hashes, LUT rows
    and LUT file names are computed from (so it must never change)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def message_to_dict(message: Any) -> dict[str, Any]:
    """A protobuf message as a JSON-ready dict: proto field names, enums by name."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


# -- SQLite ----------------------------------------------------------------------------


def encode_sql(column: Column, value: Any) -> Any:
    """The value as stored in SQLite (JSON text for structured kinds, 0/1 for bools)."""
    if value is None:
        return None
    if column.kind in _JSON_KINDS:
        return dumps(list(value) if column.kind != "object" else value)
    if column.kind == "bool":
        return int(value)
    return value


def _json_tuple(text: str) -> tuple[Any, ...]:
    return tuple(json.loads(text))


# None: SQLite already returns the Python value (REAL affinity gives floats).
_SQL_DECODERS: dict[str, Callable[[Any], Any] | None] = {
    "int": None,
    "float": None,
    "str": None,
    "bool": bool,
    "floats": _json_tuple,
    "strs": _json_tuple,
    "object": json.loads,
}


def named_rows(cursor: Any) -> list[dict[str, Any]]:
    """Every row of an executed query as a dict keyed by the query's column names."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def named_row(cursor: Any) -> dict[str, Any] | None:
    """The first row of an executed query by column name, or ``None``."""
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


# -- JSON ------------------------------------------------------------------------------


def encode_json(column: Column, value: Any) -> Any:
    """The value as a JSON-ready Python object (tuples become lists)."""
    if value is None:
        return None
    if column.kind in ("floats", "strs"):
        return list(value)
    return value


def _bad(column: Column, expected: str, value: Any) -> InvalidRecord:
    return InvalidRecord(f"{column.name}: expected {expected}, got {value!r:.80}")


def _as_float(column: Column, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(column, "a number", value)
    number = float(value)
    if not math.isfinite(number):
        raise _bad(column, "a finite number", value)
    return number


def decode_json(column: Column, value: Any) -> Any:
    """Validate and convert one JSON value; raises :class:`InvalidRecord` naming the field."""
    if value is None:
        if column.nullable:
            return None
        raise _bad(column, "a value", value)
    kind = column.kind
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(column, "an integer", value)
        return value
    if kind == "float":
        return _as_float(column, value)
    if kind == "str":
        if not isinstance(value, str):
            raise _bad(column, "a string", value)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(column, "true or false", value)
        return value
    if kind == "floats":
        if not isinstance(value, list):
            raise _bad(column, "a list of numbers", value)
        return tuple(_as_float(column, item) for item in value)
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _bad(column, "a list of strings", value)
        return tuple(value)
    if not isinstance(value, dict):
        raise _bad(column, "an object", value)
    return value


# -- CSV -------------------------------------------------------------------------------


def encode_csv(column: Column, value: Any) -> str:
    """One CSV cell: empty for ``None``, JSON for structured kinds, ``repr`` for floats."""
    if value is None:
        return ""
    kind = column.kind
    if kind in _JSON_KINDS:
        return dumps(list(value) if kind != "object" else value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float":
        return repr(float(value))
    return str(value)


def decode_csv(column: Column, cell: str) -> Any:
    """Inverse of :func:`encode_csv`; an empty cell is ``None`` for nullable columns."""
    kind = column.kind
    if cell == "" and (column.nullable or kind != "str"):
        return decode_json(column, None)
    try:
        if kind == "int":
            return int(cell)
        if kind == "float":
            return _as_float(column, float(cell))
        if kind == "str":
            return cell
        if kind == "bool":
            if cell not in ("true", "false"):
                raise _bad(column, "true or false", cell)
            return cell == "true"
        return decode_json(column, json.loads(cell))
    except ValueError as exc:  # int()/float()/json.loads; InvalidRecord is a ValueError too
        if isinstance(exc, InvalidRecord):
            raise
        raise _bad(column, kind, cell) from exc


# -- whole records ---------------------------------------------------------------------


def row_values(columns: Sequence[Column], record: object) -> dict[str, Any]:
    """The record's SQLite values by column name."""
    return {c.name: encode_sql(c, getattr(record, c.name)) for c in columns}


class RowReader:
    """Field values from an SQLite row of one record table.

    Call it on a row by column name (a mapping); :meth:`values` reads a row
    of a ``SELECT`` of :func:`select_list` of the same ``columns``, whose
    order that list fixes (the cache's hot path: no column names to look up
    per row). The per-column decoders are looked up once, here, not per row.
    A JSON cell that does not parse raises :class:`CorruptRow` naming
    ``table``, the row (by its ``key`` column) and the column.
    """

    def __init__(self, table: str, columns: Sequence[Column], key: str) -> None:
        self._table = table
        self._key = key
        self._names = tuple(c.name for c in columns)
        self._plain = tuple(c.name for c in columns if _SQL_DECODERS[c.kind] is None)
        self._decoded = tuple(
            (c.name, decoder) for c in columns if (decoder := _SQL_DECODERS[c.kind]) is not None
        )

    def __call__(self, row: Mapping[str, Any]) -> dict[str, Any]:
        fields = {name: row[name] for name in self._plain}
        self._decode(fields, row)
        return fields

    def values(self, values: Sequence[Any]) -> dict[str, Any]:
        """Field values from a row in ``columns`` order (see the class docstring)."""
        fields = dict(zip(self._names, values, strict=True))
        self._decode(fields, fields)
        return fields

    def _decode(self, fields: dict[str, Any], row: Mapping[str, Any]) -> None:
        for name, decoder in self._decoded:
            value = row[name]
            try:
                fields[name] = None if value is None else decoder(value)
            except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
                raise CorruptRow(self._table, row.get(self._key), name, exc) from exc


def row_reader(table: str, columns: Sequence[Column], key: str) -> RowReader:
    """A :class:`RowReader` of ``table``'s ``columns`` (rows keyed by ``key`` in errors)."""
    return RowReader(table, columns, key)


def fields_from_json(
    columns: Sequence[Column], data: Mapping[str, Any], *, optional: Sequence[str] = ()
) -> dict[str, Any]:
    """Validated field values from a JSON object; unknown keys are an error.

    Keys named in ``optional`` may be missing (the caller supplies them, or
    the field's default applies).
    """
    known = {c.name for c in columns}
    unknown = sorted(set(data) - known - {"type"})
    if unknown:
        raise InvalidRecord(f"unknown field(s): {', '.join(unknown)}")
    fields: dict[str, Any] = {}
    for column in columns:
        if column.name not in data:
            if column.name in optional:
                continue
            raise InvalidRecord(f"{column.name}: missing")
        fields[column.name] = decode_json(column, data[column.name])
    return fields
