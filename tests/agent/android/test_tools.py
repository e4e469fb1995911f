"""Tools, settings and results: format detection, binary checks, v1 conversions."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fleetnas.agent.android import (
    BinaryMissing,
    BinaryNotExecutable,
    LiteRtBenchmarkModel,
    OrtPerfTest,
    PhoneBenchResult,
    PhoneBenchSettings,
    Statistics,
    detect_format,
    tool_from_spec,
)
from fleetnas.agent.errors import InvalidSettings, ModelInvalid
from fleetnas.agent.settings import resolve_settings
from fleetnas.agent.stats import latency_stats
from fleetnas.api.v1 import agent_pb2
from tests.agent.android import tflite_models
from tests.agent.android.conftest import DATA
from tests.agent.android.test_state import _state


def elf(path: Path, machine: int) -> Path:
    """A file with a little-endian 64-bit ELF header for ``machine`` (enough for the check)."""
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + struct.pack("<HH", 2, machine)
    path.write_bytes(header + b"\x00" * 44)
    return path


def test_format_comes_from_the_bytes() -> None:
    assert detect_format(tflite_models.fc_chain(8, 1)[:16]) == "tflite"
    assert detect_format((DATA / "mlp_w32_d2.onnx").read_bytes()[:16]) == "onnx"
    with pytest.raises(ModelInvalid):
        detect_format(b"PK\x03\x04 a zip file")
    with pytest.raises(ModelInvalid):
        detect_format(b"")


def test_binary_spec_forms(tmp_path: Path) -> None:
    bm = elf(tmp_path / "benchmark_model_android_aarch64", 183)
    perf = elf(tmp_path / "perf", 183)
    lib = elf(tmp_path / "libonnxruntime.so", 183)
    assert isinstance(tool_from_spec(str(bm)), LiteRtBenchmarkModel)
    tool = tool_from_spec(f"onnxruntime_perf_test={perf},{lib}")
    assert isinstance(tool, OrtPerfTest) and tool.libraries == (lib,)
    with pytest.raises(ValueError, match="benchmark_model=PATH or onnxruntime_perf_test=PATH"):
        tool_from_spec(str(perf))
    with pytest.raises(BinaryMissing, match="does not exist"):
        tool_from_spec(f"benchmark_model={tmp_path / 'nope'}")


def test_binary_for_another_abi_is_refused_before_any_push(tmp_path: Path) -> None:
    tool = LiteRtBenchmarkModel(elf(tmp_path / "benchmark_model", 62))  # x86-64
    with pytest.raises(BinaryNotExecutable, match="built for x86_64, the phone is arm64-v8a"):
        tool.check_abi("arm64-v8a")
    tool.check_abi("x86_64")
    junk = tmp_path / "onnxruntime_perf_test"
    junk.write_bytes(b"MZ\x90\x00 not for android")
    with pytest.raises(BinaryNotExecutable, match="neither an ELF"):
        OrtPerfTest(junk).check_abi("arm64-v8a")


def test_command_lines(tmp_path: Path) -> None:
    spec = PhoneBenchSettings(threads=2, warmup_runs=5, runs=40, max_duration_s=20.0,
                              use_xnnpack=False).spec()
    bm = LiteRtBenchmarkModel(elf(tmp_path / "benchmark_model", 183))
    assert bm.argv("/w/bin/benchmark_model", "/w/m.tflite", spec) == [
        "/w/bin/benchmark_model", "--graph=/w/m.tflite", "--num_threads=2", "--warmup_runs=5",
        "--warmup_min_secs=0", "--num_runs=40", "--min_secs=0", "--max_secs=20",
        "--use_xnnpack=false"]
    ort = OrtPerfTest(elf(tmp_path / "onnxruntime_perf_test", 183))
    argv = ort.argv("/w/bin/onnxruntime_perf_test", "/w/m.onnx", spec)
    assert argv[argv.index("-r") + 1] == "45"  # warm-up runs are timed too, then dropped
    assert argv[argv.index("-x") + 1] == "2" and argv[argv.index("-o") + 1] == "99"
    assert argv[-2:] == ["/w/m.onnx", "perf_test_runs.csv"]


def test_settings_from_resolved_v1_settings() -> None:
    resolved = resolve_settings(
        agent_pb2.BenchmarkSettings(warmup_runs=3, min_runs=20, intra_op_threads=2),
        max_timeout_s=100.0, memory_cap_bytes=1 << 30,
        available_providers=["CPUExecutionProvider"],
    )
    phone = PhoneBenchSettings.from_proto(resolved, cluster="little")
    assert (phone.threads, phone.warmup_runs, phone.runs, phone.cluster) == (2, 3, 20, "little")
    assert phone.timeout_s == 100.0 and phone.cooldown is not None
    paired = agent_pb2.BenchmarkSettings()
    paired.CopyFrom(resolved)
    paired.method = agent_pb2.METHOD_PAIRED
    with pytest.raises(InvalidSettings, match="paired"):
        PhoneBenchSettings.from_proto(paired)
    shaped = agent_pb2.BenchmarkSettings()
    shaped.CopyFrom(resolved)
    shaped.input_shapes.add(name="x", dims=[1, 8])
    with pytest.raises(InvalidSettings, match="input_shapes"):
        PhoneBenchSettings.from_proto(shaped)


@pytest.mark.parametrize("bad", [dict(runs=0), dict(threads=-1), dict(timeout_s=0.0),
                                 dict(max_duration_s=float("inf")), dict(warmup_runs=1.5)])
def test_settings_reject_bad_values(bad: dict) -> None:
    with pytest.raises(InvalidSettings):
        PhoneBenchSettings(**bad)


def _result(samples: tuple[float, ...], source: str, stats: Statistics) -> PhoneBenchResult:
    return PhoneBenchResult(
        model_sha256="ab" * 32, tool="benchmark_model", command="taskset 70 ...",
        settings=PhoneBenchSettings(), mask="70", samples_ms=samples, samples_source=source,
        statistics=stats, init_ms=12.5, first_run_ms=3.0, peak_memory_bytes=None,
        provider="XNNPACK", before=_state(), after=_state(), cooldown=None,
        warnings=("warm battery: 41.0 °C",), started_at=1.0, wall_s=2.0, fingerprint="f" * 16,
    )


def test_tool_statistics_result_has_no_median_and_says_so() -> None:
    result = _result((), "tool-statistics",
                     Statistics(count=50, mean_ms=2.0, min_ms=1.5, max_ms=3.0, std_ms=0.5))
    assert result.headline_ms == 2.0
    proto = result.to_proto()
    assert list(proto.samples_ms) == []
    assert proto.samples_source == agent_pb2.SAMPLES_SOURCE_TOOL_STATISTICS
    assert proto.timed_inferences == 50
    # never a 0 latency: the median slot holds the tool's mean; p90/p99 are unknown
    assert proto.stats.mean_ms == 2.0 and proto.stats.median_ms == 2.0
    assert proto.stats.p90_ms == 0.0 and proto.stats.p99_ms == 0.0
    assert proto.stats.cv == pytest.approx(0.25)
    assert proto.warnings[0].startswith("tool statistics: benchmark_model gives no per-run times")
    assert "median_ms is its mean" in proto.warnings[0]
    assert proto.warnings[1] == "warm battery: 41.0 °C"
    assert proto.session_create_ms == 12.5 and proto.host_fingerprint == "f" * 16
    assert proto.settings.min_runs == 50 and proto.state_before.temperature_c == 35.0


def test_raw_result_statistics_come_from_the_samples() -> None:
    samples = (1.0, 2.0, 4.0, 3.0)
    result = _result(samples, "raw", Statistics(count=4, mean_ms=2.5))
    proto = result.to_proto()
    assert list(proto.samples_ms) == list(samples)
    assert proto.stats == latency_stats(samples)
    assert proto.samples_source == agent_pb2.SAMPLES_SOURCE_RAW and proto.timed_inferences == 4
    assert result.headline_ms == 2.5  # the median of 1, 2, 3, 4
    assert not any(w.startswith("tool statistics") for w in proto.warnings)
