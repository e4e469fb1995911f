"""Fixtures: real agents on loopback port 0, with real worker subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from fleetnas.agent.client import AgentClient
from fleetnas.agent.config import AgentConfig
from fleetnas.agent.device_telemetry import DeviceTelemetry
from fleetnas.agent.runner import BenchmarkRunner
from fleetnas.agent.server import AgentServer, create_server
from fleetnas.api.v1 import agent_pb2, agent_pb2_grpc
from tests import onnx_models

CUDA_PROVIDER = "CUDAExecutionProvider"


def gpu_skip_reason() -> str | None:
    """Why ``gpu`` tests cannot run here, or None when onnxruntime has the CUDA provider."""
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if CUDA_PROVIDER in providers:
        return None
    return (f"needs onnxruntime's {CUDA_PROVIDER}; onnxruntime {onnxruntime.__version__} here "
            f"has {', '.join(providers)} (on an NVIDIA GPU machine: pip install "
            "'fleetnas[agent-gpu]')")


def pytest_report_header(config: pytest.Config) -> str:
    reason = gpu_skip_reason()
    return "gpu tests: run (CUDAExecutionProvider present)" if reason is None \
        else f"gpu tests: skipped: {reason}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` only where onnxruntime has no CUDA provider, saying why."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    reason = gpu_skip_reason() if gpu_items else None
    if reason is None:
        return
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=reason))


def fast_settings(**overrides) -> agent_pb2.BenchmarkSettings:
    """Few runs: enough to exercise the path, fast enough for a test."""
    values = dict(warmup_runs=2, min_runs=5, max_runs=30, min_duration_s=0.0,
                  max_duration_s=0.5, timeout_s=60.0)
    values.update(overrides)
    return agent_pb2.BenchmarkSettings(**values)


@pytest.fixture(scope="session")
def good_model() -> bytes:
    return onnx_models.mlp(width=32, depth=2)


StartAgent = Callable[..., tuple[AgentServer, AgentClient]]


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[StartAgent]:
    """Start agents with AgentConfig overrides; every one is stopped at teardown.

    ``telemetry`` and ``runner_class`` go to ``create_server`` (fake telemetry
    sources and runners are injected there, never by patching globals)."""
    started: list[tuple[AgentServer, AgentClient]] = []

    def start(token: str | None = None, client_token: str | None = "same", *,
              telemetry: DeviceTelemetry | None = None,
              runner_class: type[BenchmarkRunner] = BenchmarkRunner, **overrides):
        cache = overrides.pop("cache_dir", tmp_path / f"agent{len(started)}")
        config = AgentConfig(host="127.0.0.1", port=0, cache_dir=cache, token=token, **overrides)
        server = create_server(config, telemetry=telemetry, runner_class=runner_class)
        ctoken = token if client_token == "same" else client_token
        client = AgentClient(f"127.0.0.1:{server.port}", token=ctoken)
        started.append((server, client))
        return server, client

    yield start
    for server, client in started:
        client.close()
        server.stop(drain_timeout_s=5)


@pytest.fixture
def agent(start_agent: StartAgent) -> tuple[AgentServer, AgentClient]:
    return start_agent()


def raw_stub(port: int, token: str | None = None):
    """A bare generated stub plus call metadata, to check statuses on the wire."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return channel, agent_pb2_grpc.AgentStub(channel), metadata


def reason_of(err: grpc.RpcError) -> str:
    for key, value in err.trailing_metadata() or ():
        if key == "fleetnas-reason":
            return value
    return ""
