"""LiteRT (.tflite) benchmarks with real ai-edge-litert: in the runner, through a real agent,
and hostile .tflite bytes that get precise statuses while the agent keeps serving."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import onnxruntime
import pytest
from ai_edge_litert.interpreter import Interpreter

from fleetnas.agent import errors
from fleetnas.agent.reference import CalibrationKey, CalibrationStore, default_reference_path
from fleetnas.agent.runner import BenchmarkRunner
from fleetnas.agent.runtimes import describe_runtimes
from fleetnas.agent.settings import resolve_settings
from fleetnas.api.v1 import agent_pb2
from tests import tflite_models
from tests.agent.conftest import StartAgent, fast_settings, raw_stub, reason_of

REPO = Path(__file__).resolve().parents[2]
LITERT_VERSION = importlib.metadata.version("ai-edge-litert")


def litert_settings(**fields: object) -> agent_pb2.BenchmarkSettings:
    values: dict[str, object] = dict(warmup_runs=2, min_runs=5, max_runs=40, min_duration_s=0.0,
                                     max_duration_s=0.5)  # fmt: skip
    values.update(fields)
    return resolve_settings(
        agent_pb2.BenchmarkSettings(**values), max_timeout_s=60.0, memory_cap_bytes=1024**3,
        available_providers=onnxruntime.get_available_providers(),
        runtimes=describe_runtimes(), model_format=agent_pb2.MODEL_FORMAT_TFLITE,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("litert")


@pytest.fixture(scope="module")
def runner(workdir: Path) -> Iterator[BenchmarkRunner]:
    r = BenchmarkRunner(scratch_dir=workdir / "scratch",
                        calibration_store=CalibrationStore(workdir / "cal.json"),
                        max_calibration_cv=10.0)  # fmt: skip
    yield r
    r.close()


def write(workdir: Path, data: bytes) -> Path:
    path = workdir / f"{hashlib.sha256(data).hexdigest()}.model"
    path.write_bytes(data)
    return path


# -- the runner ------------------------------------------------------------------------


def test_a_tflite_model_is_benchmarked_on_xnnpack_with_its_loop_interval(runner, workdir) -> None:
    s = litert_settings(seed=3)
    result = runner.run(write(workdir, tflite_models.conv_net(8, 16, 3)), "t" * 64, s)
    assert s.runtime == "litert" and list(s.providers) == ["XNNPACK"]
    assert result.settings == s and 5 <= len(result.samples_ms) <= 40
    assert all(v > 0 for v in result.samples_ms)
    assert result.provider == "XNNPACK"  # every node went to the delegate
    assert result.model_format == agent_pb2.MODEL_FORMAT_TFLITE
    assert result.runtime_version == LITERT_VERSION and result.onnxruntime_version == ""
    assert [(i.name, list(i.dims), i.element_type) for i in result.inputs] == [
        ("x", [1, 16, 16, 8], "float")
    ]
    assert result.session_create_ms > 0 and result.first_run_ms > 0
    assert result.timed_inferences == len(result.samples_ms)
    loop_s = (result.loop_end_ns - result.loop_start_ns) / 1e9
    assert sum(result.samples_ms) / 1000.0 <= loop_s < result.wall_s
    assert not [w for w in result.warnings if "split" in w or "requested provider" in w]


def test_paired_litert_uses_the_tflite_reference_and_its_own_calibration(runner, workdir) -> None:
    path = write(workdir, tflite_models.conv_net(8, 16, 2))
    result = runner.run(path, "p" * 64, litert_settings(method=agent_pb2.METHOD_PAIRED))
    tflite_ref, tflite_sha = runner.reference_for("litert")
    assert tflite_ref == default_reference_path("litert").resolve()
    assert result.paired.reference_sha256 == tflite_sha != runner.reference_sha256
    assert len(result.paired.ratios) == len(result.samples_ms) >= 5
    assert result.paired.latency_ms == pytest.approx(
        result.paired.ratio_median * result.paired.reference_calibrated_ms)
    key = CalibrationKey.of(tflite_sha, intra_op_threads=1, inter_op_threads=1,
                            providers=["XNNPACK"], graph_optimization=4,
                            runtime_version=LITERT_VERSION, runtime="litert")  # fmt: skip
    assert CalibrationStore(runner._store.path).get(key) is not None
    assert '"runtime": "litert"' in key.as_string()


def test_a_dynamic_batch_needs_input_shapes_and_is_resized_to_them(runner, workdir) -> None:
    path = write(workdir, tflite_models.dynamic_batch_add(8))
    with pytest.raises(errors.InvalidSettings) as info:
        runner.run(path, "d" * 64, litert_settings())
    assert "'x'" in info.value.message and "input_shapes" in info.value.message
    shaped = litert_settings(input_shapes=[agent_pb2.InputShape(name="x", dims=[4, 8])])
    result = runner.run(path, "d" * 64, shaped)
    assert [list(i.dims) for i in result.inputs] == [[4, 8]]


def test_threads_zero_runs_on_the_usable_cores_and_profiles_say_unavailable(runner,
                                                                           workdir) -> None:
    s = litert_settings(intra_op_threads=0, profile=True)
    result = runner.run(write(workdir, tflite_models.add()), "z" * 64, s)
    assert any("intra_op_threads=0" in w and "usable cores" in w for w in result.warnings)
    assert not result.HasField("profile")
    assert any("not available for the litert runtime" in w and "benchmark_model" in w
               for w in result.warnings)  # fmt: skip


def test_the_tflite_reference_is_the_onnx_reference_network() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "make_reference_tflite.py"),
                           "--check"], capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    x = np.random.default_rng(5).standard_normal((1, 3, 128, 128), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(default_reference_path()),
                                           providers=["CPUExecutionProvider"])  # fmt: skip
    expected = session.run(None, {"x": x})[0]
    interpreter = Interpreter(model_path=str(default_reference_path("litert")), num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                           np.ascontiguousarray(x.transpose(0, 2, 3, 1)))  # fmt: skip
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert np.abs(expected).max() > 0.05  # a real output, not zeros
    np.testing.assert_allclose(got, expected, atol=1e-5)


# -- through a real agent: a good model, then hostile bytes, each followed by a good one --

HOSTILE = {
    "truncated": (lambda: tflite_models.conv_net(8, 16, 2)[:300], grpc.StatusCode.INVALID_ARGUMENT,
                  "MODEL_INVALID", "not a valid .tflite model"),
    "random-with-tflite-identifier": (
        lambda: (b"\x1c\x00\x00\x00TFL3" + np.random.default_rng(9).bytes(2000)),
        grpc.StatusCode.INVALID_ARGUMENT, "MODEL_INVALID", "not a valid .tflite model"),
    "random": (lambda: np.random.default_rng(10).bytes(2000), grpc.StatusCode.INVALID_ARGUMENT,
               "MODEL_INVALID", ""),
    "unknown-custom-op": (tflite_models.custom_op, grpc.StatusCode.INVALID_ARGUMENT,
                          "UNSUPPORTED_OPERATOR", "FleetnasNoSuchOp"),
    "segfaults-litert": (tflite_models.transpose_missing_perm, grpc.StatusCode.ABORTED,
                         "WORKER_CRASHED", "SIGSEGV"),
}  # fmt: skip


def test_a_tflite_upload_is_benchmarked_through_the_agent(start_agent: StartAgent) -> None:
    _, client = start_agent()
    sha = client.ensure_model(tflite_models.conv_net(8, 16, 3, seed=1))
    result = client.benchmark(sha, fast_settings())
    assert result.settings.runtime == "litert" and result.provider == "XNNPACK"
    assert result.model_format == agent_pb2.MODEL_FORMAT_TFLITE
    assert result.runtime_version == LITERT_VERSION
    assert result.timed_inferences == len(result.samples_ms) >= 5
    assert result.loop_end_ns > result.loop_start_ns > 0


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tflite_gets_a_precise_status_and_the_agent_keeps_serving(
    start_agent: StartAgent, case: str
) -> None:
    make, code, reason, fragment = HOSTILE[case]
    server, client = start_agent()
    sha = client.ensure_model(make())
    channel, stub, metadata = raw_stub(server.port)
    request = agent_pb2.BenchmarkRequest(model_sha256=sha, settings=fast_settings())
    with channel, pytest.raises(grpc.RpcError) as info:
        stub.Benchmark(request, metadata=metadata, timeout=120)
    assert info.value.code() == code, info.value.details()
    assert reason_of(info.value) == f"ERROR_REASON_{reason}"
    assert fragment in info.value.details()
    good = client.ensure_model(tflite_models.add(16))
    assert len(client.benchmark(good, fast_settings()).samples_ms) >= 5
    assert client.health()


def test_a_zero_byte_upload_is_model_invalid(start_agent: StartAgent) -> None:
    _, client = start_agent()
    with pytest.raises(errors.ModelInvalid, match="empty"):
        client.upload_model(b"", sha256=hashlib.sha256(b"").hexdigest())
    assert len(client.benchmark(client.ensure_model(tflite_models.add()),
                                fast_settings()).samples_ms) >= 5  # fmt: skip
