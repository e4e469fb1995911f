"""The fork server's zygote: ``python -m fleetnas.agent._zygote CONTROL_FD``.

One per benchmark runner (started by ``_forkserver.ForkServer``). It imports
every installed runtime and warms them up once (``worker_main.prepare``:
the ~200 ms a fresh worker spends before it can take a job), then forks one
benchmark worker per request. A forked worker is the same isolated worker a
spawned one is: its own process (a crash, a hang or a runaway allocation
takes only it down), its own session (``setsid``), an empty working
directory, its stderr in its own log, the agent's allow-listed environment
(the zygote was started with it and changes nothing), no core dumps, the
memory cap and RLIMIT_DATA backstop applied when its job arrives, and it
dies with the agent (PR_SET_PDEATHSIG towards the zygote, which has the same
towards the agent, and the agent's lifeline pipe, which it watches).

**Why the zygote holds no thread.** ``fork`` copies only the thread that
calls it. A lock another thread held at that moment stays locked forever
in the child, and a thread pool whose threads did not come along waits for
them forever: an onnxruntime intra-op pool, OpenBLAS's workers. So the
zygote never starts one: it watches its lifeline itself (``hold(
watch_pipe=False)`` and ``select``), and it is started with
``OPENBLAS_NUM_THREADS=1`` (else importing numpy starts OpenBLAS's pool) and
``ORT_DISABLE_TELEMETRY=1`` (else onnxruntime 1.32's module init starts a
telemetry thread, measured here). Its warm-up sessions run on one intra-op
thread, which starts no pool (measured: the thread count stays 1 after a
1-thread session and its deletion; a 0-thread session adds a pool thread).
CUDA is never touched here: GPU sessions are made in the child, after the
fork. Before every fork the zygote counts its threads (``/proc/self/task``);
with more than one it refuses (``fork-failed``), and the runner goes back to
spawning workers.

Wire protocol on the control socket (AF_UNIX SOCK_SEQPACKET: one JSON
object per message, file descriptors as SCM_RIGHTS):

* zygote → agent: ``{"op": "ready", "pid", "runtimes"}`` once, or
  ``{"op": "refused", "reason"}`` and exit;
* agent → zygote: ``{"op": "fork", "id", "workdir"}`` with three fds: the
  job pipe's read end, the answer pipe's write end, the worker's log;
* zygote → agent: ``{"op": "forked", "id", "pid"}`` or
  ``{"op": "fork-failed", "id", "reason"}``;
* zygote → agent: ``{"op": "exited", "pid", "returncode"}`` (negative: the
  signal), while the child stays a zombie, so its pid is never reused while
  the agent may still signal it; agent → zygote: ``{"op": "reap", "pid"}``
  (now, or as soon as it exits).

EOF on the control socket or on the lifeline: the zygote kills its
children and exits.
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import select
import signal
import socket
import sys
import traceback
from typing import Any

from fleetnas.agent import lifeline
from fleetnas.agent.worker_main import prepare, serve

MAX_CONTROL_BYTES = 64 * 1024
_CHILD_FDS = 3  # job read end, answer write end, log


def thread_count() -> int:
    """Threads of this process (Linux: entries of /proc/self/task; 1 where unknown)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def _returncode(pid: int) -> int | None:
    """The exit status of child ``pid`` if it has exited, without reaping it."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return -signal.SIGKILL  # already reaped: nothing more to tell
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


class Zygote:
    """The zygote's state: its control socket, lifeline, children."""

    def __init__(self, sock: socket.socket, lifeline_fd: int | None, runtimes: dict[str, str]):
        self.sock = sock
        self.pid = os.getpid()
        self.lifeline_fd = lifeline_fd
        self.runtimes = runtimes
        self.running: set[int] = set()  # forked, not exited
        self.zombies: set[int] = set()  # exited and reported, not reaped
        self.reap_when_done: set[int] = set()
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_w, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self.wakeup_w)

    def serve(self) -> None:
        """Answer requests until the agent goes away."""
        control = self.sock.fileno()
        watched = [control, self.wakeup_r]
        if self.lifeline_fd is not None:
            watched.append(self.lifeline_fd)
        while True:
            readable, _, _ = select.select(watched, [], [])  # retried on EINTR (PEP 475)
            if self.lifeline_fd is not None and self.lifeline_fd in readable \
                    and not os.read(self.lifeline_fd, 1):
                return  # the agent died
            if self.wakeup_r in readable:
                os.read(self.wakeup_r, 4096)
                self._collect()
            if control in readable and not self._request():
                return  # the agent closed the control socket

    def _request(self) -> bool:
        data, fds, _, _ = socket.recv_fds(self.sock, MAX_CONTROL_BYTES, _CHILD_FDS)
        if not data:
            return False
        try:
            message = json.loads(data)
            op = message["op"]
        except (ValueError, KeyError, TypeError):
            for fd in fds:
                os.close(fd)
            return True  # only the agent writes here; a garbled request is dropped
        if op == "fork":
            self._fork(message, fds)
        elif op == "reap":
            self._reap(int(message["pid"]))
        return True

    def _fork(self, message: dict[str, Any], fds: list[int]) -> None:
        request = message.get("id")
        threads = thread_count()
        if len(fds) != _CHILD_FDS or threads != 1:
            reason = (f"the zygote has {threads} threads; it forks only with one"
                      if threads != 1 else f"a fork request needs {_CHILD_FDS} fds")  # fmt: skip
            send(self.sock, {"op": "fork-failed", "id": request, "reason": reason})
        else:
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                pid = os.fork()
            except OSError as exc:  # EAGAIN, ENOMEM: this request fails, the zygote lives on
                send(self.sock, {"op": "fork-failed", "id": request, "reason": f"fork: {exc}"})
                pid = -1
            if pid == 0:
                _child(fds, str(message["workdir"]), self)
            if pid > 0:
                self.running.add(pid)
                send(self.sock, {"op": "forked", "id": request, "pid": pid})
        for fd in fds:
            os.close(fd)

    def _collect(self) -> None:
        for pid in list(self.running):
            code = _returncode(pid)
            if code is None:
                continue
            self.running.discard(pid)
            self.zombies.add(pid)
            send(self.sock, {"op": "exited", "pid": pid, "returncode": code})
            if pid in self.reap_when_done:
                self._reap(pid)

    def _reap(self, pid: int) -> None:
        if pid in self.zombies:
            self.zombies.discard(pid)
            self.reap_when_done.discard(pid)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        elif pid in self.running:
            self.reap_when_done.add(pid)

    def kill_children(self) -> None:
        for pid in self.running | self.zombies:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _child(fds: list[int], workdir: str, zygote: Zygote) -> None:
    """The forked worker: become isolated, then serve one job. Never returns."""
    code = 1
    try:
        job_fd, answer_fd, log_fd = fds
        os.setsid()  # a terminal's Ctrl-C goes to the agent, not the worker
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        lifeline.die_with_parent(zygote.pid)  # and exit at once if the zygote is already gone
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        keep = {0, 1, 2, job_fd, answer_fd}
        if zygote.lifeline_fd is not None:
            keep.add(zygote.lifeline_fd)
        zygote.sock.detach()
        for fd in _open_fds():
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.chdir(workdir)  # empty: external-data paths have nothing to resolve to
        if zygote.lifeline_fd is not None:
            lifeline.watch(zygote.lifeline_fd)  # dies with the agent, zygote or not
        with os.fdopen(job_fd, "rb", buffering=0) as jobs:
            code = serve(answer_fd, jobs, zygote.runtimes)
    except BaseException:  # noqa: BLE001 - nothing may return into the zygote's loop
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        # Skip interpreter teardown (session and thread-pool destructors): the job is done.
        os._exit(code)


def _open_fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 256))


def main(argv: list[str]) -> int:
    lifeline_fd = lifeline.hold(watch_pipe=False)  # first: die with the agent, no thread
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    faulthandler.enable()  # inherited: a worker's native crash leaves a traceback in its log
    sys.stdout = sys.stderr
    sock = socket.socket(fileno=int(argv[0]))
    runtimes = prepare()
    threads = thread_count()
    if threads != 1:
        send(sock, {"op": "refused", "reason": f"after importing its runtimes the zygote has "
                                               f"{threads} threads; it forks only with one"})
        return 0
    zygote = Zygote(sock, lifeline_fd, runtimes)
    send(sock, {"op": "ready", "pid": os.getpid(), "runtimes": runtimes})
    try:
        zygote.serve()
    finally:
        zygote.kill_children()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)
