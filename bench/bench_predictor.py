"""Predictors on a shared host: test-retest of the measurement protocols, then accuracy.

Against real loopback agents (one "device under test", ``dut``, and source
devices that differ from it), for each thread count and host load (``quiet``,
and ``busy``: one core kept busy by a spinning subprocess this bench starts,
bounded in time, and stops), in a fresh cost DB per condition:

1. **Test-retest.** The same ``--n`` eval archs (+ ``--calibration-n``
   calibration archs) measured twice, minutes apart: by the agent's plain
   method (one benchmark with the agent's defaults, its median), and by the
   shared-host protocol (``fleetnas.controller.predict.measure_robust``: two
   independent runs), whose rounds are scored under every statistic of
   ``STATISTICS``; and the same protocol with the paired method
   (``--no-paired`` skips it), which cancels slow drift within a round. Share of archs whose two figures agree within +-3 % /
   +-10 %, Kendall tau between the two, device seconds per measurement.
   Targets (mbv3, 1 thread): within +-3 % for >= 90 % of archs under the
   background load, within +-2 % on a quiet host.
2. **Accuracy.** Ground truth: the protocol's first run (default
   statistic). Methods, each calibrated (``a * sum + b``) on the same
   calibration archs and scored on the eval archs:

   * ``block LUT``: ``fleetnas.controller.lut.build_lut`` as today (agent
     defaults, block medians);
   * ``block LUT, <statistic>``: the same block measurements, each entry
     the LUT library's robust statistic of its stored raw samples
     (``lut.entry_latency``; ``fleetnas lut build --statistic``), one row per
     statistic of ``lut.STATISTICS``: the row that scores best is the
     default's evidence;
   * ``kernel LUT``: ``build_kernel_lut`` over the calibration and eval
     archs' kernels, measured by the protocol;
   * ``transfer N=..``: ``transfer`` from the source devices (measured once,
     on the quiet host, into a DB merged into each condition's), with N of
     the DUT's own measurements.

   Share within +-10 %, RMSPE, Kendall tau, device minutes to build (the
   measurements the method needs on the DUT). Targets: >= 95 % within +-10 %
   and tau >= 0.9 at 1 and 2 threads on a quiet host, >= 90 % under the
   background load; transfer with N = 20: tau >= 0.9.

Source devices: loopback agents that differ from the DUT in threads and
optimisation level (this machine's onnxruntime has only the CPU execution
provider that runs nodes, and the exporter only fp32: no provider or
precision sources). A source with the DUT's own settings is never used.

The load average is printed with every phase: on a shared host it is part of
the result. ONNX exports never run alongside a measurement: the archs are all
exported first (so the first condition's load figures are not the exporter's),
blocks and kernels before their phase's measurements. No assertions.

    .venv/bin/python bench/bench_predictor.py [--quick] [--threads 1 2] [--load quiet busy]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.export import export_arch
from fleetnas.controller.fleet import Device, Fleet
from fleetnas.controller.local_agents import LocalAgent, start_local_agents, stop_local_agents
from fleetnas.controller.lut import STATISTICS as LUT_STATISTICS
from fleetnas.controller.lut import (
    accuracy,
    build_lut,
    entry_latency,
    fit_calibration,
    kendall_tau_b,
    sample_archs,
)
from fleetnas.controller.predict import (
    STATISTICS,
    KernelPredictor,
    Protocol,
    ProtocolReport,
    build_kernel_lut,
    measure_robust,
    reference_archs,
    round_samples,
    transfer,
)
from fleetnas.controller.scheduler import Job, ModelRef, Scheduler
from fleetnas.controller.spaces import Arch, SearchSpace, get_space

ALL = agent_pb2.GRAPH_OPTIMIZATION_ALL
# name -> (threads, optimisation level) of the source devices
SOURCE_CONFIGS: dict[str, tuple[int, int]] = {
    "src-1t-all": (1, ALL),
    "src-2t-all": (2, ALL),
    "src-1t-basic": (1, agent_pb2.GRAPH_OPTIMIZATION_BASIC),
    "src-1t-disable": (1, agent_pb2.GRAPH_OPTIMIZATION_DISABLE),
    "src-2t-extended": (2, agent_pb2.GRAPH_OPTIMIZATION_EXTENDED),
}
TRANSFER_PURPOSE = "transfer-train"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cpus"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text} ({_load()})", flush=True)


@contextmanager
def background_load(busy: bool, bound_s: float) -> Iterator[None]:
    """One core kept busy by a child that spins for at most ``bound_s`` and is stopped at
    exit (so it ends even if this bench is killed)."""
    if not busy:
        yield
        return
    code = f"import time\nend = time.time() + {bound_s}\nwhile time.time() < end:\n    pass\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield
    finally:
        child.kill()
        child.wait()


@dataclass
class Condition:
    """One (threads, load) cell: its DB, scheduler, the DUT's request, the archs."""

    threads: int
    load: str
    db: CostDB
    scheduler: Scheduler
    request: agent_pb2.BenchmarkSettings
    space: SearchSpace
    calibration: list[Arch]
    evaluation: list[Arch]
    args: argparse.Namespace

    @property
    def label(self) -> str:
        return f"{self.threads}thr/{self.load}"


def arch_refs(cond: Condition, archs: Sequence[Arch]) -> dict[str, ModelRef]:
    """Encoding -> model of each arch, recorded in the DB with its origin."""
    refs = {}
    for arch in archs:
        exported = export_arch(cond.space, arch, cache_dir=cond.args.cache_dir)
        cond.db.record_model(exported.sha256, len(exported.onnx_bytes),
                             space=cond.space.identity(), arch=cond.space.encode(arch))
        refs[cond.space.encode(arch)] = ModelRef.from_bytes(exported.onnx_bytes)
    return refs


# -- test-retest -------------------------------------------------------------------------


def agreement(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    keys = sorted(set(a) & set(b))
    ratios = [a[k] / b[k] for k in keys]
    return {
        "n": len(keys),
        "within_3": sum(abs(r - 1) <= 0.03 for r in ratios) / len(keys),
        "within_2": sum(abs(r - 1) <= 0.02 for r in ratios) / len(keys),
        "within_10": sum(abs(r - 1) <= 0.10 for r in ratios) / len(keys),
        "median_ratio": statistics.median(ratios),
        "tau": kendall_tau_b([a[k] for k in keys], [b[k] for k in keys]),
    }


def plain_run(cond: Condition, refs: dict[str, ModelRef]) -> tuple[dict[str, float], float]:
    """One fresh benchmark per arch with the agent's defaults: (tag -> median ms, device s)."""
    jobs = [Job.on_device(ref, "dut", cond.request, tag=tag) for tag, ref in refs.items()]
    outcomes = cond.scheduler.run(jobs, use_cache=False)
    device_s = sum(a.ended_at - a.started_at for o in outcomes for a in o.attempts)
    return {str(o.job.tag): o.latency_ms for o in outcomes if o.ok and o.latency_ms}, device_s


def by_statistic(cond: Condition, report: ProtocolReport) -> dict[str, dict[str, float]]:
    """Statistic name -> tag -> figure, all from the same stored rounds."""
    out: dict[str, dict[str, float]] = {name: {} for name in STATISTICS}
    keep = cond.args.protocol.keep
    for tag, result in report.results.items():
        rounds = [round_samples(m) for m in
                  (cond.db.get_measurement(uid) for uid in result.measurement_uids) if m]
        for name, statistic in STATISTICS.items():
            out[name][tag] = statistic(rounds, keep)
    return out


def test_retest(cond: Condition, refs: dict[str, ModelRef]) -> tuple[list[dict[str, Any]],
                                                                       ProtocolReport]:
    rows = []
    say(f"[{cond.label}] plain run A")
    plain_a, plain_s = plain_run(cond, refs)
    say(f"[{cond.label}] protocol run A")
    run_a = measure_robust(refs, "dut", cond.request, db=cond.db, scheduler=cond.scheduler,
                           protocol=cond.args.protocol, reuse_since=time.time())
    say(f"[{cond.label}] plain run B")
    plain_b, plain_s_b = plain_run(cond, refs)
    say(f"[{cond.label}] protocol run B")
    run_b = measure_robust(refs, "dut", cond.request, db=cond.db, scheduler=cond.scheduler,
                           protocol=cond.args.protocol, reuse_since=time.time())
    if cond.args.paired:
        rows += paired_retest(cond, refs)
    rows.append({"protocol": "plain (agent defaults, median)",
                 "s_per_measurement": (plain_s + plain_s_b) / (len(plain_a) + len(plain_b)),
                 **agreement(plain_a, plain_b)})
    stats_a, stats_b = by_statistic(cond, run_a), by_statistic(cond, run_b)
    per = (run_a.device_s + run_b.device_s) / (len(run_a.results) + len(run_b.results))
    rounds = statistics.fmean(r.rounds for r in [*run_a.results.values(),
                                                  *run_b.results.values()])
    for name in STATISTICS:
        default = " (default)" if name == cond.args.protocol.statistic else ""
        rows.append({"protocol": f"protocol, {name}{default}", "s_per_measurement": per,
                     "rounds": rounds, **agreement(stats_a[name], stats_b[name])})
    for row in rows:
        row.update(threads=cond.threads, load=cond.load)
    return rows, run_a


def paired_retest(cond: Condition, refs: dict[str, ModelRef]) -> list[dict[str, Any]]:
    """The protocol run twice with the paired method: its default statistic's agreement."""
    request = agent_pb2.BenchmarkSettings()
    request.CopyFrom(cond.request)
    request.method = agent_pb2.METHOD_PAIRED
    runs = []
    for which in "AB":
        say(f"[{cond.label}] paired protocol run {which}")
        runs.append(measure_robust(refs, "dut", request, db=cond.db, scheduler=cond.scheduler,
                                   protocol=cond.args.protocol, reuse_since=time.time()))
    a, b = ({tag: r.latency_ms for tag, r in run.results.items()} for run in runs)
    per = sum(r.device_s for r in runs) / max(1, sum(len(r.results) for r in runs))
    rounds = statistics.fmean(r.rounds for run in runs for r in run.results.values())
    return [{"protocol": f"paired protocol, {cond.args.protocol.statistic}",
             "s_per_measurement": per, "rounds": rounds, **agreement(a, b)}]


# -- accuracy --------------------------------------------------------------------------------


def score(name: str, cond: Condition, raw: Callable[[Arch], float], truth: dict[str, float],
          build_s: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Calibrate ``raw`` on the calibration archs against the truth, score the eval archs."""
    enc = cond.space.encode
    cal = [a for a in cond.calibration if enc(a) in truth]
    fit = fit_calibration([raw(a) for a in cal], [truth[enc(a)] for a in cal])
    scored = [a for a in cond.evaluation if enc(a) in truth]
    acc = accuracy([fit.apply(raw(a)) for a in scored], [truth[enc(a)] for a in scored])
    return {"method": name, "threads": cond.threads, "load": cond.load, "n": acc.n,
            "within_10": acc.within_10, "within_5": acc.within_5, "rmspe": acc.rmspe,
            "tau": acc.kendall_tau, "build_device_min": build_s / 60, "a": fit.a, "b": fit.b,
            **(extra or {})}


def block_luts(cond: Condition, truth: dict[str, float]) -> list[dict[str, Any]]:
    say(f"[{cond.label}] block LUT")
    report = build_lut(cond.space, "dut", cond.request, db=cond.db, scheduler=cond.scheduler,
                       cache_dir=cond.args.cache_dir)
    assert report.lut is not None
    from fleetnas.controller.lut import LatencyPredictor, LutStore

    entries = LutStore(cond.db).entries(report.lut.id)
    measurements = {key: cond.db.get_measurement(entry.measurement_uid or "")
                    for key, entry in entries.items()}
    rows = []
    for statistic in LUT_STATISTICS:
        values = {}
        for key, m in measurements.items():
            assert m is not None, key
            values[key] = entry_latency(m, statistic)
        predictor = LatencyPredictor(cond.space, values)
        rows.append(score(f"block LUT, {statistic}", cond, predictor.raw_sum, truth,
                          report.measure_s, {"units": report.blocks}))
    return rows


def kernel_lut(cond: Condition, truth: dict[str, float]) -> dict[str, Any]:
    say(f"[{cond.label}] kernel LUT")
    archs = [*cond.calibration, *cond.evaluation]
    build = build_kernel_lut(cond.space, "dut", cond.request, db=cond.db,
                             scheduler=cond.scheduler, archs=archs,
                             protocol=cond.args.protocol, cache_dir=cond.args.cache_dir,
                             reuse_since=time.time())
    predictor = KernelPredictor(cond.space, build.lut, cache_dir=cond.args.cache_dir)
    return score("kernel LUT", cond, predictor.raw_sum, truth, build.protocol.device_s,
                 {"units": build.kernels, "rewritten": len(build.rewritten),
                  "failed": len(build.failed), "null_ms": build.lut.null_ms})


def transfers(cond: Condition, truth: dict[str, float],
              sources: list[str]) -> list[dict[str, Any]]:
    rows = []
    since = time.time()
    device_s = 0.0  # the DUT's measurements so far: a larger N reuses those of a smaller one
    for n in cond.args.transfer_n:
        say(f"[{cond.label}] transfer N={n} from {sources}")
        result = transfer(cond.db, cond.space, "dut", n, scheduler=cond.scheduler,
                          request=cond.request, protocol=cond.args.protocol,
                          cache_dir=cond.args.cache_dir, sources=sources, reuse_since=since)
        device_s += result.device_s
        scored = [a for a in cond.evaluation if cond.space.encode(a) in truth]
        predicted = result.predictor.predict_many(scored)
        acc = accuracy(predicted, [truth[cond.space.encode(a)] for a in scored])
        rows.append({"method": f"transfer N={n}", "threads": cond.threads, "load": cond.load,
                     "n": acc.n, "within_10": acc.within_10, "within_5": acc.within_5,
                     "rmspe": acc.rmspe, "tau": acc.kendall_tau,
                     "build_device_min": device_s / 60, "units": n,
                     "loo_rmspe": result.fit.loo_rmspe, "nearest": result.nearest,
                     "embedding": [round(float(w), 3) for w in result.fit.embedding]})
    return rows


# -- sources -------------------------------------------------------------------------------


def measure_sources(db: CostDB, scheduler: Scheduler, space: SearchSpace,
                    args: argparse.Namespace) -> None:
    """Every source device measures the reference sequence and a training set, once."""
    archs = [*reference_archs(space, max(args.transfer_n)),
             *sample_archs(space, args.source_archs, TRANSFER_PURPOSE)]
    refs = {}
    for arch in archs:
        exported = export_arch(space, arch, cache_dir=args.cache_dir)
        db.record_model(exported.sha256, len(exported.onnx_bytes), space=space.identity(),
                        arch=space.encode(arch))
        refs[space.encode(arch)] = ModelRef.from_bytes(exported.onnx_bytes)
    for name, (threads, level) in SOURCE_CONFIGS.items():
        say(f"sources: {name} measures {len(refs)} archs")
        request = agent_pb2.BenchmarkSettings(intra_op_threads=threads, graph_optimization=level)
        measure_robust(refs, name, request, db=db, scheduler=scheduler,
                       protocol=args.source_protocol, reuse_since=0.0)


def run_condition(cond: Condition, sources_db: Path) -> tuple[list[dict], list[dict]]:
    cond.db.merge(sources_db, source="sources")
    refs = arch_refs(cond, [*cond.calibration, *cond.evaluation])
    retest, run_a = test_retest(cond, refs)
    truth = {tag: r.latency_ms for tag, r in run_a.results.items()}
    rows = [*block_luts(cond, truth), kernel_lut(cond, truth)]
    others = [name for name, config in SOURCE_CONFIGS.items() if config != (cond.threads, ALL)]
    rows += transfers(cond, truth, others)
    return retest, rows


# -- printing --------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def retest_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'threads/load':<13}{'protocol':<36}{'±2%':>6}{'±3%':>6}{'±10%':>6}"
            f"{'tau':>7}{'ratio':>7}{'rounds':>7}{'dev s/meas':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        tau = "-" if r["tau"] is None else f"{r['tau']:.3f}"
        lines.append(
            f"{str(r['threads']) + '/' + r['load']:<13}{r['protocol']:<36}"
            f"{_pct(r['within_2']):>6}{_pct(r['within_3']):>6}{_pct(r['within_10']):>6}"
            f"{tau:>7}{r['median_ratio']:>7.3f}{r.get('rounds', 1):>7.1f}"
            f"{r['s_per_measurement']:>11.2f}")
    return "\n".join(lines)


def accuracy_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'threads/load':<13}{'method':<38}{'units':>6}{'±10%':>6}{'±5%':>6}"
            f"{'RMSPE':>7}{'tau':>7}{'build dev min':>14}")
    lines = [head, "-" * len(head)]
    for r in rows:
        tau = "-" if r["tau"] is None else f"{r['tau']:.3f}"
        lines.append(
            f"{str(r['threads']) + '/' + r['load']:<13}{r['method']:<38}{r.get('units', ''):>6}"
            f"{_pct(r['within_10']):>6}{_pct(r['within_5']):>6}{r['rmspe']:>6.1f}%{tau:>7}"
            f"{r['build_device_min']:>14.2f}")
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--load", nargs="+", default=["quiet", "busy"],
                        choices=["quiet", "busy"])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[160, 192, 224])
    parser.add_argument("--n", type=int, default=100, help="eval archs")
    parser.add_argument("--calibration-n", type=int, default=10)
    parser.add_argument("--transfer-n", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--source-archs", type=int, default=100,
                        help="training archs per source device (besides the reference set)")
    parser.add_argument("--busy-bound", type=float, default=3 * 3600.0,
                        help="seconds after which the background spinner stops by itself")
    parser.add_argument("--cache-dir", type=Path, help="ONNX export cache [default: temp]")
    parser.add_argument("--out", type=Path, default=Path("bench_predictor_out"))
    parser.add_argument("--no-paired", dest="paired", action="store_false",
                        help="skip the paired-method test-retest rows")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: r160, 10+5 archs, 1 thread, short protocol")
    args = parser.parse_args()
    args.protocol = Protocol()
    args.source_protocol = Protocol(rounds=2, max_rounds=3, keep=2, tolerance=0.02)
    if args.quick:
        args.resolutions, args.n, args.calibration_n = [160], 10, 5
        args.threads, args.transfer_n, args.source_archs = [1], [5, 10], 20
        args.protocol = Protocol(rounds=3, max_rounds=4, keep=2)
        args.source_protocol = Protocol(rounds=1, max_rounds=1, keep=1, tolerance=0.5)
    return args


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    space = get_space("mbv3", {"resolutions": args.resolutions})
    calibration = sample_archs(space, args.calibration_n, "calibration")
    evaluation = sample_archs(space, args.n, "eval", exclude=[space.encode(a)
                                                              for a in calibration])
    print(f"bench_predictor: mbv3 {args.resolutions}, {args.n} eval + {args.calibration_n} "
          f"calibration archs, protocol {args.protocol}")
    retest_rows: list[dict] = []
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-predictor-") as tmp:
        base = Path(tmp)
        args.cache_dir = args.cache_dir or base / "onnx"
        say(f"exporting {len(calibration) + len(evaluation)} archs")
        for arch in [*calibration, *evaluation]:
            export_arch(space, arch, cache_dir=args.cache_dir)
        names = ["dut", *SOURCE_CONFIGS]
        agents: list[LocalAgent] = start_local_agents(len(names), base / "agents")
        for agent, name in zip(agents, names, strict=True):
            agent.name = name
        fleet = Fleet.of([Device(a.name, "bench", a.address) for a in agents])
        try:
            with CostDB(base / "sources.db") as db, Scheduler(fleet, db) as scheduler:
                measure_sources(db, scheduler, space, args)
            for threads in args.threads:
                for load in args.load:
                    with (background_load(load == "busy", args.busy_bound),
                          CostDB(base / f"{threads}-{load}.db") as db,
                          Scheduler(fleet, db) as scheduler):
                        cond = Condition(threads, load, db, scheduler,
                                         agent_pb2.BenchmarkSettings(intra_op_threads=threads),
                                         space, calibration, evaluation, args)
                        retest, acc = run_condition(cond, base / "sources.db")
                    retest_rows += retest
                    rows += acc
                    print(retest_table(retest), accuracy_table(acc), sep="\n\n", flush=True)
        finally:
            stop_local_agents(agents)
    print(f"\nTest-retest ({_load()} at the end)\n{retest_table(retest_rows)}")
    print(f"\nAccuracy against the protocol's first run\n{accuracy_table(rows)}")
    (args.out / "bench_predictor.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "retest": retest_rows,
         "accuracy": rows}, indent=2, default=str))
    print(f"results: {args.out / 'bench_predictor.json'}")


if __name__ == "__main__":
    main()
