"""Tie a child process's life to its parent's, and clean up after owners that died.

Benchmark workers must die with their agent, and local agents with the
controller that started them: a worker left at ppid 1 runs a hostile model
forever, a local agent left behind serves on loopback without a token.

Parent side: :func:`spawn` starts the child. Child side: :func:`hold`, called
first thing, arms two mechanisms:

1. Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, then ``getppid()`` is compared
   with the pid the parent passed (``FLEETNAS_PARENT_PID``): if the parent
   died before the prctl, the child is already an orphan and exits at once.
2. Everywhere: the parent keeps the write end of a pipe whose read end the
   child gets (``FLEETNAS_LIFELINE_FD``). Nothing is ever written; a daemon
   thread in the child blocks reading it, and EOF means the parent process
   is gone (the kernel closes its end however it died): the child SIGKILLs
   itself.

Threads: PR_SET_PDEATHSIG fires when the *thread* that forked the child
exits, not the process. A worker started from a gRPC handler thread, or an
agent started from a short-lived thread, would be killed when that thread
ends. :func:`spawn` therefore forks every child from one process-lifetime
thread (started on first use, never ended while the process lives), whatever
thread asks; so the signal comes only when the whole parent process dies.

Stale folders: :func:`owned_prefix` names a folder after the process that
owns it (pid and start time, so a reused pid is not mistaken for the owner);
:func:`clean_stale` removes the entries whose owner is dead. Entries without
an owner in their name (from older versions) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import psutil

FD_ENV = "FLEETNAS_LIFELINE_FD"
PARENT_PID_ENV = "FLEETNAS_PARENT_PID"
_PR_SET_PDEATHSIG = 1
_OWNER_RE = re.compile(r"(\d+)-(\d+)-")  # <pid>-<start ticks>-


# -- parent side -----------------------------------------------------------------
class Tethered:
    """A child started by :func:`spawn`; it lives only while the parent holds its lifeline."""

    def __init__(self, process: subprocess.Popen[bytes], lifeline_fd: int) -> None:
        self.process = process
        self._fd: int | None = lifeline_fd
        self._lock = threading.Lock()

    def release(self) -> None:
        """Close the parent's end of the lifeline (idempotent): a child still running exits."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class _SpawnThread:
    """The one thread of this process that forks tethered children (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._pid = 0  # the process whose thread it is: a fork of this process needs its own

    def call(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._serve, args=(self._queue,),
                                 name="fleetnas-spawner", daemon=True).start()  # fmt: skip
            future: Future[Any] = Future()
            self._queue.put((fn, future))
        return future.result()

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]]) -> None:
        while True:
            fn, future = jobs.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)


_SPAWNER = _SpawnThread()


def spawn(argv: Sequence[str], *, env: dict[str, str], pass_fds: Sequence[int] = (),
          **popen_kwargs: Any) -> Tethered:  # fmt: skip
    """``subprocess.Popen(argv, env=env, **popen_kwargs)`` with a lifeline the child can hold.

    The child must call :func:`hold` (``fleetnas.agent.worker_main`` and the
    fork server's zygote do; for any other module run ``python -m
    fleetnas.agent.lifeline MODULE ARGS...``). The caller keeps the returned
    :class:`Tethered` and calls :meth:`Tethered.release` once the child is
    reaped. ``pass_fds`` are passed on beside the lifeline. Raises what Popen raises.
    """
    read_fd, write_fd = os.pipe()  # both non-inheritable: no other child gets the write end
    child_env = dict(env, **{FD_ENV: str(read_fd), PARENT_PID_ENV: str(os.getpid())})
    fds = (read_fd, *pass_fds)
    try:
        process = _SPAWNER.call(
            lambda: subprocess.Popen(list(argv), env=child_env, pass_fds=fds, **popen_kwargs)
        )
    except BaseException:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    return Tethered(process, write_fd)


# -- child side ------------------------------------------------------------------
def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the pipe still holds


def _watch(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass  # nothing is ever written; only EOF matters
    except OSError:
        pass
    _die()


def die_with_parent(parent_pid: int) -> None:
    """Arm PR_SET_PDEATHSIG (Linux), then die at once if ``parent_pid`` is already gone
    (it died before the prctl: nobody would ever signal us)."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:
        _die()


def watch(fd: int) -> None:
    """Die (SIGKILL) when EOF arrives on lifeline ``fd``: a daemon thread blocks reading it."""
    threading.Thread(target=_watch, args=(fd,), name="fleetnas-lifeline", daemon=True).start()


def hold(*, watch_pipe: bool = True) -> int | None:
    """In a child of :func:`spawn`: die when the parent dies. No-op when not spawned so.

    Returns the lifeline's fd (None when not spawned so). ``watch_pipe=False``
    starts no thread: the caller must then watch the fd itself (the fork
    server's zygote, which must stay free of threads, selects on it and
    hands it to its children, which :func:`watch` it). Removes the two
    environment variables, so this process's own children do not mistake
    them for theirs.
    """
    fd_text = os.environ.pop(FD_ENV, None)
    parent_text = os.environ.pop(PARENT_PID_ENV, None)
    if parent_text is not None and parent_text.isdigit():
        die_with_parent(int(parent_text))
    if fd_text is None or not fd_text.isdigit():
        return None
    fd = int(fd_text)
    os.set_inheritable(fd, False)
    if watch_pipe:
        watch(fd)
    return fd


# -- stale folders ---------------------------------------------------------------
def _start_ticks(process: psutil.Process) -> int:
    return int(process.create_time() * 100)


def owned_prefix(prefix: str) -> str:
    """``prefix`` plus this process's owner tag, for ``tempfile.mkdtemp(prefix=...)``."""
    return f"{prefix}{os.getpid()}-{_start_ticks(psutil.Process())}-"


def owner_alive(pid: int, start_ticks: int) -> bool:
    """Whether the process that made a tag is still running (a reused pid does not count)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(_start_ticks(process) - start_ticks) <= 1
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # cannot tell: keep its files


def clean_stale(folder: Path, prefix: str) -> list[Path]:
    """Remove entries ``folder/<prefix><owner>-*`` whose owner is dead; returns what went."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = _OWNER_RE.match(entry.name, len(prefix))
        if match is None or owner_alive(int(match.group(1)), int(match.group(2))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def main(argv: Sequence[str]) -> None:
    """``python -m fleetnas.agent.lifeline MODULE ARGS...``: hold, then run MODULE as __main__."""
    import runpy

    if not argv:
        sys.exit("usage: python -m fleetnas.agent.lifeline MODULE [ARGS...]")
    hold()
    sys.argv = list(argv)
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
