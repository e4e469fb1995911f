"""Part 3 of ``bench_precision.py``: a search with and without the precision gene, equal device budget.

Per seed, two ``fleetnas search`` runs (the CLI, in this process) on the
same space, seed, estimator and loopback agent, each with its own fresh cost
DB and caches: ``--precision fp32`` (no gene) and ``--precision`` with the
gene (default ``fp32,int8``). Space: NAS-Bench-201 on a small skeleton
(``--search-channels``, one cell per stage, 32 px), ``--mode measured``
(LUT and hybrid modes refuse precision genes), NSGA-II. Objectives: the
accuracy of ``train:digits`` (a few epochs; with the gene it is the accuracy
*as deployed*: the int8 variant of the trained net, evaluated with
onnxruntime) and the latency on the one agent.

**Equal device budget.** Both runs stop at ``--max-measurements N`` and
have no candidate budget. The driver counts a latency value per measured
candidate and target, from a device or the cost DB; each run's DB starts
empty, so the bench also counts the measurement rows each DB holds at the
end (what the agent actually ran) and prints both.

**Hypervolume.** The project's own :func:`fleetnas.controller.search.hypervolume`,
through ``SearchEngine.hypervolume`` (the feasible front), against ONE
reference point for both runs of a seed: ``report.reference_point`` over the
union of both runs' complete trials (the worst value of each objective,
moved a tenth of the range further). Normalised by the box between that
reference and the best value of each objective over the union, so 1 would
be one net best at everything. The table gives both values, the difference
(gene − no gene) and the ratio.

Caveat: the two runs measure at different times on a shared host; their
latencies carry the host's drift (~7-10% between sessions minutes apart, see
docs/ARCHITECTURE's measuring notes), which moves the fronts as well.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from fleetnas.controller.cli import main as fleetnas_main
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import SearchStore, load_search
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.local_agents import start_local_agents, stop_local_agents
from fleetnas.controller.report import all_rows, reference_point
from fleetnas.controller.search import SearchEngine

TARGET = "b0"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def _search_args(args: Any, fleet: Path, root: Path, precisions: str, seed: int) -> list[str]:
    accuracy = (f"train:digits,epochs={args.search_epochs},"
                f"max_train_samples={args.search_train_samples},batch_size=16,"
                f"max_val_samples={args.search_val_samples}")  # fmt: skip
    return [
        "--db", str(root / "cost.db"), "search", "--space", "nb201", "--space-config",
        json.dumps({"channels": args.search_channels, "cells_per_stage": 1}),
        "--fleet", str(fleet), "--cache-dir", str(root / "cache"), "--mode", "measured",
        "--device", TARGET, "--accuracy", accuracy, "--precision", precisions,
        "--max-measurements", str(args.search_measurements),
        "--population", str(args.search_population), "--seed", str(seed),
        "--warmup", str(args.warmup), "--min-runs", str(args.min_runs),
        "--max-runs", str(args.search_max_runs), "--min-duration", str(args.min_duration),
        "--max-duration", str(args.search_max_duration), "--quiet", "--no-plot",
    ]  # fmt: skip


def _one_search(args: Any, fleet: Path, root: Path, precisions: str, seed: int) -> dict[str, Any]:
    """Run one search; its engine, device measurements and wall time."""
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = CliRunner().invoke(fleetnas_main, _search_args(args, fleet, root, precisions, seed),
                                env={"COLUMNS": "200"})  # fmt: skip
    if result.exit_code != 0:
        raise RuntimeError(f"search --precision {precisions} seed {seed} failed "
                           f"(exit {result.exit_code}):\n{result.output}") from result.exception
    with CostDB(root / "cost.db") as db:
        stored = load_search(SearchStore(db), 1)
        rows = db.db.execute("SELECT count(*) FROM measurements").fetchone()[0]
    return {"engine": stored.engine, "db_measurements": rows, "wall_s": time.monotonic() - started,
            "notes": [line for line in result.output.splitlines() if "precision" in line.lower()]}


def _normalised(engine: SearchEngine, reference: dict[str, float], ideal: dict[str, float]) -> float:
    box = 1.0
    for o in engine.objectives:
        box *= abs(ideal[o.name] - reference[o.name]) or 1.0
    return engine.hypervolume(reference) / box


def _best(engines: Sequence[SearchEngine]) -> dict[str, float]:
    out = {}
    for o in engines[0].objectives:
        values = [float(r.values[o.name]) for e in engines for r in all_rows(e) if r.feasible]
        out[o.name] = max(values) if o.direction == "maximize" else min(values)
    return out


def _summary(name: str, run: dict[str, Any], hv: float, hv_norm: float) -> dict[str, Any]:
    engine: SearchEngine = run["engine"]
    rows = all_rows(engine)
    front = [t for t in engine.pareto_front() if t.evaluation is not None and t.evaluation.feasible]
    return {
        "run": name, "candidates": len(rows), "db_measurements": run["db_measurements"],
        "front": len(front), "hv": hv, "hv_norm": hv_norm, "wall_s": run["wall_s"],
        "front_precisions": sorted(r.precisions.get(TARGET, "fp32") for r in rows if r.on_front),
        "precisions": sorted(r.precisions.get(TARGET, "fp32") for r in rows),
        "best_accuracy": max(float(r.values["accuracy"]) for r in rows),
        "min_latency_ms": min(float(r.values[f"latency[{TARGET}]"]) for r in rows),
    }  # fmt: skip


def measure_search(args: Any, workdir: Path) -> dict[str, Any]:
    """Both runs per seed on one loopback agent; rows per (seed, run) and the seeds' summary."""
    agents = start_local_agents(1, workdir / "search-agents", name_prefix="bs")
    rows: list[dict[str, Any]] = []
    try:
        fleet = workdir / "search-fleet.toml"
        save_fleet(Fleet.of([Device(TARGET, "cpu", agents[0].address)]), fleet)
        for seed in range(args.search_first_seed, args.search_first_seed + args.search_seeds):
            runs = {}
            for name in ("fp32", args.search_precisions):
                root = workdir / f"search-s{seed}-{name.replace(',', '_')}"
                runs[name] = _one_search(args, fleet, root, name, seed)
                print(f"  search seed {seed} --precision {name}: "
                      f"{len(all_rows(runs[name]['engine']))} candidates, "
                      f"{runs[name]['db_measurements']} device measurements, "
                      f"{runs[name]['wall_s']:.0f} s ({_load()})", flush=True)  # fmt: skip
            engines = [r["engine"] for r in runs.values()]
            union = [row for e in engines for row in all_rows(e)]
            reference = dict(reference_point(union, engines[0].objectives).values)
            ideal = _best(engines)
            for name, run in runs.items():
                hv = run["engine"].hypervolume(reference)
                rows.append({"seed": seed, "reference": reference, "ideal": ideal,
                             **_summary(name, run, hv, _normalised(run["engine"], reference, ideal))})
    finally:
        stop_local_agents(agents)
    return {"rows": rows, "summary": _seed_summary(rows, args.search_precisions)}


def _seed_summary(rows: list[dict[str, Any]], gene: str) -> dict[str, Any]:
    by_seed: dict[int, dict[str, float]] = {}
    for row in rows:
        by_seed.setdefault(row["seed"], {})[row["run"]] = row["hv_norm"]
    diffs = [v[gene] - v["fp32"] for v in by_seed.values()]
    ratios = [v[gene] / v["fp32"] for v in by_seed.values() if v["fp32"] > 0]
    return {"seeds": len(by_seed), "diff": diffs, "ratio": ratios,
            "diff_mean": statistics.mean(diffs) if diffs else None,
            "ratio_mean": statistics.mean(ratios) if ratios else None}  # fmt: skip


def search_table(report: dict[str, Any], gene: str) -> str:
    lines = [f"{'seed':>4}  {'--precision':<14}{'cands':>6}{'dev meas':>9}{'front':>6}"
             f"{'HV (norm)':>10}{'HV raw':>10}{'best acc':>9}{'min ms':>8}  front precisions (of all)"]  # fmt: skip
    by_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for row in report["rows"]:
        by_seed.setdefault(row["seed"], {})[row["run"]] = row
        counts = {p: row["front_precisions"].count(p) for p in sorted(set(row["front_precisions"]))}
        lines.append(
            f"{row['seed']:>4}  {row['run']:<14}{row['candidates']:>6}{row['db_measurements']:>9}"
            f"{row['front']:>6}{row['hv_norm']:>10.4f}{row['hv']:>10.4f}{row['best_accuracy']:>9.3f}"
            f"{row['min_latency_ms']:>8.3f}  "
            + ", ".join(f"{p}x{n}" for p, n in counts.items())
            + " (of " + ", ".join(f"{p}x{row['precisions'].count(p)}"
                                  for p in sorted(set(row["precisions"]))) + ")"
        )
    for seed, runs in by_seed.items():
        a, b = runs["fp32"]["hv_norm"], runs[gene]["hv_norm"]
        ref = runs["fp32"]["reference"]
        lines.append(f"seed {seed}: HV({gene}) - HV(fp32) = {b - a:+.4f}; ratio "
                     + (f"{b / a:.3f}" if a > 0 else "n/a") + "; reference "
                     + ", ".join(f"{k} {v:.4g}" for k, v in ref.items()))  # fmt: skip
    summary = report["summary"]
    if summary["diff_mean"] is not None:
        lines.append(f"mean over {summary['seeds']} seed(s): difference {summary['diff_mean']:+.4f}"
                     + (f", ratio {summary['ratio_mean']:.3f}" if summary["ratio_mean"] else ""))
    return "\n".join(lines)
