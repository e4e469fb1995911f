"""The gRPC servicer of the agent API v1 (``fleetnas.api.v1.Agent``).

Trust model: callers are authenticated by the token interceptor (see
``auth.py``) before any handler runs. Handlers never take paths from the
wire: models are addressed by sha256 only and live in the ModelStore.
Benchmarks run one at a time behind a bounded queue (``job_gate.py``), on
the agent's device shell (``shells/``): this host, where every benchmark
runs in a separate worker process with a timeout and a memory cap
(``runner.py``), or a phone over ADB. Describe, Status and Benchmark ask the
shell; the service never asks which kind it is.

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
from pathlib import Path
from typing import Any, TypeVar

import grpc

from fleetnas.agent import __version__
from fleetnas.agent.config import AgentConfig
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
from fleetnas.agent.settings import resolve_for_description
from fleetnas.agent.shells import DeviceShell
from fleetnas.api.v1 import agent_pb2, agent_pb2_grpc

MAX_HASHES_PER_QUERY = 10_000
#: how often a cancelled benchmark that had nothing to stop yet is tried again (s)
CANCEL_RETRY_S = 0.02
# A worker's stderr tail or a traceback: enough to debug, never a 4 MB log line.
MAX_LOG_PRIVATE_CHARS = 8000
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
    """Implements Describe, Status, HasModels, UploadModel and Benchmark on a device shell."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        store: ModelStore,
        gate: JobGate,
        shell: DeviceShell,
        description: agent_pb2.DeviceDescription,
    ) -> None:
        """``description``: the shell's, with the agent's limits and defaults (the server's)."""
        self._config = config
        self._store = store
        self._gate = gate
        self._shell = shell
        self._description = description
        self._formats = FormatCache()
        self._started = time.monotonic()
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
            state=self._shell.status_state(),
            cache_bytes=self._store.total_bytes,
            cached_models=self._store.count,
            uptime_s=time.monotonic() - self._started,
            running_model_sha256=self._gate.running_label,
            agent_version=__version__,
            serving=self.serving,
        )

    # -- models --------------------------------------------------------------
    def _format(self, sha: str) -> int | None:
        """The ModelFormat of a cached model; None when it is not (or no longer) cached."""
        try:
            with self._store.pinned(sha) as model:
                return self._formats.get(sha, model.path)
        except ModelNotFound:
            return None

    def _cached(self, sha: str) -> agent_pb2.CachedModel | None:
        try:
            with self._store.pinned(sha) as model:
                return agent_pb2.CachedModel(sha256=sha, size_bytes=model.size_bytes,
                                             format=self._formats.get(sha, model.path))
        except ModelNotFound:
            return None
    @_translate_errors
    def HasModels(self, request: agent_pb2.HasModelsRequest, context: grpc.ServicerContext):
        if len(request.sha256) > MAX_HASHES_PER_QUERY:
            raise InvalidUpload(
                f"{len(request.sha256)} hashes in one query; at most {MAX_HASHES_PER_QUERY}"
            )
        for sha in request.sha256:
            validate_sha256(sha)
        present, missing = self._store.partition(request.sha256)
        response = agent_pb2.HasModelsResponse(missing=missing)
        for sha in present:
            cached = self._cached(sha)
            if cached is None:  # evicted since the partition
                response.missing.append(sha)
            else:
                response.present.append(sha)
                response.present_models.append(cached)
        return response

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
                sha256=sha, size_bytes=first.total_bytes, already_present=True,
                format=self._format(sha) or agent_pb2.MODEL_FORMAT_UNSPECIFIED,
            )

        def data() -> Iterator[bytes]:
            yield first.data
            for chunk in chunks:
                if chunk.sha256 and chunk.sha256 != sha:
                    raise InvalidUpload("a later chunk names a different sha256")
                yield chunk.data

        stored = self._store.put_stream(sha, first.total_bytes, data())
        model_format = self._formats.get(sha, stored.path)
        get_logger().info("model cached", extra={"sha256": sha, "bytes": stored.size_bytes,
                                                 "format": model_format})
        return agent_pb2.UploadResponse(sha256=sha, size_bytes=stored.size_bytes,
                                        format=model_format)

    # -- Benchmark -------------------------------------------------------------
    @contextmanager
    def _cancel_on_disconnect(self, context: grpc.ServicerContext, sha: str) -> Iterator[bool]:
        """Stop the running benchmark if the RPC ends (client cancel or deadline) before it.

        gRPC calls the callback when the RPC terminates; while the job still
        runs that can only mean the client went away, and nobody will read the
        result: free the agent for the next job instead of running to timeout.
        Yields False when the RPC had already ended (gRPC then refuses the
        callback): the caller must not start the job at all.
        """
        lock = threading.Lock()
        running = [True]

        def keep_cancelling() -> None:
            # Until the job has ended: it may be between steps with nothing to stop yet
            # (sampling the device), or replace a killed worker (a spare killed while it
            # was being handed the job looks like one that died idle).
            logged = False
            while True:
                with lock:
                    if not running[0]:
                        return
                    if self._shell.cancel_current() and not logged:
                        get_logger().warning("benchmark cancelled by the client",
                                             extra={"sha256": sha})
                        logged = True
                time.sleep(CANCEL_RETRY_S)

        def on_rpc_done() -> None:  # on a gRPC thread: never wait there
            threading.Thread(target=keep_cancelling, name="cancel-benchmark", daemon=True).start()

        registered = context.add_callback(on_rpc_done)
        try:
            yield bool(registered)
        finally:
            with lock:
                running[0] = False

    def _resolve(self, sha: str, path: Path, requested: agent_pb2.BenchmarkSettings
                 ) -> tuple[agent_pb2.BenchmarkSettings, int]:
        """The resolved settings and the format of the pinned model at ``path``: which
        runtimes may run it depends on the format, so a model that is not cached is
        MODEL_NOT_FOUND before its settings are looked at."""
        model_format = self._formats.get(sha, path)
        if model_format == agent_pb2.MODEL_FORMAT_UNRECOGNIZED:
            raise ModelInvalid(
                f"model {sha[:12]}: the bytes are neither ONNX (a protobuf ModelProto) nor "
                "TFLite (a flatbuffer with the identifier TFL3); upload an .onnx or .tflite file"
            )
        settings = resolve_for_description(requested, self._description,
                                           model_format=model_format)
        return settings, model_format

    @_translate_errors
    def Benchmark(self, request: agent_pb2.BenchmarkRequest, context: grpc.ServicerContext):
        sha = validate_sha256(request.model_sha256)
        log = get_logger()
        with self._store.pinned(sha) as model:
            settings, model_format = self._resolve(sha, model.path, request.settings)
            with self._gate.slot(sha, context.is_active):
                log.info("benchmark start", extra={"sha256": sha, "method": settings.method})
                with self._cancel_on_disconnect(context, sha) as client_waits:
                    if not client_waits:
                        log.warning("benchmark skipped: the client went away before it started",
                                    extra={"sha256": sha})
                        return agent_pb2.BenchmarkResult()  # the call is over: nobody reads it
                    result = self._shell.benchmark(model.path, sha, settings)
        result.agent_version = __version__
        result.host_fingerprint = self._description.host_fingerprint
        result.model_format = model_format
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
