"""``fleetnas search``: multi-objective architecture search against the fleet, a LUT, or both.

``fleetnas search --space S --class C ...`` runs a new search, stored in the
cost database step by step; ``--resume ID`` continues one that was killed or
interrupted (nothing is measured twice); ``search show ID`` and ``search
list`` read stored searches. Latency targets are ``--device NAME`` or
``--class NAME``, each optionally with its own benchmark settings:
``--class cpu-2t:threads=2``. See ``docs/search.md``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._errors import EXIT_INTERRUPTED, one_line_errors
from fleetnas.controller.cli._options import (
    existing_db_path,
    settings_from_values,
    settings_options,
)
from fleetnas.controller.cli._scheduling import (
    LOCAL_DEVICE,
    existing_fleet,
    local_scheduler,
    scheduler_options,
)
from fleetnas.controller.cli._space import space_options
from fleetnas.controller.cli.fleet import db_path_of, fleet_option
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (
    LATENCY_SOURCES,
    DriverError,
    HybridOptions,
    SchedulerMeasurer,
    SearchAborted,
    SearchConfig,
    SearchDriver,
    SearchProgress,
    SearchRecord,
    SearchResult,
    SearchStore,
    Target,
    estimator_usages,
    find_lut_predictor,
    latency_source_class,
    load_search,
    parse_target,
    strategy_spec,
)
from fleetnas.controller.fleet import Fleet
from fleetnas.controller.lut import LatencyPredictor, LutError
from fleetnas.controller.report import (
    all_rows,
    format_value,
    front_rows,
    front_table,
    json_document,
    plot_front,
    value_names,
    write_csv,
    write_json,
)
from fleetnas.controller.scheduler import Scheduler
from fleetnas.controller.search import SearchEngine, available_strategies
from fleetnas.controller.spaces import SearchSpace, UnknownSpace, get_space

F = TypeVar("F", bound=Callable[..., Any])


# -- shared helpers (also used by `fleetnas export` and `fleetnas demo`) ------------------


def search_errors() -> AbstractContextManager[None]:
    """Named errors of searches, LUTs, spaces, fleets and the cost DB as one-line CLI errors."""
    from fleetnas.controller.accuracy import DatasetError, PluginError
    from fleetnas.controller.export import ExportError

    return one_line_errors(DriverError, LutError, UnknownSpace, ExportError, DatasetError,
                           PluginError)


def space_of(config: SearchConfig) -> SearchSpace:
    """The config's space; a one-line usage error for an unknown name or bad options."""
    try:
        return get_space(config.space, dict(config.space_config))
    except UnknownSpace as exc:
        raise click.UsageError(str(exc)) from exc
    except ValueError as exc:
        raise click.UsageError(f"{exc} (check --space-config / --resolution)") from exc


def rebuild_engine(db: CostDB, record: SearchRecord) -> tuple[SearchConfig, SearchEngine]:
    """The stored search's config and engine (as of its last commit)."""
    config = SearchConfig.from_dict(record.config)
    stored = load_search(SearchStore(db), record.id, space=space_of(config), config=config)
    return config, stored.engine


def _best_text(best: dict[str, float]) -> str:
    return "  ".join(f"{name} {format_value(name, value)}" for name, value in best.items())


class _SearchBar(Progress):
    """A progress bar with a free line under it (what runs now, and the best so far)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.status = Text()  # before Progress starts rendering
        super().__init__(*args, **kwargs)

    def get_renderables(self) -> Iterator[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.status.plain:
            yield self.status


@contextmanager
def search_progress(quiet: bool, budget: int) -> Iterator[Callable[[SearchProgress], None] | None]:
    """A progress bar on stderr: candidates done, measurements, then the best so far."""
    if quiet:
        yield None
        return
    columns = (
        TextColumn("[bold]search"), BarColumn(bar_width=24), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("{task.fields[counts]}"),
    )  # fmt: skip
    with _SearchBar(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("", total=budget, counts="")
        best = [""]

        def update(p: SearchProgress) -> None:
            counts = f"measured {p.measured} (ran {p.device_runs})"
            if p.predicted:
                counts += f", predicted {p.predicted}"
            if p.phase == "step" and p.best:
                best[0] = f"best so far (front of {p.front}): " + _best_text(dict(p.best))
            now = p.detail if p.phase != "step" else ""
            bar.status = Text("\n".join(line for line in (best[0], now) if line), style="dim")
            bar.update(task, total=p.budget, completed=p.trials, counts=counts)

        yield update


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


def write_outputs(
    console: Console,
    search_id: int | None,
    engine: SearchEngine,
    summary: dict[str, Any],
    *,
    csv_path: Path | None,
    json_path: str | None,
    plot_path: Path | None,
    everything: bool = False,
) -> None:
    """The --csv / --json / --plot files (``json_path`` ``-`` prints to stdout)."""
    names = value_names(engine)
    front = front_rows(engine)
    rows = all_rows(engine)
    if csv_path is not None:
        write_csv(rows if everything else front, names, csv_path)
        console.print(f"wrote {escape(str(csv_path))}")
    if json_path is not None:
        document = json_document(
            summary, [o.to_dict() for o in engine.objectives],
            [c.text for c in engine.constraints], front, rows, names,
        )  # fmt: skip
        if json_path == "-":
            click.echo(json.dumps(document, indent=2))
        else:
            write_json(document, json_path)
            console.print(f"wrote {escape(json_path)}")
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


def search_summary(record: SearchRecord) -> dict[str, Any]:
    return {
        "id": record.id, "status": record.status, "space": record.space, "mode": record.mode,
        "budget": record.budget, "trials": record.trials, "measured": record.measured,
        "device_runs": record.device_runs, "predicted": record.predicted,
        "created_at": record.created_at, "finished_at": record.finished_at,
        "error": record.error, "config": record.config,
    }  # fmt: skip


# -- fleet / scheduler set-up -------------------------------------------------------------


def target_devices(db: CostDB, target: Target, fleet: Fleet | None) -> list[str]:
    """The device, or the class's devices (fleet file first, then those the DB knows)."""
    if not target.is_class:
        return [target.name]
    names = [d.name for d in fleet.in_class(target.name)] if fleet is not None and target.name in fleet.classes() else []
    names += [d.name for d in db.list_devices(device_class=target.name)]
    return list(dict.fromkeys(names))


def lut_predictors(
    db: CostDB, space: SearchSpace, config: SearchConfig, fleet: Fleet | None
) -> dict[str, LatencyPredictor]:
    """A LUT predictor for every target that has a LUT (modes lut and hybrid)."""
    if not latency_source_class(config.mode).uses_luts:
        return {}
    found = {}
    for target in config.targets:
        predictor = find_lut_predictor(db, space, target, target_devices(db, target, fleet))
        if predictor is not None:
            found[target.key] = predictor
    return found


def run_search(
    console: Console,
    driver: SearchDriver,
    *,
    quiet: bool,
) -> SearchResult:
    """Run with the progress bar; Ctrl-C and aborts become CLI messages with the resume command."""
    with search_progress(quiet, driver.config.budget) as on_progress:
        driver.on_progress = on_progress
        try:
            return driver.run()
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/]: resume with `fleetnas search --resume "
                          f"{driver.search_id}` (nothing measured is lost)")
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except SearchAborted as exc:
            raise click.ClickException(str(exc)) from exc


def report_result(
    console: Console,
    driver: SearchDriver,
    result: SearchResult,
    *,
    csv_path: Path | None,
    json_path: str | None,
    plot_path: Path | None,
) -> None:
    """Predictors, the front table, the summary line, then the files."""
    for name, text in driver.describe_predictors().items():
        console.print(f"{escape(name)}: {escape(text)}")
    title = f"search {result.search_id}: Pareto front" if result.search_id else "Pareto front"
    print_front(console, result.engine, title)
    console.print(summary_line(result.search_id, result))
    summary: dict[str, Any] = {"id": result.search_id, "status": result.status,
                               "config": driver.config.to_dict(),
                               "trials": result.counters.trials,
                               "measured": result.counters.measured,
                               "device_runs": result.counters.device_runs,
                               "predicted": result.counters.predicted}
    write_outputs(console, result.search_id, result.engine, summary, csv_path=csv_path,
                  json_path=json_path, plot_path=plot_path)


# -- options -------------------------------------------------------------------------------


def output_options(func: F) -> F:
    """``--csv``, ``--json`` and ``--plot`` / ``--no-plot``."""
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


def _plot_path(search_id: int | None, plot_path: Path | None, no_plot: bool) -> Path | None:
    if no_plot:
        return None
    return plot_path or Path(f"fleetnas-search-{search_id}.png")


def bench_request(o: dict[str, Any]) -> agent_pb2.BenchmarkSettings:
    """The settings request shared by every target (``--seed`` is the search's own)."""
    return settings_from_values(o, seed=False, shapes=False)


def _targets(devices: Sequence[str], classes: Sequence[str], setting_values: dict[str, Any]) -> list[Target]:
    base = bench_request(setting_values)
    try:
        return ([parse_target(text, "device", base) for text in devices]
                + [parse_target(text, "class", base) for text in classes])
    except DriverError as exc:
        raise click.UsageError(str(exc)) from exc


# -- commands ------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@space_options(required=False)
@click.option("--device", "devices", multiple=True, metavar="NAME[:k=v,...]",
              help="Latency target: a fleet device, optionally with its own settings "
              "(threads, warmup, min-runs, max-duration, ..., label); repeatable.")
@click.option("--class", "classes", multiple=True, metavar="NAME[:k=v,...]",
              help="Latency target: any device of a class, optionally with its own settings; "
              "repeatable.")
@click.option("--local", is_flag=True, help="Measure on this machine (a throw-away loopback agent).")
@click.option("--objective", "objectives", multiple=True, metavar="NAME[:min|max]",
              help="Objective besides latency[TARGET] (added for every target): accuracy "
              "(default), params, flops, peak_memory[TARGET]; repeatable.")
@click.option("--accuracy", "accuracy", default="naswot", show_default=True, metavar="SPEC",
              help=f"{', '.join(estimator_usages())} (DATA: digits, synthetic, .npz, "
              "image folder).")
@click.option("--accuracy-cost", type=click.Choice(["auto", "cheap", "expensive"]), default="auto",
              show_default=True, help="Expensive accuracy is predicted too in hybrid mode "
              "(auto: training is expensive).")
@click.option("--constraint", "constraints", multiple=True, metavar="TEXT",
              help="E.g. 'latency[pi4] <= 30 ms' or 'params <= 5 M'; repeatable.")
@click.option("--strategy", type=click.Choice(available_strategies()), default="nsga2",
              show_default=True, help="NSGA-II, aging (regularized) evolution, random search, "
              "or a registered strategy.")
@click.option("--population", default=20, show_default=True, type=click.IntRange(min=2),
              help="Population size (NSGA-II, aging evolution).")
@click.option("--sample-size", type=click.IntRange(min=1),
              help="Tournament size of aging evolution [default: 10, at most the population].")
@click.option("--mode", type=click.Choice(LATENCY_SOURCES.names()), default="hybrid",
              show_default=True,
              help="Latency source. measured: every candidate on every target; lut: LUT "
              "predictions only; hybrid: predict all, measure what could enter the front; "
              "or a registered source.")
@click.option("--budget", type=click.IntRange(min=1), help="Candidates to evaluate [default: 100].")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the search: the same seed and measurements give the same search "
              "(a benchmark's input seed is the per-target key seed=N).")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Candidates per step [default: NSGA-II's population, 5 for aging, 10 random].")
@click.option("--hybrid-z", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Hybrid: how many uncertainties a prediction may be off in the candidate's favour.")
@click.option("--hybrid-warmup", default=10, show_default=True, type=click.IntRange(min=1),
              help="Hybrid without a LUT: measure everything until this many are measured.")
@settings_options(seed=False, shapes=False)
@fleet_option
@scheduler_options
@click.option("--resume", "resume_id", type=int, metavar="ID",
              help="Continue stored search ID (after a kill or Ctrl-C); --budget extends it.")
@click.option("--force", is_flag=True, help="With --resume: take over a search marked running elsewhere.")
@output_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def search(ctx: click.Context, **options: Any) -> None:
    """Search for the best accuracy/latency trade-offs on one or several targets.

    Each --device/--class is a latency target with its own objective
    latency[NAME]; settings after a colon apply to that target only
    (threads belong to what is measured). Every step is stored in the cost
    database: a killed search continues with --resume ID and measures
    nothing twice. Prints the Pareto front and writes the plot.

    \b
    Example:
        fleetnas search --space nb201 --local --budget 40
        fleetnas search --space nb201 --class pi4:threads=1 --class orin \\
            --constraint "latency[pi4] <= 30 ms" --mode hybrid --budget 200
        fleetnas search --resume 3
        fleetnas search list
    """
    if ctx.invoked_subcommand is not None:
        return
    console = output_console()
    if options["resume_id"] is not None:
        _resume(ctx, console, options)
    else:
        _new(ctx, console, options)


def _new(ctx: click.Context, console: Console, o: dict[str, Any]) -> None:
    if o["space_flags"].name is None:
        raise click.UsageError("say which space to search: --space NAME (or --resume ID)")
    targets = _targets(o["devices"], o["classes"], o)
    if o["local"]:
        if targets:
            raise click.UsageError("--local measures on this machine; drop --device/--class")
        targets = [parse_target(LOCAL_DEVICE, "device", bench_request(o))]
    if not targets:
        raise click.UsageError("say where latency is measured: --device NAME, --class NAME or --local")
    objectives = list(o["objectives"]) or ["accuracy"]
    try:
        config = SearchConfig.build(
            space=o["space_flags"].name, space_config=o["space_flags"].config(),
            targets=targets, objectives=objectives, constraints=o["constraints"],
            accuracy=o["accuracy"], accuracy_cost=o["accuracy_cost"],
            strategy=strategy_spec(o["strategy"], population_size=o["population"],
                                   sample_size=o["sample_size"]),
            mode=o["mode"], budget=o["budget"] or 100, seed=o["seed"],
            batch_size=o["batch_size"],
            hybrid=HybridOptions(z=o["hybrid_z"], warmup=o["hybrid_warmup"]), local=o["local"],
        )  # fmt: skip
    except (DriverError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    space = space_of(config)
    with search_errors(), CostDB(db_path_of(ctx)) as db, _measuring(db, config, o) as scheduler:
        fleet = scheduler.fleet if scheduler is not None else None
        luts = lut_predictors(db, space, config, fleet)
        measurer = None if scheduler is None else SchedulerMeasurer(scheduler, db, cache_dir=o["cache_dir"])
        driver = SearchDriver.create(config, db=db, space=space, measurer=measurer, luts=luts)
        console.print(escape(f"search {driver.search_id}: {config.mode} search of "
                             f"{space.identity()} on "
                             + ", ".join(t.describe() for t in config.targets)), highlight=False)
        result = run_search(console, driver, quiet=o["quiet"])
        report_result(console, driver, result, csv_path=o["csv_path"], json_path=o["json_path"],
                      plot_path=_plot_path(driver.search_id, o["plot_path"], o["no_plot"]))


@contextmanager
def _measuring(db: CostDB, config: SearchConfig, o: dict[str, Any]) -> Iterator[Scheduler | None]:
    """The scheduler a measuring latency source needs (None for one that never measures)."""
    if not latency_source_class(config.mode).measures:
        yield None
    elif config.local:
        with local_scheduler(db, max_retries=o["max_retries"],
                             device_wait_s=o["device_wait_s"]) as scheduler:
            yield scheduler
    else:
        _, fleet = existing_fleet(o["fleet_file"], if_missing=(
            ": add devices with `fleetnas fleet add NAME --address HOST:PORT --class CLASS`, or "
            "search on this machine with --local"
        ))  # fmt: skip
        with Scheduler(fleet, db, max_retries=o["max_retries"],
                       device_wait_s=o["device_wait_s"]) as scheduler:
            yield scheduler


def _resume(ctx: click.Context, console: Console, o: dict[str, Any]) -> None:
    if o["space_flags"].name or o["devices"] or o["classes"] or o["constraints"] or o["objectives"]:
        raise click.UsageError("--resume continues a stored search as it was configured; "
                               "only --budget, --fleet, --force and the output options apply")
    search_id = o["resume_id"]
    with search_errors(), CostDB(existing_db_path(db_path_of(ctx))) as db:
        record = SearchStore(db).get(search_id)
        config = SearchConfig.from_dict(record.config)
        with _measuring(db, config, o) as scheduler:
            measurer = None if scheduler is None else SchedulerMeasurer(scheduler, db, cache_dir=o["cache_dir"])
            driver = SearchDriver.resume(search_id, db=db, measurer=measurer, budget=o["budget"],
                                         force=o["force"])
            console.print(f"resuming search {search_id} at {driver.trials_done()}/"
                          f"{driver.config.budget} candidates", highlight=False)
            result = run_search(console, driver, quiet=o["quiet"])
            report_result(console, driver, result, csv_path=o["csv_path"],
                          json_path=o["json_path"],
                          plot_path=_plot_path(search_id, o["plot_path"], o["no_plot"]))


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


@search.command("list")
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
                      escape(objectives), f"{r.trials}/{r.budget}", str(r.measured),
                      str(r.device_runs), str(r.predicted), _when(r.created_at))
    output_console().print(table)


@search.command("show")
@click.argument("search_id", type=int, metavar="ID")
@click.option("--all", "everything", is_flag=True, help="Every candidate, not only the front.")
@output_options
@click.pass_context
def show(ctx: click.Context, search_id: int, everything: bool, csv_path: Path | None,
         json_path: str | None, plot_path: Path | None, no_plot: bool) -> None:
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
        record = SearchStore(db).get(search_id)
        config, engine = rebuild_engine(db, record)
    if json_path != "-":
        _print_header(console, record, config)
        print_front(console, engine, f"search {search_id}: "
                    + ("all candidates" if everything else "Pareto front"), everything=everything)
        console.print(summary_line(search_id, record))
    write_outputs(console, search_id, engine, search_summary(record), csv_path=csv_path,
                  json_path=json_path, plot_path=None if no_plot else plot_path,
                  everything=everything)


def _print_header(console: Console, record: SearchRecord, config: SearchConfig) -> None:
    table = Table(show_header=False, title=f"search {record.id}")
    table.add_column("what", style="bold")
    table.add_column("value")
    status = record.status + (f" ({record.error})" if record.error else "")
    strategy = ", ".join(f"{k}={v}" for k, v in config.strategy.items())
    rows = [
        ("status", status),
        ("space", record.space),
        ("mode", config.mode + (f" (LUTs: {dict(config.luts)})" if config.luts else "")),
        ("targets", "; ".join(t.describe() for t in config.targets)),
        ("objectives", ", ".join(config.objectives)),
        ("constraints", ", ".join(config.constraints) or "-"),
        ("accuracy", config.accuracy or "-"),
        ("strategy", f"{strategy}, seed {config.seed}"),
        ("candidates", f"{record.trials}/{record.budget}"),
        ("created / finished", f"{_when(record.created_at)} / {_when(record.finished_at)}"),
    ]
    for name, value in rows:
        table.add_row(name, escape(str(value)))
    console.print(table)
