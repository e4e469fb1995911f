"""JobGate: one at a time, FIFO, bounded queue, drain on close."""

from __future__ import annotations

import threading
import time

import pytest

from fleetnas.agent.errors import QueueFull, ShuttingDown
from fleetnas.agent.job_gate import JobGate


def _wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def _start_holder(gate: JobGate, release: threading.Event) -> threading.Thread:
    """A thread that takes the run slot and keeps it until ``release``; returns once it holds it."""

    def hold() -> None:
        with gate.slot("holder"):
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    _wait_until(lambda: gate.busy)
    return holder


def _start_waiter(gate: JobGate, refused: list[Exception], **slot_args) -> threading.Thread:
    """A thread that queues for the slot (recording ShuttingDown); returns once it is queued."""
    queued_before = gate.queue_length

    def wait_in_queue() -> None:
        try:
            with gate.slot("waiter", **slot_args):
                pass
        except ShuttingDown as exc:
            refused.append(exc)

    waiter = threading.Thread(target=wait_in_queue)
    waiter.start()
    _wait_until(lambda: gate.queue_length == queued_before + 1)
    return waiter


def test_runs_one_at_a_time_in_arrival_order():
    gate = JobGate(max_queue=5)
    order: list[int] = []
    active = []
    overlap = []
    release = threading.Event()

    def job(i: int) -> None:
        with gate.slot(str(i)):
            active.append(i)
            overlap.append(len(active))
            if i == 0:
                release.wait(10)
            order.append(i)
            active.remove(i)

    threads = [threading.Thread(target=job, args=(0,))]
    threads[0].start()
    _wait_until(lambda: gate.busy)
    for i in range(1, 4):
        t = threading.Thread(target=job, args=(i,))
        t.start()
        threads.append(t)
        _wait_until(lambda i=i: gate.queue_length == i)
    release.set()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3]
    assert max(overlap) == 1


def test_queue_bound_gives_queue_full():
    gate = JobGate(max_queue=1)
    release = threading.Event()
    refused: list[Exception] = []
    holder = _start_holder(gate, release)
    waiter = _start_waiter(gate, refused)
    with pytest.raises(QueueFull, match="1 waiting"):
        with gate.slot("c"):
            pass
    release.set()
    holder.join(10)
    waiter.join(10)
    assert not gate.busy and gate.queue_length == 0 and refused == []


def test_close_refuses_waiters_but_lets_the_holder_finish():
    gate = JobGate(max_queue=3)
    release = threading.Event()
    refused: list[Exception] = []
    holder = _start_holder(gate, release)
    waiter = _start_waiter(gate, refused)
    gate.close()
    waiter.join(10)
    assert len(refused) == 1
    assert not gate.wait_idle(timeout=0.05)  # the holder is still running
    release.set()
    assert gate.wait_idle(timeout=10)
    holder.join(10)
    assert not holder.is_alive()
    with pytest.raises(ShuttingDown):
        with gate.slot("late"):
            pass


def test_cancelled_waiter_leaves_the_queue():
    gate = JobGate(max_queue=2)
    release = threading.Event()
    cancelled = threading.Event()
    refused: list[Exception] = []
    holder = _start_holder(gate, release)
    waiter = _start_waiter(gate, refused, is_active=lambda: not cancelled.is_set())
    cancelled.set()
    waiter.join(10)
    assert gate.queue_length == 0 and "cancelled" in str(refused[0])
    release.set()
    holder.join(10)
