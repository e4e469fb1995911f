"""Overload: a flood of one RPC kind neither starves the others nor reads as a permanent error.

Real agents on loopback, a real controller (Scheduler + CostDB file + Fleet),
and floods that stop by themselves after a fixed number of calls.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleetnas.agent import errors
from fleetnas.api.v1 import agent_pb2, agent_pb2_grpc
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import Device, Fleet
from fleetnas.controller.scheduler import Job, OutcomeStatus, Scheduler
from tests import onnx_models
from tests.agent.conftest import fast_settings, reason_of

FLOOD_CALLS = 1000
FLOOD_WAVE = 250  # calls in flight at once: far over gRPC's old 64-call limit


class Flood:
    """``FLOOD_CALLS`` calls of one RPC in waves of ``FLOOD_WAVE`` concurrent futures.

    Runs on its own channel (another client than the controller) in a
    background thread and stops by itself; ``outcomes`` counts "OK" or
    "<status code>/<reason>" per call.
    """

    def __init__(self, port: int, call: Callable[[agent_pb2_grpc.AgentStub], grpc.Future]):
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._stub = agent_pb2_grpc.AgentStub(self._channel)
        self._call = call
        self.outcomes: Counter[str] = Counter()
        self.first_wave_sent = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)

    def __enter__(self) -> Flood:
        self._thread.start()
        assert self.first_wave_sent.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(120)
        self._channel.close()
        assert not self._thread.is_alive(), "the flood did not stop by itself"

    def _run(self) -> None:
        for _ in range(FLOOD_CALLS // FLOOD_WAVE):
            futures = [self._call(self._stub) for _ in range(FLOOD_WAVE)]
            self.first_wave_sent.set()
            for future in futures:
                try:
                    future.result()
                    self.outcomes["OK"] += 1
                except grpc.RpcError as err:
                    self.outcomes[f"{err.code().name}/{reason_of(err)}"] += 1


def _status_call(stub: agent_pb2_grpc.AgentStub) -> grpc.Future:
    return stub.Status.future(agent_pb2.StatusRequest(), timeout=60)


def test_controller_measures_through_a_status_flood(agent, tmp_path):
    server, _ = agent
    fleet = Fleet.of([Device("a0", "cpu", f"127.0.0.1:{server.port}")])
    db = CostDB(tmp_path / "cost.db")
    jobs = [Job.on_class(onnx_models.mlp(32, 2, seed=100 + i), "cpu", fast_settings())
            for i in range(10)]
    with Scheduler(fleet, db) as scheduler:
        assert scheduler.monitor.wait_until(lambda health: health["a0"].up, timeout=30)
        with Flood(server.port, _status_call) as flood:
            outcomes = scheduler.run(jobs)
    failures = [o.error_message for o in outcomes if o.status is not OutcomeStatus.MEASURED]
    assert not failures, failures
    assert db.count_measurements() == 10
    # Every flood call got an answer or a precise refusal: nothing else.
    assert sum(flood.outcomes.values()) == FLOOD_CALLS
    assert set(flood.outcomes) <= {"OK", "RESOURCE_EXHAUSTED/ERROR_REASON_AGENT_OVERLOADED"}, \
        flood.outcomes
    assert flood.outcomes["OK"] > 0


def test_health_and_hasmodels_answer_during_a_status_flood(agent, good_model):
    server, client = agent
    sha = client.ensure_model(good_model)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    with Flood(server.port, _status_call):
        for _ in range(5):
            start = time.monotonic()
            check = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert check.status == health_pb2.HealthCheckResponse.SERVING
            assert client.has_models([sha]) == ([sha], [])
            assert time.monotonic() - start < 5
    channel.close()


def test_status_does_not_serialise_on_the_cpu_window(agent):
    """Status answers from the latest sample instead of sleeping its CPU window per call."""
    server, client = agent
    client.status()
    start = time.monotonic()
    threads = [threading.Thread(target=client.status) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # 40 calls that each slept the 50 ms window under one lock took >= 2 s.
    assert time.monotonic() - start < 1.5


def test_reasonless_resource_exhausted_is_transient_overload():
    class Exhausted(grpc.RpcError):
        def __init__(self, details: str) -> None:
            self._details = details

        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.RESOURCE_EXHAUSTED

        def details(self) -> str:
            return self._details

        def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
            return ()

    overload = errors.from_rpc_error(Exhausted("Concurrent RPC limit exceeded!"))
    assert isinstance(overload, errors.AgentOverloaded) and overload.transient
    too_big = errors.from_rpc_error(Exhausted("Received message larger than max (9 vs. 8)"))
    assert isinstance(too_big, errors.MessageTooLarge) and not too_big.transient


@pytest.mark.parametrize("kind", ["Status", "HasModels"])
def test_a_kind_past_its_budget_is_refused_at_once_with_agent_overloaded(agent, kind):
    """Past its kind's budget a call is refused at once (transient), and the agent serves on."""
    server, client = agent
    budget = server.budgets.of(f"/fleetnas.api.v1.Agent/{kind}")
    for _ in range(budget.limit):  # as if that many calls of the kind were running
        assert budget.try_acquire()
    try:
        with pytest.raises(errors.AgentOverloaded, match=kind) as info:
            if kind == "Status":
                client.status()
            else:
                client.has_models(["0" * 64])
        assert info.value.transient
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert client.describe().agent_version  # other kinds are untouched
    finally:
        for _ in range(budget.limit):
            budget.release()
    assert client.status().serving


def test_health_watch_streams_are_bounded_and_released(agent):
    """Open Watch streams hold no thread but count against gRPC's limit: at most WATCH_STREAMS."""
    from fleetnas.agent.rpc_budgets import WATCH_STREAMS

    server, client = agent
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    watches = [health.Watch(health_pb2.HealthCheckRequest(), timeout=60)
               for _ in range(WATCH_STREAMS)]
    for watch in watches:
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        next(health.Watch(health_pb2.HealthCheckRequest(), timeout=10))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(info.value) == "ERROR_REASON_AGENT_OVERLOADED"
    assert client.status().serving  # no thread was held by the open watches
    watches.pop().cancel()
    deadline = time.monotonic() + 10
    while True:  # the slot comes back once the agent sees the cancelled stream end
        again = health.Watch(health_pb2.HealthCheckRequest(), timeout=10)
        try:
            assert next(again).status == health_pb2.HealthCheckResponse.SERVING
            break
        except grpc.RpcError as err:
            assert reason_of(err) == "ERROR_REASON_AGENT_OVERLOADED"
            assert time.monotonic() < deadline, "a cancelled watch never gave its slot back"
            time.sleep(0.05)
    again.cancel()
    for watch in watches:
        watch.cancel()
    channel.close()


def test_stopping_while_watch_streams_end_does_not_hang(start_agent):
    """The agent's stop tells open Watch streams NOT_SERVING without holding the health lock
    that an ending stream's close callback needs (grpc-health's own shutdown could deadlock
    there: an agent whose stop never returned after its watches were cancelled)."""
    import threading

    from fleetnas.agent.rpc_budgets import WATCH_STREAMS

    for _ in range(3):
        server, _ = start_agent()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        health = health_pb2_grpc.HealthStub(channel)
        watches = [health.Watch(health_pb2.HealthCheckRequest(), timeout=60)
                   for _ in range(WATCH_STREAMS)]
        for watch in watches:
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        for watch in watches[::2]:
            watch.cancel()  # half of them end while the agent stops
        stopper = threading.Thread(target=server.stop, kwargs={"drain_timeout_s": 5},
                                   daemon=True)
        stopper.start()
        for watch in watches[1::2]:
            watch.cancel()
        channel.close()
        stopper.join(20)
        assert not stopper.is_alive(), "the agent's stop hung on its health watchers"
