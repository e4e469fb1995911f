"""Stale hardware is not served from the cache: an agent restarted as other hardware."""

from __future__ import annotations

from pathlib import Path

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import HeartbeatMonitor
from fleetnas.controller.scheduler import Job, OutcomeStatus, Scheduler
from tests import onnx_models
from tests.controller.conftest import AgentPool, fleet_of, tiny_settings


def test_an_agent_restarted_as_other_hardware_is_not_served_the_old_cache(
    agents: AgentPool, tmp_path: Path
) -> None:
    (agent,) = agents.start(1, host_fingerprints=["board-A"])
    fleet = fleet_of([agent])
    job = Job.on_device(onnx_models.mlp(32, 2, seed=11), "a0", tiny_settings())
    with CostDB(tmp_path / "cost.db") as db:
        with Scheduler(fleet, db) as scheduler:
            (first,) = scheduler.run([job])
        assert first.status is OutcomeStatus.MEASURED and first.measurement is not None
        assert first.measurement.hardware_id is not None

        agent.stop()
        agent.host_fingerprint = "board-B"  # another board behind the same name and address
        agent = agents.restart(agent)
        with HeartbeatMonitor(fleet, interval_s=0.3) as monitor, Scheduler(
            fleet, db, monitor=monitor
        ) as scheduler:
            (second,) = scheduler.run([job])
        assert second.status is OutcomeStatus.MEASURED, "served the old board's latency"
        assert second.measurement is not None
        assert second.measurement.host_fingerprint == "board-B"
        assert second.measurement.hardware_id not in (None, first.measurement.hardware_id)
        device = db.get_device("a0")
        assert device is not None and device.hardware_id == second.measurement.hardware_id

        # Later, with no agent to ask: the new history serves, never the old one.
        agents.stop_all()
        with Scheduler(fleet, db, device_wait_s=0.5) as scheduler:
            (third,) = scheduler.run([job])
            assert scheduler._monitor is None
        assert third.status is OutcomeStatus.CACHED and third.measurement == second.measurement
        assert db.count_measurements() == 2  # the old board's measurement is kept
