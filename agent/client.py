"""A small Python client for the agent API v1.

Every call carries a timeout, and every failure is raised as a named
:class:`fleetnas.agent.errors.AgentError` subclass (``ModelNotFound``,
``QueueFull``, ``AgentUnavailable``, ...), never as ``grpc.RpcError``; each
error's ``transient`` flag says whether a retry elsewhere can help.

Example::

    with AgentClient("127.0.0.1:50051", token=os.environ.get("FLEETNAS_AGENT_TOKEN")) as agent:
        sha = agent.ensure_model(Path("model.onnx").read_bytes())
        result = agent.benchmark(sha, BenchmarkSettings(intra_op_threads=1))
        print(result.stats.median_ms)

Not thread-safe to ``close`` while calls are in flight; calls themselves may be
made from several threads (gRPC channels are thread-safe).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleetnas.agent.auth import bearer
from fleetnas.agent.errors import AgentError, from_rpc_error
from fleetnas.api.v1 import agent_pb2, agent_pb2_grpc

CHUNK_BYTES = 1024 * 1024
DEFAULT_CALL_TIMEOUT_S = 30.0
# A benchmark's call deadline: its own timeout plus room for queueing.
BENCHMARK_DEADLINE_SLACK_S = 120.0


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _chunks(data: bytes, sha: str, chunk_bytes: int) -> Iterator[agent_pb2.UploadChunk]:
    total = len(data)
    yield agent_pb2.UploadChunk(sha256=sha, total_bytes=total, data=data[:chunk_bytes])
    for offset in range(chunk_bytes, total, chunk_bytes):
        yield agent_pb2.UploadChunk(data=data[offset : offset + chunk_bytes])


class AgentClient:
    """Client for one agent at ``address`` (``host:port``)."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        root_certificates: bytes | None = None,
        client_cert: bytes | None = None,
        client_key: bytes | None = None,
        tls: bool = False,
        server_name_override: str | None = None,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> None:
        self.address = address
        self.call_timeout_s = call_timeout_s
        self._metadata = (bearer(token),) if token else ()
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024)
        ]
        if server_name_override:
            options.append(("grpc.ssl_target_name_override", server_name_override))
        if tls or root_certificates or client_cert:
            creds = grpc.ssl_channel_credentials(
                root_certificates=root_certificates,
                private_key=client_key,
                certificate_chain=client_cert,
            )
            self._channel = grpc.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = agent_pb2_grpc.AgentStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method, request, timeout: float | None = None):
        try:
            return method(
                request, timeout=timeout or self.call_timeout_s, metadata=self._metadata
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    # -- API -------------------------------------------------------------------
    def health(self, timeout: float = 5.0) -> bool:
        """True when the agent answers SERVING. Raises AgentUnavailable when unreachable."""
        resp = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=""), timeout)
        return resp.status == health_pb2.HealthCheckResponse.SERVING

    def describe(self) -> agent_pb2.DeviceDescription:
        return self._call(self._stub.Describe, agent_pb2.DescribeRequest())

    def status(self) -> agent_pb2.AgentStatus:
        return self._call(self._stub.Status, agent_pb2.StatusRequest())

    def has_models(self, hashes: list[str]) -> tuple[list[str], list[str]]:
        """(present, missing) among ``hashes``."""
        resp = self.query_models(hashes)
        return list(resp.present), list(resp.missing)

    def query_models(self, hashes: list[str]) -> agent_pb2.HasModelsResponse:
        """The whole HasModels answer: present and missing hashes, and each present model's
        format and size (``present_models``; empty from agents that predate it)."""
        return self._call(self._stub.HasModels, agent_pb2.HasModelsRequest(sha256=hashes))

    def upload_model(
        self,
        data: bytes,
        *,
        sha256: str | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        timeout: float | None = None,
    ) -> agent_pb2.UploadResponse:
        """Stream ``data`` in ~1 MB chunks. ``sha256`` defaults to the data's own hash."""
        sha = sha256 or sha256_hex(data)
        deadline = timeout or max(self.call_timeout_s, len(data) / (1024 * 1024) + 30.0)
        try:
            return self._stub.UploadModel(
                _chunks(data, sha, chunk_bytes), timeout=deadline, metadata=self._metadata
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def ensure_model(self, data: bytes) -> str:
        """Upload ``data`` unless the agent has it already; return its sha256."""
        sha = sha256_hex(data)
        present, _ = self.has_models([sha])
        if not present:
            self.upload_model(data, sha256=sha)
        return sha

    def benchmark(
        self,
        model_sha256: str,
        settings: agent_pb2.BenchmarkSettings | None = None,
        *,
        timeout: float | None = None,
    ) -> agent_pb2.BenchmarkResult:
        """Benchmark a cached model. The call deadline defaults to the job's timeout plus slack."""
        settings = settings or agent_pb2.BenchmarkSettings()
        if timeout is None:
            job_timeout = settings.timeout_s if settings.HasField("timeout_s") else 600.0
            timeout = job_timeout + BENCHMARK_DEADLINE_SLACK_S
        request = agent_pb2.BenchmarkRequest(model_sha256=model_sha256, settings=settings)
        return self._call(self._stub.Benchmark, request, timeout)


__all__ = ["AgentClient", "AgentError", "sha256_hex", "CHUNK_BYTES"]
