"""The retry policy, and overload: retried on the same device, never marked down.

The scheduler test floods a real agent's UploadModel budget (``--max-uploads 1``) with
a stalled upload from another client, so the scheduler's own upload is refused with the
agent's real ``AgentOverloaded``; the agent's idle watchdog ends the stall, and the
scheduler's bounded backoff on the same device then gets through.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fleetnas.agent.client import AgentClient
from fleetnas.agent.errors import (
    AgentOverloaded,
    AgentUnavailable,
    ModelInvalid,
    ModelTooLarge,
    QueueFull,
)
from fleetnas.api.v1 import agent_pb2, agent_pb2_grpc
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.scheduler import (
    Job,
    OutcomeStatus,
    OverloadBackoff,
    RetryPolicy,
    Scheduler,
    is_overloaded,
)
from fleetnas.controller.scheduler._retry import Decision
from tests import onnx_models
from tests.controller.conftest import AgentPool, fleet_of, tiny_settings


def test_overload_is_recognised_only_as_the_agents_overload_error() -> None:
    assert is_overloaded(AgentOverloaded("busy"))
    assert not is_overloaded(QueueFull("full"))
    assert not is_overloaded(ModelTooLarge("too large"))  # permanent: a size cap
    assert not is_overloaded(ValueError("AgentOverloaded"))


def test_overload_retries_the_same_device_with_bounded_backoff() -> None:
    policy = RetryPolicy(max_retries=1, backoff_s=0.25,
                         overload=OverloadBackoff(max_tries=3, initial_s=0.1, max_s=0.3))
    verdicts = [policy.decide(AgentOverloaded("busy"), attempts=n + 1, overloads=n)
                for n in range(4)]
    assert [v.decision for v in verdicts[:3]] == [Decision.SAME_DEVICE] * 3
    assert [v.delay_s for v in verdicts[:3]] == pytest.approx([0.1, 0.2, 0.3])
    # used up: now it counts like any transient failure (one retry elsewhere allowed)
    assert verdicts[3].decision is Decision.ELSEWHERE
    assert policy.decide(AgentOverloaded("busy"), attempts=5, overloads=3).decision \
        is Decision.FAIL
    assert not policy.device_gone(AgentOverloaded("busy"))
    assert policy.device_gone(AgentUnavailable("down"))
    assert policy.decide(ModelInvalid("bad"), attempts=1).decision is Decision.FAIL
    with pytest.raises(ValueError, match="initial_s"):
        OverloadBackoff(initial_s=0.0)


class StalledUpload:
    """An UploadModel stream from another client that sends its first chunk and then
    nothing: it holds one slot of the agent's UploadModel budget until the agent's idle
    watchdog cancels it (or the test ends)."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._release = threading.Event()
        data = onnx_models.mlp(8, 1, seed=99)
        self._first = agent_pb2.UploadChunk(sha256="0" * 64, total_bytes=len(data) + 1,
                                            data=data[:16])
        self.call = agent_pb2_grpc.AgentStub(self._channel).UploadModel.future(
            self._chunks(), timeout=120)

    def _chunks(self) -> Iterator[agent_pb2.UploadChunk]:
        yield self._first
        self._release.wait(120)

    def close(self) -> None:
        self._release.set()
        self.call.cancel()
        self._channel.close()


def hold_upload_budget(address: str, tries: int = 50) -> StalledUpload:
    """A stalled upload that holds the agent's one UploadModel slot, checked: another
    upload is refused as overloaded while the stall is still open. (A probe in flight
    when the stall arrives gets the slot instead; then the stall is refused and
    started again.)"""
    with AgentClient(address, call_timeout_s=10) as probe:
        for _ in range(tries):
            stall = StalledUpload(address)
            try:
                probe.upload_model(onnx_models.mlp(8, 1, seed=98))
            except AgentOverloaded:
                if not stall.call.done():
                    return stall
            stall.close()
    raise AssertionError(f"a stalled upload never held the budget in {tries} tries")


def test_a_flooded_agent_is_asked_again_not_marked_down(
    agents: AgentPool, tmp_path: Path
) -> None:
    (agent,) = agents.start(1, extra_args=["--max-uploads", "1", "--upload-idle-timeout", "3"])
    fleet = fleet_of([agent])
    model = onnx_models.mlp(16, 1, seed=5)
    with CostDB(tmp_path / "cost.db") as db, Scheduler(
        fleet, db, max_retries=0,
        overload_backoff=OverloadBackoff(max_tries=20, initial_s=0.1, max_s=0.5),
    ) as scheduler:
        assert scheduler.monitor.wait_until(lambda h: h["a0"].up, timeout=30)
        stall = hold_upload_budget(agent.address)
        try:
            (outcome,) = scheduler.run([Job.on_device(model, "a0", tiny_settings())])
            health = scheduler.monitor.health("a0")
        finally:
            stall.close()
    assert outcome.status is OutcomeStatus.MEASURED, outcome.error_message
    assert outcome.device == "a0" and {a.device for a in outcome.attempts} == {"a0"}
    refused = outcome.attempts[:-1]
    assert refused, "the scheduler's upload was never refused: no overload was exercised"
    assert all(a.transient and "overloaded" in (a.error or "") for a in refused)
    assert "UploadModel" in (refused[0].error or "")
    assert outcome.attempts[1].started_at - outcome.attempts[0].ended_at >= 0.1
    assert health.up and health.failures == 0
