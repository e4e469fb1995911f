"""Accuracy-evaluation bench: how evaluations scale over executors (more sections to come).

Section ``executors`` (the only one so far): the same ``--tasks`` short
trainings (nb201 archs, digits, ``--epochs``, ``--max-train-samples``, one CPU
each) run on

* Ray, a private local instance with 1 CPU (one worker), then one with 2;
* the local executor with 1 worker, then 2 (the side-by-side baseline).

Each run first warms its workers (one cheap SynFlow task per worker: process
start and the torch import are not timed), then times from the first submit
to the last result. Prints seconds, the speed-up of 2 workers over 1 (target
>= 1.6 on a machine with 2 idle cores; PASS/MISS), and whether the values
were identical across all runs (they must be: results do not depend on the
executor). The load average is printed at start and end: with a 1-minute
load above the CPU count the speed-up is capped by the other work, not by
the executor.

    .venv/bin/python bench/bench_accuracy.py [--quick] [--tasks 8] [--executors ray local]

Sections are registered in ``SECTIONS`` (name -> function returning rows), so
per-estimator rows (seconds per candidate, Kendall tau against short
training) can be added beside this one.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetnas.controller.executor import (
    DatasetRef,
    EstimatorSpec,
    EvalTask,
    Executor,
    LocalExecutor,
    RayExecutor,
    Resources,
)
from fleetnas.controller.spaces import get_space

SPEEDUP_TARGET = 1.6


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cpus"


@dataclass(frozen=True)
class Row:
    section: str
    label: str
    seconds: float
    ratio: float | None = None
    target: str = ""
    verdict: str = ""


def _tasks(args: argparse.Namespace) -> tuple[list[EvalTask], list[EvalTask]]:
    """The timed trainings and the warm-up tasks (cheap, one per worker at most)."""
    space = get_space("nb201", {"channels": args.channels, "cells_per_stage": 1})
    rng = random.Random(args.seed)
    archs = [space.sample(rng) for _ in range(args.tasks)]
    spec = EstimatorSpec("short_training", {"epochs": args.epochs,
                                            "max_train_samples": args.max_train_samples,
                                            "max_val_samples": 256, "seed": args.seed})  # fmt: skip
    data = DatasetRef("digits")
    timed = [EvalTask.of(f"t{i}", space, a, spec, dataset=data, resources=Resources(cpus=1))
             for i, a in enumerate(archs)]  # fmt: skip
    warm = [EvalTask.of(f"w{i}", space, a, EstimatorSpec("synflow"), resources=Resources(cpus=1))
            for i, a in enumerate(archs[:2])]  # fmt: skip
    return timed, warm


def _timed_run(executor: Executor, timed: list[EvalTask], warm: list[EvalTask],
               workers: int) -> tuple[float, list[float | None]]:  # fmt: skip
    executor.submit_all(warm[:workers])
    list(executor.results(timeout=600))
    started = time.perf_counter()
    executor.submit_all(timed)
    results = {r.task_id: r for r in executor.results(timeout=3600)}
    seconds = time.perf_counter() - started
    failed = [r for r in results.values() if not r.ok]
    if failed:
        raise SystemExit(f"bench: {len(failed)} trainings failed, e.g. {failed[0].error}")
    return seconds, [results[t.task_id].value for t in timed]


def _make(kind: str, workers: int) -> Executor:
    if kind == "ray":
        return RayExecutor(num_cpus=workers)
    return LocalExecutor(workers=workers, cpus=workers)


def section_executors(args: argparse.Namespace) -> list[Row]:
    timed, warm = _tasks(args)
    rows: list[Row] = []
    values: list[list[float | None]] = []
    for kind in args.executors:
        seconds: dict[int, float] = {}
        for workers in (1, 2):
            print(f"  {kind} x{workers}: {len(timed)} trainings ... ({_load()})", flush=True)
            with _make(kind, workers) as executor:
                seconds[workers], got = _timed_run(executor, timed, warm, workers)
            values.append(got)
            print(f"  {kind} x{workers}: {seconds[workers]:.1f} s", flush=True)
        ratio = seconds[1] / seconds[2]
        rows.append(Row("executors", f"{kind} 1 worker", seconds[1]))
        rows.append(Row("executors", f"{kind} 2 workers", seconds[2], ratio,
                        f">= {SPEEDUP_TARGET}", "PASS" if ratio >= SPEEDUP_TARGET else "MISS"))  # fmt: skip
    same = all(v == values[0] for v in values)
    rows.append(Row("executors", "identical values in every run", 0.0, None, "yes",
                    "PASS" if same else "MISS"))  # fmt: skip
    return rows


#: section name -> rows; add per-estimator sections here
SECTIONS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "executors": section_executors,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--executors", nargs="+", default=["ray", "local"], choices=["ray", "local"])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-train-samples", type=int, default=512)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="4 trainings of 128 samples, 8 channels")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.max_train_samples, args.channels = 4, 128, 8
    print(f"bench_accuracy: {args.tasks} trainings, nb201 C={args.channels}, digits, "
          f"{args.max_train_samples} samples x {args.epochs} epoch(s); {_load()}", flush=True)  # fmt: skip
    rows = [row for name in args.sections for row in SECTIONS[name](args)]
    print(f"\n{'section':<10} {'run':<32} {'seconds':>8} {'ratio':>6} {'target':>7}  verdict")
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        seconds = f"{row.seconds:.1f}" if row.seconds else ""
        print(f"{row.section:<10} {row.label:<32} {seconds:>8} {ratio:>6} {row.target:>7}  {row.verdict}")
    print(f"\nend: {_load()}")


if __name__ == "__main__":
    main()
