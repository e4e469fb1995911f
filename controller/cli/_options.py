"""Shared pieces of the ``fleetnas`` command line: the context object, option
decorators (the database, file formats, benchmark settings) and the
translation of named errors into one-line CLI errors.

Every command module uses these so that options read and behave the same
everywhere; errors become friendly only here, at the CLI boundary.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from fleetnas.agent.settings_args import METHODS, OPT_LEVELS, build_settings
from fleetnas.api.v1 import agent_pb2
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


def collect_params(func: F, into: str, make: Callable[..., Any], names: Sequence[str]) -> F:
    """``func`` taking the parameters ``names`` as one argument ``into=make(*values)``.

    For option groups that several commands share: the group's decorator
    declares the options, then passes their values on as one object, so
    each command's signature names the group once. The values go to
    ``make`` positionally, in the order of ``names``.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs[into] = make(*(kwargs.pop(name) for name in names))
        return func(*args, **kwargs)

    return cast(F, wrapper)


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


def _settings_flags() -> list[tuple[str, Callable[[Any], Any]]]:
    """Every benchmark-settings flag as (its ``build_settings`` keyword, its click option)."""
    return [
        ("warmup", click.option("--warmup", type=int, help="Warm-up runs [agent default: 10].")),
        ("min_runs", click.option("--min-runs", type=int, help="Timed runs at least.")),
        ("max_runs", click.option("--max-runs", type=int, help="Timed runs at most.")),
        ("min_duration", click.option("--min-duration", type=float,
                                      help="Seconds of timed runs at least.")),
        ("max_duration", click.option("--max-duration", type=float,
                                      help="Seconds of timed runs at most.")),
        ("threads", click.option("--threads", type=int,
                                 help="Intra-op threads [agent default: 1].")),
        ("inter_threads", click.option("--inter-threads", type=int,
                                       help="Inter-op threads [agent default: 1].")),
        ("providers", click.option("--provider", "providers", multiple=True,
                                   help="Execution provider; repeat in order of preference.")),
        ("opt_level", click.option("--opt-level", type=click.Choice(sorted(OPT_LEVELS)),
                                   help="Graph optimisation [agent default: all].")),
        ("shapes", click.option("--shape", "shapes", multiple=True, metavar="NAME=D1xD2x...",
                                help="Concrete dims of a dynamic input; repeat per input.")),
        ("seed", click.option("--seed", type=int, help="Seed of the random inputs.")),
        ("method", click.option("--method", type=click.Choice(sorted(METHODS)),
                                help="plain, or paired with the agent's reference model.")),
        ("timeout", click.option("--timeout", type=float,
                                 help="Wall-clock limit of one benchmark (s).")),
    ]  # fmt: skip


def _settings_names(*, seed: bool, shapes: bool) -> set[str]:
    left_out = {name for name, kept in (("seed", seed), ("shapes", shapes)) if not kept}
    return {name for name, _ in _settings_flags()} - left_out


def settings_options(*, seed: bool = True, shapes: bool = True) -> Callable[[F], F]:
    """The benchmark-settings flags, spelled as in ``fleetnas-agent bench``.

    ``seed=False`` leaves out ``--seed`` (for a command whose ``--seed`` is
    its own), ``shapes=False`` leaves out ``--shape``. Each flag reaches the
    command as a keyword named like :func:`build_settings`'s parameter;
    :func:`settings_from_values` turns them into a request.
    """
    names = _settings_names(seed=seed, shapes=shapes)

    def decorate(func: F) -> F:
        for name, option in reversed(_settings_flags()):
            if name in names:
                func = option(func)
        return func

    return decorate


def settings_from_values(
    values: Mapping[str, Any], *, seed: bool = True, shapes: bool = True
) -> agent_pb2.BenchmarkSettings:
    """The request the flags of ``settings_options(seed=..., shapes=...)`` spell.

    ``values`` holds the command's parameters (others are ignored); pass the
    same ``seed`` / ``shapes`` as to :func:`settings_options`. Only the flags
    given are set. A bad value is a :class:`click.UsageError`.
    """
    names = _settings_names(seed=seed, shapes=shapes)
    try:
        return build_settings(**{name: values[name] for name in names})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def settings_request(*, seed: bool = True, shapes: bool = True,
                     into: str = "request") -> Callable[[F], F]:
    """The settings flags (as :func:`settings_options`), passed on as one typed
    ``BenchmarkSettings`` request named ``into`` (a bad value is a UsageError)."""
    names = sorted(_settings_names(seed=seed, shapes=shapes))

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            kwargs[into] = settings_from_values(values, seed=seed, shapes=shapes)
            return func(*args, **kwargs)

        return settings_options(seed=seed, shapes=shapes)(cast(F, wrapper))

    return decorate


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


def existing_db_path(path: Path) -> Path:
    """``path`` when a file is there; else a click error that says how to name the database."""
    if not path.is_file():
        raise click.ClickException(
            f"no cost database at {path}; pass --db PATH or set {DB_ENVVAR}"
        )
    return path


def open_costdb(state: CliState, *, must_exist: bool) -> CostDB:
    """Open the database named by ``--db``; a click error when it cannot be.

    With ``must_exist``, a missing file is an error instead of a new database.
    """
    path = existing_db_path(state.db_path) if must_exist else state.db_path
    with costdb_errors():
        return CostDB(path)
