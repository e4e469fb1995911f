"""A device session: the connection to one device, the models it has, one attempt at a job.

:meth:`DeviceSession.attempt` uploads the job's model unless the agent has it
(HasModels, asked once per model and session: a model is known by its
sha256, so it crosses the wire once per device), then benchmarks it. If the
agent evicted the model since (``ModelNotFound``) it is uploaded again, once.
Failures are returned as data (:class:`AttemptResult`), never raised.

A session is used by one worker thread at a time. :meth:`reset` drops the
connection (after the device failed) and :meth:`close` ends the session.
:meth:`cancel` may be called from any thread (the heartbeat monitor's): it
ends the call in flight at once by closing its channel, and the attempt then
fails as :class:`AgentUnavailable` with the heartbeat's reason (transient,
device gone), so the job is re-routed instead of waiting for the call's
deadline (the benchmark timeout + 120 s) on an agent that stopped answering.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from fleetnas.agent.client import AgentClient
from fleetnas.agent.errors import AgentError, AgentUnavailable, ModelNotFound
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.fleet import ClientFactory, Device, FleetError, error_reason
from fleetnas.controller.scheduler._jobs import Attempt, Job, ModelChanged

log = logging.getLogger("fleetnas.scheduler")


@dataclass(frozen=True)
class AttemptResult:
    """One attempt: the agent's result, or the error (then ``attempt.error`` says why)."""

    result: agent_pb2.BenchmarkResult | None
    error: BaseException | None
    attempt: Attempt


class DeviceSession:
    """The scheduler's connection to one device (module docstring)."""

    def __init__(self, device: Device, factory: ClientFactory, *, call_timeout_s: float) -> None:
        self.device = device
        self._factory = factory
        self._call_timeout_s = call_timeout_s
        self._lock = threading.Lock()
        self._client: AgentClient | None = None
        self._uploaded: set[str] = set()
        self._in_flight = False
        self._cancelled: str | None = None

    @property
    def name(self) -> str:
        return self.device.name

    def _connect(self) -> AgentClient:
        with self._lock:
            if self._client is None:
                self._client = self._factory.connect(
                    self.device, call_timeout_s=self._call_timeout_s
                )
            return self._client

    def reset(self) -> None:
        """Drop the connection; the next attempt connects afresh."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    close = reset

    def cancel(self, reason: str) -> bool:
        """End the attempt in flight, if any (module docstring); True when there was one."""
        with self._lock:
            if not self._in_flight:
                return False
            self._cancelled = reason
            client, self._client = self._client, None
        if client is not None:
            client.close()
        return True

    def describe(self) -> agent_pb2.DeviceDescription | None:
        """The device's description now, or ``None`` when it does not answer."""
        try:
            return self._connect().describe()
        except (AgentError, FleetError):
            return None

    def _upload(self, client: AgentClient, job: Job, *, force: bool) -> None:
        sha = job.model.sha256
        if not force and sha in self._uploaded:
            return
        if not force:
            present, _ = client.has_models([sha])
            if present:
                self._uploaded.add(sha)
                return
        client.upload_model(job.model.read_bytes(), sha256=sha)
        self._uploaded.add(sha)

    def _benchmark(self, job: Job) -> agent_pb2.BenchmarkResult:
        client = self._connect()
        self._upload(client, job, force=False)
        try:
            return client.benchmark(job.model.sha256, job.settings)
        except ModelNotFound:
            # The agent evicted it (cache budget) or restarted with an empty cache.
            log.info("model %s is gone from %s; uploading it again",
                     job.model.sha256[:12], self.name)
            self._uploaded.discard(job.model.sha256)
            self._upload(client, job, force=True)
            return client.benchmark(job.model.sha256, job.settings)

    def attempt(self, job: Job) -> AttemptResult:
        """Upload if needed and benchmark ``job`` here (the caller holds the host).

        The attempt's ``transient`` flag is left to the caller's retry policy.
        """
        started = time.time()
        with self._lock:
            self._in_flight, self._cancelled = True, None
        try:
            result = self._benchmark(job)
        except (AgentError, FleetError, ModelChanged, OSError) as exc:
            error: BaseException = self._cancellation() or exc
            return AttemptResult(None, error, Attempt(self.name, started, time.time(),
                                                      error_reason(error)))
        except Exception as exc:  # noqa: BLE001 -- returned as data: one job fails, not the batch
            log.exception("unexpected error running a job on %s", self.name)
            return AttemptResult(None, exc, Attempt(self.name, started, time.time(),
                                                    error_reason(exc)))
        finally:
            with self._lock:
                self._in_flight = False
        return AttemptResult(result, None, Attempt(self.name, started, time.time()))

    def _cancellation(self) -> AgentUnavailable | None:
        with self._lock:
            reason = self._cancelled
        if reason is None:
            return None
        return AgentUnavailable(
            f"agent unavailable: heartbeats failed during the call ({reason}); "
            "it was cancelled and the job moves on"
        )
