"""The agent's plain-text tables show the new result and description fields as they read."""

from __future__ import annotations

from fleetnas.agent.report import format_description, format_result
from fleetnas.api.v1 import agent_pb2


def test_result_table_shows_runtime_defaults_gpu_memory_and_energy() -> None:
    result = agent_pb2.BenchmarkResult(
        model_format=agent_pb2.MODEL_FORMAT_TFLITE, runtime_version="2.3.0",
        settings=agent_pb2.BenchmarkSettings(runtime="litert", agent_defaults=["providers"]),
        gpu_memory=agent_pb2.GpuMemoryPeak(reason="pid 7 is not among NVML's compute processes"),
        energy=[
            agent_pb2.Energy(source="nvml", scope="GPU 0", method="nvml-energy-counter",
                             readable=False, reason="no timed-loop interval from the runtime"),
            agent_pb2.Energy(source="rapl", scope="package-0", method="rapl-counter",
                             readable=True, mj_per_inference=1.5, uncertainty_mj=0.25,
                             mean_power_w=12.0),
        ],
    )  # fmt: skip
    text = " ".join(format_result(result).split())
    assert "litert 2.3.0 (TFLite)" in text
    assert "agent defaults providers" in text
    assert "peak GPU memory n/a (pid 7 is not among" in text
    assert "nvml: GPU 0 (nvml-energy-counter): unreadable: no timed-loop interval" in text
    assert "rapl: package-0 (rapl-counter): 1.500 ± 0.250 mJ/inference, 12.00 W" in text


def test_description_table_shows_runtimes_telemetry_and_defaults() -> None:
    desc = agent_pb2.DeviceDescription(
        gpus=[agent_pb2.GpuInfo(name="NVIDIA A10", compute_capability="8.6",
                                cuda_driver_version="12.4")],
        runtimes=[agent_pb2.RuntimeInfo(name="onnxruntime", available=True),
                  agent_pb2.RuntimeInfo(name="litert", reason="ai-edge-litert is not installed")],
        telemetry=[agent_pb2.TelemetrySourceInfo(name="rapl", reason="no RAPL: no zone")],
        defaults=agent_pb2.DeviceDefaults(intra_op_threads=4, device_class="pi4"),
    )  # fmt: skip
    text = " ".join(format_description(desc).split())  # column widths aside
    assert "NVIDIA A10 (sm 8.6, CUDA 12.4)" in text
    assert "runtime litert not available: ai-edge-litert is not installed" in text
    assert "runtime onnxruntime" not in text  # it has its own row
    assert "telemetry rapl no: no RAPL: no zone" in text
    assert "defaults class pi4, threads 4, providers -" in text


def test_a_tool_statistics_result_shows_no_median_and_no_percentiles() -> None:
    result = agent_pb2.BenchmarkResult(
        samples_source=agent_pb2.SAMPLES_SOURCE_TOOL_STATISTICS, timed_inferences=50,
        stats=agent_pb2.LatencyStats(median_ms=2.5, mean_ms=2.5, min_ms=2.0, max_ms=3.0),
    )  # fmt: skip
    text = " ".join(format_result(result).split())
    assert "runs 50 (the tool's statistics, no samples)" in text
    assert "median n/a (the tool gives none; median_ms holds its mean)" in text
    assert "mean 2.5000 ms" in text and "p90 / p99 n/a" in text
    raw = " ".join(format_result(agent_pb2.BenchmarkResult(
        samples_source=agent_pb2.SAMPLES_SOURCE_RAW, samples_ms=[1.0, 2.0],
        stats=agent_pb2.LatencyStats(median_ms=1.5))).split())
    assert "runs 2" in raw and "median 1.5000 ms" in raw
