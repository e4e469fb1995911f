"""What ``search``, ``search show``, ``export`` and ``demo`` share: running a driver, showing a front.

:func:`run_search` runs a driver with its progress and turns Ctrl-C and
aborts into one-line messages with the resume command; :func:`report_result`
prints the predictors, the front table and the summary, then writes the
``--csv`` / ``--json`` / ``--plot`` files (:class:`Outputs`, from
:func:`output_options`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from fleetnas.controller.cli._errors import exit_code, one_line_errors, sigterm_stops
from fleetnas.controller.cli._options import collect_params, format_duration
from fleetnas.controller.cli._progress import search_progress
from fleetnas.controller.driver import (
    STOP_REASONS,
    DriverError,
    SearchAborted,
    SearchDriver,
    SearchRecord,
    SearchResult,
    accuracy_note,
)
from fleetnas.controller.lut import LutError
from fleetnas.controller.report import (
    all_rows,
    front_rows,
    front_table,
    json_document,
    per_target_names,
    plot_front,
    value_labels,
    value_names,
    write_csv,
    write_json,
)
from fleetnas.controller.search import SearchEngine
from fleetnas.controller.spaces import UnknownSpace

F = TypeVar("F", bound=Callable[..., Any])


def search_errors() -> AbstractContextManager[None]:
    """Named errors of searches, LUTs, spaces, fleets and the cost DB as one-line CLI errors."""
    from fleetnas.controller.accuracy import DatasetError, EstimatorError, PluginError
    from fleetnas.controller.export import ExportError

    return one_line_errors(DriverError, LutError, UnknownSpace, ExportError, DatasetError,
                           PluginError, EstimatorError)


@dataclass(frozen=True)
class Outputs:
    """The files a command writes: ``--csv``, ``--json`` (``-``: stdout), ``--plot`` / ``--no-plot``."""

    csv_path: Path | None = None
    json_path: str | None = None
    plot_path: Path | None = None
    no_plot: bool = False

    def plot(self, search_id: int | None, *, by_default: bool) -> Path | None:
        """Where the plot goes: ``--plot``, else ``fleetnas-search-ID.png`` when ``by_default``."""
        if self.no_plot:
            return None
        if self.plot_path is not None or not by_default:
            return self.plot_path
        return Path(f"fleetnas-search-{search_id}.png")


def output_options(func: F) -> F:
    """``--csv``, ``--json`` and ``--plot`` / ``--no-plot``, passed on as ``outputs``."""
    func = collect_params(func, "outputs", Outputs, ("csv_path", "json_path", "plot_path", "no_plot"))
    for option in reversed([
        click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the front as CSV."),
        click.option("--json", "json_path", metavar="PATH",
                     help="Write the front and every trial as JSON ('-': print it)."),
        click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the Pareto plot (PNG) here "
                     "[default: fleetnas-search-ID.png; --no-plot: none]."),
        click.option("--no-plot", is_flag=True, help="Write no plot."),
    ]):  # fmt: skip
        func = option(func)
    return func


def summary_line(record_id: int | None, result: SearchResult | SearchRecord) -> str:
    counters = result.counters if isinstance(result, SearchResult) else result
    text = (
        f"{counters.trials} candidates evaluated; {counters.measured} latency measurements "
        f"({counters.device_runs} run on devices, {counters.measured - counters.device_runs} "
        f"from the cost DB)"
    )
    if counters.predicted:
        text += f", {counters.predicted} latencies predicted"
    return (f"search {record_id}: " if record_id is not None else "") + text


def search_summary(record: SearchRecord) -> dict[str, Any]:
    return {
        "id": record.id, "status": record.status, "space": record.space, "mode": record.mode,
        "budget": record.budget, "trials": record.trials, "measured": record.measured,
        "device_runs": record.device_runs, "predicted": record.predicted,
        "created_at": record.created_at, "finished_at": record.finished_at,
        "error": record.error, "config": record.config,
    }  # fmt: skip


def write_outputs(
    console: Console,
    search_id: int | None,
    engine: SearchEngine,
    summary: dict[str, Any],
    outputs: Outputs,
    *,
    plot_path: Path | None,
    everything: bool = False,
) -> None:
    """The --csv / --json files and the plot at ``plot_path`` (none when None)."""
    names, labels = value_names(engine) + per_target_names(engine), value_labels(engine)
    front = front_rows(engine)
    rows = all_rows(engine)
    if outputs.csv_path is not None:
        write_csv(rows if everything else front, names, outputs.csv_path, labels)
        console.print(f"wrote {escape(str(outputs.csv_path))}")
    if outputs.json_path is not None:
        document = json_document(
            summary, [o.to_dict() for o in engine.objectives],
            [c.text for c in engine.constraints], front, rows, names, labels,
        )  # fmt: skip
        if outputs.json_path == "-":
            click.echo(json.dumps(document, indent=2))
        else:
            write_json(document, outputs.json_path)
            console.print(f"wrote {escape(outputs.json_path)}")
    if plot_path is not None:
        if rows:
            title = f"search {search_id}" if search_id is not None else "search"
            plot_front(rows, engine.objectives, plot_path, constraints=engine.constraints,
                       title=f"{title}: {len(rows)} candidates, {len(front)} on the front")
            console.print(f"wrote {escape(str(plot_path))}")
        else:
            console.print("no complete candidate yet: no plot")


def print_front(console: Console, engine: SearchEngine, title: str, *, everything: bool = False) -> None:
    names = value_names(engine)
    objective_names = [o.name for o in engine.objectives]
    extra = [n for n in names if n not in objective_names]
    rows = all_rows(engine) if everything else front_rows(engine)
    caption = "~ predicted (never measured); red: violates a constraint"
    console.print(front_table(rows, engine.objectives, extra_names=extra, title=title,
                              caption=caption))


def budget_text(driver: SearchDriver) -> str:
    """How far a search is: ``12/40 candidates``, with its measurements and their budget."""
    config = driver.config
    text = f"{driver.trials_done()}" + (f"/{config.budget}" if config.budget else "")
    text += " candidates"
    if config.max_measurements is not None:
        text += f", {driver.tally.measured}/{config.max_measurements} measurements"
    return text


def run_search(console: Console, driver: SearchDriver, *, quiet: bool,
               timeout_s: float | None = None) -> SearchResult:
    """Run with progress; Ctrl-C, SIGTERM and aborts become CLI messages with the resume
    command; a run stopped by ``timeout_s`` says so (with the resume command) and returns."""
    with sigterm_stops(), search_progress(quiet) as on_progress:
        driver.on_progress = on_progress
        try:
            result = driver.run(timeout_s=timeout_s)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
            click.echo(f"interrupted ({exc or 'Ctrl-C'}): resume with `fleetnas search --resume "
                       f"{driver.search_id}` (nothing measured is lost)", err=True)
            raise click.exceptions.Exit(exit_code(exc)) from None
        except SearchAborted as exc:
            raise click.ClickException(str(exc)) from exc
    if result.stop == "timeout":
        assert timeout_s is not None
        resume = (f": resume with `fleetnas search --resume {driver.search_id}`"
                  if driver.search_id is not None else "")
        click.echo(f"stopped after --timeout {format_duration(timeout_s)} at "
                   f"{budget_text(driver)}{resume}", err=True)
    return result


def report_result(
    console: Console, driver: SearchDriver, result: SearchResult, outputs: Outputs,
    *, plot_path: Path | None,
) -> None:
    """Predictors, the front table, the summary line, then the files."""
    for name, text in driver.describe_predictors().items():
        console.print(f"{escape(name)}: {escape(text)}")
    title = f"search {result.search_id}: Pareto front" if result.search_id else "Pareto front"
    print_front(console, result.engine, title)
    note = accuracy_note(driver.config)
    if note is not None:
        console.print(escape(note), highlight=False)
    stopped = f"; stopped: {STOP_REASONS[result.stop]}" if result.stop else ""
    console.print(summary_line(result.search_id, result) + stopped)
    counters = result.counters
    summary: dict[str, Any] = {"id": result.search_id, "status": result.status,
                               "stop": result.stop,
                               "config": driver.config.to_dict(), "trials": counters.trials,
                               "measured": counters.measured,
                               "device_runs": counters.device_runs,
                               "predicted": counters.predicted}  # fmt: skip
    if note is not None:
        summary["notes"] = [note]
    write_outputs(console, result.search_id, result.engine, summary, outputs,
                  plot_path=plot_path)
