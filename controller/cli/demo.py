"""``fleetnas demo``: the whole loop on this machine, in a few minutes.

1. starts two agents on loopback, one per device class: ``cpu-1t`` measures
   with 1 intra-op thread, ``cpu-2t`` with 2 (threads are a per-target
   benchmark setting, so the two classes really are two targets);
2. builds a small latency LUT of NAS-Bench-201's blocks on each and
   calibrates it on a few whole networks;
3. runs a short multi-device hybrid search (the NASWOT score, shown as such,
   as the accuracy objective; latency on
   both classes, a latency constraint on ``cpu-1t``): LUT predictions for
   everything, device measurements only for what could enter the front;
4. prints the Pareto front and writes the plot, CSV, JSON and the best
   network's ONNX into the demo folder.

Everything goes into ``--dir`` (default ``./fleetnas-demo``), including its
own cost database, so running the demo again answers every measurement from
the cache. ``--tiny`` is a seconds-long version for tests.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._progress import lut_progress, quiet_option
from fleetnas.controller.cli._results import Outputs, report_result, run_search, search_errors
from fleetnas.controller.cli.export import write_export
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (
    HybridOptions,
    SchedulerMeasurer,
    SearchConfig,
    SearchDriver,
    SearchResult,
    Target,
    accuracy_label,
)
from fleetnas.controller.fleet import Device, Fleet
from fleetnas.controller.local_agents import local_agents
from fleetnas.controller.lut import (
    CalibrationError,
    LatencyPredictor,
    LutStore,
    build_lut,
    calibrate_lut,
)
from fleetnas.controller.scheduler import Scheduler
from fleetnas.controller.spaces import SearchSpace, get_space

CLASSES = (("cpu-1t", 1), ("cpu-2t", 2))


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: the space's skeleton, measurement settings, search size."""

    space_config: dict[str, Any]
    warmup: int
    min_runs: int
    max_runs: int
    min_duration_s: float
    max_duration_s: float
    calibration_n: int
    population: int
    budget: int


FULL = DemoSize({"cells_per_stage": 2}, 5, 10, 200, 0.2, 1.0, 6, 12, 48)
TINY = DemoSize({"channels": 4, "cells_per_stage": 1}, 2, 5, 20, 0.0, 0.2, 5, 6, 12)


def _request(size: DemoSize, threads: int) -> agent_pb2.BenchmarkSettings:
    return agent_pb2.BenchmarkSettings(
        warmup_runs=size.warmup, min_runs=size.min_runs, max_runs=size.max_runs,
        min_duration_s=size.min_duration_s, max_duration_s=size.max_duration_s,
        intra_op_threads=threads, timeout_s=60.0,
    )  # fmt: skip


def _settings_dict(request: agent_pb2.BenchmarkSettings) -> dict[str, Any]:
    from google.protobuf import json_format

    return json_format.MessageToDict(request, preserving_proto_field_name=True)


def _bound(predictor: LatencyPredictor, space: SearchSpace, seed: int) -> float:
    """The 60th percentile of predicted latency over 200 random archs, 2 significant digits."""
    rng = random.Random(f"fleetnas.demo/{seed}")
    values = sorted(predictor.predict(space.sample(rng)) for _ in range(200))
    value = values[int(0.6 * len(values))]
    return float(f"{value:.2g}")


@click.command()
@click.option("--dir", "workdir", default="fleetnas-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the demo's database, agents' caches and outputs go.")
@click.option("--tiny", is_flag=True, help="A seconds-long version (smallest networks and runs).")
@click.option("--budget", type=click.IntRange(min=2), help="Candidates to evaluate [default: 48; tiny 12].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the search.")
@quiet_option
def demo(workdir: Path, tiny: bool, budget: int | None, seed: int, quiet: bool) -> None:
    """Run the whole loop on this machine: two device classes, a LUT, a multi-device search.

    Starts two local agents (class cpu-1t measures with 1 thread, cpu-2t
    with 2), builds and calibrates a NAS-Bench-201 latency LUT on each,
    runs a hybrid search for the NASWOT score (a training-free proxy for
    accuracy, shown as "naswot score") against latency on both with
    a latency constraint, prints the Pareto front and writes the plot, CSV,
    JSON and the best network's ONNX into --dir. Takes a few minutes; a
    second run answers every measurement from the demo's cost database.

    \b
    Example:
        fleetnas demo
        fleetnas demo --dir /tmp/demo --tiny
    """
    size = TINY if tiny else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    run = _Run(output_console(), workdir, get_space("nb201", size.space_config), quiet)
    run.console.print(f"[bold]fleetnas demo[/] in {escape(str(workdir))}/ (cost database "
                      f"{escape(str(run.db_path))})", highlight=False)
    with search_errors(), CostDB(run.db_path) as db:
        run.console.print("[bold]1/4[/] starting two local agents on loopback: class cpu-1t (1 "
                          "thread) and cpu-2t (2 threads)")
        with local_agents(2, workdir / "agents", name_prefix="agent") as agents:
            devices = [Device(f"{name}-0", name, agent.address)
                       for (name, _), agent in zip(CLASSES, agents, strict=True)]
            run.lap("agents")
            with Scheduler(Fleet.of(devices), db, device_wait_s=30.0) as scheduler:
                luts = _build_luts(run, db, scheduler, devices, size)
                run.lap("LUTs")
                config = _search_config(run, luts, size, budget, seed)
                measurer = SchedulerMeasurer(scheduler, db, cache_dir=run.cache_dir)
                driver = SearchDriver.create(config, db=db, space=run.space, measurer=measurer,
                                             luts=luts)
                result = run_search(run.console, driver, quiet=quiet)
                run.lap("search")
        _results(run, db, driver, result)
    run.lap("results")
    _next_steps(run, result.search_id)


@dataclass
class _Run:
    """One run of the demo: where it writes, what it shows, how long each part took."""

    console: Console
    workdir: Path
    space: SearchSpace
    quiet: bool
    timings: list[tuple[str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)

    @property
    def db_path(self) -> Path:
        return self.workdir / "fleetnas.db"

    @property
    def cache_dir(self) -> Path:
        return self.workdir / "onnx-cache"

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.timings.append((name, now - self.last))
        self.last = now


def _build_luts(run: _Run, db: CostDB, scheduler: Scheduler, devices: list[Device],
                size: DemoSize) -> dict[str, LatencyPredictor]:
    """Step 2: a calibrated LUT of the space's blocks on each device, by class."""
    run.console.print(f"[bold]2/4[/] building the {escape(run.space.identity())} latency LUT on "
                      "each device (16 blocks + calibration)", highlight=False)
    luts: dict[str, LatencyPredictor] = {}
    for device, (class_name, threads) in zip(devices, CLASSES, strict=True):
        request = _request(size, threads)
        with lut_progress(run.quiet, f"LUT {device.name}") as on_progress:
            report = build_lut(run.space, device.name, request, db=db, scheduler=scheduler,
                               cache_dir=run.cache_dir, on_progress=on_progress)
        if not report.complete or report.lut is None:
            raise click.ClickException(f"the LUT on {device.name} is incomplete: {report.failed[:3]}")
        built = (f"  {class_name}: {report.blocks} blocks ({report.measured} measured, "
                 f"{report.cached} from the cost DB)")
        try:
            with lut_progress(run.quiet, f"calibration {device.name}") as on_progress:
                calibration = calibrate_lut(report.lut, db=db, scheduler=scheduler,
                                            k=size.calibration_n, cache_dir=run.cache_dir,
                                            on_progress=on_progress)
        except CalibrationError as exc:  # a tiny LUT on a noisy host: say so, keep going
            run.console.print(f"{built}; not calibrated ({escape(str(exc))}): the search "
                              "predicts with the raw block sums", highlight=False)
        else:
            run.console.print(f"{built}, calibrated on {calibration.n} networks, fit error "
                              f"{calibration.fit_rmspe:.1f}%", highlight=False)
        calibrated = LutStore(db).get(report.lut.id)  # with the line just fitted
        luts[class_name] = LatencyPredictor.from_lut(db, run.space, calibrated)
    return luts


def _search_config(run: _Run, luts: dict[str, LatencyPredictor], size: DemoSize,
                   budget: int | None, seed: int) -> SearchConfig:
    """Step 3: a hybrid multi-device search under a latency bound the LUT suggests."""
    bound = _bound(luts["cpu-1t"], run.space, seed)
    constraint = f"latency[cpu-1t] <= {bound:g} ms"
    targets = [Target.device_class(name, _settings_dict(_request(size, threads)))
               for name, threads in CLASSES]
    config = SearchConfig.build(
        space="nb201", space_config=size.space_config, targets=targets,
        objectives=["accuracy"], constraints=[constraint], accuracy="naswot",
        strategy={"kind": "nsga2", "population_size": size.population},
        mode="hybrid", budget=budget or size.budget, seed=seed, hybrid=HybridOptions(),
    )  # fmt: skip
    run.console.print(
        f"[bold]3/4[/] hybrid search: {config.budget} candidates, NSGA-II, "
        f"maximise {accuracy_label(config.accuracy or '')} (a training-free proxy, not an "
        "accuracy), minimise latency on cpu-1t and cpu-2t, "
        f"subject to {escape(constraint)} (the space's 60th percentile here)", highlight=False)
    return config


def _results(run: _Run, db: CostDB, driver: SearchDriver, result: SearchResult) -> None:
    """Step 4: the front, the files, the best network as ONNX."""
    run.console.print("[bold]4/4[/] results")
    outputs = Outputs(csv_path=run.workdir / "pareto.csv",
                      json_path=str(run.workdir / "pareto.json"))
    report_result(run.console, driver, result, outputs, plot_path=run.workdir / "pareto.png")
    assert result.search_id is not None
    best = run.workdir / "best.onnx"
    row, _ = write_export(db, result.search_id, 1, best, cache_dir=run.cache_dir)
    run.console.print(f"wrote {escape(str(best))} (rank 1: {escape(row.encoding)})",
                      highlight=False)


def _next_steps(run: _Run, search_id: int | None) -> None:
    total = time.monotonic() - run.started
    run.console.print("timings: " + ", ".join(f"{name} {seconds:.0f} s"
                                              for name, seconds in run.timings)
                      + f"; total {total:.0f} s", highlight=False)
    db_arg = f"--db {run.db_path}"
    run.console.print(
        "next:\n"
        f"  fleetnas {db_arg} search show {search_id} --all\n"
        f"  fleetnas {db_arg} export {search_id} --rank 2 -o net.onnx\n"
        f"  fleetnas {db_arg} lut show", highlight=False, markup=False)
