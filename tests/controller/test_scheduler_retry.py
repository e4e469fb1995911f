"""The retry policy, and overload: retried on the same device, never marked down.

The agent's own overload error (``AgentOverloaded``, reasonless RESOURCE_EXHAUSTED) is
added on the agent side; the policy recognises it by class name or reason, so these
tests define an error of that name. The scheduler test runs real agents on loopback and
a real cost DB; only the overload itself is injected, for the first two Benchmark calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetnas.agent.client import AgentClient
from fleetnas.agent.errors import (
    AgentError,
    AgentUnavailable,
    ModelInvalid,
    ModelTooLarge,
    QueueFull,
)
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import ClientFactory, Device
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


class AgentOverloaded(AgentError):
    """Stands for the agent's overload error (transient, RESOURCE_EXHAUSTED)."""

    transient = True


class OverloadedByReason(AgentError):
    transient = True
    reason = "AGENT_OVERLOADED"  # type: ignore[assignment]


def test_overload_is_recognised_by_name_or_reason_and_only_when_transient() -> None:
    assert is_overloaded(AgentOverloaded("busy"))
    assert is_overloaded(OverloadedByReason("busy"))
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


class _Overloading:
    """A real client whose first ``budget[0]`` Benchmark calls see an overloaded agent."""

    def __init__(self, client: AgentClient, budget: list[int]) -> None:
        self._client = client
        self._budget = budget

    def benchmark(self, *args: object, **kwargs: object) -> agent_pb2.BenchmarkResult:
        if self._budget[0] > 0:
            self._budget[0] -= 1
            raise AgentOverloaded("Concurrent RPC limit exceeded!")
        return self._client.benchmark(*args, **kwargs)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)


@dataclass(frozen=True)
class _Factory(ClientFactory):
    overloaded: str = ""
    budget: tuple[list[int], ...] = ()

    def connect(self, device: Device, *, call_timeout_s: float | None = None) -> AgentClient:
        client = super().connect(device, call_timeout_s=call_timeout_s)
        if device.name == self.overloaded:
            return _Overloading(client, self.budget[0])  # type: ignore[return-value]
        return client


def test_an_overloaded_agent_is_asked_again_not_marked_down(
    agents: AgentPool, tmp_path: Path
) -> None:
    started = agents.start(2, host_fingerprints=["h0", "h1"])
    fleet = fleet_of(started)
    factory = _Factory(base_dir=fleet.base_dir, overloaded="a0", budget=([2],))
    with CostDB(tmp_path / "cost.db") as db, Scheduler(
        fleet, db, factory=factory, max_retries=0,
        overload_backoff=OverloadBackoff(initial_s=0.05, max_s=0.2),
    ) as scheduler:
        (outcome,) = scheduler.run([Job.on_device(onnx_models.mlp(16, 1), "a0", tiny_settings())])
        health = scheduler.monitor.health("a0")
    assert outcome.status is OutcomeStatus.MEASURED and outcome.device == "a0"
    assert [a.device for a in outcome.attempts] == ["a0", "a0", "a0"]
    assert [a.transient for a in outcome.attempts[:2]] == [True, True]
    assert "Concurrent RPC limit" in (outcome.attempts[0].error or "")
    assert outcome.attempts[1].started_at - outcome.attempts[0].ended_at >= 0.05
    assert health.up and health.failures == 0
