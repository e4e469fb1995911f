"""Scheduler faults with real processes: a frozen agent, and two controllers on one host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from fleetnas.agent.client import AgentClient
from fleetnas.agent.errors import AgentError
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import HeartbeatMonitor
from fleetnas.controller.local_agents import LocalAgent
from fleetnas.controller.scheduler import Job, JobOutcome, OutcomeStatus, Scheduler
from tests import onnx_models
from tests.controller.conftest import AgentPool, fleet_of, tiny_settings


def _busy_agent(agents: list[LocalAgent], deadline_s: float = 60.0) -> LocalAgent:
    """The agent that is running a benchmark now (polls Status of each)."""
    clients = [AgentClient(a.address, call_timeout_s=2.0) for a in agents]
    try:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            for agent, client in zip(agents, clients, strict=True):
                try:
                    if client.status().busy:
                        return agent
                except AgentError:
                    pass
            time.sleep(0.02)
    finally:
        for client in clients:
            client.close()
    raise AssertionError("no agent started the benchmark")


def test_a_frozen_agent_loses_its_job_to_another_device_within_heartbeats(
    agents: AgentPool, tmp_path: Path
) -> None:
    started = agents.start(2, host_fingerprints=["h0", "h1"])
    fleet = fleet_of(started)
    # ~2 s of timed runs: long enough to freeze the agent mid-benchmark
    settings = tiny_settings(min_runs=5, max_runs=100_000, min_duration_s=2.0,
                             max_duration_s=2.5, timeout_s=60.0)
    result: list[list[JobOutcome]] = []
    frozen: LocalAgent | None = None
    with CostDB(tmp_path / "cost.db") as db, HeartbeatMonitor(
        fleet, interval_s=0.3, timeout_s=1.0, backoff_max_s=1.0
    ) as monitor, Scheduler(fleet, db, monitor=monitor) as scheduler:
        runner = threading.Thread(target=lambda: result.append(
            scheduler.run([Job.on_class(onnx_models.mlp(64, 3, seed=5), "cpu", settings)])))
        runner.start()
        try:
            frozen = _busy_agent(started)
            os.kill(frozen.pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            # the call's own deadline is 60 s + 120 s: without re-routing this times out
            runner.join(45)
            finished_after = time.monotonic() - stopped_at
            assert not runner.is_alive(), "the job waited on the frozen agent"
            assert not monitor.health(frozen.name).up
        finally:
            if frozen is not None:
                os.kill(frozen.pid, signal.SIGCONT)
            runner.join(200)
    (outcome,) = result[0]
    assert outcome.status is OutcomeStatus.MEASURED
    assert outcome.device != frozen.name
    first = outcome.attempts[0]
    assert first.device == frozen.name and first.transient
    assert "heartbeats failed during the call" in (first.error or "")
    # a few heartbeat intervals + the probe timeout + the job itself on the other device
    assert finished_after < 20, finished_after
    with CostDB(tmp_path / "cost.db") as db:
        assert db.count_measurements() == 1


def test_two_controllers_never_benchmark_one_host_at_once(
    agents: AgentPool, tmp_path: Path
) -> None:
    # two local agents of one machine, each driven by its own controller process
    started = agents.start(2, host_fingerprints=["one-host", "one-host"])
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    start = tmp_path / "go"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    repo = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.controller.host_lock_controller", agent.address,
             str(tmp_path / f"c{i}.db"), str(start), str(i)],
            cwd=repo, env=env,
        )
        for i, agent in enumerate(started)
    ]
    try:
        time.sleep(1.0)  # let both connect; they wait for the start file
        start.touch()
        codes = [p.wait(180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [0, 0]
    spans: list[tuple[float, float, int]] = []
    for i in range(2):
        with CostDB(tmp_path / f"c{i}.db") as db:
            spans += [(m.started_at, m.started_at + m.wall_s, i) for m in db.measurements()]
    assert len(spans) == 8
    for a in spans:
        for b in spans:
            if a[2] != b[2]:
                assert not (a[0] < b[1] and b[0] < a[1]), (a, b)
    assert list((runtime / "fleetnas" / "hosts").glob("*.lock"))
