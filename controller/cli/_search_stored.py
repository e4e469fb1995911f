"""``fleetnas search list`` and ``fleetnas search show ID``: stored searches, read only."""

from __future__ import annotations

import json
from collections.abc import Mapping

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetnas.controller.cli._console import output_console, when
from fleetnas.controller.cli._options import existing_db_path
from fleetnas.controller.cli._results import (
    Outputs,
    output_options,
    print_front,
    search_errors,
    search_summary,
    summary_line,
    write_outputs,
)
from fleetnas.controller.cli.fleet import db_path_of
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (
    SearchConfig,
    SearchRecord,
    SearchStore,
    Target,
    accuracy_label,
    accuracy_note,
    load_search,
)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_searches(ctx: click.Context, as_json: bool) -> None:
    """List the searches stored in the cost database, newest first.

    \b
    Example:
        fleetnas search list
        fleetnas --db team.db search list --json
    """
    with search_errors(), CostDB(existing_db_path(db_path_of(ctx))) as db:
        records = SearchStore(db).searches()
    if as_json:
        click.echo(json.dumps([search_summary(r) for r in records], indent=2))
        return
    table = Table(title="searches")
    for column in ("id", "status", "space", "mode", "targets", "objectives", "candidates",
                   "measured", "ran", "predicted", "created"):
        table.add_column(column, justify="right" if column in ("id", "candidates", "measured", "ran", "predicted") else "left")
    for r in records:
        targets = ", ".join(Target.from_dict(t).key for t in r.config.get("targets", []))
        objectives = ", ".join(r.config.get("objectives", []))
        status = {"complete": "[green]complete[/]", "running": "[cyan]running[/]",
                  "failed": "[red]failed[/]"}.get(r.status, f"[yellow]{r.status}[/]")
        table.add_row(str(r.id), status, escape(r.space), r.mode, escape(targets),
                      escape(objectives), f"{r.trials}/{r.budget or '-'}", str(r.measured),
                      str(r.device_runs), str(r.predicted), when(r.created_at))
    output_console().print(table)


@click.command("show")
@click.argument("search_id", type=int, metavar="ID")
@click.option("--all", "everything", is_flag=True, help="Every candidate, not only the front.")
@output_options
@click.pass_context
def show(ctx: click.Context, search_id: int, everything: bool, outputs: Outputs) -> None:
    """Show a stored search: its configuration, counts and Pareto front.

    --csv, --json and --plot write the same files as the search did
    (no plot unless --plot is given).

    \b
    Example:
        fleetnas search show 3
        fleetnas search show 3 --all --csv all.csv --plot front.png
    """
    console = output_console()
    with search_errors(), CostDB(existing_db_path(db_path_of(ctx))) as db:
        stored = load_search(SearchStore(db), search_id)
    record, config, engine = stored.record, stored.config, stored.engine
    if outputs.json_path != "-":
        _print_header(console, record, config)
        print_front(console, engine, f"search {search_id}: "
                    + ("all candidates" if everything else "Pareto front"), everything=everything)
        console.print(summary_line(search_id, record))
    write_outputs(console, search_id, engine, search_summary(record), outputs,
                  plot_path=outputs.plot(search_id, by_default=False), everything=everything)


def _print_header(console: Console, record: SearchRecord, config: SearchConfig) -> None:
    table = Table(show_header=False, title=f"search {record.id}")
    table.add_column("what", style="bold")
    table.add_column("value")
    status = record.status + (f" ({record.error})" if record.error else "")
    strategy = ", ".join(f"{k}={v}" for k, v in config.strategy.items())
    rows = [
        ("status", status),
        ("space", record.space),
        ("mode", config.mode + (f" (LUTs: {dict(config.luts)})" if config.luts else "")
         + _ids("kernel LUTs", config.kernel_luts) + _ids("transfer fits", config.transfers)),
        ("targets", "; ".join(t.describe() for t in config.targets)),
        ("objectives", ", ".join(config.objectives)),
        ("constraints", ", ".join(config.constraints) or "-"),
        ("accuracy estimator", f"{config.accuracy} (values: {accuracy_label(config.accuracy)})"
         if config.accuracy else "-"),
        *([("accuracy note", note)] if (note := accuracy_note(config)) else []),
        ("strategy", f"{strategy}, seed {config.seed}"),
        ("candidates", f"{record.trials}/{record.budget or '-'}"),
        ("measurements", f"{record.measured}/{config.max_measurements or '-'}"),
        ("created / finished", f"{when(record.created_at)} / {when(record.finished_at)}"),
    ]
    for name, value in rows:
        table.add_row(name, escape(str(value)))
    console.print(table)


def _ids(what: str, ids: Mapping[str, str]) -> str:
    """`` (WHAT: key: id12, ...)`` for the stored predictors a search uses; "" for none."""
    if not ids:
        return ""
    return f" ({what}: " + ", ".join(f"{k}: {v[:12]}" for k, v in sorted(ids.items())) + ")"
