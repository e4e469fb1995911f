"""``benchmark_model --enable_op_profiling=true`` tables, parsed from real recorded output.

Transcripts and their sources: ``data/README.md``. The stand-in's own tables are covered
end to end in ``test_bench.py`` / ``test_agent_over_adb.py``.
"""

from __future__ import annotations

import pytest

from fleetnas.agent.android import ToolOutputUnreadable, parse_benchmark_model
from fleetnas.agent.android._op_profile import (
    CPU_KERNELS,
    ProfileRow,
    parse_op_profile,
    provider_of,
    to_operator_profile,
)
from fleetnas.api.v1 import agent_pb2
from tests.agent.android.conftest import DATA

MOBILENET = DATA / "benchmark_model_op_profile_mobilenet_riscv.txt"
XNNPACK_HEAD = DATA / "benchmark_model_op_profile_xnnpack_x86_head.txt"


def test_the_regular_runs_profile_of_a_real_mobilenet_run() -> None:
    text = MOBILENET.read_text()
    report = parse_op_profile(text)
    assert len(report.rows) == report.nodes_executed == 31  # not the init profile's row
    assert "AllocateTensors" not in {r.node_type for r in report.rows}
    assert report.rows[0].name == "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0"
    assert report.rows[0].start_ms == pytest.approx(0.066)
    assert (report.rows[0].first_ms, report.rows[0].avg_ms) == (87.754, 60.957)
    assert report.runs == 50 and report.run_avg_ms == pytest.approx(2949.9)
    assert sum(r.share for r in report.rows) == pytest.approx(1.0, abs=0.005)
    counts = {t.node_type: t.count for t in report.by_type}
    assert counts == {"CONV_2D": 15, "DEPTHWISE_CONV_2D": 13, "AVERAGE_POOL_2D": 1,
                      "SOFTMAX": 1, "SQUEEZE": 1}
    for summary in report.by_type:  # the tool's own summary agrees with its rows
        rows = [r.per_run_ms for r in report.rows if r.node_type == summary.node_type]
        assert sum(rows) == pytest.approx(summary.avg_ms, abs=0.01 * len(rows))
    # the timed-run parser still takes the timed phase, not the profiler's Timings line
    timed = parse_benchmark_model(text).inference
    assert timed is not None and timed.count == 50 and timed.avg_us == pytest.approx(2.95034e6)

    profile = to_operator_profile(report, delegate="")
    assert profile.source == agent_pb2.PROFILE_SOURCE_BENCHMARK_MODEL
    assert profile.times_are_means and profile.profiled_runs == 50
    assert len(profile.operators) == 31 and {o.runs for o in profile.operators} == {50}
    assert [t.op_type for t in profile.op_types][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert profile.op_types[0].nodes == 15
    assert sum(o.share for o in profile.operators) == pytest.approx(1.0)
    assert profile.total_ms == pytest.approx(profile.run_median_ms, rel=0.001)
    assert {o.provider for o in profile.operators} == {CPU_KERNELS}
    assert len({o.node_name for o in profile.operators}) == 31


def test_a_newer_build_with_xnnpack_per_op_rows_and_no_start_column() -> None:
    report = parse_op_profile(XNNPACK_HEAD.read_text())
    assert len(report.rows) == 11 and report.runs is None and report.by_type == ()
    assert all(r.start_ms is None for r in report.rows)
    assert report.rows[2].node_type == "Convolution (NHWC, QC8) DWConv"
    assert report.rows[2].name == "Delegate/Convolution (NHWC, QC8) DWConv:1"
    assert report.rows[2].times_called == 13
    # [%] is the node's share of all time per run, i.e. of avg ms x times called: the
    # ratio is the same for every row only if times called multiplies the per-call mean
    ratios = [r.per_run_ms / r.share for r in report.rows]
    assert max(ratios) / min(ratios) < 1.01
    profile = to_operator_profile(report, delegate="XNNPACK")
    assert [o.provider for o in profile.operators] == [CPU_KERNELS] + ["XNNPACK"] * 10
    assert profile.operators[2].median_ms == pytest.approx(0.051 * 13)
    assert profile.run_median_ms == pytest.approx(profile.total_ms)  # no Timings line: the sum
    unnamed = to_operator_profile(report, delegate="")
    assert unnamed.operators[1].provider == "delegate"


@pytest.mark.parametrize(("node_type", "provider"), [
    ("TfLiteXNNPackDelegate", "XNNPACK"), ("TfLiteNnapiDelegate", "NNAPI"),
    ("TfLiteGpuDelegateV2", "GPU"), ("DELEGATE", "XNNPACK"), ("CONV_2D", CPU_KERNELS),
])
def test_delegate_nodes_name_their_delegate(node_type: str, provider: str) -> None:
    row = ProfileRow(node_type=node_type, name="[y]:3", first_ms=1.0, avg_ms=1.0, share=1.0,
                     times_called=1)
    assert provider_of(row, "XNNPACK") == provider


@pytest.mark.parametrize(("transcript", "fragment"), [
    ("benchmark_model_tf_readme_op_profile_tail.txt", "Regular Benchmark Runs"),  # no Run Order
    ("benchmark_model_tf42507_android.txt", "Regular Benchmark Runs"),  # cut in the init part
    ("benchmark_model_tf61946_linux.txt", "--enable_op_profiling=true"),  # profiling off
])
def test_output_without_the_regular_runs_table_is_unreadable(transcript: str,
                                                              fragment: str) -> None:
    with pytest.raises(ToolOutputUnreadable) as info:
        parse_op_profile((DATA / transcript).read_text())
    assert fragment in info.value.message


def test_a_malformed_row_is_named() -> None:
    lines = MOBILENET.read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if "Conv2d_2_depthwise/Relu6]:3" in ln)
    lines[at] = "\t       DEPTHWISE_CONV_2D\t  oops\t[broken]:3"
    with pytest.raises(ToolOutputUnreadable) as info:
        parse_op_profile("\n".join(lines))
    assert "[broken]:3" in info.value.message and "7 numbers" in info.value.message
