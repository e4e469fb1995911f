"""One measurement identity: the agent's table says what a settings hash covers.

Hashes of settings stored by v1 agents must not move (tested on a database written at
schema 3, in test_costdb_schema.py); and the cache must resolve a request the way the
agent will, device-side defaults and the model's format included.
"""

from __future__ import annotations

from pathlib import Path

from fleetnas.agent.settings import identity_fields, run_limit_fields
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import (
    RUN_LIMIT_FIELDS,
    CostDB,
)
from fleetnas.controller.scheduler import CacheLookup, Job, OutcomeStatus, Scheduler, resolve_for
from tests import onnx_models
from tests.controller.conftest import AgentPool, fleet_of, tiny_settings
from tests.controller.test_costdb_helpers import make_result, resolved_settings


def test_the_hash_covers_exactly_the_agents_identity_fields() -> None:
    assert set(RUN_LIMIT_FIELDS) == set(run_limit_fields())
    assert {"profile", "profile_runs", "agent_defaults", "timeout_s"} <= set(RUN_LIMIT_FIELDS)
    assert not set(RUN_LIMIT_FIELDS) & set(identity_fields())


def test_the_cache_resolves_a_tflite_model_to_litert(tmp_path: Path) -> None:
    description = agent_pb2.DeviceDescription(host_fingerprint="host-1")
    description.limits.max_timeout_s = 60.0
    description.limits.memory_cap_bytes = 2 << 30
    description.runtime.available_providers.append("CPUExecutionProvider")
    description.runtimes.add(name="onnxruntime", accelerators=["CPUExecutionProvider"],
                             formats=[agent_pb2.MODEL_FORMAT_ONNX], available=True)
    description.runtimes.add(name="litert", accelerators=["XNNPACK"],
                             formats=[agent_pb2.MODEL_FORMAT_TFLITE], available=True)
    request = resolved_settings()
    request.ClearField("providers")  # each runtime's default accelerator
    litert = resolve_for(request, description, agent_pb2.MODEL_FORMAT_TFLITE)
    assert litert is not None and litert.runtime == "litert" and list(litert.providers) == ["XNNPACK"]
    with CostDB(tmp_path / "cost.db") as db:
        db.upsert_device("pi-1", device_class="pi4", address="10.0.0.5:50051",
                         host_fingerprint="host-1", description=description)
        result = make_result("tflite-model", settings=litert)
        stored = db.record_measurement("pi-1", result)
        cache = CacheLookup(db)
        hit = cache.find(result.model_sha256, ["pi-1"], request, agent_pb2.MODEL_FORMAT_TFLITE)
        assert hit == stored
        assert cache.find(result.model_sha256, ["pi-1"], request) is None  # as ONNX: onnxruntime


def test_device_side_defaults_of_a_real_agent_still_hit(agents: AgentPool, tmp_path: Path) -> None:
    started = agents.start(1, extra_args=["--default-threads", "2"])
    fleet = fleet_of(started)
    model = onnx_models.mlp(16, 1, seed=41)
    with CostDB(tmp_path / "cost.db") as db:
        with Scheduler(fleet, db) as scheduler:
            (first,) = scheduler.run([Job.on_device(model, "a0", tiny_settings())])
        assert first.status is OutcomeStatus.MEASURED and first.measurement is not None
        echoed = first.measurement.settings
        assert echoed["intra_op_threads"] == 2 and "intra_op_threads" in echoed["agent_defaults"]
        agents.stop_all()  # a hit must not need the agent
        with Scheduler(fleet, db, device_wait_s=0.5) as scheduler:
            (again,) = scheduler.run([Job.on_device(model, "a0", tiny_settings())])
        assert again.status is OutcomeStatus.CACHED, again.error_message
        assert again.measurement == first.measurement
