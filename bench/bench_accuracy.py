"""Accuracy-estimation bench: each estimator's cost and ranking, and how evaluations scale over executors.

Section ``estimators``: ``--n`` distinct nb201 archs (seeded; small skeleton:
``--channels``, ``--cells`` per stage) on ``--data`` (digits or mnist5k),
each scored by

* ``naswot`` and ``synflow`` (training-free proxies);
* ``short training`` retest: ``train:DATA`` with ``--short-epochs`` (and
  ``--short-max-train-samples``), seed 1 -- the same training as the
  reference with another seed, so its tau is a test-retest figure: how well
  the reference agrees with itself;
* ``supernet``: ``supernet:DATA,epochs=--supernet-epochs`` trained once (in
  ``--store``, default a temporary folder), then each arch's inherited-weight
  accuracy. Its one-off seconds (training, plus the store's check of the
  largest and smallest subnets) are printed apart, and amortised over the
  ``--n`` archs in a second row;

and the reference, ``train:DATA`` with the same options, seed 0. Per
estimator: seconds per candidate and Kendall tau-b against the reference's
accuracy. This is :func:`fleetnas.controller.driver.compare_accuracy_specs`,
what ``fleetnas proxies`` runs (one scoring loop). torch runs on
``--threads`` threads (default 1: two were ~10x slower on this loaded host).
No target: the table is what each estimator costs and how it ranks.

Section ``executors``: the same ``--tasks`` short trainings (nb201 archs,
``--data``, ``--epochs``, ``--max-train-samples``, one CPU each) run on

* Ray, a private local instance with 1 CPU (one worker), then one with 2;
* the local executor with 1 worker, then 2 (the side-by-side baseline).

Each run first warms its workers (one cheap SynFlow task per worker: process
start and the torch import are not timed), then times from the first submit
to the last result. Prints seconds, the speed-up of 2 workers over 1 (target
>= 1.6 on a machine with 2 idle cores; PASS/MISS), and whether the values
were identical across all runs (they must be: results do not depend on the
executor).

The load average is printed at start and end: with a 1-minute load above
the CPU count, timings include the other work on the host (and the executor
speed-up is capped by it).

    .venv/bin/python bench/bench_accuracy.py [--quick] [--sections estimators executors] \\
        [--data digits|mnist5k] [--n 30] [--channels 8] [--cells 1] [--short-epochs 2] \\
        [--supernet-epochs 20] [--supernet-max-train-samples M] [--json scores.json] \\
        [--tasks 8] [--executors ray local]

Sections are registered in ``SECTIONS`` (name -> function returning rows).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetnas.controller.driver import SpecComparison, compare_accuracy_specs, train_spec
from fleetnas.controller.executor import (
    DatasetRef,
    EstimatorSpec,
    EvalTask,
    Executor,
    LocalExecutor,
    RayExecutor,
    Resources,
)
from fleetnas.controller.spaces import SearchSpace, get_space

SPEEDUP_TARGET = 1.6
DATASETS = ("digits", "mnist5k")


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
    tau: float | None = None
    note: str = ""


def _space(args: argparse.Namespace) -> SearchSpace:
    return get_space("nb201", {"channels": args.channels, "cells_per_stage": args.cells})


# -- section estimators ------------------------------------------------------------------


def _distinct_archs(space: SearchSpace, n: int, seed: int) -> list[Any]:
    """``n`` distinct archs (a duplicate would be a tie in every ranking), seeded."""
    rng = random.Random(seed)
    archs: list[Any] = []
    seen: set[str] = set()
    for _ in range(100 * n):
        arch = space.sample(rng)
        if space.encode(arch) not in seen:
            seen.add(space.encode(arch))
            archs.append(arch)
            if len(archs) == n:
                return archs
    raise SystemExit(f"bench: the space has fewer than {n} distinct archs within reach")


def _reporter() -> Callable[[str, int, int | None, str], None]:
    """Prints each estimator's progress every 10 archs, and each supernet epoch's end."""
    last: dict[str, str] = {}

    def report(task: str, done: int, total: int | None, detail: str = "") -> None:
        if task == "supernet training":
            epoch = detail.split(",")[0]
            if last.get(task) not in (None, epoch):
                print(f"  supernet: {last[task]} done ({_load()})", flush=True)
            last[task] = epoch
            if total is not None and done == total:
                print(f"  supernet: {epoch} done, scoring its largest and smallest subnets",
                      flush=True)  # fmt: skip
        elif total is not None and (done % 10 == 0 or done == total):
            print(f"  {task}: {done}/{total}", flush=True)

    return report


def _tau(value: float | None) -> str:
    return "undefined" if value is None else f"{value:+.3f}"


def _write_json(path: str, reference: str, compared: SpecComparison) -> None:
    """Per arch every estimator's score, to read the table's figures back from."""
    c = compared.comparison
    document = {"archs": list(c.encodings),
                "reference": {"spec": reference, "scores": list(c.reference),
                              "seconds_per_arch": c.reference_seconds_per_arch},
                "estimators": [{"spec": r.name, "tau": r.tau, "scores": list(r.scores),
                                "seconds_per_arch": r.seconds_per_arch,
                                "one_off_seconds": compared.prepare_seconds[r.name]}
                               for r in c.rankings]}  # fmt: skip
    Path(path).write_text(json.dumps(document, indent=2) + "\n")
    print(f"  wrote {path}")


def section_estimators(args: argparse.Namespace) -> list[Row]:
    import torch

    torch.set_num_threads(args.threads)
    space = _space(args)
    archs = _distinct_archs(space, args.n, args.seed)
    short = {"epochs": args.short_epochs, "max_train_samples": args.short_max_train_samples}
    reference = train_spec(args.data, seed=0, **short)
    retest = train_spec(args.data, seed=1, **short)
    supernet = f"supernet:{args.data},epochs={args.supernet_epochs},seed=0"
    if args.supernet_max_train_samples:
        supernet += f",max_train_samples={args.supernet_max_train_samples}"
    specs = ["naswot", "synflow", retest, supernet]
    print(f"  {len(archs)} archs of {space.identity()}; reference {reference}; torch threads "
          f"{torch.get_num_threads()}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        compared = compare_accuracy_specs(space, archs, specs, reference,
                                          workdir=args.store or tmp, progress=_reporter())
    comparison = compared.comparison
    for line in compared.notes:
        print(f"  {line}")
    if args.json:
        _write_json(args.json, reference, compared)
    low, high = min(comparison.reference), max(comparison.reference)
    ranking = {r.name: r for r in comparison.rankings}
    one_off = compared.prepare_seconds[supernet]
    amortised = one_off / len(archs) + ranking[supernet].seconds_per_arch
    rows = [Row("estimators", "short training (reference)", comparison.reference_seconds_per_arch,
                tau=1.0, note=f"{reference}; accuracy {low:.3f}-{high:.3f}")]  # fmt: skip
    labels = {"naswot": "naswot", "synflow": "synflow", retest: "short training (seed 1)",
              supernet: "supernet"}  # fmt: skip
    notes = {retest: "test-retest: the reference's training, another seed",
             supernet: f"scoring only; {supernet}"}  # fmt: skip
    for spec in specs:
        r = ranking[spec]
        rows.append(Row("estimators", labels[spec], r.seconds_per_arch, tau=r.tau,
                        note=notes.get(spec, "training-free proxy")))  # fmt: skip
    rows.append(Row("estimators", "supernet, amortised", amortised, tau=ranking[supernet].tau,
                    note=f"(one-off + {len(archs)} x scoring) / {len(archs)}"))  # fmt: skip
    rows.append(Row("estimators", "supernet one-off (not per arch)", one_off,
                    note=f"training {args.supernet_epochs} epochs + the store's check; "
                         "seconds in all"))  # fmt: skip
    return rows


# -- section executors -------------------------------------------------------------------


def _tasks(args: argparse.Namespace) -> tuple[list[EvalTask], list[EvalTask]]:
    """The timed trainings and the warm-up tasks (cheap, one per worker at most)."""
    space = _space(args)
    rng = random.Random(args.seed)
    archs = [space.sample(rng) for _ in range(args.tasks)]
    spec = EstimatorSpec("short_training", {"epochs": args.epochs,
                                            "max_train_samples": args.max_train_samples,
                                            "max_val_samples": 256, "seed": args.seed})  # fmt: skip
    data = DatasetRef(args.data)
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


#: section name -> rows
SECTIONS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "estimators": section_estimators,
    "executors": section_executors,
}


def _print_rows(rows: list[Row]) -> None:
    estimators = [row for row in rows if row.section == "estimators"]
    if estimators:
        print(f"\n{'estimator':<32} {'s/candidate':>11} {'Kendall tau':>11}  note")
        for row in estimators:
            tau = _tau(row.tau) if row.label != "supernet one-off (not per arch)" else ""
            print(f"{row.label:<32} {row.seconds:>11.2f} {tau:>11}  {row.note}")
    others = [row for row in rows if row.section != "estimators"]
    if others:
        print(f"\n{'section':<10} {'run':<32} {'seconds':>8} {'ratio':>6} {'target':>7}  verdict")
        for row in others:
            ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
            seconds = f"{row.seconds:.1f}" if row.seconds else ""
            print(f"{row.section:<10} {row.label:<32} {seconds:>8} {ratio:>6} {row.target:>7}  "
                  f"{row.verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--data", default="digits", choices=DATASETS,
                        help="mnist5k needs pip install 'fleetnas[datasets]'")
    parser.add_argument("--channels", type=int, default=8, help="nb201 channels (both sections)")
    parser.add_argument("--cells", type=int, default=1, help="nb201 cells per stage (both)")
    parser.add_argument("--seed", type=int, default=0, help="arch sample seed (both)")
    estimators = parser.add_argument_group("section estimators")
    estimators.add_argument("--n", type=int, default=30, help="distinct archs to rank")
    estimators.add_argument("--short-epochs", type=int, default=2,
                            help="epochs of the short training (reference and retest)")
    estimators.add_argument("--short-max-train-samples", type=int, default=None,
                            help="cap the short training's training split [default: all]")
    estimators.add_argument("--supernet-epochs", type=int, default=20)
    estimators.add_argument("--supernet-max-train-samples", type=int, default=None,
                            help="cap the supernet's training split [default: all]")
    estimators.add_argument("--threads", type=int, default=1, help="torch threads")
    estimators.add_argument("--store", default=None,
                            help="keep the supernet here (reused next time) [default: a temp folder]")
    estimators.add_argument("--json", default=None, metavar="PATH",
                            help="write every arch's score per estimator here")
    executors = parser.add_argument_group("section executors")
    executors.add_argument("--executors", nargs="+", default=["ray", "local"], choices=["ray", "local"])
    executors.add_argument("--tasks", type=int, default=8)
    executors.add_argument("--epochs", type=int, default=1)
    executors.add_argument("--max-train-samples", type=int, default=512)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 6 archs, 4 channels, 1 short epoch and 2 supernet epochs "
                        "on 256 samples; 4 trainings of 128 samples")
    args = parser.parse_args()
    if args.n < 2:
        parser.error("--n: at least 2 archs to rank")
    if args.quick:
        args.n, args.channels, args.short_epochs, args.supernet_epochs = 6, 4, 1, 2
        args.short_max_train_samples = args.supernet_max_train_samples = 256
        args.tasks, args.max_train_samples = 4, 128
    print(f"bench_accuracy: sections {', '.join(args.sections)}; nb201 C={args.channels} "
          f"N={args.cells}, {args.data}; start {_load()}", flush=True)  # fmt: skip
    rows: list[Row] = []
    for name in args.sections:
        print(f"section {name}:", flush=True)
        if name == "executors":
            print(f"  {args.tasks} trainings of {args.max_train_samples} samples x {args.epochs} "
                  "epoch(s)", flush=True)  # fmt: skip
        rows.extend(SECTIONS[name](args))
    _print_rows(rows)
    print(f"\nend: {_load()}")


if __name__ == "__main__":
    main()
