"""Search efficiency: Pareto-front quality per device measurement, fleetnas vs baselines.

Problem (multi-device): NAS-Bench-201 (15,625 archs, the standard skeleton);
maximise accuracy, minimise latency on two "devices", ``cpu-1t`` and
``cpu-2t`` (this machine's CPU with 1 and 2 onnxruntime intra-op threads).

Ground truth, stated:

* **latency** is LUT-based: each of the space's 16 distinct blocks is
  exported to ONNX and timed once, in this process, with onnxruntime
  (graph optimisation ALL, 10 warm-up runs, median of 60 runs) at 1 and at 2
  threads; an arch's latency on a device is the sum of its blocks' latencies
  times a fixed per-arch factor in [0.97, 1.03] (a hash of arch and device),
  which stands in for what a block sum misses. The block table is kept next
  to the cache and reused, so reruns score the same problem (``--retime``);
* **accuracy** is the NASWOT score (batch 16, seed 0) of the arch's cell on
  a reduced skeleton (8 channels, 1 cell per stage: ~0.2 s per arch here
  instead of ~0.75 s on the full one), computed once per arch and cached on
  disk (``--cache``; a first run scores a few thousand archs, ~10 minutes).
  ``--accuracy synthetic`` uses an exact, instant stand-in instead (the sum
  of per-op capacities over the cell's *live* edges plus a fixed per-arch
  jitter: disconnected cells score 0), for long runs (``--budget 800``) that
  measure the controller's own cost rather than the front's quality;
* ``--noise F`` makes each device measurement noisy as a shared host is:
  the true latency times ``1 + F * |g|`` (``g`` standard normal, a fixed
  draw per (arch, device): interference only ever adds time), memoised like
  every measurement.

A **device measurement** is one call of the latency oracle for one
(arch, device): what a real search would send to a device. Every method
memoises the oracle (a repeated arch costs nothing, as the cost DB makes
it for fleetnas), and stops after ``--budget`` measurements.

Methods (same objective functions, same budget, seeds 0..``--seeds``-1):

* ``fleetnas measured``: the driver in measured mode, NSGA-II (population 20);
  every candidate measured on both devices;
* ``fleetnas hybrid``: the driver in hybrid mode without a LUT: the online
  ridge surrogate predicts latency, only candidates that could enter the
  front are measured (it evaluates more candidates per measurement);
* ``fleetnas hybrid+LUT``: hybrid with a LUT on each device (the ground
  truth's own blocks, so its predictions are off only by the per-arch factor:
  an optimistic case, shown for reference);
* ``random``: uniform samples, all measured;
* ``optuna NSGA-II``: Optuna's ``NSGAIISampler`` (population 20), the 6
  edges as categorical parameters.

Quality is the hypervolume of the front of the archs *measured* so far
(true values), normalised: the reference point is the 5th percentile of
accuracy over 500 uniformly random archs and the slowest arch of the space
on each device; each axis is scaled by (best value in the space, or seen by
any method for accuracy − reference), so 1 would be a single arch best at
everything. The table prints the mean ± std over seeds at 25, 50, 100 and
200 measurements, and the candidates each method had evaluated when its
budget ran out. A second table says, per method, how many candidates it
evaluated and how many of them it measured (the rest were predicted), how
many measurements it spent of its budget and why it stopped, and the
controller's own CPU time per measurement: the process's CPU time for the
run minus the time spent in the latency oracle and the accuracy function
(what a real search spends on devices and estimators). Nothing is asserted.

    .venv/bin/python bench/bench_search.py [--seeds 5] [--budget 200] [--quick]
    .venv/bin/python bench/bench_search.py --accuracy synthetic --budget 800 \
        --methods "fleetnas hybrid,fleetnas hybrid+LUT" [--noise 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fleetnas.controller.driver import (
    CallableMeasurer,
    SearchConfig,
    SearchDriver,
    Target,
)
from fleetnas.controller.lut import LatencyPredictor
from fleetnas.controller.search import hypervolume, pareto_indices
from fleetnas.controller.spaces import NB201Arch, NB201Space, get_space
from fleetnas.controller.spaces._nb201 import live_edges

DEVICES = {"cpu-1t": 1, "cpu-2t": 2}
OBJECTIVES = ("accuracy", "latency[cpu-1t]", "latency[cpu-2t]")
CHECKPOINTS = (25, 50, 100, 200)
PROXY_CONFIG = {"channels": 8, "cells_per_stage": 1}
DEFAULT_CACHE = Path.home() / ".cache" / "fleetnas" / "bench" / "nb201-c8n1-naswot-b16.json"
BLOCKS_FILE = "nb201-blocks-ort.json"  # next to the cache: the timed block table


# -- ground truth -------------------------------------------------------------------------------


def time_blocks(space: NB201Space, runs: int = 60) -> dict[str, dict[str, float]]:
    """Median onnxruntime latency (ms) of every distinct block, per device (thread count)."""
    import onnxruntime as ort

    from fleetnas.controller.export import export_block

    table: dict[str, dict[str, float]] = {d: {} for d in DEVICES}
    for block in space.all_blocks():
        model = export_block(space, block)
        feed = {model.input_name: np.random.default_rng(0).standard_normal(
            model.input_shape).astype(np.float32)}
        for device, threads in DEVICES.items():
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(model.onnx_bytes, options,
                                           providers=["CPUExecutionProvider"])
            for _ in range(10):
                session.run(None, feed)
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                session.run(None, feed)
                samples.append((time.perf_counter() - start) * 1e3)
            table[device][block.key] = statistics.median(samples)
    return table


def _factor(encoding: str, device: str) -> float:
    u = (zlib.crc32(f"{device}/{encoding}".encode()) % 1_000_000) / 1_000_000
    return 0.97 + 0.06 * u


#: capacity of each op for the synthetic accuracy (``none`` and dead edges give nothing)
OP_CAPACITY = {"none": 0.0, "skip_connect": 0.3, "avg_pool_3x3": 0.2, "nor_conv_1x1": 0.6,
               "nor_conv_3x3": 1.0}


def synthetic_accuracy(arch: NB201Arch, encoding: str) -> float:
    """An exact, instant stand-in for an accuracy: capacity of the live edges + fixed jitter."""
    capacity = sum(OP_CAPACITY[arch.ops[i]] for i in live_edges(arch.ops))
    return 40.0 + 8.0 * capacity + 2.0 * (zlib.crc32(encoding.encode()) % 1000) / 1000


class GroundTruth:
    """True latency (LUT sum × per-arch factor) and accuracy (NASWOT, disk-cached)."""

    def __init__(self, space: NB201Space, blocks: dict[str, dict[str, float]], cache: Path,
                 *, synthetic: bool = False) -> None:
        from fleetnas.controller.accuracy import NaswotEstimator

        self.space = space
        self.synthetic = synthetic
        self.proxy_space = get_space("nb201", PROXY_CONFIG)  # same archs, smaller networks
        self.blocks = blocks
        self.cache_path = cache
        self.accuracy_cache: dict[str, float] = (
            json.loads(cache.read_text()) if cache.is_file() else {}
        )
        self._dirty = 0
        self._estimator = NaswotEstimator(batch_size=16, seed=0)

    def latency(self, arch: Any, device: str) -> float:
        total = sum(self.blocks[device][b.key] for b in self.space.blocks(arch))
        return total * _factor(self.space.encode(arch), device)

    def accuracy(self, arch: Any) -> float:
        key = self.space.encode(arch)
        if self.synthetic:
            return synthetic_accuracy(arch, key)
        if key not in self.accuracy_cache:
            self.accuracy_cache[key] = float(self._estimator.estimate(self.proxy_space, arch))
            self._dirty += 1
            if self._dirty >= 200:
                self.save()
        return self.accuracy_cache[key]

    def save(self) -> None:
        if self._dirty:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.accuracy_cache))
            os.replace(tmp, self.cache_path)
            self._dirty = 0


def _noise_factor(encoding: str, device: str, noise: float) -> float:
    """``1 + noise * |g|``, ``g`` a fixed standard-normal draw per (arch, device)."""
    if noise <= 0:
        return 1.0
    g = random.Random(f"bench_search/noise/{device}/{encoding}").gauss(0.0, 1.0)
    return 1.0 + noise * abs(g)


@dataclass
class Oracle:
    """The device-measurement oracle: memoised, counted, logged in call order.

    ``cpu_s`` is the CPU time spent inside it (and in the accuracy function,
    through :meth:`accuracy`): what the controller's own cost leaves out.
    """

    truth: GroundTruth
    budget: int
    noise: float = 0.0
    calls: int = 0
    cpu_s: float = 0.0
    known: dict[tuple[str, str], float] = field(default_factory=dict)
    # (calls so far, encoding) each time an arch becomes measured on every device
    completed: list[tuple[int, str]] = field(default_factory=list)
    candidates_at: list[tuple[int, int]] = field(default_factory=list)

    def measure(self, arch: Any, device: str) -> float:
        started = time.process_time()
        encoding = self.truth.space.encode(arch)
        key = (encoding, device)
        if key not in self.known:
            self.calls += 1
            self.known[key] = (self.truth.latency(arch, device)
                               * _noise_factor(encoding, device, self.noise))
            if all((encoding, d) in self.known for d in DEVICES):
                self.completed.append((self.calls, encoding))
        self.cpu_s += time.process_time() - started
        return self.known[key]

    def accuracy(self, arch: Any) -> float:
        started = time.process_time()
        value = self.truth.accuracy(arch)
        self.cpu_s += time.process_time() - started
        return value

    @property
    def spent(self) -> bool:
        return self.calls >= self.budget


# -- methods -------------------------------------------------------------------------------------


@dataclass
class Run:
    """One method on one seed: what it evaluated, measured and spent, and why it stopped."""

    candidates: int = 0
    measured_candidates: int = 0
    controller_cpu_s: float = 0.0
    stop: str = "budget"


def run_fleetnas(truth: GroundTruth, oracle: Oracle, seed: int, mode: str, strategy: dict[str, Any],
                 luts: dict[str, LatencyPredictor] | None = None) -> Run:
    """Step the driver until the oracle's measurement budget is spent (the driver's own
    ``max_measurements``) or the candidate cap (10 per measurement) is reached."""
    targets = [Target.device_class(name, {"intra_op_threads": t}) for name, t in DEVICES.items()]
    cap = oracle.budget * 10  # candidates: hybrid may evaluate many per measurement
    budget = oracle.budget // len(DEVICES) if mode == "measured" else cap
    config = SearchConfig.build(
        space="nb201", targets=targets, objectives=["accuracy"], accuracy=None,
        computed=["accuracy"], strategy=strategy, mode=mode, budget=budget, seed=seed,
        max_measurements=oracle.budget,
    )  # fmt: skip
    measurer = CallableMeasurer(lambda arch, target: oracle.measure(arch, target.key))
    driver = SearchDriver.create(config, space=truth.space, measurer=measurer,
                                 callables={"accuracy": oracle.accuracy}, luts=luts)
    while not oracle.spent and driver.step():
        oracle.candidates_at.append((oracle.calls, driver.trials_done()))
    measured = sum(1 for t in driver.engine.complete()
                   if t.evaluation is not None and t.evaluation.metadata.get("source") == "measured")
    stop = "measurements" if oracle.spent else driver.stop_reason() or "budget"
    return Run(driver.trials_done(), measured, stop=stop)


def run_optuna(truth: GroundTruth, oracle: Oracle, seed: int, population: int) -> Run:
    import optuna

    from fleetnas.controller.spaces._nb201 import OPS

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)
    trials = 0

    def objective(trial: Any) -> tuple[float, float, float]:
        ops = tuple(trial.suggest_categorical(f"edge{i}", list(OPS)) for i in range(6))
        arch = NB201Arch(ops)
        return (oracle.accuracy(arch), oracle.measure(arch, "cpu-1t"),
                oracle.measure(arch, "cpu-2t"))

    while not oracle.spent:
        study.optimize(objective, n_trials=1)
        trials += 1
        oracle.candidates_at.append((oracle.calls, trials))
    return Run(trials, trials, stop="measurements")


# -- scoring -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    reference: tuple[float, float, float]  # accuracy, latency 1t, latency 2t (true units)
    ideal: tuple[float, float, float]


def true_point(truth: GroundTruth, encoding: str) -> tuple[float, float, float]:
    arch = truth.space.decode(encoding)
    return (truth.accuracy(arch), truth.latency(arch, "cpu-1t"), truth.latency(arch, "cpu-2t"))


def normalised_hv(points: Sequence[tuple[float, float, float]], scale: Scale) -> float:
    """HV in [0, 1]: minimisation form, reference at 1, ideal at 0 on every axis."""
    (ra, r1, r2), (ia, i1, i2) = scale.reference, scale.ideal
    normalised = [((ia - a) / (ia - ra), (l1 - i1) / (r1 - i1), (l2 - i2) / (r2 - i2))
                  for a, l1, l2 in points]
    front = [normalised[i] for i in pareto_indices(normalised)]
    return hypervolume(front, (1.0, 1.0, 1.0))


def hv_at(truth: GroundTruth, oracle: Oracle, scale: Scale, budget: int) -> float:
    points = [true_point(truth, e) for calls, e in oracle.completed if calls <= budget]
    return normalised_hv(points, scale)


def candidates_evaluated(oracle: Oracle) -> int:
    return max((n for _, n in oracle.candidates_at), default=0)


# -- main ------------------------------------------------------------------------------------------


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=200, help="device measurements per run")
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--accuracy", choices=("naswot", "synthetic"), default="naswot")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="measurement noise: latency x (1 + F |g|) per (arch, device)")
    parser.add_argument("--methods", help="comma-separated subset of the methods")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="NASWOT scores per arch (reused between runs)")
    parser.add_argument("--retime", action="store_true",
                        help="time the blocks again (default: reuse the table next to --cache)")
    parser.add_argument("--out", type=Path, help="also write the raw results as JSON")
    parser.add_argument("--quick", action="store_true", help="2 seeds, budget 50")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget = 2, 50
    return args


def _blocks(space: NB201Space, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    blocks_path = args.cache.with_name(BLOCKS_FILE)
    if blocks_path.is_file() and not args.retime:
        print(f"load {os.getloadavg()[0]:.2f}; block latencies from {blocks_path} (--retime: "
              "measure them again)")
        return dict(json.loads(blocks_path.read_text()))
    print(f"load {os.getloadavg()[0]:.2f}; timing the 16 blocks with onnxruntime (1 and 2 "
          "threads)")
    blocks = time_blocks(space)
    blocks_path.parent.mkdir(parents=True, exist_ok=True)
    blocks_path.write_text(json.dumps(blocks, indent=1))
    return blocks


def _methods(truth: GroundTruth, args: argparse.Namespace,
             luts: dict[str, LatencyPredictor]) -> dict[str, Callable[[Oracle, int], Run]]:
    nsga2 = {"kind": "nsga2", "population_size": args.population}
    methods: dict[str, Callable[[Oracle, int], Run]] = {
        "fleetnas measured": lambda o, s: run_fleetnas(truth, o, s, "measured", nsga2),
        "fleetnas hybrid": lambda o, s: run_fleetnas(truth, o, s, "hybrid", nsga2),
        "fleetnas hybrid+LUT": lambda o, s: run_fleetnas(truth, o, s, "hybrid", nsga2, luts),
        "random": lambda o, s: run_fleetnas(truth, o, s, "measured", {"kind": "random"}),
        "optuna NSGA-II": lambda o, s: run_optuna(truth, o, s, args.population),
    }
    if args.methods:
        chosen = [m.strip() for m in args.methods.split(",")]
        unknown = [m for m in chosen if m not in methods]
        if unknown:
            raise SystemExit(f"unknown methods {unknown}; choose from {list(methods)}")
        methods = {m: methods[m] for m in chosen}
    return methods


def _run_all(truth: GroundTruth, args: argparse.Namespace,
             methods: dict[str, Callable[[Oracle, int], Run]],
             ) -> tuple[dict[str, list[Oracle]], dict[str, list[Run]], dict[str, float]]:
    oracles: dict[str, list[Oracle]] = {}
    runs: dict[str, list[Run]] = {}
    seconds: dict[str, float] = {}
    for name, method in methods.items():
        t = time.monotonic()
        oracles[name], runs[name] = [], []
        for seed in range(args.seeds):
            oracle = Oracle(truth, args.budget, noise=args.noise)
            cpu = time.process_time()
            run = method(oracle, seed)
            run.controller_cpu_s = time.process_time() - cpu - oracle.cpu_s
            oracles[name].append(oracle)
            runs[name].append(run)
        truth.save()
        seconds[name] = time.monotonic() - t
        print(f"  {name}: {seconds[name]:.0f} s", flush=True)
    return oracles, runs, seconds


def _print_costs(runs: dict[str, list[Run]], oracles: dict[str, list[Oracle]], budget: int) -> None:
    print()
    print("Per method (mean over seeds): candidates evaluated, of them measured (the rest "
          "predicted), measurements spent of the budget, stop reasons, controller CPU per "
          "measurement")
    header = (f"{'method':<22}{'candidates':>12}{'measured':>10}{'share':>8}"
              f"{'spent':>14}{'ctl ms/meas':>13}  stopped by")
    print(header)
    print("-" * len(header))
    for name, method_runs in runs.items():
        candidates = statistics.mean(r.candidates for r in method_runs)
        measured = statistics.mean(r.measured_candidates for r in method_runs)
        spent = statistics.mean(o.calls for o in oracles[name])
        ms = statistics.mean(1e3 * r.controller_cpu_s / max(o.calls, 1)
                             for r, o in zip(method_runs, oracles[name], strict=True))
        stops = ", ".join(f"{reason} x{n}" for reason, n in sorted(
            {r.stop: sum(1 for x in method_runs if x.stop == r.stop) for r in method_runs}.items()))
        share = measured / candidates if candidates else 0.0
        print(f"{name:<22}{candidates:>12.0f}{measured:>10.0f}{share:>8.0%}"
              f"{f'{spent:.0f}/{budget}':>14}{ms:>13.2f}  {stops}")


def main() -> None:
    args = _arguments()
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    started = time.monotonic()
    space = get_space("nb201")
    assert isinstance(space, NB201Space)
    blocks = _blocks(space, args)
    truth = GroundTruth(space, blocks, args.cache, synthetic=args.accuracy == "synthetic")
    luts = {d: LatencyPredictor(space, blocks[d], device=d) for d in DEVICES}

    archs = list(space.archs())
    lat = {d: [truth.latency(a, d) for a in archs] for d in DEVICES}
    sample = random.Random("bench_search/reference").sample(archs, 500)
    print(f"scoring the reference sample (500 random archs; {args.accuracy}"
          + (f", cached in {args.cache})" if args.accuracy == "naswot" else ")"), flush=True)
    sample_acc = sorted(truth.accuracy(a) for a in sample)
    truth.save()
    # Worst-case reference: the 5th percentile of accuracy (a few degenerate cells score far
    # below everything else) and the slowest arch of the space on each device.
    reference = (sample_acc[len(sample_acc) // 20], max(lat["cpu-1t"]), max(lat["cpu-2t"]))

    methods = _methods(truth, args, luts)
    oracles, runs, seconds = _run_all(truth, args, methods)

    best_acc = max(truth.accuracy(space.decode(e)) for method_oracles in oracles.values()
                   for o in method_oracles for _, e in o.completed)
    scale = Scale(reference, (best_acc, min(lat["cpu-1t"]), min(lat["cpu-2t"])))
    results: dict[str, dict[str, Any]] = {}
    for name, method_oracles in oracles.items():
        results[name] = {
            "hv": {str(c): [hv_at(truth, o, scale, c) for o in method_oracles] for c in checkpoints},
            "candidates": [candidates_evaluated(o) for o in method_oracles],
            "measurements": [o.calls for o in method_oracles],
            "runs": [vars(r) for r in runs[name]],
        }

    print()
    print(f"Normalised hypervolume after N device measurements (mean ± std over {args.seeds} "
          f"seeds; accuracy {args.accuracy}, noise {args.noise:g}); candidates evaluated within "
          "the budget; wall time of all seeds")
    header = (f"{'method':<22}" + "".join(f"{'N=' + str(c):>16}" for c in checkpoints)
              + f"{'candidates':>12}{'wall s':>8}")
    print(header)
    print("-" * len(header))
    for name in methods:
        cells = []
        for c in checkpoints:
            hv = results[name]["hv"][str(c)]
            std = statistics.stdev(hv) if len(hv) > 1 else 0.0
            cells.append(f"{statistics.mean(hv):.3f} ± {std:.3f}")
        n = statistics.mean(results[name]["candidates"])
        print(f"{name:<22}" + "".join(f"{cell:>16}" for cell in cells) + f"{n:>12.0f}"
              + f"{seconds[name]:>8.0f}")
    _print_costs(runs, oracles, args.budget)
    print()
    print(f"reference point: accuracy {reference[0]:.1f} (5th percentile of 500 random archs), "
          f"latency {reference[1]:.3f} / {reference[2]:.3f} ms; ideal: accuracy {best_acc:.1f}, "
          f"latency {scale.ideal[1]:.3f} / {scale.ideal[2]:.3f} ms")
    block_sum = {d: sum(blocks[d].values()) for d in DEVICES}
    print(f"block tables: {len(blocks['cpu-1t'])} blocks, sums {block_sum['cpu-1t']:.2f} ms (1t) "
          f"/ {block_sum['cpu-2t']:.2f} ms (2t); NASWOT scores cached: {len(truth.accuracy_cache)}")
    print(f"total {time.monotonic() - started:.0f} s; load {os.getloadavg()[0]:.2f}")
    if args.out:
        args.out.write_text(json.dumps({"results": results, "seconds": seconds,
                                        "reference": reference, "ideal": scale.ideal,
                                        "blocks": blocks}, indent=2))


if __name__ == "__main__":
    main()
