"""The agent's API end to end on loopback: describe, status, upload, benchmark, health."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleetnas.agent import __version__, errors
from fleetnas.agent.client import sha256_hex
from fleetnas.api.v1 import agent_pb2
from tests import onnx_models
from tests.agent.conftest import fast_settings


def test_describe_reports_device_and_limits(start_agent):
    server, client = start_agent(max_model_mb=3, cache_budget_mb=7, max_queue=2)
    desc = client.describe()
    assert desc.agent_version == __version__
    assert desc.cpu.logical_cores >= 1 and desc.memory.total_bytes > 0
    assert "CPUExecutionProvider" in desc.runtime.available_providers
    assert len(desc.host_fingerprint) >= 8
    assert desc.limits.max_model_bytes == 3 * 2**20
    assert desc.limits.cache_budget_bytes == 7 * 2**20
    assert desc.limits.max_queue == 2 and not desc.limits.auth_required


def test_upload_is_content_addressed_and_deduplicated(agent, good_model):
    server, client = agent
    sha = sha256_hex(good_model)
    assert client.has_models([sha]) == ([], [sha])
    first = client.upload_model(good_model, chunk_bytes=1000)  # many small chunks
    assert first.sha256 == sha and first.size_bytes == len(good_model)
    assert not first.already_present
    again = client.upload_model(good_model)
    assert again.already_present
    assert client.has_models([sha]) == ([sha], [])
    assert client.status().cached_models == 1


def test_benchmark_result_is_complete(agent, good_model):
    server, client = agent
    sha = client.ensure_model(good_model)
    result = client.benchmark(sha, fast_settings(intra_op_threads=1, seed=7))
    assert result.model_sha256 == sha
    assert result.provider == "CPUExecutionProvider"
    assert len(result.samples_ms) >= 5 and min(result.samples_ms) > 0
    assert result.samples_source == agent_pb2.SAMPLES_SOURCE_RAW  # every run, not a tool's stats
    assert result.stats.min_ms <= result.stats.median_ms <= result.stats.max_ms
    assert result.session_create_ms > 0 and result.first_run_ms > 0
    assert result.peak_rss_bytes > 10 * 2**20
    # settings are echoed back resolved: every field concrete
    s = result.settings
    assert s.intra_op_threads == 1 and s.seed == 7
    assert s.method == agent_pb2.METHOD_PLAIN
    assert s.graph_optimization == agent_pb2.GRAPH_OPTIMIZATION_ALL
    assert list(s.providers) == ["CPUExecutionProvider"]
    assert result.state_before.timestamp <= result.state_after.timestamp
    assert result.host_fingerprint == client.describe().host_fingerprint
    assert result.agent_version == __version__


def test_paired_benchmark_reports_ratio_and_absolute_latency(agent):
    server, client = agent
    sha = client.ensure_model(onnx_models.mlp(width=256, depth=4))
    settings = fast_settings(method=agent_pb2.METHOD_PAIRED, min_runs=10)
    result = client.benchmark(sha, settings)
    p = result.paired
    assert len(p.ratios) >= 10 and len(p.reference_samples_ms) == len(p.ratios)
    assert p.reference_calibrated_ms > 0
    assert abs(p.latency_ms - p.ratio_median * p.reference_calibrated_ms) < 1e-9 * max(1, p.latency_ms)
    again = client.benchmark(sha, settings)
    kept = not any("not kept" in w or "calibration was noisy" in w for w in result.warnings)
    if kept:  # a calibration taken on a quiet host is reused, not redone
        assert again.paired.reference_calibrated_at == p.reference_calibrated_at
    else:  # one taken on a noisy host served that result only: the next call recalibrates
        assert again.paired.reference_calibrated_at > p.reference_calibrated_at


def test_status_shows_busy_and_running_model_during_a_benchmark(agent):
    server, client = agent
    sha = client.ensure_model(onnx_models.slow_model(1.0))
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (client.benchmark(sha, fast_settings(warmup_runs=0, min_runs=1, max_runs=2)),
                        done.set()))
    thread.start()
    seen_busy = False
    deadline = time.monotonic() + 60
    while not done.is_set() and time.monotonic() < deadline:
        st = client.status()
        if st.busy:
            seen_busy = st.running_model_sha256 == sha
            break
        time.sleep(0.01)
    thread.join(120)
    assert seen_busy
    assert not client.status().busy


def test_health_is_served_without_token(start_agent):
    server, client = start_agent(token="tok")
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    resp = health.Check(health_pb2.HealthCheckRequest(service="fleetnas.api.v1.Agent"), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    channel.close()
    assert client.health()


def test_stop_drains_in_flight_work_and_refuses_new_work(start_agent, good_model):
    server, client = start_agent()
    good = client.ensure_model(good_model)
    slow = client.ensure_model(onnx_models.slow_model(1.0))
    outcome: dict[str, object] = {}

    def in_flight() -> None:
        outcome["result"] = client.benchmark(
            slow, fast_settings(warmup_runs=0, min_runs=1, max_runs=1))

    runner = threading.Thread(target=in_flight)
    runner.start()
    deadline = time.monotonic() + 30
    while not server.gate.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.gate.busy
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    deadline = time.monotonic() + 10
    while server.service.serving and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.service.serving
    assert not client.health()  # NOT_SERVING while draining
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    service = agent_pb2.DESCRIPTOR.services_by_name["Agent"].full_name
    check = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING
    server.health.set(service, health_pb2.HealthCheckResponse.SERVING)  # shutdown is for good
    assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == \
        health_pb2.HealthCheckResponse.NOT_SERVING
    channel.close()
    with pytest.raises(errors.ShuttingDown):
        client.benchmark(good, fast_settings())
    runner.join(120)
    stopper.join(60)
    result = outcome["result"]
    assert isinstance(result, agent_pb2.BenchmarkResult) and len(result.samples_ms) == 1


def test_client_going_away_frees_the_agent(agent, good_model):
    """A cancelled call kills its worker instead of running on to the timeout."""
    server, client = agent
    slow = client.ensure_model(onnx_models.slow_model(2.0))
    settings = fast_settings(warmup_runs=0, min_runs=10, max_runs=10, max_duration_s=100,
                             timeout_s=300)  # ~20 s if left to run
    with pytest.raises(errors.AgentDeadlineExceeded):
        client.benchmark(slow, settings, timeout=1.5)
    deadline = time.monotonic() + 10  # well under the ~20 s the job would take
    while server.gate.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.gate.busy, "the cancelled benchmark kept the agent busy"
    assert server.runner.current_worker_pid is None
    good = client.ensure_model(good_model)
    assert client.benchmark(good, fast_settings()).stats.median_ms > 0


def test_a_relative_cache_dir_is_taken_from_where_the_agent_started(
    start_agent, good_model, tmp_path, monkeypatch
) -> None:
    """Workers run in folders of their own (`make demo` passes a relative folder)."""
    monkeypatch.chdir(tmp_path)
    server, client = start_agent(cache_dir="relative-cache")
    assert server.config.cache_dir == tmp_path / "relative-cache"
    result = client.benchmark(client.ensure_model(good_model), fast_settings())
    assert result.stats.median_ms > 0
