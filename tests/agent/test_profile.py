"""Per-operator profiles: onnxruntime's profiling JSON, parsed into per-node and per-op-type
times, on real workers; the summary itself on constructed inputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import onnxruntime
import pytest

from fleetnas.agent.backends._profile import (
    NodeTime,
    build_profile,
    ort_run_ms,
    parse_ort_profile,
)
from fleetnas.agent.reference import CalibrationStore
from fleetnas.agent.runner import BenchmarkRunner
from fleetnas.agent.settings import resolve_settings
from fleetnas.api.v1 import agent_pb2
from tests import onnx_models

CPU = "CPUExecutionProvider"


def settings(**fields: object) -> agent_pb2.BenchmarkSettings:
    values: dict[str, object] = dict(warmup_runs=5, min_runs=20, max_runs=200,
                                     min_duration_s=0.0, max_duration_s=5.0)  # fmt: skip
    values.update(fields)
    return resolve_settings(agent_pb2.BenchmarkSettings(**values), max_timeout_s=120.0,
                            memory_cap_bytes=1024**3,
                            available_providers=onnxruntime.get_available_providers())  # fmt: skip


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchmarkRunner]:
    folder = tmp_path_factory.mktemp("profile")
    r = BenchmarkRunner(scratch_dir=folder / "scratch", max_calibration_cv=10.0,
                        calibration_store=CalibrationStore(folder / "cal.json"))  # fmt: skip
    yield r
    r.close()


@pytest.fixture(scope="module")
def three_layers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 × (Conv 3×3 + Relu) on 32 channels at 32×32, ~1 ms a run on one x86 core.

    Neither too short nor too long: on a host shared with other work a run of
    several ms is preempted almost every time, on a different node each time,
    and the sum of per-node medians then falls below the median run (measured
    here at load 10: 0.8-1.1 for a 1 ms model); at ~0.25 ms (16 channels) the
    profiler's own per-node bookkeeping put the sum 6-14 % above the median in
    3 of the last 4 full-suite runs (the last one on a quiet host).
    """
    path = tmp_path_factory.mktemp("models") / "three.model"
    path.write_bytes(onnx_models.conv_net(32, 32, 3, named=True))
    return path


def test_node_times_of_a_3_layer_model_sum_to_its_latency(runner, three_layers) -> None:
    # Many runs on both sides, so each median spans some of the host's load bursts; a
    # measurement the agent itself flags as noisy (cv over 5%: the host was busy), or whose
    # profile and timed loop are more than 10% apart, is taken again, at most twice, and
    # the last one is judged (issue 15: re-measure when busy; a clean-clone CI run under
    # load judged the steadiest of three, whose profile was 24% off while the noisier two
    # agreed within 3%).
    s = settings(profile=True, profile_runs=500, min_runs=1000, max_runs=1000)
    attempts = []
    for _ in range(3):
        attempts.append(runner.run(three_layers, "3" * 64, s))
        last = attempts[-1]
        noisy = any(w.startswith("noisy measurement") for w in last.warnings)
        if not noisy and last.profile.total_ms == pytest.approx(last.stats.median_ms, rel=0.10):
            break
    result = attempts[-1]
    profile = result.profile
    assert profile.source == agent_pb2.PROFILE_SOURCE_ORT_PROFILING
    assert profile.profiled_runs == 500
    assert profile.total_ms == pytest.approx(sum(op.median_ms for op in profile.operators))
    # the nodes account for the latency the timed loop measured, in unprofiled runs of its own
    assert profile.total_ms == pytest.approx(result.stats.median_ms, rel=0.10), [
        (r.stats.median_ms, r.stats.cv, r.profile.total_ms) for r in attempts]
    assert result.timed_inferences == len(result.samples_ms) == 1000
    assert profile.run_median_ms > 0  # profiled runs are slower: the profiler's bookkeeping


def test_the_provider_and_op_type_columns_name_what_ran_each_node(runner, three_layers) -> None:
    unoptimised = settings(profile=True, profile_runs=3,
                           graph_optimization=agent_pb2.GRAPH_OPTIMIZATION_DISABLE)  # fmt: skip
    profile = runner.run(three_layers, "3" * 64, unoptimised).profile
    # without graph optimisation onnxruntime runs the model's own nodes, in order
    assert [(op.node_name, op.op_type) for op in profile.operators] == [
        ("conv0", "Conv"), ("relu0", "Relu"), ("conv1", "Conv"), ("relu1", "Relu"),
        ("conv2", "Conv"), ("relu2", "Relu"), ("pool", "GlobalAveragePool"),
    ]  # fmt: skip
    assert {op.provider for op in profile.operators} == {CPU}
    assert all(op.runs == 3 and op.median_ms > 0 for op in profile.operators)
    by_type = {t.op_type: t for t in profile.op_types}
    assert by_type["Conv"].nodes == 3 and by_type["Relu"].nodes == 3
    assert profile.op_types[0].op_type == "Conv"  # largest first: convolutions dominate
    assert sum(t.share for t in profile.op_types) == pytest.approx(1.0)
    # with optimisation, the fused kernels are what ran, and the profile says so
    fused = runner.run(three_layers, "3" * 64, settings(profile=True, profile_runs=3)).profile
    assert "Relu" not in {op.op_type for op in fused.operators}
    assert {op.provider for op in fused.operators} == {CPU}


def test_no_profile_unless_asked(runner, three_layers) -> None:
    result = runner.run(three_layers, "3" * 64, settings(min_runs=5, max_runs=5))
    assert not result.HasField("profile")


def test_a_paired_benchmark_profiles_the_candidate(runner, three_layers) -> None:
    s = settings(profile=True, profile_runs=2, method=agent_pb2.METHOD_PAIRED, min_runs=5,
                 max_runs=5)  # fmt: skip
    result = runner.run(three_layers, "3" * 64, s)
    assert result.HasField("paired")
    # the candidate's kernels (the fused nodes take their outputs' names), not the reference's
    plain = runner.run(three_layers, "3" * 64, settings(profile=True, profile_runs=2, min_runs=5,
                                                        max_runs=5)).profile  # fmt: skip
    assert [op.node_name for op in result.profile.operators] == [
        op.node_name for op in plain.operators]
    assert "r0_nchwc" in {op.node_name for op in plain.operators}
    assert result.profile.profiled_runs == 2


# -- the summary and the parser, on constructed inputs -------------------------------------


def _event(cat: str, name: str, ts: float, dur: float, **args: str) -> dict[str, object]:
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "ph": "X", "pid": 1, "tid": 1,
            "args": args}  # fmt: skip


def test_the_parser_splits_node_events_by_run_and_skips_warm_up() -> None:
    events = [_event("Session", "session_initialization", 0, 100)]
    for run, start in enumerate((1000, 2000, 3000)):
        events.append(_event("Session", "model_run", start, 500))
        events.append(_event("Node", "a_fence_before", start + 1, 1, op_name="Conv"))
        events.append(_event("Node", "a_kernel_time", start + 10, 100 + run, op_name="Conv",
                             provider=CPU))  # fmt: skip
        events.append(_event("Node", "b_kernel_time", start + 200, 50, op_name="Relu",
                             provider="CUDAExecutionProvider"))  # fmt: skip
    runs = parse_ort_profile(json.dumps(events), skip_runs=1)
    assert runs == [
        [NodeTime("a", "Conv", CPU, 0.101), NodeTime("b", "Relu", "CUDAExecutionProvider", 0.05)],
        [NodeTime("a", "Conv", CPU, 0.102), NodeTime("b", "Relu", "CUDAExecutionProvider", 0.05)],
    ]
    with pytest.raises(ValueError, match="not JSON"):
        parse_ort_profile("{oops")
    events.insert(1, _event("Session", "model_run", 500, 250))  # out of order: sorted by ts
    assert ort_run_ms(json.dumps(events)) == [0.25, 0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="not a list"):
        ort_run_ms("{}")


def test_the_summary_takes_medians_per_node_and_sums_op_types() -> None:
    runs = [[NodeTime("c1", "Conv", CPU, ms), NodeTime("r1", "Relu", CPU, 0.5),
             NodeTime("c2", "Conv", CPU, 2.0)] for ms in (1.0, 3.0, 2.0)]  # fmt: skip
    runs.append([NodeTime("c1", "Conv", CPU, 9.0)])  # a run where only c1 was seen
    profile = build_profile(runs, [4.0, 5.0, 6.0, 9.5], agent_pb2.PROFILE_SOURCE_ORT_PROFILING)
    assert [(o.node_name, o.median_ms, o.runs) for o in profile.operators] == [
        ("c1", 2.5, 4), ("r1", 0.5, 3), ("c2", 2.0, 3)]
    assert profile.total_ms == pytest.approx(5.0)
    assert profile.run_median_ms == pytest.approx(5.5)
    assert [(t.op_type, t.nodes, t.total_ms) for t in profile.op_types] == [
        ("Conv", 2, 4.5), ("Relu", 1, 0.5)]
    assert profile.operators[0].share == pytest.approx(0.5)
    with pytest.raises(ValueError):
        build_profile([], [], agent_pb2.PROFILE_SOURCE_ORT_PROFILING)
