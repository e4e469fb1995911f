"""The scheduler: many (model, device-or-class, settings) jobs over a flaky fleet.

``Scheduler.run(jobs)`` does, in order:

1. **Cache.** Every job is looked up in the cost DB first (see
   :mod:`._cache`); a hit is answered from the DB and never reaches a device.
   Identical jobs in one batch are measured once and share the outcome, and
   so are a class job and a device job of the same model whose settings
   resolve the same on that device of the class (see :mod:`._batch`).
2. **Dispatch.** Misses go to one worker thread per eligible device. A worker
   takes a job only when its device is UP (heartbeats) and no other job is
   running on the same physical host (same ``host_fingerprint``): agents on
   one host never benchmark at the same time, because they would disturb each
   other's timings; different hosts run in parallel. The host is also locked
   across processes (a lock file per host fingerprint, see :mod:`._hostlock`),
   so two controllers on one machine never benchmark one host at once. Class jobs are pulled by
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
   it answers, and the scheduler then uses it again. An overloaded agent
   (too many concurrent calls) is asked again, on the same device and
   without marking it down, after a bounded exponential backoff. A call in
   flight on a device that the heartbeats mark down (an agent that froze:
   SIGSTOP, a hung host) is cancelled at once and the job re-routed, instead
   of waiting for the call's deadline (the job timeout + 120 s). Permanent
   errors (corrupt model, unsupported operator, invalid settings, benchmark
   timeout, memory cap) are not retried. Failures are returned as data,
   never raised (see :mod:`._retry`).
5. **Record.** Each result is written to the cost DB as soon as it arrives,
   so a crash of the controller loses nothing that finished.

A job whose devices are all down waits up to ``device_wait_s`` for one to
come back, then fails with :class:`NoDeviceAvailable`.

Threads: ``run`` may be called again after it returns, but not concurrently
from two threads. The progress callback runs on the thread that called
``run``.

The parts: :mod:`._placement` (the queue and the host locks),
:mod:`._session` (a device's connection, upload, one attempt),
:mod:`._retry` (which failures are retried where), :mod:`._recorder`
(writing results) and :mod:`._cache` (the look-up); this module runs a
batch through them.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import LOCAL_SOURCE, CostDB, CostDBError, Measurement
from fleetnas.controller.fleet import (
    ClientFactory,
    DeviceHealth,
    Fleet,
    HeartbeatMonitor,
    error_reason,
)
from fleetnas.controller.scheduler._batch import merge_class_jobs, split_duplicates
from fleetnas.controller.scheduler._cache import CacheLookup
from fleetnas.controller.scheduler._formats import model_format_for
from fleetnas.controller.scheduler._hostlock import HostLocks
from fleetnas.controller.scheduler._jobs import (
    Job,
    JobOutcome,
    OutcomeStatus,
    Progress,
    Target,
)
from fleetnas.controller.scheduler._placement import POLL_S, Placement, Task
from fleetnas.controller.scheduler._recorder import Recorder
from fleetnas.controller.scheduler._retry import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BACKOFF_S,
    Decision,
    OverloadBackoff,
    RetryPolicy,
)
from fleetnas.controller.scheduler._session import AttemptResult, DeviceSession

__all__ = [
    "DEFAULT_DEVICE_WAIT_S",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RETRY_BACKOFF_S",
    "NoDeviceAvailable",
    "ProgressCallback",
    "Scheduler",
]

log = logging.getLogger("fleetnas.scheduler")

DEFAULT_DEVICE_WAIT_S = 30.0

ProgressCallback = Callable[[Progress], None]


class NoDeviceAvailable(Exception):
    """No device that could run the job was up for ``device_wait_s``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Scheduler:
    """Runs benchmark jobs on a fleet and keeps every result in a cost DB.

    ``fleet`` and ``db`` are required. ``host_locks`` holds the hosts across
    processes (default: :class:`HostLocks` in the per-user runtime dir).
    ``factory`` builds clients with each
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
        overload_backoff: OverloadBackoff | None = None,
        call_timeout_s: float = 30.0,
        heartbeat_interval_s: float = 2.0,
        heartbeat_backoff_max_s: float = 30.0,
        source: str = LOCAL_SOURCE,
        host_locks: HostLocks | None = None,
    ) -> None:
        self.policy = RetryPolicy(
            max_retries=max_retries, backoff_s=retry_backoff_s, overload=overload_backoff
        )
        if not device_wait_s > 0:
            raise ValueError(f"device_wait_s must be > 0, got {device_wait_s}")
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
        self._sessions: dict[str, DeviceSession] = {}
        self._recorder = Recorder(db, fleet, source=source)
        self._placement = Placement(
            self._device_usable, HostLocks() if host_locks is None else host_locks
        )

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
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
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
        return self.devices_of(job.target)

    def devices_of(self, target: Target) -> tuple[str, ...]:
        """The fleet devices of ``target``; raises UnknownDevice / UnknownClass."""
        if target.is_class:
            return tuple(d.name for d in self.fleet.in_class(target.name))
        return (self.fleet.get(target.name).name,)

    def model_format_for(self, target: Target, request: agent_pb2.BenchmarkSettings) -> int:
        """The model format ``target``'s runtime takes for ``request`` (ONNX or TFLite; see
        :mod:`._formats`): from the first described device of the target (the heartbeats'
        latest description, else the DB's). Raises UnknownDevice / UnknownClass."""
        devices = self.devices_of(target)
        cache = self._cache()
        described = next((d for name in devices if (d := cache.description(name)) is not None),
                         None)  # fmt: skip
        return model_format_for(request, described)

    def describe_device(self, name: str) -> agent_pb2.DeviceDescription | None:
        """The heartbeats' latest description, else its agent's now, else the DB's, or None."""
        return self._live_description(name) or self._session(name).describe() or self._cache().description(name)

    def lookup(self, jobs: Sequence[Job]) -> list[JobOutcome | None]:
        """Cache only: a CACHED outcome per job found in the cost DB, else ``None``.

        Contacts no agent. Raises UnknownDevice / UnknownClass like :meth:`run`.
        """
        return self._cached(self._cache(), list(enumerate(jobs)),
                            [self.eligible_devices(j) for j in jobs])

    def _cache(self) -> CacheLookup:
        return CacheLookup(self.db, live=self._live_description)

    def _cached(
        self,
        cache: CacheLookup,
        indexed: Sequence[tuple[int, Job]],
        eligible: Sequence[tuple[str, ...]],
    ) -> list[JobOutcome | None]:
        answers: list[JobOutcome | None] = []
        for (index, job), devices in zip(indexed, eligible, strict=True):
            if job.target.is_class:
                # Devices of the class the DB knows but the fleet file no longer lists
                # still answer from the cache: devices of a class are interchangeable.
                known = [d.name for d in self.db.list_devices(device_class=job.target.name)]
                devices = tuple(dict.fromkeys([*devices, *known]))
            hit = cache.find(job.model.sha256, devices, job.settings, job.model.model_format,
                             needs_energy=job.needs_energy)
            answers.append(
                None if hit is None
                else JobOutcome(index, job, OutcomeStatus.CACHED, hit.device, hit)
            )  # fmt: skip
        return answers

    def _live_description(self, name: str) -> agent_pb2.DeviceDescription | None:
        """What the heartbeats last heard from an up device (``None``: no monitor runs yet)."""
        if self._monitor is None or name not in self.fleet:
            return None
        health = self._monitor.health(name)
        return health.description if health.up else None

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
        eligible = [self.eligible_devices(job) for job in jobs]  # once per job
        outcomes: list[JobOutcome | None] = [None] * len(jobs)
        done = 0

        def report(outcome: JobOutcome) -> None:
            nonlocal done
            outcomes[outcome.index] = outcome
            done += 1
            if on_progress is not None:
                on_progress(Progress(done, len(jobs), outcome))

        primaries, duplicates = split_duplicates(jobs)
        cache = self._cache()
        cached = (
            self._cached(cache, [(i, jobs[i]) for i in primaries], [eligible[i] for i in primaries])
            if use_cache else [None] * len(primaries)
        )  # fmt: skip
        misses = []
        for index, hit in zip(primaries, cached, strict=True):
            if hit is not None:
                report(hit)
            else:
                misses.append(index)
        to_run, merged = merge_class_jobs(jobs, misses, eligible, cache.settings_hash_for)
        for outcome in self._dispatch([Task(i, jobs[i], eligible[i]) for i in to_run]):
            report(outcome)
        rerun = []  # merged class jobs whose device job failed: on their own, on any device
        for index, leader in merged.items():
            source = outcomes[leader]
            assert source is not None
            if source.ok:
                report(_shared(source, jobs[index], index, leader))
            else:
                rerun.append(Task(index, jobs[index], eligible[index]))
        for outcome in self._dispatch(rerun):
            report(outcome)
        for index, primary in duplicates:
            source = outcomes[primary]
            assert source is not None
            report(_shared(source, jobs[index], index, primary))
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    # -- dispatch -----------------------------------------------------------------------

    def _dispatch(self, tasks: list[Task]) -> Iterator[JobOutcome]:
        """Run ``tasks`` on one worker thread per eligible device; yield outcomes as they finish."""
        if not tasks:
            return
        monitor = self.monitor
        devices = list(dict.fromkeys(name for t in tasks for name in t.eligible))
        placement = self._placement
        placement.start(tasks)
        for name in devices:
            self._session(name)  # all made here: the heartbeat listener reads them
        finished: queue.Queue[JobOutcome] = queue.Queue()
        monitor.add_listener(self._on_health)
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
                    outcome = finished.get(timeout=POLL_S)
                except queue.Empty:
                    for task in placement.stalled(self.device_wait_s):
                        finished.put(self._no_device(task))
                    continue
                remaining -= 1
                yield outcome
        finally:
            placement.stop()
            monitor.remove_listener(self._on_health)
            for worker in workers:
                worker.join()

    def _on_health(self, health: DeviceHealth) -> None:
        """Heartbeat listener: re-check placement; cancel the call in flight on a device gone down."""
        self._placement.wake()
        session = self._sessions.get(health.name)
        if not health.up and session is not None and session.cancel(health.reason or "down"):
            log.warning("cancelled the call in flight on %s: heartbeats say %s",
                        health.name, health.reason)

    def _device_usable(self, name: str) -> str | None:
        """The host fingerprint of ``name`` if it is up and described, else ``None``."""
        health = self.monitor.health(name)
        return health.host_fingerprint if health.up else None

    def _no_device(self, task: Task) -> JobOutcome:
        reasons = "; ".join(
            f"{name}: {self.monitor.health(name).reason or 'down'}" for name in task.eligible
        )
        last = f"; last error: {error_reason(task.last_error)}" if task.last_error else ""
        error = NoDeviceAvailable(
            f"no device for {task.job.target} was up for {self.device_wait_s:g} s "
            f"({reasons}){last}; check `fleetnas fleet status`"
        )
        return _outcome(task, OutcomeStatus.FAILED, error=error)

    def _session(self, name: str) -> DeviceSession:
        session = self._sessions.get(name)
        if session is None:
            session = DeviceSession(
                self.fleet.get(name), self._factory, call_timeout_s=self._call_timeout_s
            )
            self._sessions[name] = session
        return session

    def _worker(self, name: str, finished: queue.Queue[JobOutcome]) -> None:
        session = self._session(name)
        placement = self._placement
        while (claim := placement.claim(name)) is not None:
            task, host = claim
            try:
                attempt = session.attempt(task.job)
            finally:
                placement.release_host(host)
            try:
                outcome = self._settle(session, task, attempt)
            except Exception as exc:  # noqa: BLE001 -- a bug must fail one job, not hang the batch
                log.exception("settling job %d on %s failed", task.index, name)
                outcome = _outcome(task, OutcomeStatus.FAILED, device=name, error=exc)
            finally:
                placement.finish()
            if outcome is not None:
                finished.put(outcome)

    # -- settling an attempt ------------------------------------------------------------

    def _settle(self, session: DeviceSession, task: Task, done: AttemptResult) -> JobOutcome | None:
        """Turn an attempt into an outcome, or requeue the task (returns ``None``)."""
        name = session.name
        if done.result is not None:
            task.attempts.append(done.attempt)
            return self._record(name, task, done.result)
        error = done.error
        assert error is not None
        task.attempts.append(dataclasses.replace(done.attempt,
                                                 transient=self.policy.transient(error)))
        task.last_error = error
        if self.policy.device_gone(error):
            session.reset()
            self.monitor.report_failure(name, error_reason(error))
        verdict = self.policy.decide(error, len(task.attempts), task.overloads)
        if verdict.decision is Decision.FAIL:
            if self.policy.transient(error):
                log.warning("job %d failed after %d attempts: %s", task.index,
                            len(task.attempts), error_reason(error))
            return _outcome(task, OutcomeStatus.FAILED, device=name, error=error)
        if verdict.decision is Decision.SAME_DEVICE:
            task.pinned = name
            task.overloads += 1
        else:
            task.pinned = None
            task.tried.append(name)
        task.ready_at = time.monotonic() + verdict.delay_s
        log.info("retrying job %d (attempt %d failed on %s: %s)", task.index,
                 len(task.attempts), name, error_reason(error))
        if not self._placement.requeue(task):
            return _outcome(task, OutcomeStatus.FAILED, device=name, error=error)
        return None

    def _record(self, name: str, task: Task, result: agent_pb2.BenchmarkResult) -> JobOutcome:
        try:
            measurement = self._recorder.record(
                name, task.job, result, self.monitor.health(name).description,
                self._session(name).describe,
            )
        except CostDBError as exc:
            log.error("could not record a measurement of %s on %s: %s",
                      task.job.model.sha256[:12], name, exc)
            return _outcome(task, OutcomeStatus.FAILED, device=name, error=exc)
        return _outcome(task, OutcomeStatus.MEASURED, device=name, measurement=measurement)


def _shared(source: JobOutcome, job: Job, index: int, primary: int) -> JobOutcome:
    """Job ``index``'s outcome when it shares job ``primary``'s (``source``): no attempts."""
    return dataclasses.replace(source, index=index, job=job, attempts=(), duplicate_of=primary)


def _outcome(
    task: Task,
    status: OutcomeStatus,
    *,
    device: str | None = None,
    measurement: Measurement | None = None,
    error: BaseException | None = None,
) -> JobOutcome:
    return JobOutcome(
        task.index, task.job, status, device, measurement, error, tuple(task.attempts)
    )
