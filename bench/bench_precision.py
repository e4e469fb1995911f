"""Precision on this CPU: latency of fp32 / fp16 / int8 (static QDQ) / int8-dynamic, and accuracy drop.

Nets: ``--mbv3`` random archs of the default mbv3 space (160-224 px, 1000
classes; seeded), and the two user-style models of ``tests/models_torch.py``,
ResNet-18 and MobileNetV2 (224 px, 1000 classes), written from their papers.
Each is exported to ONNX and turned into its precision variants with
``fleetnas.controller.compress.make_variant``; int8 static is calibrated on
``--calibration-samples`` digits images (the training split, fitted to the
net's input), so no variant sees random data.

**Latency** (part 1): one real ``fleetnas-agent serve`` on loopback
(``controller/local_agents.py``), reached with ``AgentClient``; per thread
count (``--threads``, intra-op; inter-op 1) and round (``--rounds``), every
net's four precisions are measured back to back in an order that rotates
each round, so the fp32 baseline is always measured beside its variants and
a drift of the host moves both. The figure per variant is the median over
rounds of the per-round ratio ``variant median / fp32 median`` (below 1:
faster than fp32), with its range; absolute medians are printed too (they
drift ~7% between sessions on a shared host; the ratios do not need them).
After each call the bench waits until the agent's process tree is idle.

**Accuracy** (part 2): the same architectures at ``--acc-resolution`` px
(default 32: training at 224 px is hours on 2 cores), 10 classes, trained
briefly on digits (``--epochs`` of SGD on ``--train-samples`` training images,
``tests/models_torch.train_briefly``, BatchNorm statistics recomputed after;
3 epochs on 800 images gave 0.81-0.92 fp32 top-1 here), exported, made into variants
(int8 calibrated on the training split), and evaluated with onnxruntime on
the whole validation split (359 images): top-1 of fp32, top-1 of each
variant, the drop (fp32 minus variant, in points) and the top-1 agreement.
What is trained is therefore a 32 px, 10-class copy of each net, not the
1000-class net timed in part 1 (whose weights are the export's seeded ones;
latency does not depend on weight values).

**Search** (part 3, ``bench/_precision_search.py``; ``--no-search`` skips
it): per seed (``--search-seeds``), two measured NSGA-II searches of a small
NAS-Bench-201 skeleton on one loopback agent, accuracy from
``train:digits`` (as deployed: int8 variants evaluated with onnxruntime),
one with ``--precision fp32`` and one with ``--search-precisions`` (default
``fp32,int8``), both stopped at ``--search-measurements`` device
measurements; the hypervolume of each front against one reference point per
seed (the project's ``hypervolume``), normalised, their difference and ratio.

No assertions. Prints the load average at the start and end: figures taken
with a 1-minute load above the CPU count are suspect. Writes
``bench_precision.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from _agent_common import wait_quiet  # noqa: E402
from _precision_search import measure_search, search_table  # noqa: E402

from fleetnas.agent.client import AgentClient  # noqa: E402
from fleetnas.api.v1 import agent_pb2  # noqa: E402
from fleetnas.controller.accuracy import Dataset, load_digits  # noqa: E402
from fleetnas.controller.compress import (  # noqa: E402
    GENE_PRECISIONS,
    DatasetInputs,
    Precision,
    accuracy_drop,
    calibration_from_dataset,
    describe_model,
    make_variant,
)
from fleetnas.controller.export import arch_module, export_arch  # noqa: E402
from fleetnas.controller.local_agents import start_local_agents, stop_local_agents  # noqa: E402
from fleetnas.controller.spaces import MBv3Arch, MobileNetV3Space  # noqa: E402
from tests.models_torch import mobilenet_v2, resnet18, to_onnx, train_briefly  # noqa: E402

FULL_COMMAND = ".venv/bin/python bench/bench_precision.py --rounds 5 --threads 1 2"
USER_MODELS: dict[str, Callable[..., Any]] = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}


@dataclass
class Net:
    """One bench net: its deployed export (timed), and how to build a copy at a resolution and
    class count (trained for part 2)."""

    name: str
    export: Callable[[], bytes]
    build: Callable[[int, int], tuple[Any, tuple[int, ...]]]  # (resolution, classes) -> module, shape
    resolution: int
    variants: dict[Precision, bytes] = field(default_factory=dict)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cpus"


def _log(text: str) -> None:
    print(text, flush=True)


# --- the nets ------------------------------------------------------------------------
def _mbv3_net(arch: MBv3Arch, index: int) -> Net:
    def build(resolution: int, classes: int) -> tuple[Any, tuple[int, ...]]:
        space = MobileNetV3Space(resolutions=(resolution,), num_classes=classes)
        return arch_module(space, MBv3Arch(resolution, arch.stages))

    return Net(
        f"mbv3-{index}", lambda: export_arch(MobileNetV3Space(), arch).onnx_bytes, build,
        arch.resolution,
    )


def _user_net(name: str) -> Net:
    def build(resolution: int, classes: int) -> tuple[Any, tuple[int, ...]]:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            module = USER_MODELS[name](num_classes=classes)
        return module, (1, 3, resolution, resolution)

    return Net(name, lambda: to_onnx(*build(224, 1000)), build, 224)


def bench_nets(args: argparse.Namespace) -> list[Net]:
    space = MobileNetV3Space()
    rng = random.Random(args.seed)
    nets = [_mbv3_net(space.sample(rng), i) for i in range(args.mbv3)]
    return nets + [_user_net(name) for name in args.user_models]


def make_variants(fp32: bytes, digits: Dataset, args: argparse.Namespace) -> dict[Precision, bytes]:
    """The four variants of ``fp32``; int8 calibrated on digits' training split."""
    calibration = calibration_from_dataset(
        digits, describe_model(fp32).inputs, samples=args.calibration_samples, seed=args.seed
    )
    return {
        p: make_variant(fp32, p, calibration=calibration).onnx_bytes for p in args.precisions
    }


# --- part 1: latency -----------------------------------------------------------------
def _settings(threads: int, args: argparse.Namespace) -> agent_pb2.BenchmarkSettings:
    return agent_pb2.BenchmarkSettings(
        intra_op_threads=threads, inter_op_threads=1, warmup_runs=args.warmup,
        min_runs=args.min_runs, min_duration_s=args.min_duration, max_duration_s=args.max_duration,
        timeout_s=300.0,
    )  # fmt: skip


def measure_latency(
    nets: list[Net], client: AgentClient, agent_pid: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Per (net, threads, precision): per-round medians, ratios to fp32 and their summary."""
    shas = {
        (net.name, p): client.ensure_model(data) for net in nets for p, data in net.variants.items()
    }
    rows: list[dict[str, Any]] = []
    for threads in args.threads:
        settings = _settings(threads, args)
        for net in nets:
            medians: dict[Precision, list[float]] = {p: [] for p in net.variants}
            order = list(net.variants)
            for r in range(args.rounds):
                for p in order[r % len(order):] + order[: r % len(order)]:
                    result = client.benchmark(shas[(net.name, p)], settings)
                    medians[p].append(result.stats.median_ms)
                    wait_quiet(agent_pid)
            rows.extend(_latency_rows(net.name, threads, medians))
            _log(f"  {net.name} @ {threads}t: " + ", ".join(
                f"{p.value} {statistics.median(m):.2f} ms" for p, m in medians.items()
            ) + f"  ({_load()})")  # fmt: skip
    return rows


def _latency_rows(
    name: str, threads: int, medians: dict[Precision, list[float]]
) -> list[dict[str, Any]]:
    base = medians[Precision.FP32]
    rows = []
    for p, values in medians.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        rows.append({
            "net": name, "threads": threads, "precision": p.value,
            "median_ms": statistics.median(values), "medians_ms": values,
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        })  # fmt: skip
    return rows


def latency_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'net':<14}{'thr':>4}  {'precision':<13}{'median ms':>10}  "
             f"{'vs fp32':>8}  {'range':<13}"]  # fmt: skip
    for row in rows:
        lines.append(
            f"{row['net']:<14}{row['threads']:>4}  {row['precision']:<13}"
            f"{row['median_ms']:>10.2f}  {row['ratio']:>7.2f}x  "
            f"[{row['ratio_min']:.2f}, {row['ratio_max']:.2f}]"
        )
    return "\n".join(lines)


# --- part 2: accuracy ----------------------------------------------------------------
def measure_accuracy(nets: list[Net], digits: Dataset, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per net: train a 10-class copy at ``--acc-resolution`` briefly, then the drop per variant."""
    rows = []
    for net in nets:
        started = time.monotonic()
        module, shape = net.build(args.acc_resolution, digits.num_classes)
        inputs = DatasetInputs(digits, shape[1:])  # type: ignore[arg-type]
        train_briefly(module, inputs, epochs=args.epochs, lr=args.lr,
                      max_samples=args.train_samples, seed=args.seed)  # fmt: skip
        fp32 = to_onnx(module, shape)
        trained_s = time.monotonic() - started
        for p, data in make_variants(fp32, digits, args).items():
            drop = accuracy_drop(fp32, data, digits)
            rows.append({
                "net": net.name, "resolution": args.acc_resolution, "precision": p.value,
                "fp32_top1": drop.fp32.top1, "top1": drop.variant.top1, "drop": drop.drop,
                "agreement": drop.top1_agreement, "max_abs_logit_diff": drop.max_abs_logit_diff,
                "samples": drop.variant.samples, "train_s": trained_s,
            })  # fmt: skip
        _log(f"  {net.name}: fp32 top-1 {rows[-1]['fp32_top1']:.3f} after {trained_s:.0f} s of "
             f"training ({_load()})")  # fmt: skip
    return rows


def accuracy_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'net':<14}{'precision':<13}{'fp32 top-1':>11}{'top-1':>8}{'drop (pt)':>10}"
             f"{'agree':>7}{'max|dlogit|':>12}"]  # fmt: skip
    for row in rows:
        lines.append(
            f"{row['net']:<14}{row['precision']:<13}{row['fp32_top1']:>11.3f}{row['top1']:>8.3f}"
            f"{100 * row['drop']:>+10.1f}{row['agreement']:>7.3f}{row['max_abs_logit_diff']:>12.3f}"
        )
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"Full figures, on a quiet machine: {FULL_COMMAND}   Smoke run: --quick",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mbv3", type=int, default=5, help="random mbv3 archs (default 5)")
    parser.add_argument("--user-models", nargs="*", default=list(USER_MODELS),
                        choices=list(USER_MODELS))  # fmt: skip
    parser.add_argument("--precisions", nargs="+", default=[p.value for p in GENE_PRECISIONS],
                        choices=[p.value for p in GENE_PRECISIONS])  # fmt: skip
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--min-runs", type=int, default=10)
    parser.add_argument("--min-duration", type=float, default=0.5)
    parser.add_argument("--max-duration", type=float, default=5.0)
    parser.add_argument("--calibration-samples", type=int, default=32)
    parser.add_argument("--acc-resolution", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.02, help="SGD learning rate (momentum 0.9)")
    parser.add_argument("--train-samples", type=int, default=800)
    parser.add_argument("--no-accuracy", action="store_true", help="skip part 2")
    parser.add_argument("--no-latency", action="store_true", help="skip part 1")
    parser.add_argument("--no-search", action="store_true", help="skip part 3")
    search = parser.add_argument_group("part 3: search with and without the precision gene")
    search.add_argument("--search-seeds", type=int, default=2, help="seeds 0..N-1 (default 2)")
    search.add_argument("--search-first-seed", type=int, default=0, help="first seed (default 0)")
    search.add_argument("--search-measurements", type=int, default=30,
                        help="device measurements per search (--max-measurements; default 30)")
    search.add_argument("--search-population", type=int, default=6)
    search.add_argument("--search-precisions", default="fp32,int8",
                        help="the gene's precisions (default fp32,int8)")
    search.add_argument("--search-channels", type=int, default=8, help="NB201 skeleton channels")
    search.add_argument("--search-epochs", type=int, default=2)
    search.add_argument("--search-train-samples", type=int, default=400)
    search.add_argument("--search-val-samples", type=int, default=200)
    search.add_argument("--search-max-runs", type=int, default=50)
    search.add_argument("--search-max-duration", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for bench_precision.json")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 mbv3 net + MobileNetV2, 1 round, 1 thread, short loops; "
                        "one seed of 6-measurement searches")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.mbv3, args.user_models, args.rounds, args.threads = 1, ["mobilenet_v2"], 1, [1]
        args.warmup, args.min_runs, args.min_duration = 3, 5, 0.1
        args.calibration_samples, args.epochs, args.train_samples = 8, 1, 200  # near chance
        args.search_seeds, args.search_measurements, args.search_population = 1, 6, 3
        args.search_epochs, args.search_train_samples, args.search_val_samples = 1, 128, 60
        args.search_max_runs, args.search_max_duration = 10, 0.1
    args.precisions = [Precision(p) for p in args.precisions]
    if Precision.FP32 not in args.precisions:
        args.precisions.insert(0, Precision.FP32)  # the baseline
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _log(f"bench_precision: start ({_load()})")
    digits = load_digits()
    nets = bench_nets(args)
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        if not args.no_latency:
            for net in nets:
                started = time.monotonic()
                fp32 = net.export()
                net.variants = make_variants(fp32, digits, args)
                _log(f"  {net.name}: {net.resolution} px, variants made in "
                     f"{time.monotonic() - started:.0f} s")  # fmt: skip
            agents = start_local_agents(1, Path(tmp) / "agents", name_prefix="bench")
            try:
                with AgentClient(agents[0].address) as client:
                    report["latency"] = measure_latency(nets, client, agents[0].pid, args)
            finally:
                stop_local_agents(agents)
            _log("\nLatency (ratio = median over rounds of variant/fp32, measured side by side):")
            _log(latency_table(report["latency"]))
        if not args.no_accuracy:
            report["accuracy"] = measure_accuracy(nets, digits, args)
            _log(f"\nAccuracy on digits ({args.acc_resolution} px copies, {args.epochs} epochs on "
                 f"{args.train_samples} images; drop = fp32 - variant):")  # fmt: skip
            _log(accuracy_table(report["accuracy"]))
        if not args.no_search:
            report["search"] = measure_search(args, Path(tmp))
            _log(f"\nSearch: nb201 c{args.search_channels}n1, measured, NSGA-II population "
                 f"{args.search_population}, {args.search_measurements} device measurements per "
                 f"run, train:digits {args.search_epochs} epochs on {args.search_train_samples} "
                 f"images, {args.search_val_samples} validation ({_load()}):")  # fmt: skip
            _log(search_table(report["search"], args.search_precisions))
    out = args.out or Path(".")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_precision.json").write_text(json.dumps(report, indent=2))
    _log(f"\nbench_precision: end ({_load()}); wrote {out / 'bench_precision.json'}")


if __name__ == "__main__":
    main()
