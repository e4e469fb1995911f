"""User models with names: the :class:`UserModel` record, its SQL, naming and listing.

A user model is a model file a person measured under a name
(``fleetnas measure m.onnx --name resnet18-int8 --tag team=vision``): one
row of ``user_models`` per model, keyed by the model's sha256 (a foreign key
to ``models``, whose ``size_bytes``, ``params`` and ``flops`` columns hold
the counts, stated once). The row adds the name, the tags, the file format,
the precision detected from the graph (``unknown`` where it cannot be read,
e.g. ``.tflite``) and the input shapes. Migration 6 created the table.

The naming rule:

* a name is unique: a name held by other bytes is :class:`NameTaken`;
* a model has one name: naming it again with the same name updates it (tags
  are merged, a given key replacing the stored value; nothing is removed);
  with another name it is :class:`ModelAlreadyNamed`, unless ``rename`` is
  set, which moves the model to the new name (its tags kept and merged).

Names travel with ``db export`` (JSON lines) and ``db merge``; on import a
name or model that already has a local row keeps it (local names win), so an
import never renames anything. CSV exports carry measurements only.

Every naming runs in one write transaction (read, check, write), so two
processes naming at once cannot break either rule.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from fleetnas.controller.costdb._codec import (
    Column,
    column,
    encode_json,
    fields_from_json,
    insert_sql,
    named_row,
    named_rows,
    record,
    row_reader,
    row_values,
    select_list,
)
from fleetnas.controller.costdb._errors import InvalidRecord, ModelAlreadyNamed, NameTaken
from fleetnas.controller.costdb._records import Model, check_sha256
from fleetnas.controller.costdb._statements import UPSERT_MODEL

USER_MODELS_SINCE = 6
_SINCE = column(since=USER_MODELS_SINCE)
_TAG_KEY = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
_MAX_NAME = 200
FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic", "mixed", "unknown")


@record("user_models")
@dataclass(frozen=True)
class UserModel:
    """A named model (see the module docstring).

    ``inputs`` maps each graph input to ``{"dims": [...], "dtype": "float32"}``
    (a symbolic dim is its name), in graph order; ``{}`` when unknown.
    """

    sha256: str = field(metadata=column(
        constraint="PRIMARY KEY REFERENCES models (sha256)", since=USER_MODELS_SINCE))
    name: str = field(metadata=column(constraint="UNIQUE", since=USER_MODELS_SINCE))
    tags: dict[str, Any] = field(metadata=_SINCE)
    format: str = field(metadata=_SINCE)
    precision: str = field(metadata=_SINCE)
    inputs: dict[str, Any] = field(metadata=_SINCE)
    named_at: float = field(metadata=_SINCE)
    updated_at: float = field(metadata=_SINCE)

    TABLE: ClassVar[str]
    COLUMNS: ClassVar[tuple[Column, ...]]

    def validate(self) -> UserModel:
        """Return self, or raise :class:`InvalidRecord` naming the bad field."""
        check_sha256(self.sha256, "sha256")
        validate_name(self.name)
        validate_tags(self.tags)
        if self.format not in FORMATS:
            raise InvalidRecord(f"format: {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.precision not in PRECISIONS:
            raise InvalidRecord(
                f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        return self

    def to_row(self) -> dict[str, Any]:
        """SQLite values by column name."""
        return row_values(self.COLUMNS, self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> UserModel:
        """From SQLite values by column name (no validation); raises CorruptRow."""
        return cls(**_read(row))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {c.name: encode_json(c, getattr(self, c.name)) for c in self.COLUMNS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UserModel:
        """Build and validate. Raises :class:`InvalidRecord`."""
        return cls(**fields_from_json(cls.COLUMNS, data)).validate()


def validate_name(name: str) -> str:
    """``name`` if it is a usable model name (non-empty, printable, unpadded, <= 200
    characters), else :class:`InvalidRecord`."""
    if (not isinstance(name, str) or not name or name != name.strip() or len(name) > _MAX_NAME
            or any(ord(ch) < 32 for ch in name)):
        raise InvalidRecord(
            f"model name {name!r:.80} must be 1-{_MAX_NAME} printable characters, unpadded")
    return name


def validate_tags(tags: Mapping[str, Any]) -> Mapping[str, Any]:
    """``tags`` if every key is 1-64 of ``A-Za-z0-9_.:/-`` and every value a printable
    string, else :class:`InvalidRecord` naming the tag."""
    for key, value in tags.items():
        if not isinstance(key, str) or not _TAG_KEY.fullmatch(key):
            raise InvalidRecord(f"tag key {key!r:.80}: use 1-64 of A-Z a-z 0-9 _ . : / -")
        if not isinstance(value, str) or any(ord(ch) < 32 for ch in value):
            raise InvalidRecord(f"tag {key}: value {value!r:.80} must be a printable string")
    return tags


@dataclass(frozen=True)
class UserModelSummary:
    """A named model with its counts (from ``models``) and its measurements."""

    model: UserModel
    size_bytes: int | None
    params: int | None
    flops: int | None
    measurements: int
    devices: tuple[str, ...]
    last_measured_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the record's fields, then the counts."""
        return {**self.model.to_dict(), "size_bytes": self.size_bytes, "params": self.params,
                "flops": self.flops, "measurements": self.measurements,
                "devices": list(self.devices), "last_measured_at": self.last_measured_at}


_read = row_reader(UserModel.TABLE, UserModel.COLUMNS, "sha256")
_COLUMNS = select_list(UserModel.COLUMNS)
_INSERT = insert_sql(UserModel.TABLE, UserModel.COLUMNS)
_UPDATE = (
    "UPDATE user_models SET name = :name, tags = :tags, format = :format, "
    "precision = :precision, inputs = :inputs, updated_at = :updated_at WHERE sha256 = :sha256"
)
#: the import's insert: a name or a model known here keeps its local row (local names win)
INSERT_USER_MODEL_IF_NEW = _INSERT.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
USER_MODEL_COLUMNS = _COLUMNS
_BY_SHA = f"SELECT {_COLUMNS} FROM user_models WHERE sha256 = ?"
_BY_NAME = f"SELECT {_COLUMNS} FROM user_models WHERE name = ?"
_SUMMARIES = f"""
    SELECT {", ".join("u." + c.name for c in UserModel.COLUMNS)},
           m.size_bytes AS size_bytes, m.params AS params, m.flops AS flops,
           (SELECT count(*) FROM measurements WHERE model_sha256 = u.sha256) AS n_measurements,
           (SELECT json_group_array(device) FROM (SELECT DISTINCT device FROM measurements
             WHERE model_sha256 = u.sha256 ORDER BY device)) AS measured_on,
           (SELECT max(started_at) FROM measurements WHERE model_sha256 = u.sha256) AS last_at
    FROM user_models AS u JOIN models AS m ON m.sha256 = u.sha256
"""


def name_model(
    conn: sqlite3.Connection, model: UserModel, counts: Model, *, rename: bool
) -> UserModel:
    """Store ``model`` under the naming rule (module docstring), in the caller's write
    transaction, with its ``models`` row (``counts``: size, params, FLOPs; known values are
    kept); returns the stored row. Raises NameTaken, ModelAlreadyNamed, InvalidRecord."""
    model.validate()
    holder = named_row(conn.execute(_BY_NAME, (model.name,)))
    if holder is not None and holder["sha256"] != model.sha256:
        raise NameTaken(model.name, holder["sha256"])
    row = named_row(conn.execute(_BY_SHA, (model.sha256,)))
    conn.execute(UPSERT_MODEL, counts.validate().to_row())
    if row is None:
        conn.execute(_INSERT, model.to_row())
        return model
    stored = UserModel.from_row(row)
    if stored.name != model.name and not rename:
        raise ModelAlreadyNamed(model.sha256, stored.name, model.name)
    merged = replace(model, tags={**stored.tags, **model.tags}, named_at=stored.named_at)
    conn.execute(_UPDATE, merged.to_row())
    return merged


def find_user_model(conn: sqlite3.Connection, key: str) -> UserModel | None:
    """The user model named ``key``, or whose sha256 is ``key``; None when neither."""
    row = named_row(conn.execute(_BY_NAME, (key,))) or named_row(conn.execute(_BY_SHA, (key,)))
    return None if row is None else UserModel.from_row(row)


def user_model_summaries(conn: sqlite3.Connection) -> list[UserModelSummary]:
    """Every user model with its counts and measurements, by name."""
    rows = named_rows(conn.execute(_SUMMARIES + " ORDER BY u.name"))
    return [
        UserModelSummary(
            UserModel.from_row(row), row["size_bytes"], row["params"], row["flops"],
            row["n_measurements"], tuple(json.loads(row["measured_on"] or "[]")), row["last_at"],
        )
        for row in rows
    ]
