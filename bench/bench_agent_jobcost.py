"""Fixed cost per job: workers forked from the zygote vs freshly spawned, side by side.

Two ``BenchmarkRunner`` s in this process, one per launcher (``forkserver``,
the default; ``spawn``, the old path: a fresh ``python -m
fleetnas.agent.worker_main`` per job), run the same tiny job back to back in
interleaved rounds: one timed run of a tiny MLP (16x16, one layer: its session
takes ~1 ms), no warm-up, so almost everything a job costs is fixed. Each runner starts its next spare as soon as
a job returns (``spare_after_run``), exactly as on an agent under a stream of
jobs, so a job waits for whatever its spare has not finished yet: that wait
is the fixed cost's main part.

Per launcher it prints the median over jobs of: the job's wall time, the
fixed cost (wall minus the timed runs), the hand-off (``run`` called ->
the worker starts the job: waiting for the spare, sending the job), the
worker's own wall time, session creation; then the ratio spawn/forkserver
of the fixed cost, and PASS/MISS for the target: a forked job's fixed cost
<= 20 ms. With ``--agent`` it also times the same job end to end through a
real ``fleetnas-agent serve`` on loopback (which forks), with the parts the
service adds (its two device-state samples). No assertions.

    .venv/bin/python bench/bench_agent_jobcost.py [--jobs 20] [--quick] [--agent]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _agent_common import (
    AgentProcess,
    BenchModel,
    header,
    load_line,
    print_table,
    resolved_settings,
    verdict,
)

from fleetnas.agent._runner_worker import Launcher, SpawnLauncher
from fleetnas.agent.reference import CalibrationStore
from fleetnas.agent.runner import BenchmarkRunner
from fleetnas.api.v1 import agent_pb2

TARGET_MS = 20.0
JOB = {"warmup_runs": 0, "min_runs": 1, "max_runs": 1, "min_duration_s": 0.0}


@dataclass
class Job:
    wall_ms: float
    timed_ms: float
    handoff_ms: float
    worker_ms: float
    session_ms: float

    @property
    def fixed_ms(self) -> float:
        return self.wall_ms - self.timed_ms


@dataclass
class Side:
    name: str
    runner: BenchmarkRunner
    jobs: list[Job] = field(default_factory=list)

    def run(self, model: Path, settings: agent_pb2.BenchmarkSettings) -> None:
        start_wall = time.time()
        start = time.perf_counter()
        result = self.runner.run(model, "b" * 64, settings)
        wall = (time.perf_counter() - start) * 1000.0
        self.jobs.append(Job(wall, sum(result.samples_ms), (result.started_at - start_wall) * 1e3,
                             result.wall_s * 1000.0, result.session_create_ms))  # fmt: skip

    def median(self, part: str) -> float:
        return statistics.median(getattr(job, part) for job in self.jobs)


def make_side(name: str, folder: Path, launcher: Launcher | None) -> Side:
    runner = BenchmarkRunner(scratch_dir=folder / name, launcher=launcher,
                             calibration_store=CalibrationStore(folder / f"{name}.json"))  # fmt: skip
    return Side(name, runner)


def agent_jobs(folder: Path, data: bytes, settings: agent_pb2.BenchmarkSettings,
               jobs: int) -> list[list[str]]:  # fmt: skip
    """The same job through a real agent: wall, fixed, and the service's parts."""
    rows = []
    with AgentProcess(folder / "agent") as agent, agent.client() as client:
        sha = client.ensure_model(data)
        client.benchmark(sha, settings)
        walls, samples, handoffs = [], [], []
        for _ in range(jobs):
            start = time.perf_counter()
            result = client.benchmark(sha, settings)
            walls.append((time.perf_counter() - start) * 1000.0)
            samples.append(sum(result.samples_ms))
            handoffs.append((result.started_at - result.state_before.timestamp) * 1000.0)
        fixed = [w - s for w, s in zip(walls, samples, strict=True)]
        # hand-off here: the service's "before" device sample -> the worker starts the job
        rows.append(["agent (forkserver, gRPC)", f"{statistics.median(walls):.1f}",
                     f"{statistics.median(fixed):.1f}", f"{statistics.median(handoffs):.1f}",
                     "-", "-"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per launcher")
    parser.add_argument("--quick", action="store_true", help="5 jobs per launcher")
    parser.add_argument("--agent", action="store_true", help="also through a real agent")
    args = parser.parse_args()
    jobs = 5 if args.quick else args.jobs
    model = BenchModel("tiny-mlp", "mlp 16x1 (~0.01 ms, 1 KB)", "mlp", (16, 1))
    settings = resolved_settings(**JOB)
    header("bench_agent_jobcost: fixed cost per job, forked workers vs spawned ones",
           [f"{jobs} back-to-back jobs per launcher, interleaved; model {model.description}; "
            f"one timed run, no warm-up; target: forked fixed cost <= {TARGET_MS:g} ms"])  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-jobcost-") as tmp:
        folder = Path(tmp)
        path = folder / "model.model"
        path.write_bytes(model.build(seed=1))
        sides = [make_side("forkserver", folder, None), make_side("spawn", folder, SpawnLauncher())]
        try:
            for side in sides:
                side.run(path, settings)  # warm: the zygote's imports, the first spare
            for _ in range(jobs):
                for side in sides:
                    side.run(path, settings)
        finally:
            for side in sides:
                side.runner.close()
        rows = [[side.name, f"{side.median('wall_ms'):.1f}", f"{side.median('fixed_ms'):.1f}",
                 f"{side.median('handoff_ms'):.1f}", f"{side.median('worker_ms'):.1f}",
                 f"{side.median('session_ms'):.2f}"] for side in sides]  # fmt: skip
        if args.agent:
            rows += agent_jobs(folder, model.build(seed=2), settings, jobs)
    print_table(["launcher", "wall ms", "fixed ms", "hand-off ms", "worker ms", "session ms"],
                rows)  # fmt: skip
    fork, spawn = sides
    ratio = spawn.median("fixed_ms") / fork.median("fixed_ms")
    fixed = fork.median("fixed_ms")
    print()
    print(f"fixed cost per job: spawn / forkserver = {ratio:.1f}x; forkserver {fixed:.1f} ms "
          f"{verdict(fixed <= TARGET_MS)} (target <= {TARGET_MS:g} ms)")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
