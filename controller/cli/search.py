"""``fleetnas search``: multi-objective architecture search against the fleet, a LUT, or both.

``fleetnas search --space S --class C ...`` runs a new search, stored in the
cost database step by step; ``--resume ID`` continues one that was killed or
interrupted (nothing is measured twice); ``search show ID`` and ``search
list`` read stored searches (:mod:`._search_stored`). Latency targets are
``--device NAME`` or ``--class NAME``, each optionally with its own benchmark
settings: ``--class cpu-2t:threads=2``, and its own allowed precisions:
``--device pi4:precision=int8|fp32`` (else ``--precision``'s; any
precision besides fp32 makes precision a per-target gene, measured only:
``docs/search.md``, "Precision as a gene"). The options reach the command as
typed groups; building the search, finding its LUTs and resuming it are the
driver library's (``SearchConfig.build``, ``find_luts``,
``SearchDriver.resume``). See ``docs/search.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._options import (
    DURATION,
    collect_params,
    existing_db_path,
    settings_request,
)
from fleetnas.controller.cli._progress import quiet_option, search_progress
from fleetnas.controller.cli._results import (
    Outputs,
    budget_text,
    output_options,
    report_result,
    run_search,
    search_errors,
)
from fleetnas.controller.cli._scheduling import (
    Scheduling,
    open_scheduler,
    scheduler_options,
)
from fleetnas.controller.cli._search_plan import dry_run_option, print_plan, resolve_constraints
from fleetnas.controller.cli._search_stored import list_searches, show
from fleetnas.controller.cli._space import SpaceFlags, space_options
from fleetnas.controller.cli._targets import TargetFlags, target_options
from fleetnas.controller.cli.fleet import db_path_of
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (
    EXECUTOR_KINDS,
    LATENCY_SOURCES,
    DriverError,
    ExecutorOptions,
    HybridOptions,
    SchedulerMeasurer,
    SearchConfig,
    SearchConfigError,
    SearchDriver,
    SearchStore,
    calibration_source,
    estimator_usages,
    find_kernel_luts,
    find_luts,
    find_transfers,
    latency_source_class,
    open_executor,
    strategy_spec,
)
from fleetnas.controller.scheduler import Scheduler
from fleetnas.controller.search import available_strategies
from fleetnas.controller.spaces import SearchSpace, UnknownSpace, get_space

F = TypeVar("F", bound=Callable[..., Any])

#: candidates of a search given neither --budget nor --max-measurements
DEFAULT_BUDGET = 100


@dataclass(frozen=True)
class GoalFlags:
    """``--objective``, ``--accuracy``, ``--accuracy-cost``, ``--constraint``."""

    objectives: tuple[str, ...]
    accuracy: str
    accuracy_cost: str
    constraints: tuple[str, ...]


@dataclass(frozen=True)
class DeployFlags:
    """``--precision`` (the allowed precisions of every target without its own) and
    ``--calibration`` (the data int8 variants are calibrated on)."""

    precisions: str
    calibration: str | None

    @property
    def given(self) -> bool:
        return self.precisions != "fp32" or self.calibration is not None


@dataclass(frozen=True)
class RunFlags:
    """How the search runs: strategy, source (``--mode``), budgets, seed, batch, hybrid options.

    ``time_limit`` (``--timeout``, seconds) bounds this run only, not the stored search.
    """

    strategy: str
    population: int
    sample_size: int | None
    mode: str
    budget: int | None
    max_measurements: int | None
    time_limit: float | None
    seed: int
    batch_size: int | None
    hybrid_z: float
    hybrid_warmup: int


@dataclass(frozen=True)
class ExecutorFlags:
    """``--executor``, ``--workers``, ``--ray-address``, ``--trial-cpus``, ``--trial-gpus``:
    where accuracy estimates run and what each declares."""

    executor: str | None
    workers: int | None
    ray_address: str | None
    trial_cpus: float | None
    trial_gpus: float | None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.executor, self.workers, self.trial_cpus,
                                           self.trial_gpus))

    def options(self) -> ExecutorOptions | None:
        """The new search's executor (None: inline); SearchConfigError for a bad combination."""
        if self.executor is None:
            if self.workers is not None or self.ray_address is not None:
                raise SearchConfigError("--workers and --ray-address need --executor local|ray")
            if self.trial_cpus is not None or self.trial_gpus is not None:
                raise SearchConfigError("--trial-cpus and --trial-gpus need --executor local|ray "
                                        "(inline estimates run in the search's own process)")
            return None
        return ExecutorOptions(self.executor, self.workers, self.ray_address,
                               trial_cpus=1.0 if self.trial_cpus is None else self.trial_cpus,
                               trial_gpus=0.0 if self.trial_gpus is None else self.trial_gpus)


def _collect(into: str, make: Callable[..., Any], names: Sequence[str]) -> Callable[[F], F]:
    return lambda func: collect_params(func, into, make, names)


def _config(ctx: click.Context, console: Console, space_flags: SpaceFlags, targets: TargetFlags,
            goals: GoalFlags, run: RunFlags, deploy: DeployFlags, executing: ExecutorFlags,
            request: agent_pb2.BenchmarkSettings, fleet_file: Path | None) -> SearchConfig:
    """The new search's config, percentile bounds resolved (and printed) first."""
    if space_flags.name is None:
        raise click.UsageError("say which space to search: --space NAME (or --resume ID)")
    try:
        chosen = targets.targets(request, genes=True)
        space = get_space(space_flags.name, space_flags.config())
    except UnknownSpace as exc:
        raise click.UsageError(str(exc)) from exc
    except (DriverError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    constraints = resolve_constraints(console, db_path_of(ctx), space, goals.constraints, chosen,
                                      fleet_file=fleet_file, local=targets.local)
    try:
        return SearchConfig.build(
            space=space_flags.name, space_config=space_flags.config(),
            targets=chosen, objectives=list(goals.objectives) or ["accuracy"],
            constraints=constraints, accuracy=goals.accuracy,
            accuracy_cost=goals.accuracy_cost,
            strategy=strategy_spec(run.strategy, population_size=run.population,
                                   sample_size=run.sample_size),
            mode=run.mode, budget=_candidate_budget(run), max_measurements=run.max_measurements,
            seed=run.seed, batch_size=run.batch_size,
            hybrid=HybridOptions(z=run.hybrid_z, warmup=run.hybrid_warmup), local=targets.local,
            precisions=deploy.precisions, calibration=deploy.calibration,
            executor=executing.options(),
        )  # fmt: skip
    except (DriverError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc


def _candidate_budget(run: RunFlags) -> int | None:
    """``--budget``, else 100, else none when ``--max-measurements`` bounds the search."""
    if run.budget is not None:
        return run.budget
    return None if run.max_measurements is not None else DEFAULT_BUDGET


def _space(config: SearchConfig) -> SearchSpace:
    """The config's space; a one-line usage error for an unknown name or bad options."""
    try:
        return get_space(config.space, dict(config.space_config))
    except UnknownSpace as exc:
        raise click.UsageError(str(exc)) from exc
    except ValueError as exc:
        raise click.UsageError(f"{exc} (check --space-config / --resolution)") from exc


@contextmanager
def _measurer(db: CostDB, config: SearchConfig, scheduling: Scheduling) -> Iterator[SchedulerMeasurer | None]:
    """What measures for a source that measures (None for one that never does)."""
    if not latency_source_class(config.mode).measures:
        yield None
        return
    if_missing = (": add devices with `fleetnas fleet add NAME --address HOST:PORT --class "
                  "CLASS`, or search on this machine with --local")
    with open_scheduler(db, scheduling, local=config.local, if_missing=if_missing) as scheduler:
        yield SchedulerMeasurer(scheduler, db, cache_dir=scheduling.cache_dir,
                                calibration=calibration_source(config),
                                on_warning=lambda m: click.echo(f"warning: {m}", err=True))


def _fleet_of(measurer: SchedulerMeasurer | None) -> Any:
    scheduler: Scheduler | None = None if measurer is None else measurer.scheduler
    return None if scheduler is None else scheduler.fleet


# -- commands ------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@space_options(required=False)
@target_options("Latency target")
@_collect("goals", GoalFlags, ("objectives", "accuracy", "accuracy_cost", "constraints"))
@_collect("run", RunFlags, ("strategy", "population", "sample_size", "mode", "budget",
                             "max_measurements", "time_limit", "seed", "batch_size", "hybrid_z",
                             "hybrid_warmup"))
@_collect("deploy", DeployFlags, ("precisions", "calibration"))
@_collect("executing", ExecutorFlags, ("executor", "workers", "ray_address", "trial_cpus",
                                       "trial_gpus"))
@click.option("--objective", "objectives", multiple=True, metavar="NAME[:min|max]",
              help="Objective besides latency[TARGET] (added for every target): accuracy "
              "(default), params, flops, peak_memory[TARGET], energy[TARGET] (mJ per "
              "inference, measured mode only); repeatable.")
@click.option("--accuracy", "accuracy", default="naswot", show_default=True, metavar="SPEC",
              help=f"{', '.join(estimator_usages())} (DATA: digits, mnist5k, synthetic, .npz, "
              "image folder). Proxies (naswot, synflow) are shown as scores, not accuracy.")
@click.option("--accuracy-cost", type=click.Choice(["auto", "cheap", "expensive"]), default="auto",
              show_default=True, help="Expensive accuracy is predicted too in hybrid mode "
              "(auto: training is expensive).")
@click.option("--constraint", "constraints", multiple=True, metavar="TEXT",
              help="E.g. 'latency[pi4] <= 30 ms', 'energy[jetson] <= 20 mJ', 'params <= 5 M', or "
              "a percentile of the space's latency on the target, 'latency[pi4] <= p40' (from its "
              "LUT, else its measured archs; see `fleetnas space stats`); repeatable.")
@click.option("--strategy", type=click.Choice(available_strategies()), default="nsga2",
              show_default=True, help="NSGA-II, aging (regularized) evolution, random search, "
              "or a registered strategy.")
@click.option("--population", default=20, show_default=True, type=click.IntRange(min=2),
              help="Population size (NSGA-II, aging evolution).")
@click.option("--sample-size", type=click.IntRange(min=1),
              help="Tournament size of aging evolution [default: 10, at most the population].")
@click.option("--precision", "precisions", default="fp32", show_default=True, metavar="LIST",
              help="Precisions a target's gene may take (fp32, fp16, int8, int8-dynamic; e.g. "
              "fp32,int8) unless it names its own (--device 'pi4:precision=int8|fp32'); any "
              "besides fp32 needs --mode measured.")
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False), metavar="NPZ",
              help="Data to calibrate int8 variants on [default: a train:DATA estimator's "
              "data, else random data, with a warning].")
@click.option("--mode", type=click.Choice(LATENCY_SOURCES.names()), default="hybrid",
              show_default=True,
              help="Latency source. measured: every candidate on every target; lut: LUT "
              "predictions only; hybrid: predict all, measure what could enter the front; "
              "or a registered source.")
@click.option("--budget", type=click.IntRange(min=1),
              help=f"Candidates to evaluate [default: {DEFAULT_BUDGET}; none with "
              "--max-measurements].")
@click.option("--max-measurements", type=click.IntRange(min=1), metavar="N",
              help="Stop once N latencies are measured (one per candidate and target, from a "
              "device or the cost DB), or at --budget if that comes first.")
@click.option("--timeout", "time_limit", type=DURATION, metavar="DURATION",
              help="Stop cleanly after this long (e.g. 30m, 2h, 1h30m; checked between steps): "
              "the search stays resumable with --resume ID.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the search: the same seed and measurements give the same search "
              "(a benchmark's input seed is the per-target key seed=N).")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Candidates per step [default: NSGA-II's population, 5 for aging, 10 random].")
@click.option("--hybrid-z", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Hybrid: how many uncertainties a prediction may be off in the candidate's favour.")
@click.option("--executor", type=click.Choice(EXECUTOR_KINDS),
              help="Run accuracy estimates (train, naswot, synflow, plugin) as tasks on a local "
              "process pool or on Ray, while the devices measure; each result is saved as it "
              "finishes [default: inline, one at a time]. Stored with the search.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="With --executor: worker processes (local) or CPUs of a new local Ray "
              "instance [default: the CPU count].")
@click.option("--ray-address", metavar="ADDR",
              help="With --executor ray: the cluster to join (e.g. ray://head:10001, auto); "
              "on --resume, overrides the stored one.")
@click.option("--trial-cpus", type=click.FloatRange(min=0, min_open=True), metavar="N",
              help="With --executor: CPUs each estimate declares (its torch threads: N rounded "
              "up); Ray places it where they are free, the local pool runs --workers at once "
              "(default: as many as fit in this machine's CPUs) [default: 1].")
@click.option("--trial-gpus", type=click.FloatRange(min=0), metavar="N",
              help="With --executor: GPUs each estimate declares (Ray sets CUDA_VISIBLE_DEVICES; "
              "the local pool needs that many GPUs visible to torch) [default: 0].")
@click.option("--hybrid-warmup", default=10, show_default=True, type=click.IntRange(min=1),
              help="Hybrid without a LUT: measure everything until this many are measured.")
@settings_request(omit=("seed", "shapes"), renamed={"timeout": "--benchmark-timeout"})
@scheduler_options
@click.option("--resume", "resume_id", type=int, metavar="ID",
              help="Continue stored search ID (after a kill, Ctrl-C or --timeout); --budget and "
              "--max-measurements extend it.")
@click.option("--force", is_flag=True, help="With --resume: take over a search marked running elsewhere.")
@dry_run_option
@output_options
@quiet_option
@click.pass_context
def search(
    ctx: click.Context, space_flags: SpaceFlags, targets: TargetFlags, goals: GoalFlags,
    run: RunFlags, deploy: DeployFlags, executing: ExecutorFlags,
    request: agent_pb2.BenchmarkSettings,
    scheduling: Scheduling, resume_id: int | None, force: bool, dry_run: bool, outputs: Outputs,
    quiet: bool,
) -> None:
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
        fleetnas search --space nb201 --class pi4 --constraint "latency[pi4] <= p40" --dry-run
        fleetnas search --space nb201 --class jetson --objective accuracy \\
            --objective "energy[jetson]" --constraint "energy[jetson] <= 20 mJ" --mode measured
        fleetnas search --space nb201 --mode measured --precision fp32,int8 \\
            --device pi4 --device x86:precision=fp32 --budget 40
        fleetnas search --space nb201 --local --mode measured --budget 20 \\
            --accuracy train:digits,epochs=2 --executor local --workers 2
        fleetnas search --space nb201 --local --mode measured --budget 20 \\
            --accuracy train:mnist5k --executor ray --ray-address auto --trial-cpus 2
        fleetnas search --resume 3
        fleetnas search list
    """
    if ctx.invoked_subcommand is not None:
        return
    console = output_console()
    if resume_id is None:
        config = _config(ctx, console, space_flags, targets, goals, run, deploy, executing,
                         request, scheduling.fleet_file)
        if dry_run:
            print_plan(console, db_path_of(ctx), _space(config), config, run.time_limit,
                       fleet_file=scheduling.fleet_file)
            return
        _new(ctx, console, config, run.time_limit, scheduling, outputs, quiet)
        return
    if (space_flags.name or targets.named or goals.constraints or goals.objectives
            or deploy.given or dry_run or executing.given):
        raise click.UsageError("--resume continues a stored search as it was configured; only "
                               "--budget, --max-measurements, --timeout, --ray-address, --fleet, "
                               "--force and the output options apply")
    _resume(ctx, console, resume_id, run, force, scheduling, outputs, quiet, executing.ray_address)


def _new(ctx: click.Context, console: Console, config: SearchConfig, timeout: float | None,
         scheduling: Scheduling, outputs: Outputs, quiet: bool) -> None:
    space = _space(config)
    with (search_errors(), CostDB(db_path_of(ctx)) as db, _measurer(db, config, scheduling) as measurer,
          open_executor(config.executor, db.path) as executor):
        luts = find_luts(db, space, config, _fleet_of(measurer))
        kernel_luts = find_kernel_luts(db, space, config, _fleet_of(measurer), skip=luts)
        transfers = find_transfers(db, space, config, _fleet_of(measurer),
                                   skip={**luts, **kernel_luts})
        with search_progress(quiet) as on_progress:  # a supernet may train first
            driver = SearchDriver.create(config, db=db, space=space, measurer=measurer,
                                         luts=luts, kernel_luts=kernel_luts,
                                         transfers=transfers,
                                         export_cache=scheduling.cache_dir,
                                         on_progress=on_progress, executor=executor)
        console.print(escape(f"search {driver.search_id}: {config.mode} search of "
                             f"{space.identity()} on "
                             + ", ".join(t.describe() for t in config.targets)), highlight=False)
        _print_notes(console, driver)
        result = run_search(console, driver, quiet=quiet, timeout_s=timeout)
        report_result(console, driver, result, outputs,
                      plot_path=outputs.plot(driver.search_id, by_default=True))


def _resume(ctx: click.Context, console: Console, search_id: int, run: RunFlags, force: bool,
            scheduling: Scheduling, outputs: Outputs, quiet: bool, ray_address: str | None) -> None:
    with search_errors(), CostDB(existing_db_path(db_path_of(ctx))) as db:
        config = SearchConfig.from_dict(SearchStore(db).get(search_id).config)
        with (_measurer(db, config, scheduling) as measurer,
              open_executor(config.executor, db.path, ray_address=ray_address) as executor):
            with search_progress(quiet) as on_progress:
                driver = SearchDriver.resume(search_id, db=db, measurer=measurer,
                                             budget=run.budget,
                                             max_measurements=run.max_measurements,
                                             force=force, export_cache=scheduling.cache_dir,
                                             on_progress=on_progress, executor=executor)
            console.print(f"resuming search {search_id} at {budget_text(driver)}", highlight=False)
            _print_notes(console, driver)
            result = run_search(console, driver, quiet=quiet, timeout_s=run.time_limit)
            report_result(console, driver, result, outputs,
                          plot_path=outputs.plot(search_id, by_default=True))


def _print_notes(console: Console, driver: SearchDriver) -> None:
    """What the accuracy estimator checked or did before the search (coverage, a supernet),
    and the stored kernel LUTs and transfer fits that predict targets without a block LUT."""
    for key, lut_id in driver.config.kernel_luts.items():
        console.print(escape(f"{key}: predicted by kernel LUT {lut_id[:12]} "
                             "(fleetnas lut show --kernels)"), highlight=False)
    for key, fit_id in driver.config.transfers.items():
        console.print(escape(f"{key}: predicted by transfer fit {fit_id[:12]} "
                             "(fleetnas lut show --transfers)"), highlight=False)
    for line in driver.estimator_notes:
        console.print(escape(line), highlight=False)
    if driver.remote is not None and driver.config.executor is not None:
        store = getattr(driver.remote.executor.store, "path", None)
        console.print(escape(f"accuracy estimates on the {driver.config.executor.describe()}"
                             + (f", each saved in {store} as it finishes" if store else "")),
                      highlight=False)


search.add_command(list_searches)
search.add_command(show)
