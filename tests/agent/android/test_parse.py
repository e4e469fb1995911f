"""The tool-output parsers against real recorded transcripts (data/README.md) and edge forms."""

from __future__ import annotations

import pytest

from fleetnas.agent.android import (
    RunStats,
    ToolOutputUnreadable,
    parse_benchmark_model,
    parse_devices,
    parse_perf_test,
    parse_perf_test_csv,
    parse_run_stats,
)
from tests.agent.android.conftest import DATA


def read(name: str) -> str:
    return (DATA / name).read_text()


# -- benchmark_model ---------------------------------------------------------------
def test_android_2020_build_without_prefix_and_old_memory_line() -> None:
    report = parse_benchmark_model(read("benchmark_model_tf42507_android.txt"))
    assert report.warmup == RunStats(count=15, first_us=49060, curr_us=33682, min_us=32825,
                                     max_us=49060, avg_us=34825.1, std_us=3930)
    assert report.inference == RunStats(count=50, first_us=32891, curr_us=33978, min_us=32641,
                                        max_us=34005, avg_us=33209.4, std_us=450)
    assert (report.init_us, report.first_inference_us) == (855, 49060)
    assert (report.warmup_avg_us, report.inference_avg_us) == (34825.1, 33209.4)
    assert (report.init_footprint_mb, report.overall_footprint_mb) == (0.0, 12.8672)
    assert report.num_threads == 4
    assert report.model_size_mb == 0.004448
    assert not report.xnnpack


def test_info_prefixed_build_with_a_pasted_escape_before_a_line() -> None:
    report = parse_benchmark_model(read("benchmark_model_tf62775_info_prefix.txt"))
    assert report.warmup is not None and report.warmup.count == 132
    assert report.inference == RunStats(count=261, first_us=3937, curr_us=3959, min_us=3190,
                                        max_us=6333, avg_us=3790.92, std_us=358)
    assert report.init_us == 630 and report.first_inference_us == 3678
    assert report.xnnpack and report.num_threads == 1
    assert report.overall_footprint_mb is None  # that line is not in the transcript


def test_memory_delta_line_of_the_info_generation() -> None:
    report = parse_benchmark_model(read("benchmark_model_tf61946_linux.txt"))
    assert report.inference is not None and report.inference.avg_us == 116066
    assert (report.init_footprint_mb, report.overall_footprint_mb) == (3.75, 12.1914)
    assert report.num_threads is None


def test_xnnpack_build_on_a_pi() -> None:
    report = parse_benchmark_model(read("benchmark_model_xnnpack999_pi.txt"))
    assert report.xnnpack
    assert report.inference is not None
    assert (report.inference.count, report.inference.max_us) == (50, 113361)
    assert report.init_us == 49438


def test_oldest_generation_with_a_single_warmup_run() -> None:
    report = parse_benchmark_model(read("benchmark_model_deepspeech1850_pixel2.txt"))
    assert report.warmup == RunStats(count=1, first_us=581397, curr_us=581397, min_us=581397,
                                     max_us=581397, avg_us=581397, std_us=0.0, all_same=True)
    assert report.inference is not None and report.inference.avg_us == 479385
    assert report.init_us == 38631
    assert report.inference_avg_us == 479385  # "no stats: 479385"
    assert report.first_inference_us is None  # this generation does not print it


def test_2018_build_without_terminate_clause() -> None:
    report = parse_benchmark_model(read("benchmark_model_yuenshome77_android.txt"))
    assert report.warmup is not None and report.warmup.count == 7
    assert report.inference is not None and report.inference.std_us == 39
    assert report.warmup_avg_us == 76605.9 and report.init_us == 9933


def test_op_profiling_timings_line_is_not_the_inference_phase() -> None:
    report = parse_benchmark_model(read("benchmark_model_tf_readme_op_profile_tail.txt"))
    assert report.inference is None  # "Timings (microseconds): count=50 ..." is the profiler's
    assert report.inference_avg_us == 79760.9
    assert report.init_us == 38467


def test_litert_2x_summary_block() -> None:
    # Written from the format strings of litert/tools/benchmark_litert_model.h (no posted
    # output found), with the LITERT_LOG prefix the wheel's own logs carry.
    text = "\n".join([
        "INFO: [benchmark_litert_model.cc:120] ",
        "========== BENCHMARK RESULTS ==========",
        "INFO: [benchmark_litert_model.h:80] Model initialization: 12.50 ms",
        "INFO: [benchmark_litert_model.h:81] Warmup (first):       3.25 ms",
        "INFO: [benchmark_litert_model.h:82] Warmup (avg):         2.50 ms (10 runs)",
        "INFO: [benchmark_litert_model.h:83] Inference (avg):      2.00 ms (50 runs)",
        "INFO: [benchmark_litert_model.h:84] Inference (min):      1.75 ms",
        "INFO: [benchmark_litert_model.h:85] Inference (max):      2.60 ms",
        "INFO: [benchmark_litert_model.h:86] Inference (std):      0.20",
        "INFO: Memory Usage:",
        "INFO: [benchmark_litert_model.h:90] Init footprint:       4.00 MB",
        "INFO: [benchmark_litert_model.h:91] Overall footprint:    9.50 MB",
        "======================================",
    ])
    report = parse_benchmark_model(text)
    assert report.litert_summary
    assert report.inference == RunStats(count=50, avg_us=2000.0, min_us=1750.0, max_us=2600.0,
                                        std_us=200.0)
    assert report.init_us == 12500.0 and report.first_inference_us == 3250.0
    assert (report.init_footprint_mb, report.overall_footprint_mb) == (4.0, 9.5)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("count=0", RunStats(count=0)),
        ("INFO: count=5 curr=12(all same)",
         RunStats(count=5, first_us=12, curr_us=12, min_us=12, max_us=12, avg_us=12, std_us=0.0,
                  all_same=True)),
        ("curr=7 count=3 min=5 max=9 avg=7 std=1.63",  # an older TF's field order
         RunStats(count=3, curr_us=7, min_us=5, max_us=9, avg_us=7, std_us=1.63)),
        ("count=2 first=1.5e3 curr=2000 min=1500 max=2000 avg=1750 std=250",
         RunStats(count=2, first_us=1500, curr_us=2000, min_us=1500, max_us=2000, avg_us=1750,
                  std_us=250)),
        ("Running benchmark for at least 50 iterations", None),
    ],
)
def test_count_line_forms(line: str, expected: RunStats | None) -> None:
    assert parse_run_stats(line) == expected


def test_output_cut_off_before_the_timed_runs_is_unreadable_with_its_tail() -> None:
    text = read("benchmark_model_tf42507_android.txt").split("Running benchmark for at least 50")[0]
    text = text.replace("Inference timings", "cut")
    with pytest.raises(ToolOutputUnreadable) as caught:
        parse_benchmark_model(text + "ERROR: tensor allocation failed\n")
    assert "no statistics of its timed runs" in caught.value.message
    assert "ERROR: tensor allocation failed" in caught.value.message


# -- onnxruntime_perf_test -------------------------------------------------------------
def test_perf_test_android_acl_run() -> None:
    report = parse_perf_test(read("perf_test_ort4647_android.txt"))
    assert report.session_creation_s == 0.127918
    assert report.total_inference_s == 1.44871 and report.requests == 10
    assert report.average_ms == 144.871 and report.run_time_s == 1.44916
    assert report.avg_cpu_percent == 68 and report.peak_working_set_bytes == 158171136
    assert report.latencies_s == {}


def test_perf_test_without_space_after_colons() -> None:
    report = parse_perf_test(read("perf_test_ort2798_no_space.txt"))
    assert (report.session_creation_s, report.average_ms, report.requests) == (1.84149, 734.606, 1)


def test_perf_test_old_wording_and_latency_is_sec() -> None:
    report = parse_perf_test(read("perf_test_ort17313_old_stats.txt"))
    assert report.requests == 1000 and report.average_ms == 58.8053
    assert report.latencies_s == {"min": 0.0559777, "max": 0.0623472, "p50": 0.0587108,
                                  "p90": 0.0599845, "p95": 0.0605676, "p99": 0.0619517,
                                  "p999": 0.0623472}


def test_perf_test_current_latency_form_and_readme_typo() -> None:
    text = "Average inference time cost: 1.5 ms\nP50 Latency: 0.0015 s\nP999 Latency is 0.002se\n"
    assert parse_perf_test(text).latencies_s == {"p50": 0.0015, "p999": 0.002}


def test_perf_test_that_printed_no_timing_is_unreadable() -> None:
    with pytest.raises(ToolOutputUnreadable, match="printed no timing"):
        parse_perf_test("Setting intra_op_num_threads to 1\nSession creation time cost: 0.1 s\n")


def test_result_file_rows_old_and_new_columns_and_appended_statistics() -> None:
    old = "m,0.0012,5000,40,0\nm,0.0014,5000,40,1\n\nMin Latency is 0.0012sec\n"
    assert parse_perf_test_csv(old) == pytest.approx([1.2, 1.4])
    # microsoft/onnxruntime#26313: model,submission,total,peak,cpu,run — the total is the run
    new = "m,0.0001,0.0021,5000,40,0\nm,0.0001,0.0023,5000,40,1\n"
    assert parse_perf_test_csv(new) == pytest.approx([2.1, 2.3])


def test_result_file_appended_to_by_an_earlier_run_is_refused() -> None:
    with pytest.raises(ToolOutputUnreadable, match="left over"):
        parse_perf_test_csv("m,0.001,1,1,0\nm,0.001,1,1,1\nm,0.001,1,1,0\n")
    with pytest.raises(ToolOutputUnreadable, match="not numeric"):
        parse_perf_test_csv("m,fast,1,1,0\n")


# -- adb devices -----------------------------------------------------------------------
def test_adb_devices_short_and_long_forms() -> None:
    text = (
        "* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
        "List of devices attached\n"
        "R5CT1234ABC\tdevice\n0123456789ABCDEF\tunauthorized\nemulator-5554\toffline\n"
        "HT7A1B\tno permissions (missing udev rules? user is in the plugdev group); see "
        "[http://developer.android.com/tools/device.html]\n"
        "PIX7                   device usb:1-1 product:panther model:Pixel_7 device:panther "
        "transport_id:3\n\n"
    )
    rows = parse_devices(text)
    assert [(d.serial, d.state) for d in rows] == [
        ("R5CT1234ABC", "device"), ("0123456789ABCDEF", "unauthorized"),
        ("emulator-5554", "offline"), ("HT7A1B", "no permissions"), ("PIX7", "device"),
    ]
    assert rows[-1].details == {"usb": "1-1", "product": "panther", "model": "Pixel_7",
                                "device": "panther", "transport_id": "3"}
