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


class DatabaseDamaged(CostDBError):
    """The file is an SQLite database whose pages are damaged (a torn copy, a bad disk).

    The message says how to recover what is still readable.
    """

    def __init__(self, path: str | Path, detail: str) -> None:
        super().__init__(
            f"{path} is damaged ({detail}); recover what is readable with "
            f"`sqlite3 {path} .recover | sqlite3 recovered.db` and open recovered.db "
            f"(keep {path}-wal next to {path} while recovering: it may hold the latest "
            "writes; never delete it on its own)",
        )
        self.path = str(path)


class CorruptRow(CostDBError):
    """A stored row has a value that does not decode (garbled JSON written by another tool)."""

    def __init__(
        self, table: str, key: object, column: str, cause: BaseException, path: str | None = None
    ) -> None:
        where = f"{path}: " if path else ""
        super().__init__(
            f"{where}{table} row {key!r} has a garbled {column} value ({cause}); repair or "
            "delete that row with any SQLite tool, or restore the file from an export"
        )
        self.table = table
        self.key = key
        self.column = column
        self.cause = cause


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


class NameTaken(CostDBError, ValueError):
    """A model name is already held by a model with other bytes (names are unique)."""

    def __init__(self, name: str, holder_sha256: str) -> None:
        super().__init__(name, holder_sha256)
        self.name = name
        self.holder_sha256 = holder_sha256

    def __str__(self) -> str:
        return f"the name {self.name!r} is already model {self.holder_sha256[:12]}"


class ModelAlreadyNamed(CostDBError, ValueError):
    """These bytes already have another name (a model has one name)."""

    def __init__(self, sha256: str, name: str, wanted: str) -> None:
        super().__init__(sha256, name, wanted)
        self.sha256 = sha256
        self.name = name
        self.wanted = wanted

    def __str__(self) -> str:
        return f"model {self.sha256[:12]} is already named {self.name!r}, not {self.wanted!r}"
