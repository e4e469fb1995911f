"""The scheduler against real agent subprocesses on loopback and a real cost DB file."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import pytest

from fleetnas.agent.client import AgentClient
from fleetnas.agent.errors import AgentError, InvalidSettings, ModelInvalid
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import Device, Fleet, HeartbeatMonitor, UnknownDevice
from fleetnas.controller.scheduler import (
    Job,
    JobOutcome,
    NoDeviceAvailable,
    OutcomeStatus,
    Progress,
    Scheduler,
)
from tests import onnx_models
from tests.controller.conftest import AgentPool, fleet_of, tiny_settings


@pytest.fixture
def db(tmp_path: Path):
    with CostDB(tmp_path / "cost.db") as database:
        yield database


def _models(count: int, width: int = 64) -> list[bytes]:
    return [onnx_models.mlp(width, 3, seed=i) for i in range(count)]


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _wait_job_start(address: str, deadline_s: float = 30.0) -> None:
    """Poll an agent's Status until it goes from idle to busy: a benchmark has just begun.

    Returning at a fresh start (not merely "busy", which may be a job's last
    milliseconds) lets a test kill the agent while that job is surely in flight.
    """
    deadline = time.monotonic() + deadline_s
    seen_idle = False
    with AgentClient(address, call_timeout_s=2.0) as client:
        while time.monotonic() < deadline:
            try:
                busy = client.status().busy
            except AgentError:
                busy = None
            if busy is False:
                seen_idle = True
            elif busy and seen_idle:
                return
            time.sleep(0.005)
    raise AssertionError(f"agent {address} never started a benchmark")


def test_agents_sharing_a_host_never_benchmark_at_the_same_time(
    agents: AgentPool, db: CostDB
) -> None:
    started = agents.start(3, host_fingerprints=["host-A", "host-A", "host-B"])
    fleet = fleet_of(started)
    settings = tiny_settings(min_duration_s=0.1, max_duration_s=0.2)
    jobs = [Job.on_class(m, "cpu", settings) for m in _models(9)]
    jobs += [Job.on_device(onnx_models.mlp(48, 2, seed=i), f"a{i}", settings) for i in range(3)]
    progress: list[Progress] = []
    with Scheduler(fleet, db) as scheduler:
        outcomes = scheduler.run(jobs, on_progress=progress.append)

    assert [o.status for o in outcomes] == [OutcomeStatus.MEASURED] * len(jobs)
    assert [p.done for p in progress] == list(range(1, len(jobs) + 1))
    by_device: dict[str, list[JobOutcome]] = {}
    for outcome in outcomes:
        by_device.setdefault(outcome.device or "", []).append(outcome)
    assert set(by_device) == {"a0", "a1", "a2"}

    same_host = by_device["a0"] + by_device["a1"]
    # The agents' own clock: each benchmark's [started_at, started_at + wall_s].
    agent_spans = [(o.measurement.started_at, o.measurement.started_at + o.measurement.wall_s)
                   for o in same_host if o.measurement]
    # The controller's clock: upload + benchmark of each attempt, which encloses the above.
    ctl_spans = [(a.started_at, a.ended_at) for o in same_host for a in o.attempts]
    for spans in (agent_spans, ctl_spans):
        for i, first in enumerate(spans):
            for second in spans[i + 1:]:
                assert not _overlap(first, second), (first, second)
    # ...while the other host did run in parallel with host-A at some point.
    other = [(a.started_at, a.ended_at) for o in by_device["a2"] for a in o.attempts]
    assert any(_overlap(x, y) for x in other for y in ctl_spans)
    # Written as they arrived: one row per job.
    assert db.count_measurements() == len(jobs)


def test_sigkill_mid_batch_moves_the_job_and_loses_or_duplicates_nothing(
    agents: AgentPool, db: CostDB
) -> None:
    started = agents.start(3)
    victim = started[0]
    fleet = fleet_of(started)
    # each job times for >= 0.6 s: a kill right after a job starts lands mid-job
    settings = tiny_settings(min_runs=5, max_runs=100_000, min_duration_s=0.6,
                             max_duration_s=0.7)
    models = _models(9)
    jobs = [Job.on_class(m, "cpu", settings) for m in models]
    result: list[list[JobOutcome]] = []
    with Scheduler(fleet, db, heartbeat_interval_s=0.5) as scheduler:
        runner = threading.Thread(target=lambda: result.append(scheduler.run(jobs)))
        runner.start()
        _wait_job_start(victim.address)
        victim.kill()
        runner.join(120)
        assert not runner.is_alive()
        assert not scheduler.monitor.health(victim.name).up
    outcomes = result[0]
    assert [o.status for o in outcomes] == [OutcomeStatus.MEASURED] * len(jobs)
    moved = [o for o in outcomes if any(a.device == victim.name and a.error for a in o.attempts)]
    assert len(moved) == 1, [o.attempts for o in outcomes]
    assert moved[0].attempts[0].transient and moved[0].attempts[0].error.startswith("unreachable")
    assert moved[0].device != victim.name
    for outcome in outcomes:
        assert db.count_measurements(model_sha256=outcome.job.model.sha256) == 1
    assert db.count_measurements() == len(jobs)


def test_an_agent_that_comes_back_is_used_again(
    agents: AgentPool, db: CostDB, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fleetnas.scheduler")
    (agent,) = agents.start(1)
    fleet = fleet_of([agent])
    model = onnx_models.mlp(32, 2, seed=1)
    with Scheduler(fleet, db, heartbeat_interval_s=0.2, heartbeat_backoff_max_s=0.5,
                   device_wait_s=60) as scheduler:
        first = scheduler.run([Job.on_device(model, "a0", tiny_settings())])
        assert first[0].status is OutcomeStatus.MEASURED
        agent.kill()
        assert scheduler.monitor.wait_until(lambda h: not h["a0"].up, timeout=30)
        assert "unreachable" in (scheduler.monitor.health("a0").reason or "")
        # The agent comes back with an empty model cache: the scheduler, which uploaded
        # the model before, must notice (ModelNotFound) and upload it again.
        shutil.rmtree(agent.cache_dir / "models")
        # Queue a job while the device is down; it runs once heartbeats see the agent again.
        later: list[list[JobOutcome]] = []
        runner = threading.Thread(target=lambda: later.append(scheduler.run(
            [Job.on_device(model, "a0", tiny_settings(warmup_runs=3))])))
        runner.start()
        agents.restart(agent)
        runner.join(90)
        assert not runner.is_alive()
    (outcome,) = later[0]
    assert outcome.status is OutcomeStatus.MEASURED and outcome.device == "a0"
    assert len(outcome.attempts) == 1
    assert "is gone from a0; uploading it again" in caplog.text
    assert db.count_measurements(device="a0") == 2


def test_a_cache_hit_contacts_no_agent(agents: AgentPool, db: CostDB) -> None:
    started = agents.start(2)
    fleet = fleet_of(started)
    model = onnx_models.mlp(32, 2, seed=7)
    settings = tiny_settings()
    defaults = onnx_models.mlp(16, 1, seed=8)
    with Scheduler(fleet, db) as scheduler:
        measured, with_defaults = scheduler.run([
            Job.on_class(model, "cpu", settings),
            # Every setting unset: the look-up must resolve them as the agent did
            # (defaults, and limits from the device's recorded description).
            Job.on_device(defaults, "a1"),
        ])
    assert measured.status is with_defaults.status is OutcomeStatus.MEASURED
    agents.stop_all()  # nothing left to answer

    with Scheduler(fleet, db, device_wait_s=0.5) as scheduler:
        again = scheduler.run([
            Job.on_class(model, "cpu", settings),
            Job.on_device(model, measured.device or "", settings),
            Job.on_class(model, "cpu", settings),  # a duplicate in the batch
        ])
        (default_hit,) = scheduler.run([Job.on_device(defaults, "a1")])
        assert scheduler._monitor is None  # never started: no device was needed
    assert [o.status for o in again] == [OutcomeStatus.CACHED] * 3
    assert all(o.measurement == measured.measurement for o in again)
    assert again[2].duplicate_of == 0
    assert default_hit.status is OutcomeStatus.CACHED
    assert default_hit.measurement == with_defaults.measurement
    assert db.count_measurements() == 2


def test_a_permanent_failure_is_returned_once_and_not_retried(
    agents: AgentPool, db: CostDB
) -> None:
    started = agents.start(2)
    fleet = fleet_of(started)
    good = onnx_models.mlp(32, 2, seed=3)
    with Scheduler(fleet, db, max_retries=3) as scheduler:
        outcomes = scheduler.run([
            Job.on_class(onnx_models.random_bytes(4096), "cpu", tiny_settings()),
            Job.on_class(good, "cpu", tiny_settings(max_duration_s=1e9)),
            Job.on_class(good, "cpu", tiny_settings()),
        ])
    corrupt, bad_settings, fine = outcomes
    assert corrupt.status is OutcomeStatus.FAILED and isinstance(corrupt.error, ModelInvalid)
    assert len(corrupt.attempts) == 1 and not corrupt.attempts[0].transient
    assert bad_settings.status is OutcomeStatus.FAILED
    assert isinstance(bad_settings.error, InvalidSettings) and len(bad_settings.attempts) == 1
    assert fine.status is OutcomeStatus.MEASURED
    assert db.count_measurements() == 1


def test_a_job_for_a_dead_device_fails_after_the_wait_with_the_reason(db: CostDB) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fleet = Fleet.of([Device("gone", "cpu", f"127.0.0.1:{port}")])
    with Scheduler(fleet, db, device_wait_s=0.5) as scheduler:
        (outcome,) = scheduler.run([Job.on_device(onnx_models.mlp(8, 1), "gone")])
        with pytest.raises(UnknownDevice, match="fleetnas fleet add nope"):
            scheduler.run([Job.on_device(onnx_models.mlp(8, 1), "nope")])
    assert outcome.status is OutcomeStatus.FAILED
    assert isinstance(outcome.error, NoDeviceAvailable)
    assert "unreachable" in outcome.error.message and "fleet status" in outcome.error.message
    assert outcome.attempts == ()


def test_heartbeats_mark_down_and_up_with_backoff(agents: AgentPool) -> None:
    (agent,) = agents.start(1)
    fleet = fleet_of([agent])
    changes: list[tuple[str, bool]] = []
    with HeartbeatMonitor(fleet, interval_s=0.2, backoff_initial_s=0.1,
                          backoff_max_s=0.4) as monitor:
        monitor.add_listener(lambda h: changes.append((h.name, h.up)))
        health = monitor.health("a0")
        assert health.up and health.description is not None and health.status is not None
        assert health.host_fingerprint
        agent.kill()
        assert monitor.wait_until(lambda h: not h["a0"].up, timeout=30)
        assert monitor.wait_until(lambda h: h["a0"].failures >= 3, timeout=30)
        agents.restart(agent)
        assert monitor.wait_until(lambda h: h["a0"].up, timeout=30)
        assert monitor.health("a0").failures == 0
    assert changes == [("a0", False), ("a0", True)]


def test_a_class_job_on_a_device_jobs_device_is_merged_into_it(
    agents: AgentPool, db: CostDB
) -> None:
    started = agents.start(2, host_fingerprints=["h0", "h1"])
    fleet = fleet_of(started)
    model = onnx_models.mlp(24, 2, seed=31)
    explicit = tiny_settings(intra_op_threads=1)  # other bytes, the same settings on a0
    with Scheduler(fleet, db) as scheduler:
        assert scheduler.monitor.wait_until(lambda h: h["a0"].up and h["a1"].up, timeout=30)
        on_device, on_class = scheduler.run([
            Job.on_device(model, "a0", explicit), Job.on_class(model, "cpu", tiny_settings()),
        ])
    assert on_device.status is OutcomeStatus.MEASURED and on_device.device == "a0"
    assert on_class.status is OutcomeStatus.MEASURED and on_class.duplicate_of == 0
    assert on_class.measurement == on_device.measurement and on_class.attempts == ()
    assert db.count_measurements(model_sha256=on_device.measurement.model_sha256) == 1


def test_a_merged_class_job_whose_device_job_fails_runs_on_its_own(
    agents: AgentPool, db: CostDB
) -> None:
    started = agents.start(2, host_fingerprints=["h0", "h1"])
    fleet = fleet_of(started)
    started[0].stop()
    model = onnx_models.mlp(24, 2, seed=32)
    with Scheduler(fleet, db, device_wait_s=1.0) as scheduler:
        on_device, on_class = scheduler.run([
            Job.on_device(model, "a0", tiny_settings()), Job.on_class(model, "cpu", tiny_settings()),
        ])
    assert on_device.status is OutcomeStatus.FAILED
    assert isinstance(on_device.error, NoDeviceAvailable)
    assert on_class.status is OutcomeStatus.MEASURED and on_class.device == "a1"
    assert on_class.duplicate_of is None and on_class.attempts
