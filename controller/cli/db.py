"""``fleetnas db``: inspect the cost database and pool it with a team's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from fleetnas.controller.cli._console import output_console, when
from fleetnas.controller.cli._options import (
    CliState,
    costdb_errors,
    format_option,
    open_costdb,
    pass_state,
    source_option,
)
from fleetnas.controller.costdb import ImportReport


def _report(report: ImportReport, what: str) -> None:
    click.echo(
        f"{what}: added {report.added} measurements, skipped {report.skipped_duplicates} "
        f"duplicates; new devices {report.devices_added}, new models {report.models_added}, "
        f"new profiles {report.profiles_added}, new model names {report.names_added}"
    )


@click.group()
def db() -> None:
    """The cost database: every measurement, pooled and browsable.

    The file is --db (or FLEETNAS_DB); it is plain SQLite, so `sqlite3`,
    `sqlite-utils` or Datasette can browse it too.

    \b
    Example:
        fleetnas db stats
    """


@db.command()
@pass_state
def path(state: CliState) -> None:
    """Print the absolute path of the cost database in use.

    \b
    Example:
        sqlite3 "$(fleetnas db path)" 'SELECT count(*) FROM measurements'
    """
    click.echo(str(state.db_path.resolve()))


@db.command()
@pass_state
def stats(state: CliState) -> None:
    """Show devices, models and measurements per device.

    \b
    Example:
        fleetnas --db team.db db stats
    """
    database = open_costdb(state, must_exist=True)
    with costdb_errors(), database:
        summary = database.summary()
    size = state.db_path.stat().st_size / 1e6
    console = output_console()
    console.print(
        f"[bold]{state.db_path.resolve()}[/] (schema v{summary.schema_version}, {size:.1f} MB): "
        f"{summary.devices} devices, {summary.models} models, "
        f"{summary.measurements} measurements"
    )
    if not summary.per_device:
        console.print("No measurements yet.")
        return
    table = Table(title="Measurements per device")
    table.add_column("device", overflow="fold")
    table.add_column("class", overflow="fold")
    table.add_column("measurements", justify="right")
    table.add_column("models", justify="right")
    table.add_column("first (UTC)", no_wrap=True)
    table.add_column("last (UTC)", no_wrap=True)
    for row in summary.per_device:
        table.add_row(
            row.device,
            row.device_class or "[dim](not in fleet)[/]",
            str(row.measurements),
            str(row.models),
            when(row.first_started_at),
            when(row.last_started_at),
        )
    console.print(table)


@db.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@format_option
@pass_state
def export(state: CliState, file: Path, fmt: str | None) -> None:
    """Write every device, model and measurement to FILE (JSON lines or CSV).

    \b
    Example:
        fleetnas db export measurements.jsonl
        fleetnas db export measurements.csv
    """
    database = open_costdb(state, must_exist=True)
    with costdb_errors(), database:
        report = database.export(file, fmt=fmt)
    click.echo(
        f"exported {report.measurements} measurements, {report.devices} devices, "
        f"{report.models} models, {report.profiles} profiles, {report.names} model names "
        f"to {file}"
    )


@db.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@format_option
@source_option
@pass_state
def import_(state: CliState, file: Path, fmt: str | None, source: str | None) -> None:
    """Add the records of an export FILE; duplicates are skipped, all or nothing.

    \b
    Example:
        fleetnas db import alice.jsonl --source alice
    """
    database = open_costdb(state, must_exist=False)
    with costdb_errors(), database:
        report = database.import_file(file, source=source, fmt=fmt)
    _report(report, f"imported {file}")


@db.command()
@click.argument("other", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@source_option
@pass_state
def merge(state: CliState, other: Path, source: str | None) -> None:
    """Add every record of the cost database OTHER (which is only read).

    \b
    Example:
        fleetnas db merge ../bob/fleetnas.db --source bob
    """
    database = open_costdb(state, must_exist=False)
    with costdb_errors(), database:
        report = database.merge(other, source=source)
    _report(report, f"merged {other}")


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _inputs(inputs: dict[str, Any]) -> str:
    return ", ".join(f"{name} {'x'.join(map(str, spec.get('dims', [])))}"
                     for name, spec in inputs.items()) or "-"


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def models(state: CliState, as_json: bool) -> None:
    """List the models named with `fleetnas measure --name`, with their measurements.

    \b
    Example:
        fleetnas measure model.onnx --name mlp --tag team=vision
        fleetnas db models
        fleetnas db models --json
    """
    database = open_costdb(state, must_exist=True)
    with costdb_errors(), database:
        named = database.user_models()
    if as_json:
        click.echo(json.dumps([summary.to_dict() for summary in named], indent=2))
        return
    console = output_console()
    if not named:
        console.print("No named models yet; name one with `fleetnas measure FILE --name NAME`.")
        return
    table = Table(title="Named models")
    for name in ("name", "sha256", "precision", "params", "FLOPs", "inputs", "tags",
                 "measurements", "devices", "last measured (UTC)"):
        table.add_column(name, justify="right" if name in ("params", "FLOPs", "measurements")
                         else "left", overflow="fold")
    for s in named:
        table.add_row(
            escape(s.model.name), s.model.sha256[:12], s.model.precision, _count(s.params),
            _count(s.flops), escape(_inputs(s.model.inputs)),
            escape(", ".join(f"{k}={v}" for k, v in s.model.tags.items()) or "-"),
            str(s.measurements), escape(", ".join(s.devices) or "-"),
            when(s.last_measured_at),
        )
    console.print(table)
