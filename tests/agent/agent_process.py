"""Helpers for tests that run agents as real processes and signal them (kill, stop, resume)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil

AGENT = [sys.executable, "-m", "fleetnas.agent.cli", "--log-format", "text"]
T = TypeVar("T")


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie nobody reaps yet counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_all_gone(pids: list[int], within_s: float) -> list[int]:
    """Poll until every pid is gone or ``within_s`` passed; return those still alive."""
    deadline = time.monotonic() + within_s
    while True:
        alive = [pid for pid in pids if not gone(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.02)


def wait_for(predicate: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start_agent_process(cache: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``fleetnas-agent serve`` on 127.0.0.1:0 with cache ``cache``; (process, port) once bound."""
    port_file = cache.parent / f"{cache.name}.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [*AGENT, "serve", "--port", "0", "--port-file", str(port_file), "--cache-dir", str(cache)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def port() -> int:
        assert proc.poll() is None, "the agent exited early"
        text = port_file.read_text().strip() if port_file.exists() else ""
        return int(text) if text.isdigit() else 0

    return proc, wait_for(port, 120, "the agent's port file")


def reaped_processes() -> Iterator[list[subprocess.Popen]]:
    """For a fixture: a list the test adds its processes to; each is killed and reaped after."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def worker_pids(agent_pid: int) -> list[int]:
    return [p.pid for p in psutil.Process(agent_pid).children(recursive=True)]


def waiting_worker(agent_pid: int) -> psutil.Process:
    """The agent's warm spare once it waits for its job (blocked reading its stdin pipe)."""

    def find() -> psutil.Process | None:
        for child in psutil.Process(agent_pid).children(recursive=True):  # forked: grandchildren
            try:
                wchan = Path(f"/proc/{child.pid}/wchan").read_text()
            except OSError:
                continue
            if "pipe_read" in wchan:
                return child
        return None

    found = wait_for(find, 120, "a worker waiting for its job")
    assert found is not None
    return found


def wait_until_measuring(worker: psutil.Process, cpu_s: float = 0.3,
                         agent_pid: int | None = None) -> psutil.Process:
    """The process measuring the job just sent, once it has burnt ``cpu_s`` more CPU.

    Normally ``worker`` (from :func:`waiting_worker`) takes the job. On a loaded host the
    runner may replace that spare before the job reaches it (a spare that never forked is
    followed by another); then, given ``agent_pid``, the measuring process is the agent's
    descendant whose CPU grows by ``cpu_s`` from when it was first seen.
    """
    baselines: dict[int, float] = {}

    def cpu(process: psutil.Process) -> float:
        return float(sum(process.cpu_times()[:2]))

    def measuring() -> psutil.Process | None:
        candidates = [worker]
        if agent_pid is not None and gone(worker.pid):
            try:
                candidates = psutil.Process(agent_pid).children(recursive=True)
            except psutil.Error:
                return None
        for process in candidates:
            try:
                used = cpu(process)
            except psutil.Error:
                continue
            if used > baselines.setdefault(process.pid, used) + cpu_s:
                return process
        return None

    found = wait_for(measuring, 60, "the worker to measure")
    assert found is not None
    return found
