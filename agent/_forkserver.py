"""Start benchmark workers by forking a warm zygote: the agent's side of the fork server.

A fresh ``python -m fleetnas.agent.worker_main`` spends ~200 ms (more on a
busy host) importing numpy and the runtimes and warming them up before it
can take a job; on a stream of small jobs that is most of each job's fixed
cost. :class:`ForkServer` runs one zygote (``_zygote``: the imports done
once, no thread, see its docstring for why and how that is checked) and
asks it for one forked worker per job. :class:`ForkServerLauncher` is the
``Launcher`` the runner uses by default on Linux: it starts the zygote
ahead, restarts it if it dies, and falls back to spawning workers
(``SpawnLauncher``) when the zygote refuses to fork (it found a thread) or
keeps failing, saying so in the log.

A forked worker is the agent's grandchild: it is not waited on here. The
zygote reports its exit status and keeps it a zombie until
:meth:`ForkedChild.release` asks it to reap, so the pid the runner may
signal is never reused while the runner holds it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from fleetnas.agent._runner_worker import SCRATCH_PREFIX, Child, Launcher, SpawnLauncher, worker_env
from fleetnas.agent.lifeline import Tethered, owned_prefix, spawn

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 180.0
MAX_CONTROL_BYTES = 64 * 1024
#: zygote failures (in the agent's lifetime) after which the launcher spawns workers for good
MAX_ZYGOTE_FAILURES = 3


class ForkFailed(OSError):
    """The zygote could not fork a worker (it died, refused, or the fork failed)."""


class ForkedChild(Child):
    """A worker forked by the zygote: pipes held here, exit status reported by the zygote."""

    def __init__(self, server: ForkServer, request: int, job_w: int, answer_r: int) -> None:
        self._server = server
        self._request = request
        self.stdin: IO[bytes] = os.fdopen(job_w, "wb", buffering=0)
        self.stdout_fd = answer_r
        self._lock = threading.Condition()
        self._pid: int | None = None
        self._failure: str | None = None
        self._returncode: int | None = None
        self._kill_when_forked = False
        self._released = False

    # -- called by the server's reader thread -----------------------------------------
    def forked(self, pid: int) -> None:
        with self._lock:
            self._pid = pid
            kill = self._kill_when_forked
            self._lock.notify_all()
        if kill:
            self.kill()

    def failed(self, reason: str) -> None:
        with self._lock:
            if self._pid is None:
                self._failure = reason
            elif self._returncode is None:
                self._returncode = -signal.SIGKILL  # the zygote died: so did its children
            self._lock.notify_all()

    def exited(self, returncode: int) -> None:
        with self._lock:
            self._returncode = returncode
            self._lock.notify_all()

    # -- the Child interface --------------------------------------------------------------
    @property
    def pid(self) -> int:
        """The worker's pid, once forked (waits for the zygote); ForkFailed if it was not."""
        with self._lock:
            self._lock.wait_for(lambda: self._pid is not None or self._failure is not None,
                                timeout=READY_TIMEOUT_S)  # fmt: skip
            if self._pid is None:
                raise ForkFailed(self._failure or "the fork server did not answer in time")
            return self._pid

    def poll(self) -> int | None:
        with self._lock:
            if self._failure is not None:
                return 1
            return self._returncode

    def wait(self, timeout: float | None = None) -> int:
        with self._lock:
            done = self._lock.wait_for(lambda: self.poll() is not None, timeout=timeout)
            if not done:
                raise subprocess.TimeoutExpired(f"worker {self._pid}", timeout or 0.0)
            code = self.poll()
            assert code is not None
            return code

    def kill(self) -> None:
        with self._lock:
            if self._returncode is not None or self._failure is not None:
                return
            if self._pid is None:
                self._kill_when_forked = True
                return
            pid = self._pid
        try:
            os.kill(pid, signal.SIGKILL)  # a zombie until reaped: this pid is still ours
        except ProcessLookupError:
            pass

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
            pid = self._pid
        for close in (self.stdin.close, lambda: os.close(self.stdout_fd)):
            try:
                close()
            except OSError:
                pass
        if pid is not None:
            self._server.reap(pid)

    def exit_note(self) -> str:
        with self._lock:
            return f" (the fork server could not start it: {self._failure})" if self._failure else ""

    def never_forked(self) -> bool:
        with self._lock:
            return self._failure is not None


class ForkServer:
    """One zygote process and its control socket (see the module docstring). Thread-safe."""

    def __init__(self, scratch_dir: Path) -> None:
        """Start the zygote (it gets ready in the background). OSError if it cannot start."""
        scratch_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = scratch_dir / f"{owned_prefix(SCRATCH_PREFIX)}zygote.log"
        self._sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._lock = threading.Lock()
        self._children: dict[int, ForkedChild] = {}  # by request id, then also by pid
        self._by_pid: dict[int, ForkedChild] = {}
        self._next = 0
        self._ready = threading.Event()
        self.failure: str | None = None
        self.runtimes: dict[str, str] = {}
        with open(self.log_path, "ab") as log_file:
            try:
                self._tether: Tethered = spawn(
                    [sys.executable, "-m", "fleetnas.agent._zygote", str(child_sock.fileno())],
                    env=worker_env(), pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL,
                    stdout=log_file, stderr=log_file, cwd=scratch_dir, close_fds=True,
                    start_new_session=True,
                )  # fmt: skip
            finally:
                child_sock.close()
        self.pid = self._tether.process.pid
        threading.Thread(target=self._read, name="fleetnas-forkserver", daemon=True).start()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Whether the zygote is ready (False: it failed, see ``failure``, or took too long)."""
        self._ready.wait(timeout)
        return self._ready.is_set() and self.failure is None

    def fork(self, workdir: Path, stderr: IO[bytes]) -> ForkedChild:
        """Ask for a worker in ``workdir`` logging to ``stderr``; returns at once (the pid
        follows). ForkFailed if the zygote is known to have failed."""
        job_r, job_w = os.pipe()
        answer_r, answer_w = os.pipe()
        with self._lock:
            if self.failure is not None:
                for fd in (job_r, job_w, answer_r, answer_w):
                    os.close(fd)
                raise ForkFailed(self.failure)
            self._next += 1
            child = ForkedChild(self, self._next, job_w, answer_r)
            self._children[self._next] = child
            try:
                message = json.dumps({"op": "fork", "id": self._next, "workdir": str(workdir)})
                socket.send_fds(self._sock, [message.encode()], [job_r, answer_w, stderr.fileno()])
            except OSError as exc:
                del self._children[self._next]
                failure: OSError | None = exc
            else:
                failure = None
            finally:
                os.close(job_r)  # the zygote has its own copies now
                os.close(answer_w)
        if failure is not None:
            child.release()
            self._fail(f"the fork server is gone: {failure}")
            raise ForkFailed(f"the fork server is gone: {failure}")
        return child

    def reap(self, pid: int) -> None:
        with self._lock:
            self._by_pid.pop(pid, None)
            if self.failure is None:
                try:
                    self._sock.send(json.dumps({"op": "reap", "pid": pid}).encode())
                except OSError:
                    pass

    def close(self) -> None:
        """Kill the zygote (its workers die with it) and reap it. Idempotent."""
        self._fail("the fork server was closed")
        process = self._tether.process
        if process.poll() is None:
            process.kill()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._tether.release()
        self._sock.close()

    # -- the reader thread -------------------------------------------------------------
    def _read(self) -> None:
        try:
            while True:
                data = self._sock.recv(MAX_CONTROL_BYTES)
                if not data:
                    break
                self._dispatch(json.loads(data))
        except (OSError, ValueError) as exc:
            if self.failure is None:  # not closed on purpose
                log.warning("fork server control channel failed: %s", exc)
        code = self._tether.process.poll()
        self._fail(f"the fork server exited ({code if code is not None else 'running'}); "
                   f"its log: {self.log_path.name}")  # fmt: skip

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "ready":
            self.runtimes = dict(message.get("runtimes") or {})
            self._ready.set()
        elif op == "refused":
            self._fail(str(message.get("reason")))
        elif op in ("forked", "fork-failed"):
            with self._lock:
                child = self._children.pop(int(message["id"]), None)
                if child is not None and op == "forked":
                    self._by_pid[int(message["pid"])] = child
            if child is None:
                return
            if op == "forked":
                child.forked(int(message["pid"]))
            else:
                child.failed(str(message.get("reason")))
                if "threads" in str(message.get("reason")):
                    self._fail(str(message.get("reason")))
        elif op == "exited":
            with self._lock:
                child = self._by_pid.get(int(message["pid"]))
            if child is not None:
                child.exited(int(message["returncode"]))

    def _fail(self, reason: str) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = reason
            pending = list(self._children.values()) + list(self._by_pid.values())
            self._children.clear()
        self._ready.set()
        for child in pending:
            child.failed(reason)


class ForkServerLauncher(Launcher):
    """Workers forked from a warm zygote; spawned ones when the zygote cannot serve."""

    name = "forkserver"

    def __init__(self, scratch_dir: Path) -> None:
        self._scratch = scratch_dir
        self._lock = threading.Lock()
        self._server: ForkServer | None = None
        self._failures = 0
        self._spawn = SpawnLauncher()
        self._gave_up = False

    def prestart(self) -> None:
        """Start the zygote now, so it is warm when the first job comes (does not wait)."""
        self._current()

    def _current(self) -> ForkServer | None:
        with self._lock:
            if self._gave_up:
                return None
            server = self._server
            if server is not None and server.failure is None:
                return server
            if server is not None:
                self._failures += 1
                log.warning("benchmark fork server failed (%s)", server.failure)
                server.close()
                self._server = None
                if self._failures >= MAX_ZYGOTE_FAILURES or "threads" in (server.failure or ""):
                    self._gave_up = True
                    log.warning("spawning benchmark workers from now on: the fork server failed "
                                "%d time(s), last: %s", self._failures, server.failure)
                    return None
            try:
                self._server = ForkServer(self._scratch)
            except OSError as exc:
                log.warning("could not start the benchmark fork server: %s", exc)
                self._gave_up = True
                return None
            return self._server

    def start(self, workdir: Path, stderr: IO[bytes]) -> Child:
        """A forked worker; the request waits in the zygote's socket while it warms up. A
        spawned worker once the zygote has failed for good."""
        for _ in range(2):  # the current zygote, then at most one fresh one
            server = self._current()
            if server is None:
                break
            try:
                return server.fork(workdir, stderr)
            except ForkFailed:
                continue  # _current() counts the failure and starts another
        return self._spawn.start(workdir, stderr)

    @property
    def zygote_pid(self) -> int | None:
        """The running zygote's pid; None when there is none."""
        server = self._server
        return server.pid if server is not None and server.failure is None else None

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            self._gave_up = True
        if server is not None:
            server.close()
