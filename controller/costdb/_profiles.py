"""The per-operator profile of a measurement: the :class:`Profile` record and its SQL.

A profile is the agent's ``OperatorProfile`` (``BenchmarkResult.profile``, only
present when the run had ``settings.profile``): per node its op type, name,
median time over the profiled runs, share and provider; per op type a
breakdown. It lives in a table of its own, ``measurement_profiles``, one row
per measurement, keyed by the measurement's ``uid`` (globally unique, so a
profile travels with its measurement through exports and merges). The
message is stored whole as JSON in ``profile`` (proto field names, enums by
name): SQLite's JSON functions read it (``json_extract(profile, '$.total_ms')``,
``json_each(profile, '$.operators')``), and nothing is stated twice.

A profile is written in the same transaction as its measurement, and
recording it again is a no-op (``ON CONFLICT DO NOTHING``), as for the
measurement. Migration 5 created the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from google.protobuf import json_format

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb._codec import (
    Column,
    column,
    encode_json,
    fields_from_json,
    insert_sql,
    message_to_dict,
    record,
    row_reader,
    row_values,
    select_list,
)
from fleetnas.controller.costdb._errors import InvalidRecord

PROFILES_SINCE = 5
_UID_CONSTRAINT = "PRIMARY KEY NOT NULL REFERENCES measurements (uid) ON DELETE CASCADE"


@record("measurement_profiles")
@dataclass(frozen=True)
class Profile:
    """The operator profile of the measurement ``measurement_uid``.

    ``profile`` is an ``OperatorProfile`` as a dict (see :meth:`proto`).
    """

    measurement_uid: str = field(
        metadata=column(constraint=_UID_CONSTRAINT, since=PROFILES_SINCE)
    )
    profile: dict[str, Any] = field(metadata=column(since=PROFILES_SINCE))

    TABLE: ClassVar[str]
    COLUMNS: ClassVar[tuple[Column, ...]]

    @classmethod
    def from_message(cls, measurement_uid: str, message: agent_pb2.OperatorProfile) -> Profile:
        """The profile of a result, validated."""
        return cls(measurement_uid, message_to_dict(message)).validate()

    def proto(self) -> agent_pb2.OperatorProfile:
        """The profile as the agent's message. Raises :class:`InvalidRecord` if it does not
        parse as one."""
        try:
            return json_format.ParseDict(self.profile, agent_pb2.OperatorProfile())
        except json_format.ParseError as exc:
            raise InvalidRecord(f"profile: not an OperatorProfile: {exc}") from exc

    def validate(self) -> Profile:
        """Return self, or raise :class:`InvalidRecord`: the uid's form, the message's
        fields, finite non-negative times."""
        uid = self.measurement_uid
        if not isinstance(uid, str) or len(uid) != 32 or uid.strip("0123456789abcdef"):
            raise InvalidRecord(f"measurement_uid: {uid!r:.40} is not 32 hex characters")
        message = self.proto()
        times = [message.total_ms, message.run_median_ms]
        times += [op.median_ms for op in message.operators]
        times += [t.total_ms for t in message.op_types]
        if not all(math.isfinite(t) and t >= 0 for t in times):
            raise InvalidRecord("profile: every time must be finite and >= 0")
        return self

    def to_row(self) -> dict[str, Any]:
        """SQLite values by column name."""
        return row_values(self.COLUMNS, self)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Profile:
        """From SQLite values by column name (no validation); raises CorruptRow."""
        return cls(**_read_profile(row))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {c.name: encode_json(c, getattr(self, c.name)) for c in self.COLUMNS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Build and validate. Raises :class:`InvalidRecord`."""
        return cls(**fields_from_json(cls.COLUMNS, data)).validate()


_read_profile = row_reader(Profile.TABLE, Profile.COLUMNS, "measurement_uid")

PROFILE_COLUMNS = select_list(Profile.COLUMNS)
INSERT_PROFILE = insert_sql(Profile.TABLE, Profile.COLUMNS) + (
    " ON CONFLICT (measurement_uid) DO NOTHING"
)
PROFILE_BY_UID = f"SELECT {PROFILE_COLUMNS} FROM {Profile.TABLE} WHERE measurement_uid = ?"
