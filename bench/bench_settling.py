"""Which settling rule fits this host: the protocol's tolerance and round counts, replayed.

``fleetnas.controller.predict.Protocol`` measures a model in interleaved
rounds until its ``keep`` lowest round medians agree within ``tolerance``
(at least ``rounds``, at most ``max_rounds``). On this 2-core VM the default
1 % settled almost nothing: in bench_predictor almost every model ran to the
10-round bound. This bench asks what another rule would have given.

For each thread count and host load (``quiet``; ``busy``: one core kept busy
by bench_predictor's bounded spinner), in a fresh cost DB, the same ``--n``
mbv3 archs are measured twice (runs A and B, minutes apart) by the protocol
with every model given all ``--max-rounds`` rounds, on one real loopback
agent. Then each candidate rule is *replayed* on each model's rounds in the
order they were measured: the rule stops at the first round count at which it
would have settled (or at its bound), and its statistic is taken over those
rounds. A rule's row gives the mean rounds it used, the device seconds per
measurement that implies (each model's own mean device time per round), and
how well its A and B figures agree: share within +-2 % / +-3 % / +-10 %,
Kendall tau.

Replaying is exact for one model's rounds, with one difference from a live
run: live, a settled model leaves the later rounds, so the remaining models'
rounds come closer together in time. The rows are comparable with each other
because every rule sees the same rounds. No assertions.

    .venv/bin/python bench/bench_settling.py [--n 60] [--threads 1 2] [--load quiet busy] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_predictor import _load, agreement, background_load, say

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.export import export_arch
from fleetnas.controller.fleet import Device, Fleet
from fleetnas.controller.local_agents import start_local_agents, stop_local_agents
from fleetnas.controller.lut import sample_archs
from fleetnas.controller.predict import Protocol, measure_robust, round_samples
from fleetnas.controller.scheduler import ModelRef, Scheduler
from fleetnas.controller.spaces import get_space

Rounds = list[list[float]]


@dataclass(frozen=True)
class Recorded:
    """One model's rounds in the order measured, and its device seconds per round."""

    rounds: Rounds
    device_s_per_round: float


@dataclass(frozen=True)
class Rule:
    """A settling rule to replay: a label and the protocol that carries it."""

    label: str
    protocol: Protocol


def replay(recorded: Recorded, protocol: Protocol) -> tuple[float, int]:
    """(estimate, rounds used) had ``protocol`` measured this model's rounds live."""
    bound = min(protocol.max_rounds, len(recorded.rounds))
    used = bound
    for k in range(min(protocol.rounds, bound), bound + 1):
        if protocol.settled(recorded.rounds[:k]):
            used = k
            break
    return protocol.estimate(recorded.rounds[:used]), used


def rules(max_rounds: int, statistics_: Sequence[str]) -> list[Rule]:
    """The candidates: settle tolerances at 4..10 and 4..max rounds, and fixed round counts."""
    out = []
    bounds = sorted({min(10, max_rounds), max_rounds})
    for stat in statistics_:
        for bound in bounds:
            for tolerance in (0.01, 0.02, 0.03, 0.05):
                out.append(Rule(f"settle {tolerance:.0%}, 4..{bound} rounds, {stat}",
                                Protocol(rounds=min(4, bound), max_rounds=bound, keep=3,
                                         tolerance=tolerance, statistic=stat)))
        for fixed in sorted({3, 4, 6, 10, max_rounds}):
            if fixed <= max_rounds:
                out.append(Rule(f"fixed {fixed} rounds, {stat}",
                                Protocol(rounds=fixed, max_rounds=fixed, keep=min(3, fixed),
                                         statistic=stat)))
    return out


def record(report_results: dict[str, Any], db: CostDB) -> dict[str, Recorded]:
    """Tag -> the model's rounds (in measured order) from the stored measurements."""
    out = {}
    for tag, result in report_results.items():
        measurements = [db.get_measurement(uid) for uid in result.measurement_uids]
        rounds = [round_samples(m) for m in measurements if m is not None]
        out[tag] = Recorded(rounds, result.device_s / max(1, len(rounds)))
    return out


def score_rules(run_a: dict[str, Recorded], run_b: dict[str, Recorded],
                candidates: Sequence[Rule]) -> list[dict[str, Any]]:
    rows = []
    for rule in candidates:
        figures: list[dict[str, float]] = [{}, {}]
        used: list[int] = []
        device_s: list[float] = []
        for figure, run in zip(figures, (run_a, run_b), strict=True):
            for tag, recorded in run.items():
                estimate, n = replay(recorded, rule.protocol)
                figure[tag] = estimate
                used.append(n)
                device_s.append(n * recorded.device_s_per_round)
        rows.append({"rule": rule.label, "rounds": statistics.fmean(used),
                     "s_per_measurement": statistics.fmean(device_s),
                     **agreement(figures[0], figures[1])})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'thr/load':<9} {'rule':<36} {'rounds':>6} {'dev s':>6} "
            f"{'±2%':>5} {'±3%':>5} {'±10%':>5} {'tau':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['condition']:<9} {r['rule']:<36} {r['rounds']:>6.1f} "
                     f"{r['s_per_measurement']:>6.2f} {r['within_2']:>5.0%} "
                     f"{r['within_3']:>5.0%} {r['within_10']:>5.0%} {r['tau']:>6.3f}")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60, help="archs measured twice")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--load", nargs="+", default=["quiet", "busy"],
                        choices=["quiet", "busy"])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[160, 192, 224])
    parser.add_argument("--max-rounds", type=int, default=10,
                        help="rounds every model gets (the replayed rules' bound)")
    parser.add_argument("--statistics", nargs="+", default=["p10", "median"],
                        help="protocol statistics to replay each rule with")
    parser.add_argument("--busy-bound", type=float, default=3600.0,
                        help="seconds after which the background spinner stops by itself")
    parser.add_argument("--out", type=Path, default=Path("bench_settling_out"))
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: r160, 6 archs, 1 thread, quiet, 5 rounds")
    args = parser.parse_args()
    if args.quick:
        args.n, args.threads, args.load = 6, [1], ["quiet"]
        args.resolutions, args.max_rounds = [160], 5
    return args


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    space = get_space("mbv3", {"resolutions": args.resolutions})
    archs = sample_archs(space, args.n, "settling")
    every_round = Protocol(rounds=args.max_rounds, max_rounds=args.max_rounds, keep=3)
    candidates = rules(args.max_rounds, args.statistics)
    print(f"bench_settling: mbv3 {args.resolutions}, {args.n} archs measured twice, "
          f"{args.max_rounds} rounds each, {len(candidates)} rules replayed")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-settling-") as tmp:
        base = Path(tmp)
        say(f"exporting {len(archs)} archs")
        refs: dict[str, ModelRef] = {}
        exported = {space.encode(a): export_arch(space, a, cache_dir=base / "onnx")
                    for a in archs}
        agents = start_local_agents(1, base / "agents")
        agents[0].name = "dut"
        fleet = Fleet.of([Device("dut", "bench", agents[0].address)])
        try:
            for threads in args.threads:
                for load in args.load:
                    label = f"{threads}/{load}"
                    with (background_load(load == "busy", args.busy_bound),
                          CostDB(base / f"{threads}-{load}.db") as db,
                          Scheduler(fleet, db) as scheduler):
                        for tag, e in exported.items():
                            db.record_model(e.sha256, len(e.onnx_bytes),
                                            space=space.identity(), arch=tag)
                            refs[tag] = ModelRef.from_bytes(e.onnx_bytes)
                        request = agent_pb2.BenchmarkSettings(intra_op_threads=threads)
                        runs = []
                        for which in "AB":
                            say(f"[{label}] run {which}: {args.n} archs x {args.max_rounds} "
                                f"rounds")
                            report = measure_robust(refs, "dut", request, db=db,
                                                    scheduler=scheduler, protocol=every_round,
                                                    reuse_since=time.time())
                            runs.append(record(report.results, db))
                    scored = score_rules(runs[0], runs[1], candidates)
                    for row in scored:
                        row.update(condition=label, threads=threads, load=load)
                    rows += scored
                    print(table(scored), flush=True)
        finally:
            stop_local_agents(agents)
    print(f"\nAll conditions ({_load()} at the end)\n{table(rows)}")
    (args.out / "bench_settling.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))
    print(f"results: {args.out / 'bench_settling.json'}")


if __name__ == "__main__":
    main()
