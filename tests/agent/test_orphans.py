"""No orphans: workers die with their agent, local agents with their controller, for real.

Agents and controllers here are real subprocesses killed with SIGKILL; each
test then waits (bounded) for the children to be gone, and the next start
removes the folders the dead left behind.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetnas.agent.client import AgentClient
from fleetnas.agent.errors import AgentError
from tests import onnx_models
from tests.agent.agent_process import (
    gone,
    reaped_processes,
    start_agent_process,
    wait_all_gone,
    wait_for,
    wait_until_measuring,
    waiting_worker,
    worker_pids,
)
from tests.agent.conftest import fast_settings

GONE_WITHIN_S = 2.0


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    yield from reaped_processes()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


# -- workers die with their agent ---------------------------------------------------


def test_sigkilled_agent_takes_its_running_worker_with_it(tmp_path: Path, procs) -> None:
    proc, port = start_agent_process(tmp_path / "cache")
    procs.append(proc)
    client = AgentClient(f"127.0.0.1:{port}")
    sha = client.ensure_model(onnx_models.slow_model(0.3))
    long_job = fast_settings(warmup_runs=0, min_runs=10_000, max_runs=10_000,
                             max_duration_s=100.0, timeout_s=120.0)  # fmt: skip
    outcome: list[Exception] = []

    def call() -> None:
        try:
            client.benchmark(sha, long_job)
        except AgentError as exc:  # the agent is killed under it
            outcome.append(exc)

    worker = waiting_worker(proc.pid)
    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    worker = wait_until_measuring(worker, agent_pid=proc.pid)
    workers = worker_pids(proc.pid)

    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_all_gone(workers, GONE_WITHIN_S) == []
    caller.join(30)
    client.close()
    assert outcome and outcome[0].transient  # the caller learns the agent went away


def test_the_next_agent_removes_worker_folders_of_a_dead_one(tmp_path: Path, procs) -> None:
    cache = tmp_path / "cache"
    proc, _ = start_agent_process(cache)
    procs.append(proc)
    scratch = cache / "scratch"
    left = wait_for(lambda: sorted(scratch.glob("worker-*")), 60, "the spare's folder")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert all(p.exists() for p in left)

    again, _ = start_agent_process(cache)
    procs.append(again)
    assert not any(p.exists() for p in left), "stale worker folders were not removed"
    mine = wait_for(lambda: sorted(scratch.glob("worker-*")), 60, "the new spare's folder")
    assert all(p.exists() for p in mine)  # the live agent's own are kept


def test_a_worker_started_from_a_thread_that_ended_lives_on(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG follows the forking *thread*: spawning must not tie workers to it."""
    from fleetnas.agent._runner_worker import WorkerProcess

    made: list[WorkerProcess] = []
    thread = threading.Thread(target=lambda: made.append(WorkerProcess(tmp_path / "scratch")))
    thread.start()
    thread.join()
    (worker,) = made
    try:
        worker.wait_ready()  # WorkerCrashed if the thread's exit had killed it
        assert not gone(worker.pid)
    finally:
        worker.close()
    assert gone(worker.pid)


def test_the_pipe_alone_ends_a_child_when_its_parent_lets_go(tmp_path: Path) -> None:
    """The fallback that works where there is no PR_SET_PDEATHSIG: EOF on the lifeline."""
    from fleetnas.agent.lifeline import spawn

    child = spawn(
        [sys.executable, "-m", "fleetnas.agent.lifeline", "http.server", "--bind", "127.0.0.1",
         "0"],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        ready, _, _ = select.select([child.process.stdout], [], [], 60)  # "Serving HTTP on ..."
        assert ready and child.process.poll() is None
        child.release()  # this process lives on; only the pipe tells the child
        child.process.wait(timeout=GONE_WITHIN_S)
        assert child.process.returncode == -signal.SIGKILL
    finally:
        if child.process.poll() is None:
            child.process.kill()
        child.process.wait()


# -- local agents die with their controller ------------------------------------------

CONTROLLER = """
import json, sys, time
from fleetnas.controller.local_agents import start_local_agents
agents = start_local_agents(2, sys.argv[1], name_prefix="orphan")
print(json.dumps([[a.pid, a.port] for a in agents]), flush=True)
time.sleep(600)
"""

CONTROLLER_WITH_TEMP_DIR = """
import json, sys, time
from fleetnas.controller.local_agents import start_local_agents, temporary_agent_dir
with temporary_agent_dir(sys.argv[1]) as folder:
    (agent,) = start_local_agents(1, folder, name_prefix="tmp")
    print(json.dumps([str(folder), agent.pid]), flush=True)
    time.sleep(600)
"""


def run_controller(script: str, arg: Path, procs: list) -> tuple[subprocess.Popen[str], object]:
    proc = subprocess.Popen([sys.executable, "-c", script, str(arg)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    procs.append(proc)
    ready, _, _ = select.select([proc.stdout], [], [], 180)
    assert ready, "the controller did not start its agents in time"
    return proc, json.loads(proc.stdout.readline())


def test_sigkilled_controller_takes_its_local_agents_with_it(tmp_path: Path, procs) -> None:
    proc, agents = run_controller(CONTROLLER, tmp_path / "agents", procs)
    pids = [pid for pid, _ in agents]
    ports = [port for _, port in agents]
    everything = pids + [w for pid in pids for w in worker_pids(pid)]
    with AgentClient(f"127.0.0.1:{ports[0]}") as client:
        assert client.health()

    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_all_gone(everything, GONE_WITHIN_S) == []
    assert all(refused(port) for port in ports), "a local agent still serves on loopback"


def test_the_next_temporary_agent_dir_removes_those_of_dead_controllers(tmp_path: Path,
                                                                      procs) -> None:
    from fleetnas.agent.lifeline import owned_prefix
    from fleetnas.controller.local_agents import TEMP_DIR_PREFIX, temporary_agent_dir

    proc, (folder, agent_pid) = run_controller(CONTROLLER_WITH_TEMP_DIR, tmp_path, procs)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_all_gone([agent_pid], GONE_WITHIN_S) == []
    stale = Path(folder)
    assert stale.is_dir()
    live = tmp_path / f"{owned_prefix(TEMP_DIR_PREFIX)}other"  # this test process owns it
    live.mkdir()
    unowned = tmp_path / f"{TEMP_DIR_PREFIX}abc123"  # an older version's: owner unknown
    unowned.mkdir()

    with temporary_agent_dir(tmp_path) as fresh:
        assert fresh.is_dir() and not stale.exists()
        assert live.is_dir() and unowned.is_dir()
    assert not fresh.exists()


def test_a_reused_pid_is_not_taken_for_the_owner(tmp_path: Path) -> None:
    from fleetnas.agent.lifeline import clean_stale, owned_prefix

    me = owned_prefix("worker-")
    pid, ticks = me[len("worker-") : -1].split("-")
    impostor = tmp_path / f"worker-{pid}-{int(ticks) + 500}-x"  # our pid, another start time
    mine = tmp_path / f"{me}y"
    impostor.mkdir()
    (tmp_path / f"{impostor.name}.log").write_text("")
    mine.mkdir()
    removed = clean_stale(tmp_path, "worker-")
    assert sorted(p.name for p in removed) == [impostor.name, f"{impostor.name}.log"]
    assert mine.is_dir()
