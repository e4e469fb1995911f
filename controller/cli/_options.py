"""Shared pieces of the ``fleetnas`` command line: the context object, option
decorators (the database, file formats, benchmark settings), the duration
type (``30m``) and the translation of named errors into one-line CLI errors.

Every command module uses these so that options read and behave the same
everywhere; errors become friendly only here, at the CLI boundary.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from fleetnas.agent.settings import Setting, flag_settings
from fleetnas.agent.settings_args import build_settings
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import (
    CostDB,
    CostDBError,
    DatabaseBusy,
    DeviceNotFound,
    ImportFormatError,
    InvalidRecord,
    ModelAlreadyNamed,
    NameTaken,
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


def _click_option(s: Setting, flag: str) -> Callable[[Any], Any]:
    """The click option of one setting, spelled ``flag``, its help and default from the table.

    A value reaches the command under the setting's keyword, ``None`` (or an
    empty tuple) when the flag is absent: the agent's default applies.
    """
    options: dict[str, Any] = {"help": s.help_text() + "."}
    if s.value_type is bool:  # a switch: present = on, absent = unset (the agent's default)
        options.update(is_flag=True, default=None)
    else:
        options["type"] = click.Choice(s.choice_names) if s.choices else s.value_type
        options["multiple"] = s.repeated
        if s.metavar:
            options["metavar"] = s.metavar
    return click.option(flag, s.keyword, **options)


def _flag_settings(omit: Collection[str]) -> list[Setting]:
    unknown = set(omit) - {s.keyword for s in flag_settings()}
    if unknown:
        raise ValueError(f"omit names no settings flag: {sorted(unknown)}")
    return [s for s in flag_settings() if s.keyword not in omit]


def settings_options(*, omit: Collection[str] = (),
                     renamed: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Every benchmark-settings flag of the agent's table (:data:`fleetnas.agent.settings.SETTINGS`),
    spelled as in ``fleetnas-agent bench``; a setting added there appears here unchanged.

    ``omit`` names settings (by their ``build_settings`` keyword) a command
    leaves out because it has an option of its own by that name (``search
    --seed``); ``renamed`` spells a setting's flag otherwise (``{"timeout":
    "--benchmark-timeout"}``). Each value reaches the command as a keyword
    named like :func:`build_settings`'s parameter; :func:`settings_from_values`
    turns them into a request.
    """
    spelled = dict(renamed or {})

    def decorate(func: F) -> F:
        for s in reversed(_flag_settings(omit)):
            func = _click_option(s, spelled.get(s.keyword, s.flag))(func)
        return func

    return decorate


def settings_from_values(
    values: Mapping[str, Any], *, omit: Collection[str] = ()
) -> agent_pb2.BenchmarkSettings:
    """The request the flags of ``settings_options(omit=...)`` spell.

    ``values`` holds the command's parameters (others are ignored); pass the
    same ``omit`` as to :func:`settings_options`. Only the flags given are
    set. A bad value is a :class:`click.UsageError`.
    """
    try:
        return build_settings(**{s.keyword: values[s.keyword] for s in _flag_settings(omit)})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def settings_request(*, omit: Collection[str] = (), renamed: Mapping[str, str] | None = None,
                     into: str = "request") -> Callable[[F], F]:
    """The settings flags (as :func:`settings_options`), passed on as one typed
    ``BenchmarkSettings`` request named ``into`` (a bad value is a UsageError)."""
    keywords = [s.keyword for s in _flag_settings(omit)]

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {keyword: kwargs.pop(keyword) for keyword in keywords}
            kwargs[into] = settings_from_values(values, omit=omit)
            return func(*args, **kwargs)

        return settings_options(omit=omit, renamed=renamed)(cast(F, wrapper))

    return decorate


_HINTS: tuple[tuple[type[CostDBError], str], ...] = (
    (NotACostDB, "point --db (or FLEETNAS_DB) at a fleetnas cost database"),
    (SchemaTooNew, "upgrade fleetnas to open it"),
    (DatabaseBusy, "another process holds it locked; retry, or find it with `fuser FILE`"),
    (ImportFormatError, "fix that line, or export the file again with `fleetnas db export`"),
    (DeviceNotFound, "see `fleetnas db stats` for the device names"),
    (NameTaken, "choose another --name (`fleetnas db models` lists the names)"),
    (ModelAlreadyNamed, "pass --rename to give it the new name, or keep the old one"),
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


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(h|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


class Duration(click.ParamType):
    """A time span as seconds: ``90``, ``90s``, ``30m``, ``2h``, ``1h30m``, ``1.5h``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            text = str(value).strip().lower()
            try:
                seconds = float(text)
            except ValueError:
                parts = _DURATION_PART.findall(text)
                if not parts or _DURATION_PART.sub("", text).strip():
                    self.fail(f"{value!r}: expected a duration such as 90s, 30m, 2h or 1h30m",
                              param, ctx)
                seconds = sum(float(n) * _SECONDS[unit] for n, unit in parts)
        if not seconds > 0:
            self.fail(f"{value!r}: expected a positive duration", param, ctx)
        return seconds


DURATION = Duration()


def format_duration(seconds: float) -> str:
    """``1h30m``, ``30m``, ``45s``, ``0.5s``: the way :class:`Duration` reads it back."""
    if seconds < 1:
        return f"{seconds:g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")
