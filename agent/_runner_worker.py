"""Parent-side handle of one worker process: spawn, wait ready, run one job under watch.

:class:`WorkerProcess` owns the subprocess, its private working directory
and its stderr log. :meth:`WorkerProcess.send` hands the worker its job and
:meth:`WorkerProcess.wait_answer` waits for the answer while enforcing the
job's wall-clock timeout and its resident-memory cap (psutil, polling every
``POLL_S``), raising the matching named error; every other outcome comes
back as a typed protocol message (``_worker_protocol``) for the runner to
interpret.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, TypeVar

import psutil

from fleetnas.agent._text import client_text
from fleetnas.agent._worker_protocol import (
    MAX_JOB_BYTES,
    MAX_MESSAGE_BYTES,
    Accepted,
    Failure,
    FrameReader,
    Job,
    Message,
    ProtocolError,
    Ready,
    Result,
    encode,
)
from fleetnas.agent.errors import (
    AgentError,
    BenchmarkTimeout,
    InternalError,
    InvalidSettings,
    MemoryCapExceeded,
    WorkerCrashed,
)
from fleetnas.agent.lifeline import Tethered, owned_prefix, spawn

log = logging.getLogger(__name__)
_E = TypeVar("_E", bound=AgentError)
# the messages a worker sends before its answer, each awaited on its own
_Control = TypeVar("_Control", Ready, Accepted)
POLL_S = 0.02
# Each worker's folder and log in the scratch dir: ``worker-<owner>-<random>``.
SCRATCH_PREFIX = "worker-"
READY_TIMEOUT_S = 120.0
# A worker reads its job the moment it arrives; this long without Accepted, it is stuck.
ACCEPT_TIMEOUT_S = 60.0
# Past the deadline, how long an answer being written may go without a byte before it is stuck.
ANSWER_STALL_S = 5.0
# Travels as the error's private detail, which the service logs (a faulthandler dump is a
# few KB; the service keeps at most 8000 characters of it).
_STDERR_TAIL_BYTES = 7_500

# Environment passed to workers: what Python, onnxruntime and GPU runtimes
# need, nothing else (no agent token or other secrets of the parent).
_ENV_NAMES = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "PYTHONPATH", "PYTHONHOME",
    "VIRTUAL_ENV", "LD_LIBRARY_PATH", "SYSTEMROOT",
)  # fmt: skip
_ENV_PREFIXES = ("CUDA_", "NVIDIA_", "ORT_", "OMP_", "ROCM_", "HIP_")


def worker_env() -> dict[str, str]:
    """The allowlisted environment for a worker, plus allocator settings."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_NAMES or k.startswith(_ENV_PREFIXES)}
    # Fewer glibc malloc arenas: less address space per thread, steadier memory use.
    env["MALLOC_ARENA_MAX"] = "2"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(THREAD_FREE_IMPORTS)
    return env


#: Without these, importing the runtimes starts threads: numpy's OpenBLAS its worker pool
#: (the timed code never calls BLAS), onnxruntime 1.32 a telemetry thread. A worker has
#: no use for either, and the fork server's zygote must hold no thread at all.
THREAD_FREE_IMPORTS = {"OPENBLAS_NUM_THREADS": "1", "ORT_DISABLE_TELEMETRY": "1"}


def describe_exit(returncode: int) -> str:
    """'killed by signal 9 (SIGKILL)' or 'exited with code 3'."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode} ({name})"
    return f"exited with code {returncode}"


class Child(ABC):
    """A started worker process as the runner sees it: its pipes, its exit, its end.

    ``stdin`` takes the job (closed after it); answers are read from
    ``stdout_fd``. :meth:`kill` may be called from any thread.
    """

    stdin: IO[bytes]
    stdout_fd: int

    @property
    @abstractmethod
    def pid(self) -> int:
        """The worker's pid (may wait until it exists; OSError if it never will)."""

    @abstractmethod
    def poll(self) -> int | None:
        """Its returncode (negative: killed by that signal) once it exited, else None."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> int:
        """Its returncode; subprocess.TimeoutExpired if it is still running after ``timeout``."""

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL it if it is still running (idempotent)."""

    @abstractmethod
    def release(self) -> None:
        """Close this side's pipes and let go of it; call once it has exited."""

    def exit_note(self) -> str:
        """What to add to its exit status in an error (why it never started, say)."""
        return ""

    def never_forked(self) -> bool:
        """Whether a fork server failed before it could start this worker (the launcher then
        falls back: starting another worker is worth it). False for spawned workers."""
        return False


class Launcher(ABC):
    """How the runner starts workers: spawned fresh, or forked from a warm zygote."""

    name: str

    @abstractmethod
    def start(self, workdir: Path, stderr: IO[bytes]) -> Child:
        """A new worker with ``workdir`` as its working directory, logging to ``stderr``.
        OSError if it cannot be started."""

    @abstractmethod
    def prestart(self) -> None:
        """Get ready to start workers fast (never waits)."""

    @abstractmethod
    def close(self) -> None:
        """Stop whatever the launcher runs; later starts are the caller's mistake."""


class _SpawnedChild(Child):
    def __init__(self, tether: Tethered) -> None:
        self._tether = tether
        self.process = tether.process
        assert self.process.stdout is not None and self.process.stdin is not None
        self.stdin = self.process.stdin
        self.stdout_fd = self.process.stdout.fileno()

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass

    def release(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:
                    pass
        self._tether.release()


class SpawnLauncher(Launcher):
    """Each worker a fresh ``python -m fleetnas.agent.worker_main`` (imports its runtimes)."""

    name = "spawn"

    def prestart(self) -> None:
        """Nothing to start ahead: each worker imports its runtimes itself."""

    def close(self) -> None:
        """Nothing runs between workers."""

    def start(self, workdir: Path, stderr: IO[bytes]) -> Child:
        return _SpawnedChild(spawn(
            [sys.executable, "-m", "fleetnas.agent.worker_main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=workdir,  # empty: external-data paths have nothing to resolve to
            env=worker_env(),
            close_fds=True,
            start_new_session=True,  # a terminal's Ctrl-C goes to the agent, not the worker
        ))  # fmt: skip


class WorkerProcess:
    """One worker. Not thread-safe except :meth:`kill` (callable from any thread)."""

    def __init__(self, scratch_dir: Path, launcher: Launcher | None = None) -> None:
        """Start a worker (``launcher``, by default a fresh spawn) in a fresh
        ``scratch_dir/worker-<owner>-*`` folder; OSError if it cannot be started. The
        worker dies with this process (see ``lifeline``)."""
        scratch_dir.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=owned_prefix(SCRATCH_PREFIX), dir=scratch_dir))
        log_path = self.workdir.parent / f"{self.workdir.name}.log"
        self._stderr: IO[bytes] = open(log_path, "w+b")  # noqa: SIM115
        try:
            self.child = (launcher or SpawnLauncher()).start(self.workdir, self._stderr)
        except BaseException:
            self._stderr.close()
            Path(self._stderr.name).unlink(missing_ok=True)
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self._out = self.child.stdout_fd
        self._reader = FrameReader(MAX_MESSAGE_BYTES)
        self.ready = False
        #: runtime name -> version, of the runtimes the worker imported (from its Ready)
        self.runtimes: dict[str, str] = {}

    @property
    def pid(self) -> int:
        return self.child.pid

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Block until the worker has imported onnxruntime; WorkerCrashed if it died first."""
        if self.ready:
            return
        message = self._expect(Ready, timeout_s, f"did not start within {timeout_s:g} s "
                               "(importing its runtimes)", "Ready")
        if message is None:
            exit_text = self._exit_text()
            raise self._with_stderr(
                WorkerCrashed, f"benchmark worker ({self.label}) failed to start: {exit_text}"
            )
        self.runtimes = dict(message.runtimes)
        self.ready = True

    def send(self, job: Job) -> None:
        """Hand the worker its one job. OSError (BrokenPipeError) if the worker is gone.

        InvalidSettings (nothing sent) if the job is over ``MAX_JOB_BYTES``: only
        settings far past what one gRPC request can carry make it so big.
        """
        frame = encode(job)
        if len(frame) > MAX_JOB_BYTES:
            raise InvalidSettings(
                f"the benchmark settings are {len(job.settings)} bytes serialized; a job may be "
                f"at most {MAX_JOB_BYTES} bytes (fewer or shorter input_shapes entries)"
            )
        self.child.stdin.write(frame)
        self.child.stdin.close()

    def wait_accepted(self, timeout_s: float = ACCEPT_TIMEOUT_S) -> None:
        """Block until the worker says it has read the job just sent.

        WorkerCrashed if it exits first, or says nothing for ``timeout_s`` (then it
        is killed): either way it never ran the job, which may go to another worker.
        """
        message = self._expect(Accepted, timeout_s, f"did not take its job within {timeout_s:g} s",
                               "accepting its job")
        if message is None:
            raise self.crash_error()

    def _expect(self, kind: type[_Control], timeout_s: float, stuck: str,
                before: str) -> _Control | None:
        """The next message, which must be a ``kind``; None on EOF (the worker exited).

        A worker silent for ``timeout_s`` is killed: WorkerCrashed "benchmark worker
        (pid N) <stuck>"; one that sends another message is killed: InternalError
        "... sent X before <before>".
        """
        try:
            message = self._read_message(time.monotonic() + timeout_s, watch=None)
        except _Deadline:
            self.kill()
            raise self._with_stderr(
                WorkerCrashed, f"benchmark worker ({self.label}) {stuck}"
            ) from None
        if message is not None and not isinstance(message, kind):
            self.kill()
            raise InternalError(f"benchmark worker sent {type(message).__name__} before {before}")
        return message

    def wait_answer(self, *, timeout_s: float, memory_cap_bytes: int) -> Result | Failure:
        """Wait for the answer to the job just sent, watching the worker.

        An answer read after the deadline (this process was paused while the
        worker finished) is judged by the worker's own ``elapsed_s``: kept if
        the worker took at most ``timeout_s``.

        Raises:
            BenchmarkTimeout: no answer ``timeout_s`` after the call, or an answer
                the worker itself took longer than that for (worker killed).
            MemoryCapExceeded: the worker's RSS went over ``memory_cap_bytes`` (worker killed).
            WorkerCrashed: the worker exited without answering.
        """
        deadline = time.monotonic() + timeout_s
        try:
            process = psutil.Process(self.pid)
        except (OSError, psutil.Error):  # gone already, or its zygote died before naming it
            raise self.crash_error() from None
        try:
            message = self._read_message(deadline, watch=(process, memory_cap_bytes))
        except _Deadline:
            self.kill()
            raise _timeout_error(timeout_s) from None
        except _OverCap as over:
            self.kill()
            raise MemoryCapExceeded(
                f"the benchmark worker used {over.rss_bytes / 2**20:.0f} MiB of resident memory, "
                f"over its cap of {memory_cap_bytes / 2**20:.0f} MiB, and was killed; raise "
                "settings.memory_cap_bytes (capped by the agent's memory cap, see "
                "Describe().limits.memory_cap_bytes) or benchmark a smaller model"
            ) from None
        if message is None:
            raise self.crash_error()
        if not isinstance(message, (Result, Failure)):
            self.kill()
            raise InternalError(f"benchmark worker sent an unexpected {type(message).__name__}")
        if time.monotonic() > deadline and message.elapsed_s > timeout_s:
            self.kill()
            raise _timeout_error(timeout_s, took_s=message.elapsed_s)
        return message

    def crash_error(self) -> WorkerCrashed | MemoryCapExceeded:
        """The error for a worker that exited without an answer (waits for it to exit)."""
        exit_text = self._exit_text()
        tail = self.stderr_tail()
        if "bad_alloc" in tail or "MemoryError" in tail:
            return self._with_stderr(MemoryCapExceeded, (
                f"the benchmark worker ran out of memory under its cap and {exit_text}; raise "
                "settings.memory_cap_bytes or benchmark a smaller model"
            ))
        return self._with_stderr(
            WorkerCrashed,
            f"the benchmark worker ({self.label}) {exit_text} before returning a result",
        )

    def kill(self) -> None:
        """SIGKILL the worker if it is still running (idempotent, any thread)."""
        self.child.kill()

    def close(self) -> None:
        """Kill, reap and remove the worker's files (idempotent)."""
        self.kill()
        try:
            self.child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.child.release()
        if not self._stderr.closed:
            self._stderr.close()
        Path(self._stderr.name).unlink(missing_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def stderr_tail(self) -> str:
        try:
            self._stderr.flush()
            size = os.fstat(self._stderr.fileno()).st_size
            self._stderr.seek(max(0, size - _STDERR_TAIL_BYTES))
            return self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def _with_stderr(self, cls: type[_E], message: str) -> _E:
        """``cls(message)`` with the worker's stderr tail as its private detail.

        The tail holds tracebacks with the agent host's paths: it travels as
        ``private`` (the service logs it, the client never sees it), and the
        client's message learns only the last error's name.
        """
        tail = self.stderr_tail()
        if not tail:
            return cls(message)
        last = _last_error(tail)
        note = f" ({last + '; ' if last else ''}its stderr is in the agent's log)"
        return cls(message + note, private=f"benchmark worker ({self.label}) stderr:\n{tail}")

    def _exit_text(self) -> str:
        try:
            code = self.child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.child.wait()
            return f"stopped answering ({describe_exit(code)} by the runner)"
        return describe_exit(code) + self.child.exit_note()

    @property
    def never_forked(self) -> bool:
        """See :meth:`Child.never_forked`."""
        return self.child.never_forked()

    @property
    def label(self) -> str:
        """``pid N``, or ``not started`` for a worker that never got a pid (for messages)."""
        try:
            return f"pid {self.child.pid}"
        except OSError:
            return "not started"

    def _read_message(
        self, deadline: float, watch: tuple[psutil.Process, int] | None
    ) -> Message | None:
        """The next protocol message; None on EOF. Raises _Deadline / _OverCap while waiting.

        The pipe is drained before the clock is looked at, so an answer the
        worker wrote while this process could not read (a paused agent) is
        taken, not thrown away. Past the deadline, an answer whose first
        bytes have arrived may finish unless it stalls for ``ANSWER_STALL_S``.
        """
        last_bytes = time.monotonic()
        chunk = b""
        while True:
            message = self._take(chunk)
            if message is not None:
                return message
            chunk = b""
            pending = self._reader.pending
            wait = POLL_S if pending else max(0.0, min(POLL_S, deadline - time.monotonic()))
            readable, _, _ = select.select([self._out], [], [], wait)
            if readable:
                chunk = os.read(self._out, 1 << 20)
                if not chunk:
                    return None
                last_bytes = time.monotonic()
                continue
            if watch is not None:
                self._check_memory(*watch)
            now = time.monotonic()
            if now >= deadline and not (pending and now - last_bytes < ANSWER_STALL_S):
                raise _Deadline

    def _take(self, chunk: bytes) -> Message | None:
        """Buffer ``chunk``; the next complete message, if any. Garbled bytes kill the worker."""
        try:
            self._reader.feed(chunk)
            return self._reader.next_message()
        except ProtocolError as exc:
            self.kill()
            raise InternalError(f"benchmark worker sent an unreadable message: {exc}") from None

    def _check_memory(self, process: psutil.Process, cap: int) -> None:
        try:
            rss = process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return  # exiting: the EOF on its pipe tells the rest
        if rss > cap:
            raise _OverCap(rss)


_ERROR_LINE = re.compile(r"^(?:Fatal Python error: (.+)|(\w+(?:\.\w+)*(?:Error|Exception)\b))")


def _last_error(stderr_tail: str) -> str:
    """The name of the last error in a worker's stderr ('MemoryError', 'Segmentation fault')."""
    for line in reversed(stderr_tail.splitlines()):
        match = _ERROR_LINE.match(line.strip())
        if match:
            return client_text(match.group(1) or match.group(2), limit=80)
    return ""


def _timeout_error(timeout_s: float, *, took_s: float | None = None) -> BenchmarkTimeout:
    what = (
        f"the benchmark took {took_s:.3g} s in its worker, over its timeout of {timeout_s:g} s"
        if took_s is not None
        else f"the benchmark did not finish within its timeout of {timeout_s:g} s and its "
        "worker was killed"
    )
    return BenchmarkTimeout(
        f"{what}; raise settings.timeout_s (capped by the agent's max timeout, see "
        "Describe().limits.max_timeout_s) or lower max_duration_s / max_runs / warmup_runs"
    )


class _Deadline(Exception):
    """Internal: the job's wall-clock deadline passed."""


class _OverCap(Exception):
    """Internal: the worker's RSS went over the cap."""

    def __init__(self, rss_bytes: int) -> None:
        super().__init__(rss_bytes)
        self.rss_bytes = rss_bytes
