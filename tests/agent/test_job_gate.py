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

    def hold() -> None:
        with gate.slot("a"):
            release.wait(10)

    def wait_in_queue() -> None:
        with gate.slot("b"):
            pass

    holder = threading.Thread(target=hold)
    holder.start()
    _wait_until(lambda: gate.busy)
    waiter = threading.Thread(target=wait_in_queue)
    waiter.start()
    _wait_until(lambda: gate.queue_length == 1)
    with pytest.raises(QueueFull, match="1 waiting"):
        with gate.slot("c"):
            pass
    release.set()
    holder.join(10)
    waiter.join(10)
    assert not gate.busy and gate.queue_length == 0


def test_close_refuses_waiters_but_lets_the_holder_finish():
    gate = JobGate(max_queue=3)
    release = threading.Event()
    finished = threading.Event()
    refused: list[Exception] = []

    def hold() -> None:
        with gate.slot("a"):
            release.wait(10)
        finished.set()

    def wait_in_queue() -> None:
        try:
            with gate.slot("b"):
                pass
        except ShuttingDown as exc:
            refused.append(exc)

    holder = threading.Thread(target=hold)
    holder.start()
    _wait_until(lambda: gate.busy)
    waiter = threading.Thread(target=wait_in_queue)
    waiter.start()
    _wait_until(lambda: gate.queue_length == 1)
    gate.close()
    waiter.join(10)
    assert len(refused) == 1
    assert not gate.wait_idle(timeout=0.05)  # the holder is still running
    release.set()
    assert gate.wait_idle(timeout=10) and finished.is_set()
    with pytest.raises(ShuttingDown):
        with gate.slot("late"):
            pass


def test_cancelled_waiter_leaves_the_queue():
    gate = JobGate(max_queue=2)
    release = threading.Event()
    cancelled = threading.Event()
    errors: list[Exception] = []

    def hold() -> None:
        with gate.slot("a"):
            release.wait(10)

    def waiter() -> None:
        try:
            with gate.slot("b", is_active=lambda: not cancelled.is_set()):
                pass
        except ShuttingDown as exc:
            errors.append(exc)

    h = threading.Thread(target=hold)
    h.start()
    _wait_until(lambda: gate.busy)
    w = threading.Thread(target=waiter)
    w.start()
    _wait_until(lambda: gate.queue_length == 1)
    cancelled.set()
    w.join(10)
    assert gate.queue_length == 0 and "cancelled" in str(errors[0])
    release.set()
    h.join(10)
