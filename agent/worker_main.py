"""Benchmark worker process: ``python -m fleetnas.agent.worker_main``.

A worker is started ahead of time as a warm spare by
:class:`fleetnas.agent.runner.BenchmarkRunner`. It:

1. ties its life to the agent's (``lifeline.hold``: it dies when the agent
   dies, however), forbids core dumps, turns on ``faulthandler`` (a native
   crash leaves a traceback on stderr, which the runner logs), moves its stdout aside as the private result channel
   (fd 1 then points at stderr, so native code printing cannot corrupt it);
2. imports every installed runtime (onnxruntime, LiteRT) and numpy, warms
   them up (the slow part: :func:`prepare`) and says ``ready``;
3. blocks reading ONE job from stdin (EOF instead: exits quietly);
4. caps its own memory with ``RLIMIT_DATA`` (see :func:`limit_memory`),
   runs the job (``_worker_bench.run_job``: the measurement itself), writes
   one Result or Failure message, and exits.

One job per process is the isolation: a model that crashes, hangs or eats
memory takes only this process down, and the parent reports it. No custom-op
library is ever registered. The protocol is in ``_worker_protocol``.
"""

from __future__ import annotations

import faulthandler
import os
import resource
import sys
import time
import traceback
from typing import BinaryIO

from fleetnas.agent._text import client_text
from fleetnas.agent._worker_protocol import (
    MAX_JOB_BYTES,
    Accepted,
    Failure,
    Job,
    Message,
    ProtocolError,
    Ready,
    Result,
    read_message,
    write_message,
)
from fleetnas.agent.lifeline import hold

# Headroom on top of the cap for the RLIMIT_DATA backstop: thread stacks
# (each intra/inter-op thread maps one) and allocator slack.
_DATA_SLACK_BYTES = 64 * 1024 * 1024
_DATA_SLACK_PER_THREAD_BYTES = 16 * 1024 * 1024


def vm_data_bytes() -> int:
    """This process's data segment size (VmData: private writable mappings), 0 if unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def limit_memory(memory_cap_bytes: int, threads: int) -> int:
    """Cap this process's data segment; returns the limit set (0 if none could be).

    The cap a user asks for bounds the worker's *resident* memory, and the
    parent enforces it exactly by watching RSS. This rlimit is the backstop
    that makes a runaway allocation fail at once (onnxruntime raises
    "Failed to allocate memory" / bad_alloc, numpy MemoryError) instead of
    outrunning the parent's polling: the data segment may grow by the cap
    plus a small slack past what the imports already use (~110 MiB for
    onnxruntime + numpy). RLIMIT_DATA rather than RLIMIT_AS because the
    latter also counts code and PROT_NONE reservations (GPU runtimes reserve
    tens of GB) and thread stacks' address space.
    """
    current = vm_data_bytes()
    if current == 0:
        return 0
    limit = current + memory_cap_bytes + _DATA_SLACK_BYTES + threads * _DATA_SLACK_PER_THREAD_BYTES
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (ValueError, OSError):
        return 0
    return limit


def _prewarm() -> None:
    """Pay one-off first-use costs before saying ready, off the job's critical path.

    A fresh process's first session creation, first numpy RNG use and first
    full garbage collection are each several ms slower than later ones
    (measured: session 3.8 vs 1.1 ms, RNG ~5 ms, ``gc.collect`` ~8 ms). One
    throw-away load and run of each runtime's bundled reference model
    through its backend (1 thread, CPU: no thread pool is started), then
    ``gc.freeze``, moves that cost to idle time. Best effort: a failure here
    only loses the head start.
    """
    import gc

    from fleetnas.agent import backends
    from fleetnas.agent.reference import default_reference_path
    from fleetnas.agent.runtimes import DEFAULT_ACCELERATORS
    from fleetnas.api.v1 import agent_pb2

    for runtime in backends.preload():
        try:
            settings = agent_pb2.BenchmarkSettings(
                intra_op_threads=1, inter_op_threads=1, seed=0, runtime=runtime,
                providers=DEFAULT_ACCELERATORS[runtime], memory_cap_bytes=1 << 40,
                graph_optimization=agent_pb2.GRAPH_OPTIMIZATION_ALL,
            )  # fmt: skip
            data = default_reference_path(runtime).read_bytes()
            model = backends.backend_for(runtime).load(data, settings,
                                                       backends.LoadContext("reference"))
            model.run()
            del model, data
        except Exception:  # noqa: BLE001 - warm-up is an optimisation, never a failure
            traceback.print_exc()
    gc.collect()
    gc.freeze()


def prepare() -> dict[str, str]:
    """The slow part, done before any job: import every installed runtime and warm up.

    Returns the runtimes' versions by name (for :class:`Ready`).
    """
    from fleetnas.agent import _worker_bench, backends  # noqa: F401 - imported for the job

    versions = backends.preload()
    _prewarm()
    return versions


def _answer(job: Job, started: float) -> Message:
    """Run ``job``; its outcome as a Result or Failure (a traceback goes to stderr)."""
    from fleetnas.agent import _worker_bench as bench
    from fleetnas.api.v1 import agent_pb2

    settings = agent_pb2.BenchmarkSettings.FromString(job.settings)
    cpus = os.cpu_count() or 1
    threads = (settings.intra_op_threads or cpus) + (settings.inter_op_threads or cpus)
    limit_memory(settings.memory_cap_bytes, threads)
    try:
        result, calibration = bench.run_job(job)
        return Result(result.SerializeToString(), calibration, time.monotonic() - started)
    except bench.JobFailure as failure:
        reason, message = failure.reason, failure.message
    except MemoryError:
        memory = bench.memory_failure(settings.memory_cap_bytes, "MemoryError")
        reason, message = memory.reason, memory.message
    except Exception as exc:  # noqa: BLE001 - any failure is reported as data, trace on stderr
        traceback.print_exc()
        reason = "InternalError"
        message = f"benchmark worker failed: {type(exc).__name__}: {client_text(str(exc))}"
    return Failure(reason, message, time.monotonic() - started)


def serve(channel: int, jobs: BinaryIO, runtimes: dict[str, str]) -> int:
    """Say Ready on ``channel``, read ONE job from ``jobs``, say Accepted, answer it; the
    exit code.

    EOF instead of a job: exit quietly (a spare being discarded).
    """
    write_message(channel, Ready(os.getpid(), vm_data_bytes(), runtimes))
    try:
        job = read_message(jobs, MAX_JOB_BYTES)
    except ProtocolError as exc:
        write_message(channel, Accepted())  # taken (it is this worker's one job), then refused
        write_message(channel, Failure("InternalError", f"unreadable job: {exc}", 0.0))
        return 0
    if job is None:
        return 0
    started = time.monotonic()
    write_message(channel, Accepted())
    if not isinstance(job, Job):
        answer: Message = Failure("InternalError", f"expected a Job, got {type(job).__name__}", 0.0)
    else:
        answer = _answer(job, started)
    write_message(channel, answer)
    return 0


def main() -> int:
    hold()  # first: die with the agent, even if it dies during the slow imports
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    faulthandler.enable()  # a native crash leaves a Python traceback in the agent's log
    channel = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return serve(channel, sys.stdin.buffer, prepare())


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Skip interpreter teardown (session and thread-pool destructors): the job is done.
    os._exit(code)
