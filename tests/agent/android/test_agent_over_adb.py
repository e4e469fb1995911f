"""A real agent serving a stand-in phone over the stand-in adb: the agent API, unchanged.

Describe, Status and Benchmark through gRPC on loopback; hostile requests get precise
statuses; a phone unplugged mid-benchmark is DEVICE_LOST; a client that goes away stops
the run on the phone; the agent keeps serving after each.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from fleetnas.agent import __version__, cli, errors
from fleetnas.agent.android import phone_fingerprint
from fleetnas.agent.client import AgentClient
from fleetnas.api.v1 import agent_pb2
from tests import tflite_models as tflite_models_3
from tests.agent.agent_process import wait_for
from tests.agent.android import tflite_models
from tests.agent.android.conftest import StartPhoneAgent
from tests.agent.android.fake_phone import FakePhone
from tests.agent.conftest import raw_stub, reason_of


def quick(**values: object) -> agent_pb2.BenchmarkSettings:
    """Few runs, a short timeout: enough for the stand-in phone on a busy host."""
    merged: dict = dict(warmup_runs=1, min_runs=4, max_duration_s=5.0, timeout_s=60.0)
    merged.update(values)
    return agent_pb2.BenchmarkSettings(**merged)


def _tflite(client: AgentClient) -> str:
    return client.ensure_model(tflite_models.fc_chain(width=64, depth=2))


def _still_serves(client: AgentClient, sha: str) -> None:
    result = client.benchmark(sha, quick())
    assert result.stats.mean_ms > 0 and result.timed_inferences >= 4


def test_describe_status_and_benchmarks_come_from_the_phone(
    start_phone_agent: StartPhoneAgent, phone: FakePhone, onnx_model: tuple[Path, str]
) -> None:
    server, client = start_phone_agent(device_class="pixel7", default_threads=2)
    described = client.describe()
    assert described.hostname == phone.serial
    assert described.board_model == "Google Pixel 7 (panther), SoC Google GS201"
    assert described.os.distribution == "Android 14 (API 34)"
    assert described.host_fingerprint == phone_fingerprint(phone.serial, phone.serial)
    assert described.agent_version == __version__
    assert described.limits.max_queue == server.config.max_queue
    assert described.defaults.device_class == "pixel7"
    assert {r.name for r in described.runtimes if r.available} == {"litert", "onnxruntime"}
    assert not described.telemetry and not described.gpus  # nothing of the host
    assert server.runner is None  # no worker processes on the host

    status = client.status()
    assert status.state.temperature_available and not status.busy
    assert 30.0 < status.state.temperature_c < 40.0  # the phone's SoC, not this host

    sha = _tflite(client)
    result = client.benchmark(sha, quick())
    assert result.model_format == agent_pb2.MODEL_FORMAT_TFLITE
    assert result.settings.runtime == "litert" and list(result.settings.providers) == ["XNNPACK"]
    assert result.settings.intra_op_threads == 2 and "intra_op_threads" in result.settings.agent_defaults
    assert result.samples_source == agent_pb2.SAMPLES_SOURCE_TOOL_STATISTICS
    assert not result.samples_ms and result.timed_inferences >= 4
    assert result.stats.median_ms == result.stats.mean_ms > 0
    assert result.warnings[0].startswith("tool statistics:")
    assert result.provider == "XNNPACK"
    assert result.runtime_version == next(
        r.version for r in described.runtimes if r.name == "litert")
    assert result.host_fingerprint == described.host_fingerprint
    assert result.agent_version == __version__
    assert result.state_before.temperature_available and result.state_after.temperature_available
    assert phone.taskset_log()[-1].startswith("70 ")  # the big cluster
    assert "--num_threads=2" in phone.taskset_log()[-1]
    assert phone.remote(f"/data/local/tmp/fleetnas/models/{sha}.tflite").is_file()

    onnx_path, onnx_sha = onnx_model
    assert client.ensure_model(onnx_path.read_bytes()) == onnx_sha
    raw = client.benchmark(onnx_sha, quick(min_runs=5))
    assert raw.samples_source == agent_pb2.SAMPLES_SOURCE_RAW and len(raw.samples_ms) == 5
    assert raw.settings.runtime == "onnxruntime" and raw.provider == "CPUExecutionProvider"
    assert raw.onnxruntime_version.startswith("onnxruntime_perf_test sha256:")
    assert client.status().state.timestamp == raw.state_after.timestamp  # the latest sample
    assert phone.live_processes() == []


def _expect(call, code: grpc.StatusCode, reason: str, *fragments: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    assert err.code() == code, err.details()
    assert reason_of(err) == f"ERROR_REASON_{reason}", err.details()
    for fragment in fragments:
        assert fragment in err.details(), err.details()


def test_hostile_requests_get_precise_statuses_and_the_agent_keeps_serving(
    start_phone_agent: StartPhoneAgent, phone: FakePhone, tools: dict[str, Path]
) -> None:
    server, client = start_phone_agent(
        adb_benchmark_binaries=(f"benchmark_model={tools['benchmark_model']}",))
    sha = _tflite(client)
    garbage = b"\x00" * 64
    garbage_sha = client.ensure_model(garbage)
    onnx_sha = client.ensure_model(b"\x08\x07" + bytes(30))  # ONNX by its first byte
    channel, stub, md = raw_stub(server.port)

    def bench(model: str, **values: object):
        request = agent_pb2.BenchmarkRequest(model_sha256=model, settings=quick(**values))
        return lambda: stub.Benchmark(request, timeout=120, metadata=md)

    cases = [
        (bench("0" * 64), grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND", ()),
        (bench("../etc/passwd"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UPLOAD", ()),
        (bench(garbage_sha), grpc.StatusCode.INVALID_ARGUMENT, "MODEL_INVALID",
         ("neither ONNX", "TFLite")),
        (bench(onnx_sha), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SETTINGS",
         ("onnxruntime", "--adb-benchmark-binary onnxruntime_perf_test=")),
        (bench(sha, method=agent_pb2.METHOD_PAIRED), grpc.StatusCode.INVALID_ARGUMENT,
         "INVALID_SETTINGS", ("paired",)),
        (bench(sha, providers=["GPU"]), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SETTINGS",
         ("GPU", "XNNPACK")),
        (bench(sha, runtime="onnxruntime"), grpc.StatusCode.INVALID_ARGUMENT,
         "INVALID_SETTINGS", ("onnxruntime",)),
        (bench(sha, input_shapes=[agent_pb2.InputShape(name="x", dims=[1, 64])]),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SETTINGS", ("input_shapes",)),
    ]
    for call, code, reason, fragments in cases:
        _expect(call, code, reason, *fragments)
    assert phone.taskset_log() == []  # nothing of it reached the phone's benchmark

    phone.set_faults(crash_after_runs=0)
    _expect(bench(sha), grpc.StatusCode.ABORTED, "WORKER_CRASHED",
            "killed by SIGSEGV on the phone", "crashing now")
    phone.set_faults(exit_status=127, exit_message='library "libfoo.so" not found')
    _expect(bench(sha), grpc.StatusCode.FAILED_PRECONDITION, "BINARY_MISSING", "libfoo.so")
    phone.set_faults(push_error="No space left on device")
    other = client.ensure_model(tflite_models.fc_chain(width=32, depth=1))
    _expect(bench(other), grpc.StatusCode.ABORTED, "PUSH_FAILED", "No space left on device")
    phone.set_faults()
    channel.close()
    _still_serves(client, sha)
    assert not client.status().busy


def test_a_phone_unplugged_mid_benchmark_is_device_lost_then_it_serves_again(
    start_phone_agent: StartPhoneAgent, phone: FakePhone
) -> None:
    _, client = start_phone_agent()
    sha = _tflite(client)
    phone.set_faults(unplug_after_runs=0)
    with pytest.raises(errors.DeviceLost) as caught:
        client.benchmark(sha, quick())
    assert caught.value.transient and caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert f"phone {phone.serial} went away" in caught.value.message
    status = client.status()  # answers at once, from the last sample
    assert status.serving and not status.busy and status.state.temperature_available
    with pytest.raises(errors.DeviceNotFound):  # still unplugged
        client.benchmark(sha, quick())

    phone.set_state("device")  # plugged back in: the leftover run is stopped first
    phone.set_faults()
    _still_serves(client, sha)
    assert [name for _, name in phone.live_processes() if name != "shell"] == []


def test_a_client_that_goes_away_stops_the_run_on_the_phone(
    start_phone_agent: StartPhoneAgent, phone: FakePhone
) -> None:
    _, client = start_phone_agent()
    sha = _tflite(client)
    phone.set_faults(hang_after_runs=0)
    with pytest.raises(errors.AgentDeadlineExceeded):
        client.benchmark(sha, quick(timeout_s=120.0), timeout=8.0)
    wait_for(lambda: not client.status().busy, 60, "the agent to be free again")
    assert phone.wait_gone() == []  # the hung tool was killed on the phone
    phone.set_faults()
    _still_serves(client, sha)


def test_one_benchmark_at_a_time_on_the_phone(
    start_phone_agent: StartPhoneAgent, phone: FakePhone
) -> None:
    _, client = start_phone_agent(max_queue=0)
    sha = _tflite(client)
    phone.set_faults(hang_after_runs=0)
    outcome: dict[str, BaseException] = {}

    def hold() -> None:
        try:
            client.benchmark(sha, quick(timeout_s=5.0, max_duration_s=2.0))
        except errors.AgentError as exc:
            outcome["error"] = exc

    holder = threading.Thread(target=hold)
    holder.start()
    wait_for(lambda: client.status().busy, 60, "the benchmark to start")
    assert client.status().running_model_sha256 == sha
    with pytest.raises(errors.QueueFull):
        client.benchmark(sha, quick())
    holder.join(120)
    assert isinstance(outcome["error"], errors.BenchmarkTimeout)  # the hung tool, killed
    assert "killed on the host and on the phone" in outcome["error"].message
    phone.set_faults()
    _still_serves(client, sha)


def test_describe_a_tflite_only_phone_for_v1_clients(
    start_phone_agent: StartPhoneAgent, tools: dict[str, Path]
) -> None:
    _, client = start_phone_agent(
        adb_benchmark_binaries=(f"benchmark_model={tools['benchmark_model']}",),
        adb_cluster="little", host_fingerprint="lab-phone-1")
    described = client.describe()
    assert described.host_fingerprint == "lab-phone-1"  # --host-fingerprint wins
    assert described.cpu.usable_cores == 4  # benchmarks are pinned to cpu0-3
    assert not described.runtime.available_providers  # a v1 client finds no onnxruntime


def test_bench_profile_over_adb_returns_the_phone_tools_profiles(
    start_phone_agent: StartPhoneAgent, phone: FakePhone, onnx_model: tuple[Path, str],
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    server, client = start_phone_agent()
    model = tmp_path / "three.tflite"
    model.write_bytes(tflite_models_3.conv_net(16, 32, 3))
    # `fleetnas-agent bench --profile` against the phone agent, as a user runs it; the
    # stand-in times the XNNPACK-delegated model as one node in a run of its own, checked
    # against the timed run's mean (taken again, at most twice, when the host's load moved
    # it by more than 10%: issue 15)
    for _ in range(3):
        assert cli.main(["bench", str(model), "--address", f"127.0.0.1:{server.port}",
                         "--profile", "--profile-runs", "50", "--warmup", "5", "--min-runs",
                         "100", "--min-duration", "0", "--max-duration", "10",
                         "--json"]) == 0
        result = json_format.Parse(capsys.readouterr().out, agent_pb2.BenchmarkResult())
        if result.profile.total_ms == pytest.approx(result.stats.mean_ms, rel=0.10):
            break
    profile = result.profile
    assert profile.source == agent_pb2.PROFILE_SOURCE_BENCHMARK_MODEL
    assert profile.times_are_means and profile.profiled_runs == 50
    assert [(op.op_type, op.provider) for op in profile.operators] == [
        ("TfLiteXNNPackDelegate", "XNNPACK")]
    assert profile.total_ms == pytest.approx(result.stats.mean_ms, rel=0.10)
    assert result.provider == "XNNPACK" and result.timed_inferences == 100
    assert "--enable_op_profiling=true" in phone.taskset_log()[-1]

    sha = client.ensure_model(model.read_bytes())
    phone.set_faults(no_op_profile=1)
    with pytest.raises(errors.ToolOutputUnreadable, match="no operator profile of its regular"):
        client.benchmark(sha, quick(profile=True))
    phone.set_faults()
    onnx_path, onnx_sha = onnx_model
    assert client.ensure_model(onnx_path.read_bytes()) == onnx_sha
    raw = client.benchmark(onnx_sha, quick(profile=True, profile_runs=4))
    assert raw.profile.source == agent_pb2.PROFILE_SOURCE_ORT_PROFILING
    assert raw.profile.profiled_runs == 4 and not raw.profile.times_are_means
    assert {op.provider for op in raw.profile.operators} == {"CPUExecutionProvider"}
    assert not client.benchmark(sha, quick()).HasField("profile")
    assert phone.live_processes() == []
