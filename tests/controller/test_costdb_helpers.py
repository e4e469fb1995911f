"""Hand-built agent results for the cost database tests (no agent needed), and checks
that they look like what an agent returns."""

from __future__ import annotations

import hashlib
import statistics

from fleetnas.api.v1 import agent_pb2


def sha_of(label: str) -> str:
    """A valid model hash derived from a label."""
    return hashlib.sha256(label.encode()).hexdigest()


def resolved_settings(
    *, intra_op_threads: int = 1, method: int = agent_pb2.METHOD_PLAIN, timeout_s: float = 60.0
) -> agent_pb2.BenchmarkSettings:
    """Settings as an agent echoes them: every field set."""
    return agent_pb2.BenchmarkSettings(
        warmup_runs=10,
        min_runs=50,
        min_duration_s=1.0,
        max_runs=1000,
        max_duration_s=10.0,
        intra_op_threads=intra_op_threads,
        inter_op_threads=1,
        providers=["CPUExecutionProvider"],
        graph_optimization=agent_pb2.GRAPH_OPTIMIZATION_ALL,
        input_shapes=[agent_pb2.InputShape(name="input", dims=[1, 3, 32, 32])],
        seed=0,
        profile_runs=10,
        method=method,
        timeout_s=timeout_s,
        memory_cap_bytes=2 << 30,
    )


def make_result(
    label: str = "model-a",
    *,
    samples: list[float] | None = None,
    started_at: float = 1_700_000_000.0,
    settings: agent_pb2.BenchmarkSettings | None = None,
    host_fingerprint: str = "host-1",
    paired: bool = False,
) -> agent_pb2.BenchmarkResult:
    """A complete, plausible ``BenchmarkResult`` for model ``sha_of(label)``."""
    samples = samples if samples is not None else [1.0 + 0.01 * i for i in range(20)]
    ordered = sorted(samples)
    mean = statistics.fmean(samples)
    std = statistics.pstdev(samples)
    settings = settings or resolved_settings(
        method=agent_pb2.METHOD_PAIRED if paired else agent_pb2.METHOD_PLAIN
    )
    before = agent_pb2.DeviceState(
        timestamp=started_at,
        freq_current_mhz=2400.0,
        freq_max_mhz=3000.0,
        temperature_available=True,
        temperature_c=51.5,
        load_1m=0.25,
        cpu_percent=12.0,
        memory_available_bytes=4 << 30,
    )
    after = agent_pb2.DeviceState(
        timestamp=started_at + 2.0,
        freq_current_mhz=2300.0,
        freq_max_mhz=3000.0,
        temperature_available=False,
        load_1m=0.5,
        throttled=True,
    )
    result = agent_pb2.BenchmarkResult(
        model_sha256=sha_of(label),
        settings=settings,
        samples_ms=samples,
        stats=agent_pb2.LatencyStats(
            median_ms=statistics.median(samples),
            mean_ms=mean,
            p90_ms=ordered[int(0.9 * (len(ordered) - 1))],
            p99_ms=ordered[int(0.99 * (len(ordered) - 1))],
            min_ms=ordered[0],
            max_ms=ordered[-1],
            std_ms=std,
            cv=std / mean,
        ),
        session_create_ms=12.5,
        first_run_ms=3.25,
        peak_rss_bytes=123_456_789,
        provider="CPUExecutionProvider",
        state_before=before,
        state_after=after,
        warnings=["throttled after the run"],
        agent_version="0.1.0",
        onnxruntime_version="1.32.0",
        started_at=started_at,
        wall_s=2.0,
        host_fingerprint=host_fingerprint,
    )
    if paired:
        result.paired.CopyFrom(
            agent_pb2.PairedResult(
                reference_name="ref",
                reference_sha256=sha_of("reference"),
                reference_samples_ms=[2.0] * len(samples),
                ratios=[s / 2.0 for s in samples],
                ratio_median=statistics.median(samples) / 2.0,
                reference_calibrated_ms=2.1,
                reference_calibrated_at=started_at - 100.0,
                latency_ms=statistics.median(samples) / 2.0 * 2.1,
                ratio_cv=0.01,
            )
        )
    return result


def test_made_results_have_resolved_settings() -> None:
    result = make_result()
    for field in agent_pb2.BenchmarkSettings.DESCRIPTOR.fields:
        if field.has_presence:
            assert result.settings.HasField(field.name), field.name
    assert result.stats.min_ms <= result.stats.median_ms <= result.stats.max_ms


def test_paired_results_carry_their_details() -> None:
    result = make_result(paired=True)
    assert result.settings.method == agent_pb2.METHOD_PAIRED
    assert result.HasField("paired")
    assert result.paired.latency_ms > 0
