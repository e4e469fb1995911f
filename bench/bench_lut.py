"""LUT accuracy and cost on this machine's CPU: MobileNetV3-style space, 1 and 2 threads.

For each thread count (and benchmark method), against one real loopback agent:

1. **build** the LUT of ``mbv3`` at the chosen resolutions: every distinct
   block exported and measured once (block count, block measurements made
   now, minutes for export and for measuring);
2. **calibrate** on ``--calibration-n`` random archs (a least-squares line on
   relative error, ``a * sum + b``);
3. **evaluate** on ``--n`` *other* random archs measured end to end: share
   within +-10 % (target >= 99 %) and +-5 %, RMSPE (target <= 4 %), Kendall
   tau, and the raw block sum over the whole network (median and spread), the
   figure the design notes quote (~0.92 on 1 thread, 1.05-1.33 on 2).

Everything goes through the cost DB (``--db``, default a temporary file), so
a rerun with the same ``--db`` reuses every measurement already made. The
default settings are the agent's (>= 10 warm-up runs, >= 30 timed runs and
>= 0.5 s, at most 1000 runs). Default resolutions: all five of the space
(160-224, 445 distinct blocks): on this 2-core VM a block measurement takes
~0.4 s, so the whole space is ~4 minutes of measuring and a thread setting,
eval included, ~8 minutes; ``--resolutions`` picks a subset for slower
devices. ``--quick`` is a smoke run: 160 only, 12 archs, short timed loops.

4. **statistics**: the same LUT with each entry recomputed from its block
   measurement's raw samples by each robust statistic (``lut.STATISTICS``:
   median, min, trimmed mean), calibrated on the same calibration archs
   (their cached end-to-end measurements) and scored on the same eval archs:
   which statistic predicts end-to-end latency best here. No new measuring.

Prints a table and writes ``bench_lut.json`` and one scatter plot per setting
to ``--out``. No assertions; the machine's load average is printed with each
phase, since other work on a shared host moves the figures.

    .venv/bin/python bench/bench_lut.py [--quick] [--threads 1 2] [--method plain paired]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import Device, Fleet
from fleetnas.controller.local_agents import start_local_agents, stop_local_agents
from fleetnas.controller.lut import (
    STATISTICS,
    EvalResult,
    LutInfo,
    LutProgress,
    LutStore,
    accuracy,
    build_lut,
    distinct_blocks,
    evaluate_lut,
    fit_calibration,
    measure_archs,
    robust_latency,
)
from fleetnas.controller.scheduler import Scheduler
from fleetnas.controller.spaces import SearchSpace, get_space

METHODS = {"plain": agent_pb2.METHOD_PLAIN, "paired": agent_pb2.METHOD_PAIRED}


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cpus"


def _printer(label: str, every: int = 25):  # type: ignore[no-untyped-def]
    started = time.monotonic()

    def show(p: LutProgress) -> None:
        if p.done == p.total or p.done % every == 0:
            print(f"  {label} {p.phase} {p.done}/{p.total} cached={p.cached} "
                  f"measured={p.measured} failed={p.failed} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)

    return show


def score_statistics(
    db: CostDB, scheduler: Scheduler, space: SearchSpace, lut: LutInfo, result: EvalResult,
    cache_dir: Path,
) -> dict[str, dict[str, float]]:
    """Per statistic: eval accuracy of the LUT with entries recomputed from raw samples."""
    samples = {}
    for key, entry in LutStore(db).entries(lut.id).items():
        m = db.get_measurement(entry.measurement_uid or "")
        assert m is not None, key
        samples[key] = m.samples_ms
    calibration_archs = [space.decode(e) for e in result.calibration.archs]
    calibration, _ = measure_archs(space, calibration_archs, lut, db=db, scheduler=scheduler,
                                   cache_dir=cache_dir)  # cached: measured by the eval
    eval_archs = [space.decode(r.arch) for r in result.rows]
    scores = {}
    for statistic in STATISTICS:
        entries = {k: robust_latency(v, statistic) for k, v in samples.items()}

        def raw_sum(arch: Any, entries: dict[str, float] = entries) -> float:
            return sum(entries[b.key] for b in space.blocks(arch))

        line = fit_calibration([raw_sum(a) for a in calibration_archs],
                               [m.measured_ms for m in calibration])
        acc = accuracy([line.apply(raw_sum(a)) for a in eval_archs],
                       [r.measured_ms for r in result.rows])
        scores[statistic] = {"within_10": acc.within_10, "within_5": acc.within_5,
                             "rmspe": acc.rmspe, "kendall_tau": acc.kendall_tau or 0.0,
                             "loo_rmspe": line.loo_rmspe}
        print(f"  statistic {statistic:<13} ±10% {100 * acc.within_10:5.1f}%  "
              f"±5% {100 * acc.within_5:5.1f}%  RMSPE {acc.rmspe:5.2f}%  "
              f"calibration LOO RMSPE {line.loo_rmspe:5.2f}%", flush=True)
    return scores


def run_setting(
    db: CostDB, scheduler: Scheduler, device: str, threads: int, method: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    space = get_space("mbv3", {"resolutions": args.resolutions} if args.resolutions else {})
    settings = agent_pb2.BenchmarkSettings(intra_op_threads=threads, method=METHODS[method])
    if args.quick:
        settings.min_runs = 10
        settings.min_duration_s = 0.1
    label = f"{threads}thr-{method}"
    print(f"[{label}] build: {_load()}", flush=True)
    t0 = time.monotonic()
    report = build_lut(space, device, settings, db=db, scheduler=scheduler,
                       cache_dir=args.cache_dir, on_progress=_printer(label, 50))
    build_s = time.monotonic() - t0
    if not report.complete or report.lut is None:
        raise SystemExit(f"[{label}] build incomplete: {report.failed[:3]}")
    print(f"[{label}] eval: {_load()}", flush=True)
    t1 = time.monotonic()
    result = evaluate_lut(report.lut, db=db, scheduler=scheduler, n=args.n,
                          calibration_n=args.calibration_n, seed=args.seed,
                          cache_dir=args.cache_dir,
                          plot_path=args.out / f"bench_lut_{label}.png",
                          on_progress=_printer(label, 25))
    eval_s = time.monotonic() - t1
    ratios = sorted(r.raw_sum_ms / r.measured_ms for r in result.rows)
    per_block_s = report.measure_s / report.measured if report.measured else None
    # Spread of the samples behind the figures: how noisy the host was.
    block_cvs = [db.get_measurement(e.measurement_uid).cv  # type: ignore[union-attr]
                 for e in LutStore(db).entries(report.lut.id).values() if e.measurement_uid]
    arch_cvs = [db.get_measurement(r.measurement_uid).cv  # type: ignore[union-attr]
                for r in result.rows]
    print(f"[{label}] statistics: {_load()}", flush=True)
    statistics_scores = score_statistics(db, scheduler, space, report.lut, result,
                                         args.cache_dir)
    full_space_blocks = len(distinct_blocks(get_space("mbv3")))
    acc, raw, cal = result.accuracy, result.raw_accuracy, result.calibration
    return {
        "setting": label, "threads": threads, "method": method,
        "resolutions": list(space.resolutions), "blocks": report.blocks,
        "blocks_measured_now": report.measured, "blocks_cached": report.cached,
        "export_min": report.export_s / 60, "measure_min": report.measure_s / 60,
        "build_min": build_s / 60, "eval_min": eval_s / 60,
        "s_per_block_measurement": per_block_s, "full_space_blocks": full_space_blocks,
        "full_space_measure_min_estimate": (
            None if per_block_s is None else full_space_blocks * per_block_s / 60),
        "archs_measured_now": result.measured_now,
        "n": acc.n, "within_10": acc.within_10, "within_5": acc.within_5,
        "rmspe": acc.rmspe, "mape": acc.mape, "max_ape": acc.max_ape,
        "kendall_tau": acc.kendall_tau,
        "raw_within_10": raw.within_10, "raw_rmspe": raw.rmspe,
        "block_cv_median": statistics.median(block_cvs),
        "arch_cv_median": statistics.median(arch_cvs),
        "sum_over_whole_median": statistics.median(ratios),
        "sum_over_whole_p5_p95": [ratios[int(0.05 * (len(ratios) - 1))],
                                  ratios[int(0.95 * (len(ratios) - 1))]],
        "calibration": {"a": cal.a, "b": cal.b, "n": cal.n, "fit_rmspe": cal.fit_rmspe},
        "statistics": statistics_scores,
        "load_after": os.getloadavg()[:2],
        "plot": str(result.plot),
    }  # fmt: skip


def _table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'setting':<14}{'blocks':>7}{'new':>5}{'build min':>10}{'eval min':>9}"
            f"{'±10%':>7}{'±5%':>7}{'RMSPE':>7}{'MAPE':>6}{'max':>6}{'tau':>6}"
            f"{'Σ/whole':>9}{'raw±10%':>8}{'a':>7}{'b ms':>7}{'cv blk/net':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        tau = "-" if r["kendall_tau"] is None else f"{r['kendall_tau']:.3f}"
        lines.append(
            f"{r['setting']:<14}{r['blocks']:>7}{r['blocks_measured_now']:>5}"
            f"{r['build_min']:>10.1f}{r['eval_min']:>9.1f}"
            f"{100 * r['within_10']:>6.0f}%{100 * r['within_5']:>6.0f}%{r['rmspe']:>6.1f}%"
            f"{r['mape']:>5.1f}%{r['max_ape']:>5.0f}%{tau:>6}"
            f"{r['sum_over_whole_median']:>9.3f}{100 * r['raw_within_10']:>7.0f}%"
            f"{r['calibration']['a']:>7.3f}{r['calibration']['b']:>7.2f}"
            f"{r['block_cv_median']:>6.2f}/{r['arch_cv_median']:.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+",
                        help="a subset of the space's resolutions [default: all]")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--method", nargs="+", default=["plain"], choices=sorted(METHODS))
    parser.add_argument("--n", type=int, default=100, help="archs to evaluate")
    parser.add_argument("--calibration-n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", type=Path, help="cost DB to use (and reuse) [default: temp]")
    parser.add_argument("--cache-dir", type=Path, help="ONNX export cache [default: temp]")
    parser.add_argument("--out", type=Path, default=Path("bench_lut_out"))
    parser.add_argument("--quick", action="store_true", help="smoke run: r160, 12 archs")
    args = parser.parse_args()
    if args.quick:
        args.resolutions, args.n, args.calibration_n = [160], 12, 5
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-lut-") as tmp:
        base = Path(tmp)
        args.cache_dir = args.cache_dir or base / "onnx"
        db_path = args.db or base / "cost.db"
        agents = start_local_agents(1, base / "agents", name_prefix="bench")
        rows = []
        try:
            device = agents[0].name
            fleet = Fleet.of([Device(device, "bench", agents[0].address)])
            with CostDB(db_path) as db, Scheduler(fleet, db, device_wait_s=60.0) as scheduler:
                for threads in args.threads:
                    for method in args.method:
                        rows.append(run_setting(db, scheduler, device, threads, method, args))
                        print(_table(rows[-1:]), flush=True)
        finally:
            stop_local_agents(agents)
    print()
    resolutions = args.resolutions or get_space("mbv3").resolutions
    print(f"mbv3 at resolutions {list(resolutions)}, {args.n} eval archs, "
          f"{args.calibration_n} calibration archs, seed {args.seed}; {_load()}")
    print(_table(rows))
    for r in rows:
        if r["s_per_block_measurement"] is not None:
            print(f"{r['setting']}: {r['s_per_block_measurement']:.2f} s per block measured now; "
                  f"the whole space ({r['full_space_blocks']} blocks, all 5 resolutions): "
                  f"~{r['full_space_measure_min_estimate']:.1f} min of measuring")
    (args.out / "bench_lut.json").write_text(json.dumps(rows, indent=2))
    print(f"results: {args.out / 'bench_lut.json'}; plots: {args.out}/bench_lut_*.png")


if __name__ == "__main__":
    main()
