"""The benchmark runner: one benchmark at a time, each in a worker process of its own.

:class:`BenchmarkRunner` is the parent side. Every job runs in its own worker
process (one job per process), so a model that crashes, hangs or eats memory
only takes its worker down. A ``Launcher`` starts the workers: by default on
Linux they are forked from a warm zygote that imported the runtimes once
(``_forkserver``; a job then pays no import), else each is a fresh
``python -m fleetnas.agent.worker_main`` (``SpawnLauncher``). A warm spare
worker is kept for the next job; it starts only after a job has finished,
never while one is being timed, and one that died while it waited is
replaced before its job.

Limits per job, from the resolved settings:

* ``timeout_s``: wall clock from the moment the job is handed to the worker;
  past it the worker is killed → :class:`BenchmarkTimeout`.
* ``memory_cap_bytes``: the worker's resident memory (RSS, onnxruntime's own
  50-85 MiB included). The parent polls it every 20 ms and kills the worker
  past the cap; inside the worker an ``RLIMIT_DATA`` backstop makes a
  runaway allocation fail at once. Either way → :class:`MemoryCapExceeded`.

The worker runs the model on the backend ``settings.runtime`` names
(onnxruntime or LiteRT, ``fleetnas.agent.backends``); the paired method uses
that runtime's reference model and calibrations.

Trust: the model path comes from the agent's own cache, never from the wire;
workers get an allowlisted environment, an empty working directory (so
external-data references resolve to nothing), no custom-op libraries and no
core dumps, forked or spawned alike. A worker dies with the agent however the agent dies (see
``lifeline``), and the folders of workers whose agent died are removed when
the next runner starts on the same scratch dir.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from fleetnas.agent import errors
from fleetnas.agent._forkserver import ForkServerLauncher
from fleetnas.agent._runner_worker import SCRATCH_PREFIX, Launcher, SpawnLauncher, WorkerProcess
from fleetnas.agent._text import client_text
from fleetnas.agent._worker_protocol import Failure, Job, ReferenceJob, Result
from fleetnas.agent.lifeline import clean_stale
from fleetnas.agent.reference import (
    CALIBRATION_RUNS,
    MAX_CALIBRATION_CV,
    REFERENCE_ASSETS,
    REFERENCE_NAME,
    CalibrationKey,
    CalibrationStore,
    default_reference_path,
    sha256_file,
)
from fleetnas.agent.runtimes import ONNXRUNTIME
from fleetnas.agent.settings import check_resolved
from fleetnas.api.v1 import agent_pb2

log = logging.getLogger(__name__)


def default_launcher(scratch_dir: Path) -> Launcher:
    """Forked workers where fork and /proc exist (Linux), spawned ones elsewhere."""
    if sys.platform.startswith("linux"):
        return ForkServerLauncher(scratch_dir)
    return SpawnLauncher()


@dataclass(frozen=True)
class _Reference:
    """A paired reference model: where it is and its sha256 (its identity)."""

    path: Path
    sha256: str

    @classmethod
    def at(cls, path: Path) -> _Reference:
        resolved = path.resolve()
        return cls(resolved, sha256_file(resolved))


# A worker's failure detail is cut to this (its onnxruntime excerpt alone may be 600).
MAX_FAILURE_CHARS = 2000


class BenchmarkRunner:
    """Runs benchmarks in isolated worker processes.

    Not thread-safe: the caller guarantees one :meth:`run` at a time.
    :meth:`close` and :attr:`current_worker_pid` may be used from any thread.
    """

    def __init__(
        self,
        *,
        scratch_dir: Path,
        calibration_store: CalibrationStore,
        reference_model_path: Path | None = None,
        engine_cache_dir: Path | None = None,
        launcher: Launcher | None = None,
        prestart: bool = True,
        spare_after_run: bool = True,
        calibration_runs: int = CALIBRATION_RUNS,
        max_calibration_cv: float = MAX_CALIBRATION_CV,
    ) -> None:
        """``scratch_dir`` holds the workers' working directories and logs (created if
        missing). ``reference_model_path`` is onnxruntime's paired reference (default:
        the packaged one); each other runtime uses its packaged reference.
        ``engine_cache_dir`` keeps TensorRT engines across jobs and restarts (default:
        ``trt-engines`` beside ``scratch_dir``, i.e. in the agent's cache dir).
        ``launcher`` starts the workers: by default forked from a warm zygote on Linux
        (``ForkServerLauncher``), else spawned (``SpawnLauncher``).
        ``prestart`` starts the first warm spare now rather than on the first run.
        ``spare_after_run`` starts the next spare as each run returns; a caller
        that samples the device right after a run passes False and calls
        :meth:`start_spare` once it is done, so the spare's start-up does not
        show in its sample.
        A reference calibration (median of ``calibration_runs`` runs) is kept only if
        its robust cv is at most ``max_calibration_cv``. Worker folders left in
        ``scratch_dir`` by an agent that died are removed here."""
        if calibration_runs < 1:
            raise ValueError(f"calibration_runs must be >= 1, got {calibration_runs}")
        self._scratch = Path(scratch_dir)
        stale = clean_stale(self._scratch, SCRATCH_PREFIX)
        if stale:
            log.info("removed %d stale worker files of dead agents", len(stale),
                     extra={"scratch_dir": str(self._scratch)})  # fmt: skip
        self._store = calibration_store
        self._references = {
            runtime: _Reference.at(default_reference_path(runtime)) for runtime in REFERENCE_ASSETS
        }
        if reference_model_path is not None:
            self._references[ONNXRUNTIME] = _Reference.at(Path(reference_model_path))
        self._engine_cache_dir = Path(engine_cache_dir or self._scratch.parent / "trt-engines")
        self._prestart = prestart
        self._spare_after_run = spare_after_run
        self._calibration_runs = calibration_runs
        self._max_calibration_cv = max_calibration_cv
        self._launcher = launcher or default_launcher(self._scratch)
        self._lock = threading.Lock()
        self._spare: WorkerProcess | None = None
        self._current: WorkerProcess | None = None
        # _current once it has said Accepted: the worker whose job is running
        self._running: WorkerProcess | None = None
        self._starting: WorkerProcess | None = None
        self._closed = False
        if prestart:
            self._launcher.prestart()
            self._replenish()

    @property
    def reference_sha256(self) -> str:
        """sha256 of onnxruntime's reference model (the paired method's)."""
        return self._references[ONNXRUNTIME].sha256

    def reference_for(self, runtime: str) -> tuple[Path, str]:
        """Path and sha256 of ``runtime``'s paired reference. KeyError if it has none."""
        reference = self._references[runtime]
        return reference.path, reference.sha256

    @property
    def current_worker_pid(self) -> int | None:
        """Pid of the worker running a job right now (it has accepted the job); None between
        jobs and while a job is being handed over."""
        current = self._running
        try:
            return current.pid if current is not None else None
        except OSError:
            return None

    @property
    def spare_worker_pid(self) -> int | None:
        """Pid of the warm spare worker waiting for a job; None if there is none (a forked
        spare's pid may take until the zygote is warm)."""
        spare = self._spare
        try:
            return spare.pid if spare is not None else None
        except OSError:  # the fork server could not start it: the next run replaces it
            return None

    @property
    def launcher(self) -> Launcher:
        """How this runner starts its workers."""
        return self._launcher

    def run(
        self,
        model_path: Path,
        model_sha256: str,
        settings: agent_pb2.BenchmarkSettings,
        *,
        keep_calibration: bool = True,
    ) -> agent_pb2.BenchmarkResult:
        """Benchmark the model at ``model_path`` (a file of the agent's own cache).

        ``settings`` must be resolved (see ``settings.resolve_settings``);
        ValueError otherwise. Blocks until done. The result has every
        measurement field and ``model_sha256`` set; ``state_before``,
        ``state_after``, ``agent_version`` and ``host_fingerprint`` are left
        for the service.

        Raises (fleetnas.agent.errors): BenchmarkTimeout, MemoryCapExceeded,
        WorkerCrashed, ModelInvalid, UnsupportedOperator, InvalidSettings,
        InternalError; ShuttingDown after (or during) :meth:`close`. The
        runner works for the next job after any of them.

        ``keep_calibration=False`` (the caller saw a noisy host) uses a new
        reference calibration for this result only: a calibration is the
        fixed point every later paired result is scaled by, so one taken
        under load would bias them all.
        """
        check_resolved(settings)
        worker = self._ready_worker()
        key: CalibrationKey | None = None
        reference: ReferenceJob | None = None
        if settings.method == agent_pb2.METHOD_PAIRED:
            key, reference = self._reference_job(settings, worker.runtimes)
        job = Job(
            model_path=str(Path(model_path).resolve()),
            settings=settings.SerializeToString(),
            reference=reference,
            model_sha256=model_sha256,
            engine_cache_dir=str(self._engine_cache_dir),
        )
        try:
            try:
                worker = self._hand_over(worker, job)
                with self._lock:
                    self._running = worker
                message = self._answer(worker, settings)
            except BaseException:
                with self._lock:
                    self._current = self._running = None
                worker.close()  # reaped before the error is reported
                raise
            finally:
                if self._spare_after_run:
                    self._replenish()
            with self._lock:
                self._current = self._running = None
            # The worker has answered and is exiting: reap it off the reply's path.
            threading.Thread(target=worker.close, name="reap-worker", daemon=True).start()
            return self._interpret(message, model_sha256, key, reference, keep_calibration)
        except errors.AgentError as exc:
            if isinstance(exc, errors.ShuttingDown):
                raise
            # Name the model: the caller may be running many.
            raise type(exc)(f"model {model_sha256[:12]}: {exc.message}", private=exc.private) from exc

    def cancel_current(self) -> bool:
        """Kill the worker of the job running now (its ``run`` raises WorkerCrashed).

        For a caller that no longer wants the result (its client went away).
        Returns whether a worker was killed. Safe from any thread.
        """
        with self._lock:
            worker = self._current or self._starting
        if worker is None:
            return False
        worker.kill()
        return True

    def close(self) -> None:
        """Kill any worker (spare or running); later runs raise ShuttingDown. Idempotent."""
        with self._lock:
            self._closed = True
            workers = [w for w in (self._spare, self._starting, self._current) if w is not None]
            spare, self._spare = self._spare, None
        for worker in workers:
            worker.kill()
        if spare is not None:
            spare.close()  # the others are closed by the run() that owns them
        self._launcher.close()

    # -- internals -------------------------------------------------------------
    def _ready_worker(self) -> WorkerProcess:
        """A ready worker, registered as current: the spare if it is usable, else a fresh one."""
        with self._lock:
            if self._closed:
                raise errors.ShuttingDown("the benchmark runner is closed")
            spare, self._spare = self._spare, None
        if spare is not None:
            try:
                return self._wait_ready(spare)
            except errors.WorkerCrashed as exc:
                log.warning("warm spare worker died (%s); starting a fresh one", exc)
        for attempt in (1, 2):
            with self._lock:
                if self._closed:
                    raise errors.ShuttingDown("the benchmark runner is closed")
            worker = WorkerProcess(self._scratch, self._launcher)
            try:
                return self._wait_ready(worker)
            except errors.WorkerCrashed as exc:
                # A zygote that refused (it found a thread) or died fails the requests it
                # had queued; the launcher falls back, so one more worker is worth it.
                if attempt == 2 or not worker.never_forked:
                    raise
                log.warning("the fork server could not start a worker (%s); trying again", exc)
        raise AssertionError("unreachable")

    def _wait_ready(self, worker: WorkerProcess) -> WorkerProcess:
        with self._lock:
            self._starting = worker  # so that close() can kill it
        try:
            worker.wait_ready()
        except BaseException:
            worker.close()
            if self._closed:
                raise errors.ShuttingDown("the benchmark runner is closed") from None
            raise
        finally:
            with self._lock:
                self._starting = None
        with self._lock:
            if self._closed:
                worker.close()
                raise errors.ShuttingDown("the benchmark runner is closed")
            self._current = worker
        return worker

    def start_spare(self) -> None:
        """Start the next warm spare now unless one exists (no-op when closed)."""
        self._replenish()

    def _replenish(self) -> None:
        if not self._prestart:
            return
        with self._lock:
            if self._closed or self._spare is not None:
                return
            try:
                self._spare = WorkerProcess(self._scratch, self._launcher)
            except OSError as exc:
                log.warning("could not start a spare benchmark worker: %s", exc)

    def _hand_over(self, worker: WorkerProcess, job: Job) -> WorkerProcess:
        """Send ``job``; the worker that accepted it (the one given, or a fresh one).

        A worker whose pipe is already broken, or that dies before it says
        Accepted, died before this job ran (a spare killed while it waited or at
        the hand-off, or whose zygote died): the job goes to one fresh worker
        instead. Whatever fails here closes the worker it made.
        """
        for attempt in (1, 2):
            try:
                worker.send(job)
                worker.wait_accepted()
                return worker
            except (OSError, errors.WorkerCrashed) as exc:
                if self._closed:
                    raise errors.ShuttingDown("the agent is shutting down") from None
                error = exc if isinstance(exc, errors.WorkerCrashed) else worker.crash_error()
            with self._lock:
                self._current = None
            worker.close()
            if attempt == 2:
                raise error
            log.warning("benchmark worker died before its job (%s); starting a fresh one",
                        error.message)  # fmt: skip
            worker = self._ready_worker()
        raise AssertionError("unreachable")

    def _answer(self, worker: WorkerProcess, settings: agent_pb2.BenchmarkSettings
                ) -> Result | Failure:  # fmt: skip
        try:
            return worker.wait_answer(
                timeout_s=settings.timeout_s, memory_cap_bytes=settings.memory_cap_bytes
            )
        except errors.WorkerCrashed:
            if self._closed:
                raise errors.ShuttingDown(
                    "the agent is shutting down; the running benchmark was stopped"
                ) from None
            raise

    def _reference_job(
        self, settings: agent_pb2.BenchmarkSettings, runtimes: dict[str, str]
    ) -> tuple[CalibrationKey, ReferenceJob]:
        reference = self._references.get(settings.runtime)
        if reference is None:
            raise errors.InvalidSettings(
                f"method PAIRED needs a reference model for runtime {settings.runtime}, and "
                f"this agent has none; use method PLAIN"
            )
        key = CalibrationKey.of(
            reference.sha256,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            providers=list(settings.providers),
            graph_optimization=settings.graph_optimization,
            runtime_version=runtimes.get(settings.runtime, ""),
            runtime=settings.runtime,
        )
        calibration = self._store.get(key)
        return key, ReferenceJob(
            path=str(reference.path),
            name=REFERENCE_NAME,
            sha256=reference.sha256,
            calibrated_ms=calibration.latency_ms if calibration else None,
            calibrated_at=calibration.calibrated_at if calibration else None,
            calibration_runs=self._calibration_runs,
            max_calibration_cv=self._max_calibration_cv,
        )

    def _interpret(
        self,
        answer: Result | Failure,
        model_sha256: str,
        key: CalibrationKey | None,
        reference: ReferenceJob | None,
        keep_calibration: bool,
    ) -> agent_pb2.BenchmarkResult:
        if isinstance(answer, Failure):
            # The worker words its own details; this is the last line of defence before
            # they leave the agent: no host paths, bounded size.
            raise getattr(errors, answer.reason)(client_text(answer.message, MAX_FAILURE_CHARS))
        try:
            result = agent_pb2.BenchmarkResult.FromString(answer.result)
        except DecodeError as exc:
            raise errors.InternalError(
                f"benchmark worker sent an unreadable result: {exc}"
            ) from exc
        result.model_sha256 = model_sha256
        calibrated_now = reference is not None and reference.calibrated_ms is None
        if calibrated_now and not keep_calibration:
            # Whether or not its own runs looked steady: the host did not.
            result.warnings.append(
                "paired: the reference was calibrated on a noisy host; the calibration is "
                "used for this result only and not kept"
            )
        elif key is not None and answer.calibration is not None:
            self._store.put(key, answer.calibration)
        return result
