"""Every bad input gets a precise gRPC status, detail and reason, and the agent keeps serving.

Each test checks the status on the wire with a bare generated stub, then runs
a good benchmark on the same agent.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time

import grpc
import pytest

from fleetnas.agent import errors
from fleetnas.agent.client import sha256_hex
from fleetnas.api.v1 import agent_pb2, agent_pb2_grpc
from tests import onnx_models
from tests.agent.conftest import fast_settings, raw_stub, reason_of


def _upload_raw(stub, metadata, data: bytes, sha: str | None = None, total: int | None = None):
    sha = sha or hashlib.sha256(data).hexdigest()
    total = len(data) if total is None else total

    def chunks():
        yield agent_pb2.UploadChunk(sha256=sha, total_bytes=total, data=data[: 1 << 20])
        for off in range(1 << 20, len(data), 1 << 20):
            yield agent_pb2.UploadChunk(data=data[off : off + (1 << 20)])

    return stub.UploadModel(chunks(), timeout=30, metadata=metadata)


def _expect(call, code: grpc.StatusCode, reason: str, *fragments: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    assert err.code() == code, err.details()
    assert reason_of(err) == f"ERROR_REASON_{reason}"
    for fragment in fragments:
        assert fragment in err.details(), err.details()
    return err


def _still_serves(client, good_model: bytes) -> None:
    sha = client.ensure_model(good_model)
    result = client.benchmark(sha, fast_settings())
    assert result.stats.median_ms > 0
    assert len(result.samples_ms) >= 5


def _benchmark_call(stub, metadata, sha: str, settings=None):
    request = agent_pb2.BenchmarkRequest(model_sha256=sha, settings=settings or fast_settings())
    return lambda: stub.Benchmark(request, timeout=120, metadata=metadata)


def test_zero_byte_model_is_refused_at_upload(agent, good_model):
    server, client = agent
    channel, stub, md = raw_stub(server.port)
    _expect(lambda: _upload_raw(stub, md, b""), grpc.StatusCode.INVALID_ARGUMENT,
            "MODEL_INVALID", "empty")
    channel.close()
    _still_serves(client, good_model)


@pytest.mark.parametrize("make_bad", [
    lambda: onnx_models.truncated(onnx_models.mlp(32, 2)),
    lambda: onnx_models.random_bytes(4096, seed=3),
], ids=["truncated", "random"])
def test_unparseable_model_fails_benchmark_with_invalid_argument(agent, good_model, make_bad):
    server, client = agent
    bad = make_bad()
    sha = client.ensure_model(bad)  # upload only checks size and hash
    channel, stub, md = raw_stub(server.port)
    _expect(_benchmark_call(stub, md, sha), grpc.StatusCode.INVALID_ARGUMENT,
            "MODEL_INVALID", sha[:12])
    channel.close()
    _still_serves(client, good_model)


def test_unsupported_operator(agent, good_model):
    server, client = agent
    sha = client.ensure_model(onnx_models.with_unsupported_op())
    channel, stub, md = raw_stub(server.port)
    _expect(_benchmark_call(stub, md, sha), grpc.StatusCode.INVALID_ARGUMENT,
            "UNSUPPORTED_OPERATOR", "NoSuchOp")
    channel.close()
    _still_serves(client, good_model)


def test_sha256_mismatch_caches_nothing(agent, good_model):
    server, client = agent
    wrong = hashlib.sha256(b"something else").hexdigest()
    channel, stub, md = raw_stub(server.port)
    _expect(lambda: _upload_raw(stub, md, good_model, sha=wrong),
            grpc.StatusCode.INVALID_ARGUMENT, "CHECKSUM_MISMATCH", wrong, sha256_hex(good_model))
    channel.close()
    present, missing = client.has_models([wrong, sha256_hex(good_model)])
    assert present == [] and len(missing) == 2
    _still_serves(client, good_model)


def test_model_over_size_cap(start_agent, good_model):
    server, client = start_agent(max_model_mb=1, cache_budget_mb=4)
    big = os.urandom(1024 * 1024 + 10)
    channel, stub, md = raw_stub(server.port)
    _expect(lambda: _upload_raw(stub, md, big), grpc.StatusCode.RESOURCE_EXHAUSTED,
            "MODEL_TOO_LARGE", "at most 1048576 bytes")
    # A client lying about the size is cut off while streaming.
    _expect(lambda: _upload_raw(stub, md, big, total=1000), grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_UPLOAD", "more than the declared 1000 bytes")
    channel.close()
    assert server.service._store.count == 0
    _still_serves(client, good_model)


def test_benchmark_of_unknown_hash(agent, good_model):
    server, client = agent
    unknown = hashlib.sha256(b"never uploaded").hexdigest()
    channel, stub, md = raw_stub(server.port)
    _expect(_benchmark_call(stub, md, unknown), grpc.StatusCode.NOT_FOUND,
            "MODEL_NOT_FOUND", unknown, "upload it first")
    _expect(_benchmark_call(stub, md, "../../etc/passwd"), grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_UPLOAD", "not a sha256")
    channel.close()
    with pytest.raises(errors.ModelNotFound):
        client.benchmark(unknown, fast_settings())
    _still_serves(client, good_model)


def test_model_running_past_timeout(agent, good_model):
    server, client = agent
    sha = client.ensure_model(onnx_models.slow_model(3.0))
    channel, stub, md = raw_stub(server.port)
    _expect(_benchmark_call(stub, md, sha, fast_settings(timeout_s=1.0)),
            grpc.StatusCode.DEADLINE_EXCEEDED, "TIMEOUT", "1")
    channel.close()
    _still_serves(client, good_model)


def test_model_allocating_past_memory_cap(start_agent, good_model):
    server, client = start_agent(memory_cap_mb=400)
    sha = client.ensure_model(onnx_models.memory_hog(2 * 1024**3))
    channel, stub, md = raw_stub(server.port)
    _expect(_benchmark_call(stub, md, sha), grpc.StatusCode.RESOURCE_EXHAUSTED, "MEMORY_CAP")
    channel.close()
    _still_serves(client, good_model)


def test_dynamic_dimension_without_shape(agent, good_model):
    server, client = agent
    sha = client.ensure_model(onnx_models.dynamic_batch_mlp(16))
    channel, stub, md = raw_stub(server.port)
    _expect(_benchmark_call(stub, md, sha), grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_SETTINGS", "batch", "input_shapes")
    channel.close()
    shaped = fast_settings(input_shapes=[agent_pb2.InputShape(name="x", dims=[4, 16])])
    result = client.benchmark(sha, shaped)
    assert list(result.inputs[0].dims) == [4, 16]
    _still_serves(client, good_model)


@pytest.mark.parametrize("presented", [None, "wrong-token"], ids=["missing", "wrong"])
def test_token_missing_or_wrong(start_agent, good_model, presented):
    server, client = start_agent(token="correct-token")
    channel, stub, md = raw_stub(server.port, token=presented)
    err = _expect(lambda: stub.Describe(agent_pb2.DescribeRequest(), timeout=10, metadata=md),
                  grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED",
                  "missing token" if presented is None else "wrong token")
    assert "correct-token" not in err.details()
    # Streaming RPCs are refused too, before any byte is cached.
    _expect(lambda: _upload_raw(stub, md, good_model), grpc.StatusCode.UNAUTHENTICATED,
            "UNAUTHENTICATED")
    channel.close()
    assert server.service._store.count == 0
    _still_serves(client, good_model)  # the fixture's client has the right token


def test_worker_sigkilled_mid_run(agent, good_model):
    server, client = agent
    sha = client.ensure_model(onnx_models.slow_model(2.0))
    channel, stub, md = raw_stub(server.port)
    outcome: dict[str, grpc.RpcError] = {}

    def call() -> None:
        try:
            _benchmark_call(stub, md, sha, fast_settings(timeout_s=60.0))()
        except grpc.RpcError as err:
            outcome["err"] = err

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 30
    pid = None
    while pid is None and time.monotonic() < deadline:
        pid = server.runner.current_worker_pid
        time.sleep(0.02)
    assert pid is not None, "the worker never started"
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    err = outcome["err"]
    assert err.code() == grpc.StatusCode.ABORTED
    assert reason_of(err) == "ERROR_REASON_WORKER_CRASHED"
    assert "SIGKILL" in err.details() or "signal 9" in err.details()
    channel.close()
    _still_serves(client, good_model)


def test_invalid_settings_are_named(agent, good_model):
    server, client = agent
    sha = client.ensure_model(good_model)
    channel, stub, md = raw_stub(server.port)
    _expect(_benchmark_call(stub, md, sha, fast_settings(min_runs=50, max_runs=10)),
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SETTINGS", "min_runs")
    bad_provider = fast_settings()
    bad_provider.providers.append("NoSuchExecutionProvider")
    _expect(_benchmark_call(stub, md, sha, bad_provider),
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SETTINGS", "NoSuchExecutionProvider",
            "CPUExecutionProvider")
    channel.close()
    _still_serves(client, good_model)


def test_queue_full_is_resource_exhausted(start_agent, good_model):
    server, client = start_agent(max_queue=0)
    slow = client.ensure_model(onnx_models.slow_model(2.0))
    good = client.ensure_model(good_model)
    channel, stub, md = raw_stub(server.port)
    holder = stub.Benchmark.future(  # holds the only slot; cancelled once the point is made
        agent_pb2.BenchmarkRequest(
            model_sha256=slow, settings=fast_settings(max_runs=1, min_runs=1, warmup_runs=0)
        ),
        timeout=120, metadata=md,
    )
    deadline = time.monotonic() + 30
    while not server.gate.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.gate.busy
    with pytest.raises(errors.QueueFull) as info:
        client.benchmark(good, fast_settings())
    assert info.value.transient and info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    holder.cancel()  # the agent stops the run of a client that went away
    channel.close()
    deadline = time.monotonic() + 30
    while server.gate.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.gate.busy
    _still_serves(client, good_model)


def test_stalled_uploads_cannot_starve_the_agent(start_agent, good_model):
    """Upload slots are bounded and an idle upload is cancelled: health and status keep answering."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server, client = start_agent(max_uploads=1, upload_idle_timeout_s=1.0, max_queue=1)
    channel, stub, md = raw_stub(server.port)
    release = threading.Event()
    data = os.urandom(3 << 20)
    sha = hashlib.sha256(data).hexdigest()

    def stalling_chunks():
        yield agent_pb2.UploadChunk(sha256=sha, total_bytes=len(data), data=data[: 1 << 20])
        release.wait(30)  # the client goes quiet mid-upload

    outcome: dict[str, grpc.RpcError] = {}

    def stalled() -> None:
        try:
            stub.UploadModel(stalling_chunks(), timeout=60, metadata=md)
        except grpc.RpcError as err:
            outcome["err"] = err

    thread = threading.Thread(target=stalled)
    thread.start()
    deadline = time.monotonic() + 10
    while not any(p.name.endswith(".partial") for p in server.config.cache_dir.rglob("*")):
        assert time.monotonic() < deadline, "the stalled upload never started"
        time.sleep(0.02)
    # the only upload slot is taken: another upload is refused at once, not queued
    with pytest.raises(errors.AgentOverloaded, match="--max-uploads") as info:
        client.upload_model(good_model)
    assert info.value.transient
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    assert client.status().serving
    thread.join(30)  # cancelled by the agent after 1 s of silence
    release.set()
    assert outcome["err"].code() == grpc.StatusCode.CANCELLED
    # The client hears CANCELLED as the agent cancels; the handler thread removes the
    # partial file just after, when its blocked read of the next chunk returns.
    deadline = time.monotonic() + 10
    while any(p.name.endswith(".partial") for p in server.config.cache_dir.rglob("*")):
        assert time.monotonic() < deadline, "the cancelled upload left its partial file"
        time.sleep(0.02)
    channel.close()
    _still_serves(client, good_model)  # the slot was released


@pytest.mark.parametrize("rpc", ["Describe", "Status", "HasModels", "Benchmark"])
@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer nope"),),
                                      (("authorization", "token correct-token"),)],
                         ids=["missing", "wrong", "malformed"])
def test_every_rpc_requires_the_token(start_agent, rpc, metadata):
    server, _ = start_agent(token="correct-token")
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = agent_pb2_grpc.AgentStub(channel)
    requests = {
        "Describe": agent_pb2.DescribeRequest(),
        "Status": agent_pb2.StatusRequest(),
        "HasModels": agent_pb2.HasModelsRequest(sha256=["0" * 64]),
        "Benchmark": agent_pb2.BenchmarkRequest(model_sha256="0" * 64),
    }
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, rpc)(requests[rpc], timeout=10, metadata=metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(info.value) == "ERROR_REASON_UNAUTHENTICATED"
    channel.close()


def test_hash_with_trailing_newline_is_refused(agent):
    server, _ = agent
    channel, stub, md = raw_stub(server.port)
    _expect(lambda: stub.HasModels(agent_pb2.HasModelsRequest(sha256=["0" * 64 + "\n"]),
                                   timeout=10, metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UPLOAD", "not a sha256")
    channel.close()


def _with(**fields):
    """fast_settings() plus repeated fields (providers, input_shapes) set from lists."""
    settings = fast_settings()
    for name, values in fields.items():
        getattr(settings, name).extend(values)
    return settings


def _shape(name: str, dims: list[int]) -> agent_pb2.InputShape:
    return agent_pb2.InputShape(name=name, dims=dims)


@pytest.mark.parametrize("settings,fragments", [
    (lambda: _with(providers=["P" * (4 << 20)]),
     ["providers", "at most 256 characters", "this one 4194304"]),
    (lambda: _with(providers=[f"P{i}" for i in range(17)]), ["providers", "17", "at most 16"]),
    (lambda: _with(input_shapes=[_shape(f"x{i}", [1]) for i in range(10_000)]),
     ["input_shapes", "10000 entries", "at most 256"]),
    (lambda: _with(input_shapes=[_shape("n" * (1 << 20), [1])]),
     ["input_shapes.name", "at most 256 characters"]),
    (lambda: _with(input_shapes=[_shape("x", [1] * 33)]), ["input_shapes", "33", "at most 32"]),
    (lambda: _with(input_shapes=[_shape("x", [2**62, 2**62])]),
     ["input_shapes[x].dims", str(2**62), "at most 2147483647"]),
], ids=["4MB-provider", "17-providers", "10k-shapes", "1MB-input-name", "rank-33", "dim-2^62"])
def test_oversized_settings_are_refused_naming_field_and_cap(agent, good_model, settings,
                                                             fragments, caplog):
    """Caps are checked first; the detail and the agent's log quote at most a short excerpt."""
    from fleetnas.agent.logs import JsonFormatter

    server, client = agent
    sha = client.ensure_model(good_model)
    channel, stub, md = raw_stub(server.port)
    with caplog.at_level("INFO", logger="fleetnas.agent"):
        err = _expect(_benchmark_call(stub, md, sha, settings()), grpc.StatusCode.INVALID_ARGUMENT,
                      "INVALID_SETTINGS", *fragments)
    assert len(err.details()) <= 1100, len(err.details())
    formatter = JsonFormatter()
    longest = max(len(formatter.format(record)) for record in caplog.records)
    assert longest < 5000, longest  # no multi-MB log line
    channel.close()
    _still_serves(client, good_model)


def test_internal_errors_keep_host_paths_and_tracebacks_in_the_agent_log(agent, good_model,
                                                                         caplog):
    """An unexpected failure (the cache folder vanished) gives INTERNAL with an incident id only."""
    import shutil

    server, client = agent
    models = server.config.cache_dir / "models"
    shutil.rmtree(models)
    channel, stub, md = raw_stub(server.port)
    with caplog.at_level("INFO", logger="fleetnas.agent"):
        err = _expect(lambda: _upload_raw(stub, md, good_model), grpc.StatusCode.INTERNAL,
                      "INTERNAL", "incident")
    assert str(server.config.cache_dir) not in err.details()
    assert "Traceback" not in err.details() and "Errno" not in err.details()
    incident = err.details().split("incident ")[1].split(")")[0]
    (record,) = [r for r in caplog.records if getattr(r, "incident", None) == incident]
    assert record.exc_info is not None and str(models) in str(record.exc_info[1])
    channel.close()
    models.mkdir()
    _still_serves(client, good_model)
