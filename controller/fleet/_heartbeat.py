"""Heartbeats: a background thread that keeps each device's health current.

Every ``interval_s`` each device is probed (gRPC health, then Status; and
Describe whenever it comes up, so a restarted agent's new description is
seen). A failed probe marks the device DOWN with the reason, and the next
probe of that device waits ``backoff_initial_s``, doubling per consecutive
failure up to ``backoff_max_s``; the first successful probe marks it UP
again and restores the normal interval. Callers that see a device fail (the
scheduler) call :meth:`HeartbeatMonitor.report_failure` to mark it down at
once instead of waiting for the next heartbeat.

After a failure the device's connection is dropped and a fresh one is made
for the next probe, so gRPC's own reconnect backoff (up to minutes) never
delays noticing that a device is back.

Thread safety: every public method may be called from any thread. Listeners
run on the monitor's threads, outside its lock, and must be quick.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from fleetnas.agent.client import AgentClient
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.fleet._connect import ClientFactory
from fleetnas.controller.fleet._errors import FleetError
from fleetnas.controller.fleet._model import Device, Fleet
from fleetnas.controller.fleet._probe import (
    DEFAULT_PROBE_TIMEOUT_S,
    ProbeResult,
    error_reason,
    probe_client,
)

DEFAULT_INTERVAL_S = 2.0
DEFAULT_BACKOFF_INITIAL_S = 0.5
DEFAULT_BACKOFF_MAX_S = 30.0


class HealthState(enum.Enum):
    """A device's health as the monitor last saw it."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class DeviceHealth:
    """A device's health. Times are unix seconds; ``None`` means never.

    ``status`` and ``description`` are from the last successful probe (kept
    while the device is down, for display). ``failures`` counts consecutive
    failed probes or reported failures.
    """

    name: str
    state: HealthState = HealthState.UNKNOWN
    since: float | None = None
    last_seen: float | None = None
    last_checked: float | None = None
    reason: str | None = None
    failures: int = 0
    status: agent_pb2.AgentStatus | None = None
    description: agent_pb2.DeviceDescription | None = None

    @property
    def up(self) -> bool:
        return self.state is HealthState.UP

    @property
    def host_fingerprint(self) -> str | None:
        """The host fingerprint from the last description, ``None`` before one is known."""
        if self.description is None or not self.description.host_fingerprint:
            return None
        return self.description.host_fingerprint


Listener = Callable[[DeviceHealth], None]


def backoff_delay(failures: int, initial_s: float, max_s: float) -> float:
    """Delay before the next probe after ``failures`` consecutive failures (≥ 1)."""
    if failures <= 0:
        return 0.0
    return min(max_s, initial_s * (2.0 ** min(failures - 1, 60)))


class HeartbeatMonitor:
    """Pings every device of a fleet in the background; see the module docstring.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        fleet: Fleet,
        factory: ClientFactory | None = None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
        backoff_initial_s: float = DEFAULT_BACKOFF_INITIAL_S,
        backoff_max_s: float = DEFAULT_BACKOFF_MAX_S,
        max_workers: int = 16,
    ) -> None:
        for name, value in (
            ("interval_s", interval_s),
            ("timeout_s", timeout_s),
            ("backoff_initial_s", backoff_initial_s),
            ("backoff_max_s", backoff_max_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if backoff_max_s < backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({backoff_max_s}) must be >= backoff_initial_s ({backoff_initial_s})"
            )
        self._fleet = fleet
        self._factory = factory or ClientFactory.for_fleet(fleet)
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._max_workers = max(1, min(max_workers, len(fleet) or 1))
        self._lock = threading.Condition()
        self._health = {d.name: DeviceHealth(d.name) for d in fleet}
        self._next_due = {d.name: 0.0 for d in fleet}
        self._stale: set[str] = set()
        self._clients: dict[str, AgentClient] = {}
        self._listeners: list[Listener] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._rounds = 0

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, *, wait_first_round: bool = True) -> HeartbeatMonitor:
        """Start the thread; with ``wait_first_round``, return after every device was probed once."""
        if self._thread is not None:
            raise RuntimeError("HeartbeatMonitor already started")
        self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="heartbeat-probe")
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()
        if wait_first_round:
            self.wait_rounds(1, timeout=self._timeout_s * 3 + 5.0)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and close every connection. Idempotent."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for client in list(self._clients.values()):
            client.close()
        self._clients.clear()

    def __enter__(self) -> HeartbeatMonitor:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries ------------------------------------------------------------------------

    @property
    def fleet(self) -> Fleet:
        return self._fleet

    def health(self, name: str) -> DeviceHealth:
        """The current health of device ``name`` (KeyError if it is not in the fleet)."""
        with self._lock:
            return self._health[name]

    def snapshot(self) -> dict[str, DeviceHealth]:
        with self._lock:
            return dict(self._health)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(health)`` whenever a device's state changes (UP/DOWN)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def wait_rounds(self, count: int, timeout: float) -> bool:
        """Block until ``count`` more probe rounds have completed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._rounds + count
            while self._rounds < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    return False
                self._lock.wait(left)
        return True

    def wait_until(self, predicate: Callable[[dict[str, DeviceHealth]], bool], timeout: float) -> bool:
        """Block until ``predicate(snapshot)`` is true; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(dict(self._health)):
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    return False
                self._lock.wait(left)
        return True

    # -- updates from outside -----------------------------------------------------------

    def report_failure(self, name: str, reason: str) -> None:
        """Mark ``name`` down now (a caller could not reach it); probes continue with backoff."""
        now = time.time()
        with self._lock:
            old = self._health[name]
            failures = old.failures + 1
            self._health[name] = replace(
                old,
                state=HealthState.DOWN,
                since=now if old.state is not HealthState.DOWN else old.since,
                reason=reason,
                failures=failures,
            )
            self._stale.add(name)
            self._next_due[name] = time.monotonic() + backoff_delay(
                failures, self._backoff_initial_s, self._backoff_max_s
            )
            changed = old.state is not HealthState.DOWN
            new = self._health[name]
            listeners = list(self._listeners) if changed else []
            self._lock.notify_all()
        for listener in listeners:
            listener(new)

    # -- the thread ---------------------------------------------------------------------

    def _probe(self, device: Device, describe: bool) -> ProbeResult:
        try:
            return self._probe_unguarded(device, describe)
        except Exception as exc:  # noqa: BLE001 -- the heartbeat thread must outlive any one probe
            self._clients.pop(device.name, None)
            return ProbeResult(device.name, False, time.time(), reason=error_reason(exc))

    def _probe_unguarded(self, device: Device, describe: bool) -> ProbeResult:
        with self._lock:
            stale = device.name in self._stale
            self._stale.discard(device.name)
        client = self._clients.get(device.name)
        if client is not None and stale:
            client.close()
            client = None
            del self._clients[device.name]
        if client is None:
            try:
                client = self._factory.connect(device, call_timeout_s=self._timeout_s)
            except FleetError as exc:
                return ProbeResult(device.name, False, time.time(), reason=error_reason(exc))
            self._clients[device.name] = client
        result = probe_client(device.name, client, timeout_s=self._timeout_s, describe=describe)
        if not result.up:
            # A fresh channel next time: gRPC's reconnect backoff must not hide a recovery.
            self._clients.pop(device.name).close()
        return result

    def _apply(self, result: ProbeResult) -> tuple[DeviceHealth, bool]:
        """Fold a probe result into the health table (lock held); return (health, changed)."""
        old = self._health[result.name]
        now_mono = time.monotonic()
        if result.up:
            new = replace(
                old,
                state=HealthState.UP,
                since=result.at if old.state is not HealthState.UP else old.since,
                last_seen=result.at,
                last_checked=result.at,
                reason=None,
                failures=0,
                status=result.status,
                description=result.description or old.description,
            )
            self._next_due[result.name] = now_mono + self._interval_s
        else:
            failures = old.failures + 1
            new = replace(
                old,
                state=HealthState.DOWN,
                since=result.at if old.state is not HealthState.DOWN else old.since,
                last_checked=result.at,
                reason=result.reason,
                failures=failures,
            )
            self._next_due[result.name] = now_mono + backoff_delay(
                failures, self._backoff_initial_s, self._backoff_max_s
            )
        self._health[result.name] = new
        return new, new.state is not old.state

    def _run(self) -> None:
        assert self._pool is not None
        while not self._stopping.is_set():
            now = time.monotonic()
            with self._lock:
                due = [d for d in self._fleet if self._next_due[d.name] <= now]
                # Describe when a device (re)appears: a restarted agent may differ.
                describe = [not self._health[d.name].up for d in due]
            try:
                results = list(self._pool.map(self._probe, due, describe))
            except RuntimeError:  # the pool was shut down by stop() mid-round
                return
            changed: list[DeviceHealth] = []
            with self._lock:
                for result in results:
                    health, did_change = self._apply(result)
                    if did_change:
                        changed.append(health)
                self._rounds += 1
                listeners = list(self._listeners)
                next_due = min(self._next_due.values(), default=now + self._interval_s)
                self._lock.notify_all()
            for health in changed:
                for listener in listeners:
                    listener(health)
            delay = max(0.0, next_due - time.monotonic())
            self._wake.wait(min(delay, self._interval_s))
            self._wake.clear()
