"""Flood: one agent under N concurrent Status + Benchmark calls while a controller measures.

Starts a real ``fleetnas-agent serve`` subprocess on loopback and a real
controller (``Scheduler`` with a temporary ``CostDB`` file and a one-device
``Fleet``). First a baseline batch of ``--jobs`` distinct small MLPs with no
flood; then, while another batch of ``--jobs`` fresh MLPs runs, a flooding
client on its own channel sends waves of ``--concurrency`` concurrent calls
(half Status, half Benchmark of a model the agent does not have, which the
agent must still take in, validate and answer NOT_FOUND), wave after wave
until the controller's batch is done or ``--max-waves`` waves were sent: the
flood is bounded and stops by itself. A flood of *real* benchmarks is work the
agent must queue (QUEUE_FULL past ``--max-queue``), not an overload, and is not
what this bench measures.

Prints the flood's outcomes by status/reason, the share of the controller's
jobs that succeeded (target **100%**), the agent's resident memory before the
flood, at its peak and after (target: growth after < **20 MB**), and for
information the flooded batch's wall time as a ratio to the baseline batch
(measured side by side). No assertions.

    .venv/bin/python bench/bench_agent_flood.py [--concurrency 1000] [--jobs 10] \\
        [--max-waves 20] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import psutil
from _agent_common import AgentProcess, header, load_line, onnx_models, print_table, verdict

from fleetnas.api.v1 import agent_pb2, agent_pb2_grpc
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import Device, Fleet
from fleetnas.controller.scheduler import Job, OutcomeStatus, Scheduler

SETTINGS = agent_pb2.BenchmarkSettings(
    warmup_runs=2, min_runs=10, max_runs=30, min_duration_s=0.0, max_duration_s=0.5,
    timeout_s=60.0,
)  # fmt: skip
UNKNOWN_SHA = "f" * 64
RSS_GROWTH_TARGET_MB = 20.0


class Flood:
    """Waves of ``concurrency`` concurrent calls until ``stop`` is set or ``max_waves`` sent."""

    def __init__(self, address: str, concurrency: int, max_waves: int) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = agent_pb2_grpc.AgentStub(self._channel)
        self._concurrency = concurrency
        self._max_waves = max_waves
        self.stop = threading.Event()
        self.outcomes: Counter[str] = Counter()
        self.waves = 0
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)

    def _call(self, i: int) -> grpc.Future:
        if i % 2:
            request = agent_pb2.BenchmarkRequest(model_sha256=UNKNOWN_SHA, settings=SETTINGS)
            return self._stub.Benchmark.future(request, timeout=120)
        return self._stub.Status.future(agent_pb2.StatusRequest(), timeout=120)

    def _run(self) -> None:
        start = time.monotonic()
        while self.waves < self._max_waves and not self.stop.is_set():
            futures = [self._call(i) for i in range(self._concurrency)]
            self.waves += 1
            for future in futures:
                try:
                    future.result()
                    self.outcomes["OK"] += 1
                except grpc.RpcError as err:
                    reason = dict(err.trailing_metadata() or ()).get("fleetnas-reason", "-")
                    self.outcomes[f"{err.code().name} / {reason}"] += 1
        self.seconds = time.monotonic() - start

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()
        self._channel.close()


def run_batch(scheduler: Scheduler, seeds: range) -> tuple[int, float]:
    """(jobs measured, wall s) of one batch of fresh MLPs."""
    models = onnx_models()
    jobs = [Job.on_class(models.mlp(64, 2, seed=seed), "bench", SETTINGS) for seed in seeds]
    start = time.monotonic()
    outcomes = scheduler.run(jobs)
    wall = time.monotonic() - start
    for outcome in outcomes:
        if outcome.status is not OutcomeStatus.MEASURED:
            print(f"  job {outcome.index} failed: {outcome.error_message}")
    return sum(o.status is OutcomeStatus.MEASURED for o in outcomes), wall


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=1000, help="calls in flight per wave")
    parser.add_argument("--jobs", type=int, default=10, help="controller jobs per batch")
    parser.add_argument("--max-waves", type=int, default=20, help="cap on the flood's waves")
    parser.add_argument("--quick", action="store_true", help="300 calls a wave, 4 jobs, 3 waves")
    args = parser.parse_args()
    concurrency, jobs, max_waves = (
        (300, 4, 3) if args.quick else (args.concurrency, args.jobs, args.max_waves)
    )
    header("agent flood", [f"{concurrency} concurrent calls a wave (half Status, half "
                           f"Benchmark of an unknown model), <= {max_waves} waves; "
                           f"controller batches of {jobs} small MLPs"])
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp, \
            AgentProcess(Path(tmp) / "agent") as agent:
        fleet = Fleet.of([Device("a0", "bench", agent.address)])
        db = CostDB(Path(tmp) / "cost.db")
        with Scheduler(fleet, db) as scheduler:
            base_ok, base_wall = run_batch(scheduler, range(jobs))  # also warms the agent up
            rss_before = rss_mb(agent.pid)
            flood = Flood(agent.address, concurrency, max_waves)
            peak = [rss_before]
            flood.start()
            sampler_stop = threading.Event()

            def sample_rss() -> None:
                while not sampler_stop.wait(0.1):
                    peak[0] = max(peak[0], rss_mb(agent.pid))

            sampler = threading.Thread(target=sample_rss, daemon=True)
            sampler.start()
            ok, wall = run_batch(scheduler, range(jobs, 2 * jobs))
            flood.stop.set()
            flood.join()
            sampler_stop.set()
            sampler.join()
            rss_after = rss_mb(agent.pid)
        db.close()

    calls = sum(flood.outcomes.values())
    print(f"flood: {calls} calls in {flood.waves} waves over {flood.seconds:.1f} s "
          f"({calls / max(flood.seconds, 1e-9):.0f} calls/s)")
    print_table(["flood outcome (status / reason)", "calls", "share"], [
        [name, str(n), f"{100 * n / calls:.1f}%"] for name, n in flood.outcomes.most_common()
    ])  # fmt: skip
    print()
    growth = rss_after - rss_before
    print_table(["figure", "value", "target", ""], [
        ["baseline batch: jobs measured", f"{base_ok}/{jobs}", "", ""],
        ["flooded batch: jobs measured", f"{ok}/{jobs} ({100 * ok / jobs:.0f}%)", "100%",
         verdict(ok == jobs)],
        ["agent RSS before flood", f"{rss_before:.1f} MB", "", ""],
        ["agent RSS peak during flood", f"{peak[0]:.1f} MB", "", ""],
        ["agent RSS after flood", f"{rss_after:.1f} MB", "", ""],
        ["RSS growth (after - before)", f"{growth:+.1f} MB", f"< {RSS_GROWTH_TARGET_MB:g} MB",
         verdict(growth < RSS_GROWTH_TARGET_MB)],
        ["flooded / baseline batch wall", f"{wall:.2f} / {base_wall:.2f} s = "
         f"{wall / base_wall:.2f}", "(info)", ""],
    ])  # fmt: skip
    print()
    print(load_line("at end"))


if __name__ == "__main__":
    main()
