"""The gRPC servicer of the agent API v1 (``fleetnas.api.v1.Agent``).

Trust model: callers are authenticated by the token interceptor (see
``auth.py``) before any handler runs. Handlers never take paths from the
wire: models are addressed by sha256 only and live in the ModelStore. Every
benchmark runs in a separate worker process (``runner.py``) with a timeout and
a memory cap, one at a time behind a bounded queue (``job_gate.py``).

Every failure leaves the handler as a named AgentError, which becomes a gRPC
status with a human message and a ``fleetnas-reason`` trailer; unexpected
exceptions become INTERNAL and are logged with their traceback, which the
client never sees (only an incident id to find it in the log). The service
keeps serving after any of them.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc

from fleetnas.agent import __version__
from fleetnas.agent.config import AgentConfig
from fleetnas.agent.device_state import (
    StateSampler,
    noisy_host_warning,
    oversubscribed_warning,
    state_warnings,
)
from fleetnas.agent.errors import (
    AgentError,
    InternalError,
    InvalidUpload,
    ModelInvalid,
    ModelNotFound,
    abort_with,
    bounded,
)
from fleetnas.agent.job_gate import JobGate
from fleetnas.agent.logs import get_logger
from fleetnas.agent.model_format import FormatCache
from fleetnas.agent.model_store import ModelStore, validate_sha256
from fleetnas.agent.runner import BenchmarkRunner
from fleetnas.agent.runtimes import describe_runtimes
from fleetnas.agent.settings import resolve_settings
from fleetnas.api.v1 import agent_pb2, agent_pb2_grpc

MAX_HASHES_PER_QUERY = 10_000
# A worker's stderr tail or a traceback: enough to debug, never a 4 MB log line.
MAX_LOG_PRIVATE_CHARS = 8000
STATE_CPU_WINDOW_S = 0.05
T = TypeVar("T")


def _translate_errors(handler: Callable[..., T]) -> Callable[..., T]:
    """Turn AgentError into its status; anything else into INTERNAL with an incident id.

    The client gets the error's bounded message (``abort_with``); the log
    gets that and the error's private detail. An unexpected exception's text
    and traceback (host paths) go to the log only, under an incident id that
    the client's detail names.
    """

    @functools.wraps(handler)
    def wrapper(self: AgentService, request: Any, context: grpc.ServicerContext) -> T:
        try:
            return handler(self, request, context)
        except AgentError as err:
            extra = {"rpc": handler.__name__, "reason": err.reason_name,
                     "detail": bounded(err.message)}
            if err.private:
                extra["private"] = bounded(err.private, MAX_LOG_PRIVATE_CHARS)
            get_logger().warning("request failed", extra=extra)
            abort_with(context, err)
        except Exception:  # noqa: BLE001 -- last line of defence: keep serving
            incident = uuid.uuid4().hex[:12]
            get_logger().exception(
                "internal error", extra={"rpc": handler.__name__, "incident": incident}
            )
            abort_with(context, InternalError(
                f"internal error in {handler.__name__} (incident {incident}); the agent's "
                "log has the details"
            ))
        raise AssertionError("unreachable: context.abort raises")

    return wrapper


class _IdleWatchdog:
    """Cancels an RPC whose client sends no message for ``timeout_s`` seconds.

    gRPC's synchronous server blocks a handler thread on the next message of a
    client stream with no time limit of its own; a client that stops sending
    would hold that thread forever.
    """

    def __init__(self, context: grpc.ServicerContext, timeout_s: float) -> None:
        self._context = context
        self._timeout_s = timeout_s
        self._last = time.monotonic()
        self._done = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="upload-watchdog", daemon=True)

    def __enter__(self) -> _IdleWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()

    def _watch(self) -> None:
        poll = min(0.5, self._timeout_s / 4)
        while not self._done.wait(poll):
            if time.monotonic() - self._last > self._timeout_s:
                self.fired = True
                get_logger().warning("upload cancelled: client idle",
                                     extra={"idle_s": self._timeout_s})
                self._context.cancel()
                return

    def chunks(self, iterator: Iterator[T]) -> Iterator[T]:
        """Yield from ``iterator``, resetting the idle clock on every message."""
        try:
            for item in iterator:
                self._last = time.monotonic()
                yield item
        except grpc.RpcError:
            if self.fired:
                raise InvalidUpload(
                    f"upload cancelled: the client sent nothing for {self._timeout_s:g} s"
                ) from None
            raise


class AgentService(agent_pb2_grpc.AgentServicer):
    """Implements Describe, Status, HasModels, UploadModel and Benchmark."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        store: ModelStore,
        gate: JobGate,
        runner: BenchmarkRunner,
        description: agent_pb2.DeviceDescription,
    ) -> None:
        self._config = config
        self._store = store
        self._gate = gate
        self._runner = runner
        self._description = description
        self._formats = FormatCache()
        self._runtimes = list(description.runtimes) or describe_runtimes()
        self._started = time.monotonic()
        # Samplers live as long as the agent: throttle counters are compared
        # between consecutive samples of one sampler. Benchmarks get their own,
        # so Status calls in between never hide a throttle seen during a run.
        # The CPU window blocks, so it is short: two samples per benchmark.
        # Status answers from the status sampler's latest snapshot, which
        # never blocks, so Status calls cannot pile up on the window.
        self._sampler = StateSampler(cpu_window_s=STATE_CPU_WINDOW_S)
        self._status_sampler = StateSampler(cpu_window_s=STATE_CPU_WINDOW_S)
        self.serving = True

    # -- Describe / Status -------------------------------------------------
    @_translate_errors
    def Describe(self, request: agent_pb2.DescribeRequest, context: grpc.ServicerContext):
        return self._description

    @_translate_errors
    def Status(self, request: agent_pb2.StatusRequest, context: grpc.ServicerContext):
        return agent_pb2.AgentStatus(
            busy=self._gate.busy,
            queue_length=self._gate.queue_length,
            max_queue=self._gate.max_queue,
            state=self._status_sampler.latest(),
            cache_bytes=self._store.total_bytes,
            cached_models=self._store.count,
            uptime_s=time.monotonic() - self._started,
            running_model_sha256=self._gate.running_label,
            agent_version=__version__,
            serving=self.serving,
        )

    # -- models --------------------------------------------------------------
    @_translate_errors
    def HasModels(self, request: agent_pb2.HasModelsRequest, context: grpc.ServicerContext):
        if len(request.sha256) > MAX_HASHES_PER_QUERY:
            raise InvalidUpload(
                f"{len(request.sha256)} hashes in one query; at most {MAX_HASHES_PER_QUERY}"
            )
        for sha in request.sha256:
            validate_sha256(sha)
        present, missing = self._store.partition(request.sha256)
        return agent_pb2.HasModelsResponse(present=present, missing=missing)

    @_translate_errors
    def UploadModel(
        self, request_iterator: Iterator[agent_pb2.UploadChunk], context: grpc.ServicerContext
    ):
        # Each upload holds a handler thread: the RPC budgets bound how many
        # (--max-uploads); cancel one whose client stalls, so a stalled
        # upload gives its thread back.
        with _IdleWatchdog(context, self._config.upload_idle_timeout_s) as watchdog:
            return self._receive(watchdog.chunks(request_iterator))

    def _receive(self, chunks: Iterator[agent_pb2.UploadChunk]) -> agent_pb2.UploadResponse:
        first = next(chunks, None)
        if first is None:
            raise InvalidUpload("empty upload stream: the first chunk must carry sha256 and size")
        sha = validate_sha256(first.sha256)
        self._store.check_declared_size(first.total_bytes)
        if self._store.has(sha):
            return agent_pb2.UploadResponse(
                sha256=sha, size_bytes=first.total_bytes, already_present=True
            )

        def data() -> Iterator[bytes]:
            yield first.data
            for chunk in chunks:
                if chunk.sha256 and chunk.sha256 != sha:
                    raise InvalidUpload("a later chunk names a different sha256")
                yield chunk.data

        stored = self._store.put_stream(sha, first.total_bytes, data())
        get_logger().info("model cached", extra={"sha256": sha, "bytes": stored.size_bytes})
        return agent_pb2.UploadResponse(sha256=sha, size_bytes=stored.size_bytes)

    # -- Benchmark -------------------------------------------------------------
    @contextmanager
    def _cancel_on_disconnect(self, context: grpc.ServicerContext, sha: str) -> Iterator[None]:
        """Kill the running worker if the RPC ends (client cancel or deadline) before the job.

        gRPC calls the callback when the RPC terminates; while the job still
        runs that can only mean the client went away, and nobody will read the
        result: free the agent for the next job instead of running to timeout.
        """
        lock = threading.Lock()
        running = [True]

        def on_rpc_done() -> None:
            with lock:
                if running[0] and self._runner.cancel_current():
                    get_logger().warning("benchmark cancelled by the client", extra={"sha256": sha})

        context.add_callback(on_rpc_done)
        try:
            yield
        finally:
            with lock:
                running[0] = False

    def _model_format(self, sha: str) -> int:
        """The cached model's format (ONNX when it is not cached: Benchmark then says
        MODEL_NOT_FOUND); ModelInvalid for bytes of no known format."""
        try:
            with self._store.pinned(sha) as model:
                found = self._formats.get(sha, model.path)
        except ModelNotFound:
            return agent_pb2.MODEL_FORMAT_ONNX
        if found == agent_pb2.MODEL_FORMAT_UNRECOGNIZED:
            raise ModelInvalid(f"model {sha[:12]}: the bytes are neither ONNX nor TFLite")
        return found

    @_translate_errors
    def Benchmark(self, request: agent_pb2.BenchmarkRequest, context: grpc.ServicerContext):
        sha = validate_sha256(request.model_sha256)
        settings = resolve_settings(
            request.settings,
            max_timeout_s=self._config.max_timeout_s,
            memory_cap_bytes=self._config.memory_cap_bytes,
            available_providers=list(self._description.runtime.available_providers),
            runtimes=self._runtimes,
            model_format=self._model_format(sha),
        )
        log = get_logger()
        with self._store.pinned(sha) as model, self._gate.slot(sha, context.is_active):
            before = self._sampler.sample()
            noisy = noisy_host_warning(
                before,
                threads_used=settings.intra_op_threads,
                logical_cores=self._description.cpu.logical_cores,
            )
            log.info("benchmark start", extra={"sha256": sha, "method": settings.method})
            try:
                with self._cancel_on_disconnect(context, sha):
                    result = self._runner.run(
                        model.path, sha, settings, keep_calibration=noisy is None
                    )
                after = self._sampler.sample()
            finally:
                self._runner.start_spare()
        result.state_before.CopyFrom(before)
        result.state_after.CopyFrom(after)
        result.agent_version = __version__
        result.host_fingerprint = self._description.host_fingerprint
        result.warnings.extend(
            state_warnings(
                before,
                after,
                threads_used=settings.intra_op_threads,
                logical_cores=self._description.cpu.logical_cores,
            )
        )
        cpu = self._description.cpu
        oversubscribed = oversubscribed_warning(
            settings.intra_op_threads,
            usable_cores=cpu.usable_cores,
            physical_cores=cpu.physical_cores,
        )
        if oversubscribed:
            result.warnings.append(oversubscribed)
        log.info(
            "benchmark done",
            extra={
                "sha256": sha,
                "median_ms": round(result.stats.median_ms, 4),
                "runs": len(result.samples_ms),
                "warnings": list(result.warnings),
            },
        )
        return result
