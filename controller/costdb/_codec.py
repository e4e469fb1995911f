"""Typed columns and their encodings: SQLite row, JSON object, CSV cell.

Each record class lists its columns once (:class:`Column`); the functions here
convert a record to and from each representation from that list, so the three
never drift apart. Decoding JSON or CSV validates types and raises
:class:`InvalidRecord` naming the field; decoding an SQLite row trusts the
database (it is the hot path of the cache).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fleetnas.controller.costdb._errors import InvalidRecord

Kind = Literal["int", "float", "str", "bool", "floats", "strs", "object"]
_JSON_KINDS = ("floats", "strs", "object")


@dataclass(frozen=True)
class Column:
    """One field of a record: its name, value kind and whether it may be ``None``."""

    name: str
    kind: Kind
    nullable: bool = False


def dumps(value: Any) -> str:
    """Compact JSON that refuses NaN and infinities (they are not JSON)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


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


def decode_sql(column: Column, value: Any) -> Any:
    """Inverse of :func:`encode_sql`; no validation."""
    decoder = _SQL_DECODERS[column.kind]
    return value if value is None or decoder is None else decoder(value)


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


def row_values(columns: Sequence[Column], record: object) -> tuple[Any, ...]:
    """The record's SQLite values in column order."""
    return tuple(encode_sql(c, getattr(record, c.name)) for c in columns)


def row_reader(columns: Sequence[Column]) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """A function from an SQLite row (values in column order) to field values.

    The per-column decoders are looked up once, here, not per row: this is on
    the cache's hot path.
    """
    plain = tuple(c.name for c in columns if _SQL_DECODERS[c.kind] is None)
    plain_at = tuple(i for i, c in enumerate(columns) if _SQL_DECODERS[c.kind] is None)
    decoded = tuple(
        (i, c.name, decoder)
        for i, c in enumerate(columns)
        if (decoder := _SQL_DECODERS[c.kind]) is not None
    )
    width = len(columns)

    def read(row: Sequence[Any]) -> dict[str, Any]:
        if len(row) != width:
            raise ValueError(f"row has {len(row)} values, expected {width}")
        fields = dict(zip(plain, [row[i] for i in plain_at], strict=True))
        for i, name, decoder in decoded:
            value = row[i]
            fields[name] = None if value is None else decoder(value)
        return fields

    return read


def fields_from_json(
    columns: Sequence[Column], data: Mapping[str, Any], *, optional: Sequence[str] = ()
) -> dict[str, Any]:
    """Validated field values from a JSON object; unknown keys are an error.

    Keys named in ``optional`` may be missing (the caller supplies them).
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
