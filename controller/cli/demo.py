"""``fleetnas demo``: the whole loop on this machine, in a few minutes.

1. starts two agents on loopback, one per device class: ``cpu-1t`` measures
   with 1 intra-op thread, ``cpu-2t`` with 2 (threads are a per-target
   benchmark setting, so the two classes really are two targets);
2. builds a small latency LUT of NAS-Bench-201's blocks on each and
   calibrates it on a few whole networks;
3. gets the accuracy estimator ready: by default a small weight-sharing
   supernet of the space trained on scikit-learn's digits (once: it is kept
   in the demo folder's supernet store and reused), which scores a candidate
   by its held-out validation top-1 with inherited weights; ``--accuracy
   naswot`` takes the NASWOT score instead (a training-free proxy, shown as
   such, nothing to train);
4. runs a short multi-device hybrid search (that accuracy against latency on
   both classes, a latency constraint on ``cpu-1t``): LUT predictions for
   everything, device measurements only for what could enter the front;
5. prints the Pareto front and writes the plot, CSV, JSON and the best
   network's ONNX into the demo folder.

Everything goes into ``--dir`` (default ``./fleetnas-demo``), including its
own cost database and supernet store, so running the demo again trains
nothing and answers every measurement from the cache. ``--tiny`` is a
seconds-long version for tests (a tinier space; its supernet trains one
epoch on a subset of digits).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._progress import lut_progress, quiet_option, setup_progress
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
    make_estimator,
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

if TYPE_CHECKING:
    from fleetnas.controller.accuracy import AccuracyEstimator

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
    #: the options of the demo's ``supernet:digits,...`` estimator (training, then scoring)
    supernet: str


# The supernet's cost decides the full size (measured on the 2-core host, docs/demo.md):
# 8 channels, 1 cell per stage; 4 epochs of batch 32 at lr 0.1; each candidate scored
# after 2 batches of BN recalibration on all 359 held-out images.
FULL = DemoSize({"channels": 8, "cells_per_stage": 1}, 5, 10, 200, 0.2, 1.0, 6, 12, 48,
                "epochs=4,batch_size=32,lr=0.1,bn_batches=2")
TINY = DemoSize({"channels": 4, "cells_per_stage": 1}, 2, 5, 20, 0.0, 0.2, 5, 6, 12,
                "epochs=1,batch_size=16,lr=0.1,max_train_samples=384,bn_batches=1,"
                "max_val_samples=120")

#: torch threads of the demo's own torch work (supernet training and scoring, exports): on
#: a shared 2-core host two threads were up to ~10x slower than one (docs/supernet.md)
TORCH_THREADS = 1


@dataclass(frozen=True)
class DemoAccuracy:
    """What ``--accuracy`` picks: the estimator spec for a demo size, what its value is."""

    spec: Callable[[DemoSize], str]
    what: str


ACCURACY: dict[str, DemoAccuracy] = {
    "supernet": DemoAccuracy(lambda size: f"supernet:digits,{size.supernet}",
                             "validation top-1 of each candidate on the supernet's weights"),
    "naswot": DemoAccuracy(lambda size: "naswot", "a training-free proxy, not an accuracy"),
}


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
@click.option("--accuracy", "accuracy", type=click.Choice(sorted(ACCURACY)), default="supernet",
              show_default=True,
              help="supernet: held-out accuracy from a supernet trained on digits (once); "
              "naswot: the NASWOT proxy score (nothing to train).")
@quiet_option
def demo(workdir: Path, tiny: bool, budget: int | None, seed: int, accuracy: str,
         quiet: bool) -> None:
    """Run the whole loop on this machine: two device classes, a LUT, a supernet, a search.

    Starts two local agents (class cpu-1t measures with 1 thread, cpu-2t
    with 2), builds and calibrates a NAS-Bench-201 latency LUT on each,
    trains a small weight-sharing supernet of the space on scikit-learn's
    digits (or reuses the one in --dir), runs a hybrid search for its
    held-out accuracy (shown as "supernet accuracy (held-out digits)";
    --accuracy naswot: the NASWOT proxy score) against latency on both with
    a latency constraint, prints the Pareto front and writes the plot, CSV,
    JSON and the best network's ONNX into --dir. Takes a few minutes; a
    second run trains nothing and answers every measurement from the demo's
    cost database.

    \b
    Example:
        fleetnas demo
        fleetnas demo --dir /tmp/demo --tiny
        fleetnas demo --accuracy naswot
    """
    size = TINY if tiny else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    run = _Run(output_console(), workdir, get_space("nb201", size.space_config), quiet)
    run.console.print(f"[bold]fleetnas demo[/] in {escape(str(workdir))}/ (cost database "
                      f"{escape(str(run.db_path))})", highlight=False)
    with search_errors(), CostDB(run.db_path) as db, _torch_threads(TORCH_THREADS):
        run.console.print("[bold]1/5[/] starting two local agents on loopback: class cpu-1t (1 "
                          "thread) and cpu-2t (2 threads)")
        with local_agents(2, workdir / "agents", name_prefix="agent") as agents:
            devices = [Device(f"{name}-0", name, agent.address)
                       for (name, _), agent in zip(CLASSES, agents, strict=True)]
            run.lap("agents")
            with Scheduler(Fleet.of(devices), db, device_wait_s=30.0) as scheduler:
                luts = _build_luts(run, db, scheduler, devices, size)
                run.lap("LUTs")
                chosen = ACCURACY[accuracy]
                estimator = _prepare_accuracy(run, chosen.spec(size))
                run.lap(accuracy)
                config = _search_config(run, luts, size, budget, seed, chosen)
                measurer = SchedulerMeasurer(scheduler, db, cache_dir=run.cache_dir)
                driver = SearchDriver.create(config, db=db, space=run.space, measurer=measurer,
                                             luts=luts, estimator=estimator)
                result = run_search(run.console, driver, quiet=quiet)
                run.lap("search")
        _results(run, db, driver, result, estimator)
    run.lap("results")
    _next_steps(run, result.search_id)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block, restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    run.console.print(f"[bold]2/5[/] building the {escape(run.space.identity())} latency LUT on "
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


def _prepare_accuracy(run: _Run, spec: str) -> AccuracyEstimator:
    """Step 3: the estimator of ``spec``, ready to score: a supernet trained on digits (or
    reused from the demo folder's store, ``supernets/``), or a proxy with nothing to do."""
    from fleetnas.controller.accuracy import EstimatorSetup

    estimator = make_estimator(spec)
    data = _held_out(estimator)
    if data is None:
        run.console.print(f"[bold]3/5[/] accuracy: {escape(accuracy_label(spec))}, a "
                          "training-free proxy (nothing to train)", highlight=False)
    else:
        run.console.print(
            f"[bold]3/5[/] accuracy: a weight-sharing supernet of {escape(run.space.identity())} "
            f"on {data} (trained once, kept in {escape(str(run.workdir / 'supernets'))}/)",
            highlight=False)  # fmt: skip
    with setup_progress(run.quiet) as on_progress:
        notes = estimator.prepare(run.space, EstimatorSetup(workdir=run.workdir.resolve(),
                                                            progress=on_progress))
    for line in notes:
        run.console.print(f"  {escape(line)}", highlight=False)
    return estimator


def _held_out(estimator: AccuracyEstimator) -> str | None:
    """``scikit-learn's digits, 1437 training images, 360 held out (20 %)`` for a supernet
    estimator (with the caps its settings put on either); None for a proxy."""
    from fleetnas.controller.accuracy.supernet import StoredSupernetEstimator

    if not isinstance(estimator, StoredSupernetEstimator):
        return None
    dataset = estimator.dataset
    train, val = len(dataset.y_train), len(dataset.y_val)
    used_train = min(train, estimator.train_config.max_train_samples or train)
    used_val = min(val, estimator.eval_config.max_val_samples or val)
    name = "scikit-learn's digits" if dataset.name == "digits" else dataset.name
    trains = f"{train}" if used_train == train else f"{used_train} of {train}"
    scores = "" if used_val == val else f", {used_val} of them scored"
    return (f"{name}, {trains} training images, {val} held out "
            f"({100 * val / (train + val):.0f} %){scores}")


def _search_config(run: _Run, luts: dict[str, LatencyPredictor], size: DemoSize,
                   budget: int | None, seed: int, accuracy: DemoAccuracy) -> SearchConfig:
    """Step 4: a hybrid multi-device search under a latency bound the LUT suggests."""
    bound = _bound(luts["cpu-1t"], run.space, seed)
    constraint = f"latency[cpu-1t] <= {bound:g} ms"
    targets = [Target.device_class(name, _settings_dict(_request(size, threads)))
               for name, threads in CLASSES]
    config = SearchConfig.build(
        space="nb201", space_config=size.space_config, targets=targets,
        objectives=["accuracy"], constraints=[constraint], accuracy=accuracy.spec(size),
        strategy={"kind": "nsga2", "population_size": size.population},
        mode="hybrid", budget=budget or size.budget, seed=seed, hybrid=HybridOptions(),
    )  # fmt: skip
    run.console.print(
        f"[bold]4/5[/] hybrid search: {config.budget} candidates, NSGA-II, "
        f"maximise {escape(accuracy_label(config.accuracy or ''))} ({accuracy.what}), "
        "minimise latency on cpu-1t and cpu-2t, "
        f"subject to {escape(constraint)} (the space's 60th percentile here)", highlight=False)
    return config


def _results(run: _Run, db: CostDB, driver: SearchDriver, result: SearchResult,
             estimator: AccuracyEstimator) -> None:
    """Step 5: the front, what its accuracy is, the files, the best network as ONNX."""
    run.console.print("[bold]5/5[/] results")
    outputs = Outputs(csv_path=run.workdir / "pareto.csv",
                      json_path=str(run.workdir / "pareto.json"))
    report_result(run.console, driver, result, outputs, plot_path=run.workdir / "pareto.png")
    data = _held_out(estimator)
    if data is not None:
        label = accuracy_label(driver.config.accuracy or "")
        run.console.print(
            f"{escape(label)}: top-1 on the held-out images ({data}) of each candidate with "
            "the weights it inherits from the supernet, batch norm recalibrated on training "
            "images; it ranks archs roughly, it is not the accuracy an arch reaches trained "
            "alone (docs/supernet.md)", highlight=False)  # fmt: skip
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
        f"  fleetnas {db_arg} lut show\n"
        f"  fleetnas {db_arg} supernet show", highlight=False, markup=False)
