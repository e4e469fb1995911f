"""The scheduler: many (model, device-or-class, settings) jobs over a flaky fleet.

``Scheduler.run(jobs)`` does, in order:

1. **Cache.** Every job is looked up in the cost DB first (see
   :mod:`._cache`); a hit is answered from the DB and never reaches a device.
   Identical jobs in one batch are measured once and share the outcome.
2. **Dispatch.** Misses go to one worker thread per eligible device. A worker
   takes a job only when its device is UP (heartbeats) and no other job is
   running on the same physical host (same ``host_fingerprint``): agents on
   one host never benchmark at the same time, because they would disturb each
   other's timings; different hosts run in parallel. Class jobs are pulled by
   whichever idle device of the class gets there first, which spreads them.
3. **Upload once.** Before a benchmark the worker asks the agent which models
   it has (HasModels) and uploads the model only if it is missing; a model is
   known by its sha256, so it crosses the wire once per device. If the agent
   evicted it since (``ModelNotFound``), it is uploaded again, once.
4. **Failures.** Transient errors (unreachable, draining, queue full, worker
   crashed, call deadline) retry the job on another device of its class
   (the same device when it is the only one), at most ``max_retries`` times,
   then the job fails with the last error. Errors that mean "the device is
   gone" (unreachable, draining, deadline, bad token, missing secret) also
   mark the device down at once; the heartbeat monitor marks it up again when
   it answers, and the scheduler then uses it again. Permanent errors
   (corrupt model, unsupported operator, invalid settings, benchmark timeout,
   memory cap) are not retried. Failures are returned as data, never raised.
5. **Record.** Each result is written to the cost DB as soon as it arrives,
   so a crash of the controller loses nothing that finished.

A job whose devices are all down waits up to ``device_wait_s`` for one to
come back, then fails with :class:`NoDeviceAvailable`.

Threads: ``run`` may be called again after it returns, but not concurrently
from two threads. The progress callback runs on the thread that called
``run``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from fleetnas.agent.client import AgentClient
from fleetnas.agent.errors import (
    AgentDeadlineExceeded,
    AgentError,
    AgentUnavailable,
    ModelNotFound,
    ShuttingDown,
    Unauthenticated,
)
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import LOCAL_SOURCE, CostDB, CostDBError
from fleetnas.controller.fleet import (
    ClientFactory,
    Fleet,
    FleetError,
    HeartbeatMonitor,
    MissingSecret,
    error_reason,
)
from fleetnas.controller.scheduler._cache import CacheLookup
from fleetnas.controller.scheduler._jobs import (
    Attempt,
    Job,
    JobOutcome,
    ModelChanged,
    OutcomeStatus,
    Progress,
)

log = logging.getLogger("fleetnas.scheduler")

DEFAULT_MAX_RETRIES = 2
DEFAULT_DEVICE_WAIT_S = 30.0
DEFAULT_RETRY_BACKOFF_S = 0.25
_POLL_S = 0.25

# Errors after which the device itself is suspect: mark it down, try elsewhere.
_DEVICE_GONE: tuple[type[BaseException], ...] = (
    AgentUnavailable,
    AgentDeadlineExceeded,
    ShuttingDown,
    Unauthenticated,
    MissingSecret,
)

ProgressCallback = Callable[[Progress], None]


class NoDeviceAvailable(Exception):
    """No device that could run the job was up for ``device_wait_s``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Task:
    """A job in flight: where it may run, where it failed, when it may run next."""

    index: int
    job: Job
    eligible: tuple[str, ...]
    tried: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    last_error: BaseException | None = None
    ready_at: float = 0.0
    stalled_since: float | None = None


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, _DEVICE_GONE):
        return True
    return isinstance(exc, AgentError) and exc.transient


class Scheduler:
    """Runs benchmark jobs on a fleet and keeps every result in a cost DB.

    ``fleet`` and ``db`` are required. ``factory`` builds clients with each
    device's secrets (default: :meth:`ClientFactory.for_fleet`). ``monitor``
    is a heartbeat monitor over the same fleet; if none is given the
    scheduler starts its own the first time a job needs a device (a batch of
    cache hits starts nothing) and stops it in :meth:`close`.

    Raises ``ValueError`` for a bad option. :meth:`run` raises
    :class:`~fleetnas.controller.fleet.UnknownDevice` /
    :class:`~fleetnas.controller.fleet.UnknownClass` for a job whose target
    is not in the fleet, before any work is done.
    """

    def __init__(
        self,
        fleet: Fleet,
        db: CostDB,
        *,
        factory: ClientFactory | None = None,
        monitor: HeartbeatMonitor | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        device_wait_s: float = DEFAULT_DEVICE_WAIT_S,
        retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S,
        call_timeout_s: float = 30.0,
        heartbeat_interval_s: float = 2.0,
        heartbeat_backoff_max_s: float = 30.0,
        source: str = LOCAL_SOURCE,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if not device_wait_s > 0:
            raise ValueError(f"device_wait_s must be > 0, got {device_wait_s}")
        if retry_backoff_s < 0:
            raise ValueError(f"retry_backoff_s must be >= 0, got {retry_backoff_s}")
        if monitor is not None and monitor.fleet is not fleet:
            raise ValueError("monitor watches another fleet than the scheduler's")
        self.fleet = fleet
        self.db = db
        self.max_retries = max_retries
        self.device_wait_s = device_wait_s
        self.retry_backoff_s = retry_backoff_s
        self.source = source
        self._factory = factory or ClientFactory.for_fleet(fleet, call_timeout_s=call_timeout_s)
        self._call_timeout_s = call_timeout_s
        self._monitor = monitor
        self._owns_monitor = monitor is None
        self._heartbeat_interval_s = heartbeat_interval_s
        self._heartbeat_backoff_max_s = heartbeat_backoff_max_s
        self._clients: dict[str, AgentClient] = {}
        self._uploaded: dict[str, set[str]] = {}
        self._recorded_models: set[str] = set()
        self._recorded_devices: dict[str, str] = {}
        self._cv = threading.Condition()
        self._pending: list[_Task] = []
        self._inflight = 0
        self._busy_hosts: set[str] = set()
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def monitor(self) -> HeartbeatMonitor:
        """The heartbeat monitor (started on first use if the scheduler owns it)."""
        if self._monitor is None:
            self._monitor = HeartbeatMonitor(
                self.fleet,
                self._factory,
                interval_s=self._heartbeat_interval_s,
                backoff_max_s=self._heartbeat_backoff_max_s,
            )
            self._monitor.start()
        return self._monitor

    def close(self) -> None:
        """Close connections and stop the monitor if the scheduler started it."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self._owns_monitor and self._monitor is not None:
            self._monitor.stop()
            self._monitor = None

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API ---------------------------------------------------------------------

    def eligible_devices(self, job: Job) -> tuple[str, ...]:
        """The fleet devices that may run ``job``; raises UnknownDevice / UnknownClass."""
        if job.target.is_class:
            return tuple(d.name for d in self.fleet.in_class(job.target.name))
        return (self.fleet.get(job.target.name).name,)

    def _lookup_devices(self, job: Job, eligible: Sequence[str]) -> list[str]:
        if not job.target.is_class:
            return list(eligible)
        # Devices of the class the DB knows but the fleet file no longer lists
        # still answer from the cache: devices of a class are interchangeable.
        known = [d.name for d in self.db.list_devices(device_class=job.target.name)]
        return list(dict.fromkeys([*eligible, *known]))

    def lookup(self, jobs: Sequence[Job]) -> list[JobOutcome | None]:
        """Cache only: a CACHED outcome per job found in the cost DB, else ``None``.

        Contacts no agent. Raises UnknownDevice / UnknownClass like :meth:`run`.
        """
        cache = CacheLookup(self.db)
        answers: list[JobOutcome | None] = []
        for index, job in enumerate(jobs):
            devices = self._lookup_devices(job, self.eligible_devices(job))
            hit = cache.find(job.model.sha256, devices, job.settings)
            answers.append(
                None
                if hit is None
                else JobOutcome(index, job, OutcomeStatus.CACHED, hit.device, hit)
            )
        return answers

    def run(
        self,
        jobs: Sequence[Job],
        *,
        on_progress: ProgressCallback | None = None,
        use_cache: bool = True,
    ) -> list[JobOutcome]:
        """Run ``jobs``; return one outcome per job, in order (see the module docstring).

        ``use_cache=False`` skips step 1 for this batch: every job is measured
        afresh (identical jobs still once) and recorded next to the older
        measurements of the same key, which :meth:`CostDB.lookup` then no
        longer returns (it returns the newest). For checking a cached figure
        against the device as it is now (``fleetnas lut check``).
        """
        jobs = list(jobs)
        eligible = [self.eligible_devices(job) for job in jobs]
        total = len(jobs)
        outcomes: list[JobOutcome | None] = [None] * total
        done = 0

        def report(outcome: JobOutcome) -> None:
            nonlocal done
            outcomes[outcome.index] = outcome
            done += 1
            if on_progress is not None:
                on_progress(Progress(done, total, outcome))

        first_of: dict[tuple[str, bool, str, bytes], int] = {}
        duplicates: list[tuple[int, int]] = []
        primaries: list[int] = []
        for index, job in enumerate(jobs):
            key = job.identity()
            if key in first_of:
                duplicates.append((index, first_of[key]))
            else:
                first_of[key] = index
                primaries.append(index)

        cached = (
            self.lookup([jobs[i] for i in primaries]) if use_cache else [None] * len(primaries)
        )
        tasks: list[_Task] = []
        for index, hit in zip(primaries, cached, strict=True):
            if hit is not None:
                report(JobOutcome(index, jobs[index], OutcomeStatus.CACHED, hit.device,
                                  hit.measurement))
            else:
                tasks.append(_Task(index, jobs[index], eligible[index]))

        if tasks:
            for outcome in self._dispatch(tasks):
                report(outcome)

        for index, primary in duplicates:
            source = outcomes[primary]
            assert source is not None
            report(JobOutcome(index, jobs[index], source.status, source.device,
                              source.measurement, source.error, (), duplicate_of=primary))
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    # -- dispatch -----------------------------------------------------------------------

    def _dispatch(self, tasks: list[_Task]) -> Iterator[JobOutcome]:
        """Run ``tasks`` on the worker threads; yield outcomes as they finish."""
        monitor = self.monitor
        devices = list(dict.fromkeys(name for t in tasks for name in t.eligible))
        with self._cv:
            self._pending = list(tasks)
            self._inflight = 0
            self._busy_hosts = set()
            self._stopping = False
        finished: queue.Queue[JobOutcome] = queue.Queue()
        wake = self._wake_workers
        monitor.add_listener(wake)
        workers = [
            threading.Thread(
                target=self._worker, args=(name, finished), name=f"sched-{name}", daemon=True
            )
            for name in devices
        ]
        for worker in workers:
            worker.start()
        remaining = len(tasks)
        try:
            while remaining:
                try:
                    outcome = finished.get(timeout=_POLL_S)
                except queue.Empty:
                    for stalled in self._fail_stalled():
                        finished.put(stalled)
                    continue
                remaining -= 1
                yield outcome
        finally:
            with self._cv:
                self._stopping = True
                self._pending.clear()
                self._cv.notify_all()
            monitor.remove_listener(wake)
            for worker in workers:
                worker.join()

    def _wake_workers(self, _health: object = None) -> None:
        with self._cv:
            self._cv.notify_all()

    def _device_usable(self, name: str) -> str | None:
        """The host fingerprint of ``name`` if it is up and described, else ``None``."""
        health = self.monitor.health(name)
        return health.host_fingerprint if health.up else None

    def _fail_stalled(self) -> list[JobOutcome]:
        """Fail pending jobs none of whose devices has been up for ``device_wait_s``."""
        now = time.monotonic()
        failed: list[_Task] = []
        with self._cv:
            for task in list(self._pending):
                if any(self._device_usable(name) for name in task.eligible):
                    task.stalled_since = None
                    continue
                if task.stalled_since is None:
                    task.stalled_since = now
                elif now - task.stalled_since >= self.device_wait_s:
                    self._pending.remove(task)
                    failed.append(task)
        outcomes = []
        for task in failed:
            reasons = "; ".join(
                f"{name}: {self.monitor.health(name).reason or 'down'}" for name in task.eligible
            )
            last = f"; last error: {error_reason(task.last_error)}" if task.last_error else ""
            error = NoDeviceAvailable(
                f"no device for {task.job.target} was up for {self.device_wait_s:g} s "
                f"({reasons}){last}; check `fleetnas fleet status`"
            )
            outcomes.append(self._outcome(task, OutcomeStatus.FAILED, error=error))
        return outcomes

    def _pick(self, name: str) -> _Task | None:
        """The first pending task ``name`` may run now (lock held)."""
        now = time.monotonic()
        for task in self._pending:
            if name not in task.eligible or task.ready_at > now:
                continue
            if name in task.tried:
                # Retry on a device already tried only when no untried one is up.
                others = [n for n in task.eligible if n not in task.tried]
                if any(self._device_usable(n) for n in others):
                    continue
            return task
        return None

    def _worker(self, name: str, finished: queue.Queue[JobOutcome]) -> None:
        while True:
            with self._cv:
                while True:
                    if self._stopping or (not self._pending and self._inflight == 0):
                        self._cv.notify_all()
                        return
                    host = self._device_usable(name)
                    if host is not None and host not in self._busy_hosts:
                        task = self._pick(name)
                        if task is not None:
                            self._pending.remove(task)
                            self._busy_hosts.add(host)
                            self._inflight += 1
                            break
                    self._cv.wait(_POLL_S)
            try:
                result, error, attempt = self._attempt(name, task)
            finally:
                with self._cv:
                    self._busy_hosts.discard(host)
                    self._cv.notify_all()
            try:
                outcome = self._settle(name, task, result, error, attempt)
            except Exception as exc:  # noqa: BLE001 -- a bug must fail one job, not hang the batch
                log.exception("settling job %d on %s failed", task.index, name)
                outcome = self._outcome(task, OutcomeStatus.FAILED, device=name, error=exc)
            finally:
                with self._cv:
                    self._inflight -= 1
                    self._cv.notify_all()
            if outcome is not None:
                finished.put(outcome)

    # -- one attempt --------------------------------------------------------------------

    def _client(self, name: str) -> AgentClient:
        client = self._clients.get(name)
        if client is None:
            client = self._factory.connect(self.fleet.get(name), call_timeout_s=self._call_timeout_s)
            self._clients[name] = client
        return client

    def _drop_client(self, name: str) -> None:
        client = self._clients.pop(name, None)
        if client is not None:
            client.close()

    def _upload(self, name: str, client: AgentClient, task: _Task, *, force: bool) -> None:
        sha = task.job.model.sha256
        uploaded = self._uploaded.setdefault(name, set())
        if not force and sha in uploaded:
            return
        if not force:
            present, _ = client.has_models([sha])
            if present:
                uploaded.add(sha)
                return
        client.upload_model(task.job.model.read_bytes(), sha256=sha)
        uploaded.add(sha)

    def _attempt(
        self, name: str, task: _Task
    ) -> tuple[agent_pb2.BenchmarkResult | None, BaseException | None, Attempt]:
        """Upload if needed and benchmark on ``name`` (host lock held by the caller)."""
        started = time.time()
        try:
            client = self._client(name)
            self._upload(name, client, task, force=False)
            try:
                result = client.benchmark(task.job.model.sha256, task.job.settings)
            except ModelNotFound:
                # The agent evicted it (cache budget) or restarted with an empty cache.
                log.info("model %s is gone from %s; uploading it again",
                         task.job.model.sha256[:12], name)
                self._uploaded.get(name, set()).discard(task.job.model.sha256)
                self._upload(name, client, task, force=True)
                result = client.benchmark(task.job.model.sha256, task.job.settings)
        except (AgentError, FleetError, ModelChanged, OSError) as exc:
            return None, exc, Attempt(name, started, time.time(), error_reason(exc),
                                      _is_retryable(exc))
        except Exception as exc:  # noqa: BLE001 -- returned as data: one job fails, not the batch
            log.exception("unexpected error running job %d on %s", task.index, name)
            return None, exc, Attempt(name, started, time.time(), error_reason(exc), False)
        return result, None, Attempt(name, started, time.time())

    def _record(self, name: str, task: _Task, result: agent_pb2.BenchmarkResult):
        """Write the device (when new or changed), the model and the measurement."""
        device = self.fleet.get(name)
        health = self.monitor.health(name)
        fingerprint = result.host_fingerprint or health.host_fingerprint or ""
        key = f"{device.device_class}|{device.address}|{fingerprint}"
        if self._recorded_devices.get(name) != key:
            self.db.upsert_device(
                name,
                device_class=device.device_class,
                address=device.address,
                host_fingerprint=fingerprint,
                description=health.description,
            )
            self._recorded_devices[name] = key
        model = task.job.model
        if model.sha256 not in self._recorded_models:
            self.db.record_model(model.sha256, model.size_bytes)
            self._recorded_models.add(model.sha256)
        return self.db.record_measurement(name, result, source=self.source)

    def _settle(
        self,
        name: str,
        task: _Task,
        result: agent_pb2.BenchmarkResult | None,
        error: BaseException | None,
        attempt: Attempt,
    ) -> JobOutcome | None:
        """Turn an attempt into an outcome, or requeue the task (returns ``None``)."""
        task.attempts.append(attempt)
        if result is not None:
            try:
                measurement = self._record(name, task, result)
            except CostDBError as exc:
                log.error("could not record a measurement of %s on %s: %s",
                          task.job.model.sha256[:12], name, exc)
                return self._outcome(task, OutcomeStatus.FAILED, device=name, error=exc)
            return self._outcome(task, OutcomeStatus.MEASURED, device=name,
                                 measurement=measurement)
        assert error is not None
        task.last_error = error
        if isinstance(error, _DEVICE_GONE):
            self._drop_client(name)
            self.monitor.report_failure(name, error_reason(error))
        if not _is_retryable(error):
            return self._outcome(task, OutcomeStatus.FAILED, device=name, error=error)
        if len(task.attempts) > self.max_retries:
            log.warning("job %d failed after %d attempts: %s", task.index, len(task.attempts),
                        error_reason(error))
            return self._outcome(task, OutcomeStatus.FAILED, device=name, error=error)
        task.tried.append(name)
        task.ready_at = time.monotonic() + self.retry_backoff_s * 2 ** (len(task.attempts) - 1)
        log.info("retrying job %d (attempt %d failed on %s: %s)", task.index,
                 len(task.attempts), name, error_reason(error))
        with self._cv:
            if self._stopping:
                return self._outcome(task, OutcomeStatus.FAILED, device=name, error=error)
            self._pending.insert(0, task)
            self._cv.notify_all()
        return None

    @staticmethod
    def _outcome(
        task: _Task,
        status: OutcomeStatus,
        *,
        device: str | None = None,
        measurement=None,
        error: BaseException | None = None,
    ) -> JobOutcome:
        return JobOutcome(
            task.index, task.job, status, device, measurement, error, tuple(task.attempts)
        )
