"""Shared pieces of the ``fleetnas`` command line: the context object, option
decorators and the translation of named errors into one-line CLI errors.

Every command module uses these so that options read and behave the same
everywhere; errors become friendly only here, at the CLI boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from fleetnas.controller.costdb import (
    CostDB,
    CostDBError,
    DatabaseBusy,
    DeviceNotFound,
    ImportFormatError,
    InvalidRecord,
    NotACostDB,
    SchemaTooNew,
)

DB_ENVVAR = "FLEETNAS_DB"
DEFAULT_DB = "fleetnas.db"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """What the root group passes to every command (``ctx.obj``)."""

    db_path: Path


pass_state = click.make_pass_decorator(CliState, ensure=False)


def db_option(func: F) -> F:
    """``--db PATH`` (env ``FLEETNAS_DB``, default ``./fleetnas.db``): the cost database."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_DB,
        envvar=DB_ENVVAR,
        show_default=True,
        show_envvar=True,
        help="The cost database file.",
    )(func)


def format_option(func: F) -> F:
    """``--format jsonl|csv``; ``None`` means: from the file's suffix."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["jsonl", "csv"]),
        default=None,
        help="File format [default: from the suffix: .csv is CSV, anything else JSON lines].",
    )(func)


def source_option(func: F) -> F:
    """``--source LABEL``: provenance label for imported measurements."""
    return click.option(
        "--source",
        default=None,
        metavar="LABEL",
        help="Label for measurements the other side recorded itself [default: its file name].",
    )(func)


_HINTS: tuple[tuple[type[CostDBError], str], ...] = (
    (NotACostDB, "point --db (or FLEETNAS_DB) at a fleetnas cost database"),
    (SchemaTooNew, "upgrade fleetnas to open it"),
    (DatabaseBusy, "another process holds it locked; retry, or find it with `fuser FILE`"),
    (ImportFormatError, "fix that line, or export the file again with `fleetnas db export`"),
    (DeviceNotFound, "see `fleetnas db stats` for the device names"),
    (InvalidRecord, "fix the record and try again"),
)


def describe_error(error: CostDBError) -> str:
    """One line: what went wrong, then what to do."""
    for cls, hint in _HINTS:
        if isinstance(error, cls):
            return f"{error}; {hint}"
    return str(error)


@contextmanager
def costdb_errors() -> Iterator[None]:
    """Turn named cost-database errors (and I/O errors) into one-line click errors."""
    try:
        yield
    except CostDBError as exc:
        raise click.ClickException(describe_error(exc)) from exc
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise click.ClickException(f"{exc.strerror or exc}{where}") from exc


def open_costdb(state: CliState, *, must_exist: bool) -> CostDB:
    """Open the database named by ``--db``; a click error when it cannot be.

    With ``must_exist``, a missing file is an error instead of a new database.
    """
    path = state.db_path
    if must_exist and not path.is_file():
        raise click.ClickException(
            f"no cost database at {path}; pass --db PATH or set {DB_ENVVAR}"
        )
    with costdb_errors():
        return CostDB(path)
