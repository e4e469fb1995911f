"""Benchmark worker process: ``python -m fleetnas.agent.worker_main``.

A worker is started ahead of time as a warm spare by
:class:`fleetnas.agent.runner.BenchmarkRunner`. It:

1. ties its life to the agent's (``lifeline.hold``: it dies when the agent
   dies, however), forbids core dumps, turns on ``faulthandler`` (a native
   crash leaves a traceback on stderr, which the runner logs), moves its stdout aside as the private result channel
   (fd 1 then points at stderr, so native code printing cannot corrupt it);
2. imports onnxruntime and numpy (the slow part) and says ``ready``;
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
from types import ModuleType

from fleetnas.agent._text import client_text
from fleetnas.agent._worker_protocol import (
    MAX_JOB_BYTES,
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


def _prewarm(bench: ModuleType) -> None:
    """Pay one-off first-use costs before saying ready, off the job's critical path.

    A fresh process's first session creation, first numpy RNG use and first
    full garbage collection are each several ms slower than later ones
    (measured: session 3.8 vs 1.1 ms, RNG ~5 ms, ``gc.collect`` ~8 ms). One
    throw-away session of the bundled reference model, then ``gc.freeze``,
    moves that cost to the spare's idle time. Best effort: a failure here
    only loses the head start.
    """
    import gc

    from fleetnas.agent.reference import default_reference_path

    try:
        options = bench.ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = bench.ort.InferenceSession(
            str(default_reference_path()), options, providers=["CPUExecutionProvider"]
        )
        feeds = {
            i.name: bench.np.random.default_rng(0).standard_normal(
                [d if isinstance(d, int) else 1 for d in i.shape], dtype=bench.np.float32
            )
            for i in session.get_inputs()
        }
        session.run(None, feeds)
        del session, feeds
    except Exception:  # noqa: BLE001 - warm-up is an optimisation, never a failure
        traceback.print_exc()
    gc.collect()
    gc.freeze()


def _answer(job: Job, bench: ModuleType, started: float) -> Message:
    """Run ``job``; its outcome as a Result or Failure (a traceback goes to stderr)."""
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
    except MemoryError as exc:
        memory = bench.classify(
            exc, phase="run", memory_cap_bytes=settings.memory_cap_bytes, shapes_given=False
        )
        reason, message = memory.reason, memory.message
    except Exception as exc:  # noqa: BLE001 - any failure is reported as data, trace on stderr
        traceback.print_exc()
        reason = "InternalError"
        message = f"benchmark worker failed: {type(exc).__name__}: {client_text(str(exc))}"
    return Failure(reason, message, time.monotonic() - started)


def main() -> int:
    hold()  # first: die with the agent, even if it dies during the slow imports
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    faulthandler.enable()  # a native crash leaves a Python traceback in the agent's log
    channel = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    # The slow imports, done before any job arrives.
    from fleetnas.agent import _worker_bench as bench

    _prewarm(bench)
    write_message(channel, Ready(os.getpid(), vm_data_bytes(), bench.ort.__version__))
    try:
        job = read_message(sys.stdin.buffer, MAX_JOB_BYTES)
    except ProtocolError as exc:
        write_message(channel, Failure("InternalError", f"unreadable job: {exc}", 0.0))
        return 0
    if job is None:
        return 0
    started = time.monotonic()
    if not isinstance(job, Job):
        answer: Message = Failure("InternalError", f"expected a Job, got {type(job).__name__}", 0.0)
    else:
        answer = _answer(job, bench, started)
    write_message(channel, answer)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Skip interpreter teardown (session and thread-pool destructors): the job is done.
    os._exit(code)
