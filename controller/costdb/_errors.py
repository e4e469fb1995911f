"""Named errors of the cost database.

Every error the cost database raises on purpose is a :class:`CostDBError`; the
CLI turns each into a one-line message that says what to do next. Plain
``sqlite3`` errors never escape for the conditions named here.
"""

from __future__ import annotations

from pathlib import Path


class CostDBError(Exception):
    """Base class: the cost database could not do what was asked."""


class InvalidRecord(CostDBError, ValueError):
    """A device, model or measurement is malformed (bad hash, no samples, NaN, ...)."""


class DeviceNotFound(CostDBError, KeyError):
    """No device with that name is in the database."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"no device named {self.name!r} in the cost database"


class NotACostDB(CostDBError):
    """The file is not an SQLite database, or not one written by fleetnas."""

    def __init__(self, path: str | Path, detail: str) -> None:
        super().__init__(f"{path} is not a fleetnas cost database ({detail})")
        self.path = str(path)


class SchemaTooNew(CostDBError):
    """The database was migrated by a newer fleetnas than this one."""

    def __init__(self, path: str | Path, found: int, known: int) -> None:
        super().__init__(
            f"{path} has schema version {found}, but this fleetnas only knows up to {known}"
        )
        self.path = str(path)
        self.found = found
        self.known = known


class DatabaseBusy(CostDBError):
    """Another process held the write lock for longer than the busy timeout, repeatedly."""


class ImportFormatError(CostDBError, ValueError):
    """An export file is malformed; ``line`` is 1-based (the CSV header is line 1)."""

    def __init__(self, path: str | Path, line: int, detail: str) -> None:
        super().__init__(f"{path}:{line}: {detail}")
        self.path = str(path)
        self.line = line
        self.detail = detail
