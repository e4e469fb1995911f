"""A paused agent keeps finished work: real SIGSTOP/SIGCONT of a real agent process.

While the agent is stopped its worker (another process) goes on measuring
and writes its answer into the pipe. Once the agent runs again it must read
that answer and judge the timeout by the worker's own time, not by how long
it was itself asleep.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetnas.agent import errors
from fleetnas.agent.client import AgentClient
from fleetnas.api.v1 import agent_pb2
from tests import onnx_models
from tests.agent.agent_process import (
    gone,
    reaped_processes,
    start_agent_process,
    wait_for,
    wait_until_measuring,
    waiting_worker,
)
from tests.agent.conftest import fast_settings

PIPE_BUFFER_BYTES = 65536  # Linux's default pipe capacity


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    yield from reaped_processes()


class MeasuringJob:
    """A real agent process whose worker is measuring one benchmark, called from a thread."""

    def __init__(self, cache: Path, procs: list, model: bytes,
                 settings: agent_pb2.BenchmarkSettings) -> None:  # fmt: skip
        self.agent, port = start_agent_process(cache)
        procs.append(self.agent)
        self.outcome: dict[str, object] = {}
        with AgentClient(f"127.0.0.1:{port}") as client:
            sha = client.ensure_model(model)
        self.worker = waiting_worker(self.agent.pid)
        self._thread = threading.Thread(target=self._call, args=(port, sha, settings),
                                        daemon=True)  # fmt: skip
        self._thread.start()
        self.worker = wait_until_measuring(self.worker, cpu_s=0.05, agent_pid=self.agent.pid)

    def _call(self, port: int, sha: str, settings: agent_pb2.BenchmarkSettings) -> None:
        with AgentClient(f"127.0.0.1:{port}") as client:
            try:
                self.outcome["result"] = client.benchmark(sha, settings)
            except errors.AgentError as exc:
                self.outcome["error"] = exc

    def join(self) -> dict[str, object]:
        self._thread.join(120)
        assert not self._thread.is_alive()
        return self.outcome


def test_a_result_written_while_the_agent_was_stopped_is_kept(tmp_path: Path, procs) -> None:
    timeout_s = 5.0
    # 9000 runs of a ~0.05 ms MLP (~8 bytes each in the result): an answer larger than the
    # pipe, so the worker is still writing it, blocked, when the stopped agent's deadline
    # passes. A count, not a duration: on a busy host 1 s held only ~7000 runs, under a pipe's
    # worth. Not a smaller model: a forked worker ran 9000 runs of a 16-wide MLP in 0.05 s,
    # finished before the agent could be stopped.
    settings = fast_settings(warmup_runs=10, min_runs=9000, max_runs=100_000, min_duration_s=0.0,
                             max_duration_s=3.0, timeout_s=timeout_s)  # fmt: skip
    job = MeasuringJob(tmp_path / "cache", procs, onnx_models.mlp(width=512, depth=4), settings)
    proc = job.agent

    proc.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        time.sleep(timeout_s + 2.0)  # the pause itself: longer than the job's timeout
    finally:
        proc.send_signal(signal.SIGCONT)
    outcome = job.join()

    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert isinstance(result, agent_pb2.BenchmarkResult)
    assert time.monotonic() - stopped_at > timeout_s  # the agent really slept past the deadline
    assert len(result.samples_ms) >= 9000 and result.wall_s < timeout_s
    assert result.ByteSize() > PIPE_BUFFER_BYTES


def test_an_answer_the_worker_itself_was_late_with_is_still_a_timeout(
    tmp_path: Path, procs
) -> None:
    """The whole host paused (agent and worker): the worker's own clock shows the overrun."""
    timeout_s = 2.0
    # >= 1 s of timed runs of >= 10 ms each: few samples, the answer fits the pipe
    settings = fast_settings(warmup_runs=10, min_runs=5, max_runs=400, min_duration_s=1.0,
                             max_duration_s=1.2, timeout_s=timeout_s)  # fmt: skip
    job = MeasuringJob(tmp_path / "cache", procs, onnx_models.slow_model(0.01), settings)
    proc, worker = job.agent, job.worker

    proc.send_signal(signal.SIGSTOP)
    try:
        worker.send_signal(signal.SIGSTOP)
        time.sleep(timeout_s + 0.5)  # the pause, in the middle of the worker's measurement
        worker.send_signal(signal.SIGCONT)
        # the agent sleeps on while the worker finishes, answers (it fits the pipe) and exits
        wait_for(lambda: gone(worker.pid), 120, "the worker to finish while the agent sleeps")
    finally:
        proc.send_signal(signal.SIGCONT)

    outcome = job.join()
    error = outcome.get("error")
    assert isinstance(error, errors.BenchmarkTimeout), outcome
    assert "in its worker" in error.message and "timeout of 2 s" in error.message
