"""Scheduler overhead per job, with fast models, against N loopback agents (N = 1, 2, 3).

For each N, starts N real ``fleetnas-agent serve`` subprocesses on loopback,
each posing as its own host (distinct host fingerprints, so the scheduler
runs them in parallel), and runs one batch of ``--jobs`` distinct tiny MLPs
on their class. Figures, per N:

* ``batch s``: wall time of ``Scheduler.run`` (lookups, uploads, benchmarks,
  DB writes);
* ``Σ bench s``: the sum of the agents' own benchmark wall times (``wall_s``
  of each result: the worker's timed work);
* ``Σ rpc s``: the sum over jobs of the controller-side span of each attempt
  (HasModels + upload + the Benchmark RPC, which includes the agent's worker
  start-up);
* ``ovh/job ms``: device-slot time not spent benchmarking, per job:
  ``(batch × N − Σ bench) / jobs``; ``ratio``: ``batch × N / Σ bench``;
* ``sched/job ms``: the scheduler's own share, ``(batch × N − Σ rpc) / jobs``
  (dispatch, host lock, DB write, waiting between jobs);
* ``hit/job ms``: the same batch again, all cache hits, per job.

Prints a table; no assertions. On a small shared machine the N agents also
compete for the same cores, so figures for N > cores are pessimistic.

    .venv/bin/python bench/bench_scheduler.py [--jobs 24] [--agents 1 2 3]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import Device, Fleet
from fleetnas.controller.local_agents import start_local_agents, stop_local_agents
from fleetnas.controller.scheduler import Job, OutcomeStatus, Scheduler

SETTINGS = agent_pb2.BenchmarkSettings(
    warmup_runs=2, min_runs=10, max_runs=10, min_duration_s=0.0, max_duration_s=0.5,
    timeout_s=60.0,
)


def tiny_mlp(seed: int, width: int = 32) -> bytes:
    """A 2-layer MLP; the seed changes the weights (and so the sha256), not the cost."""
    rng = np.random.default_rng(seed)
    inits, nodes, prev = [], [], "x"
    for i in range(2):
        w = (rng.standard_normal((width, width)) / math.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        out = "y" if i == 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes, "bench_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


def run_one(n_agents: int, n_jobs: int, base: Path) -> dict[str, float]:
    agents = start_local_agents(
        n_agents, base / f"n{n_agents}", host_fingerprints=[f"bench-host-{i}" for i in
                                                            range(n_agents)],
    )
    try:
        fleet = Fleet.of(Device(a.name, "bench", a.address) for a in agents)
        # Offset seeds per N so no batch is answered from another N's measurements.
        jobs = [Job.on_class(tiny_mlp(1000 * n_agents + i), "bench", SETTINGS)
                for i in range(n_jobs)]
        with CostDB(base / f"n{n_agents}.db") as db, Scheduler(fleet, db) as scheduler:
            scheduler.monitor  # noqa: B018 -- start heartbeats outside the timed region
            t0 = time.perf_counter()
            outcomes = scheduler.run(jobs)
            batch_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            hits = scheduler.run(jobs)
            hit_s = time.perf_counter() - t0
        assert all(o.status is OutcomeStatus.MEASURED for o in outcomes), [
            o.error_message for o in outcomes if not o.ok
        ]
        assert all(o.status is OutcomeStatus.CACHED for o in hits)
        bench_s = sum(o.measurement.wall_s for o in outcomes if o.measurement)
        rpc_s = sum(a.ended_at - a.started_at for o in outcomes for a in o.attempts)
        per_device = {a.name: 0 for a in agents}
        for o in outcomes:
            per_device[o.device or ""] += 1
    finally:
        stop_local_agents(agents)
    slot_s = batch_s * n_agents
    return {
        "agents": n_agents,
        "jobs": n_jobs,
        "batch_s": batch_s,
        "bench_s": bench_s,
        "rpc_s": rpc_s,
        "ovh_ms": (slot_s - bench_s) / n_jobs * 1000,
        "ratio": slot_s / bench_s,
        "sched_ms": (slot_s - rpc_s) / n_jobs * 1000,
        "hit_ms": hit_s / n_jobs * 1000,
        "spread": "/".join(str(v) for v in per_device.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    print(f"scheduler overhead: {args.jobs} jobs of a tiny MLP (10 timed runs each), "
          f"{os.cpu_count()} CPUs")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        for n in args.agents:
            rows.append(run_one(n, args.jobs, Path(tmp)))
    header = (f"{'agents':>6} {'jobs':>5} {'batch s':>8} {'Σ bench s':>10} {'Σ rpc s':>8} "
              f"{'ovh/job ms':>11} {'ratio':>6} {'sched/job ms':>13} {'hit/job ms':>11} "
              f"{'jobs/agent':>10}")
    print(header)
    for r in rows:
        print(f"{r['agents']:>6} {r['jobs']:>5} {r['batch_s']:>8.2f} {r['bench_s']:>10.3f} "
              f"{r['rpc_s']:>8.2f} {r['ovh_ms']:>11.1f} {r['ratio']:>6.1f} "
              f"{r['sched_ms']:>13.1f} {r['hit_ms']:>11.3f} {r['spread']:>10}")


if __name__ == "__main__":
    main()
