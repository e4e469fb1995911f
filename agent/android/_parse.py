"""Parsers for what the phone-side benchmark tools print.

Two tools, several generations each (all recorded in
``tests/agent/android/data/``, sources in its README):

* LiteRT/TFLite ``benchmark_model``. Every generation prints a "Running
  benchmark for ..." line per phase followed by one ``count=`` line of
  statistics in microseconds (``count=N first= curr= min= max= avg= std=``;
  ``count=N curr=X(all same)`` or ``count=1 curr=X`` when every run took the
  same time; ``count=0`` for none); the first phase is the warm-up, the
  second the timed runs. Newer builds prefix lines with ``INFO: ``; the
  summary line changed from ``Average inference timings in us: Warmup: W,
  Init: I, no stats: A`` (or ``Inference: A``) to ``Inference timings in
  us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): A``;
  the memory line from ``Peak memory footprint (MB): init= overall=`` to
  ``Memory footprint delta from the start of the tool (MB): ...``. LiteRT
  2.x (CompiledModel) builds add a ``BENCHMARK RESULTS`` block in ms. The
  tool prints **no per-run samples**: only these statistics.
  ``--enable_op_profiling`` tables end in their own ``Timings
  (microseconds): count=...`` line, which is *not* the inference phase and
  is ignored here.
* ``onnxruntime_perf_test``: summary lines (``Session creation time cost:
  X s``, ``Average inference time cost: X ms``, ...; older builds print
  ``Total time cost:``/``Total iterations:`` and ``P50 Latency is Xsec``,
  newer ``P50 Latency: X s``; some print no space after the colon). With a
  result file it writes **one CSV row per run**: ``model,time_s,peak_ws,
  avg_cpu,run`` (since microsoft/onnxruntime#26313 ``model,submission_s,
  total_s,peak_ws,avg_cpu,run``, where ``total_s`` is the run's time).

Parsers never guess: a figure the output does not hold is ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fleetnas.agent.android import _errors
from fleetnas.agent.android._adb import last_lines

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STAT_FIELD = re.compile(rf"\b(count|first|curr|min|max|avg|std)=({_NUMBER})")
_PROFILE_STAT_LINE = re.compile(r"Timings \(microseconds\):|Memory \(bytes\):")


@dataclass(frozen=True)
class RunStats:
    """One ``count=`` line of ``benchmark_model``; times in microseconds.

    ``all_same``: the tool said every run took ``curr_us`` (then min, max
    and avg equal it and std is 0).
    """

    count: int
    first_us: float | None = None
    curr_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    avg_us: float | None = None
    std_us: float | None = None
    all_same: bool = False


@dataclass(frozen=True)
class BenchmarkModelReport:
    """What one ``benchmark_model`` run printed (µs unless named otherwise)."""

    warmup: RunStats | None = None
    inference: RunStats | None = None
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    init_footprint_mb: float | None = None
    overall_footprint_mb: float | None = None
    peak_memory_mb: float | None = None
    model_size_mb: float | None = None
    num_threads: int | None = None
    xnnpack: bool = False
    litert_summary: bool = False


@dataclass(frozen=True)
class PerfTestReport:
    """What one ``onnxruntime_perf_test`` run printed.

    ``latencies_s`` maps ``min``, ``max``, ``p50``, ``p90``, ``p95``,
    ``p99``, ``p999`` to seconds (only those printed: ``-s`` asks for them).
    """

    session_creation_s: float | None = None
    first_inference_ms: float | None = None
    total_inference_s: float | None = None
    requests: int | None = None
    average_ms: float | None = None
    run_time_s: float | None = None
    inferences_per_s: float | None = None
    avg_cpu_percent: float | None = None
    peak_working_set_bytes: int | None = None
    latencies_s: dict[str, float] = field(default_factory=dict)


def parse_run_stats(line: str) -> RunStats | None:
    """Parse a ``count=`` statistics line; None if the line holds none."""
    values = {key: float(value) for key, value in _STAT_FIELD.findall(line)}
    if "count" not in values:
        return None
    count = int(values["count"])
    curr = values.get("curr")
    all_same = "(all same)" in line or (count == 1 and curr is not None)
    if all_same and curr is not None:
        return RunStats(count=count, first_us=curr, curr_us=curr, min_us=curr, max_us=curr,
                        avg_us=curr, std_us=0.0, all_same=True)
    return RunStats(
        count=count,
        first_us=values.get("first"),
        curr_us=curr,
        min_us=values.get("min"),
        max_us=values.get("max"),
        avg_us=values.get("avg"),
        std_us=values.get("std"),
    )


def _float_after(pattern: str, text: str) -> float | None:
    match = re.search(pattern + rf"\s*({_NUMBER})", text)
    return float(match.group(1)) if match else None


def _phase_stats(lines: list[str]) -> list[RunStats]:
    """The ``count=`` line that follows each "Running benchmark for" line, in order."""
    phases: list[RunStats] = []
    waiting = False
    for line in lines:
        if "Running benchmark for" in line:
            waiting = True
            continue
        if waiting and "count=" in line and not _PROFILE_STAT_LINE.search(line):
            stats = parse_run_stats(line)
            if stats is not None:
                phases.append(stats)
                waiting = False
    return phases


def parse_benchmark_model(text: str) -> BenchmarkModelReport:
    """Parse ``benchmark_model`` output of any generation (see the module docstring).

    Raises ToolOutputUnreadable when the output holds neither the timed
    phase's statistics nor an inference average (the run did not finish).
    """
    lines = text.splitlines()
    phases = _phase_stats(lines)
    summary = next((ln for ln in lines if "nference timings in us:" in ln), "")
    values = dict(
        init_us=_float_after(r"Init:", summary),
        first_inference_us=_float_after(r"First inference:", summary),
        warmup_avg_us=_float_after(r"Warmup(?: \(avg\))?:", summary),
        inference_avg_us=_first(
            _float_after(r"Inference(?: \(avg\))?:", summary),
            _float_after(r"no stats:", summary),
        ),
    )
    litert = _litert_summary(text)
    for key, value in litert.items():
        if values.get(key) is None:
            values[key] = value
    inference = phases[1] if len(phases) > 1 else None
    if inference is None and "inference" in litert:
        inference = litert["inference"]
    if inference is None and values["inference_avg_us"] is None:
        raise _errors.ToolOutputUnreadable(
            "benchmark_model printed no statistics of its timed runs; its last lines:\n"
            + last_lines(text, 15)
        )
    memory = next((ln for ln in lines if re.search(r"(?i)memory footprint.*\(MB\)", ln)), "")
    return BenchmarkModelReport(
        warmup=phases[0] if phases else None,
        inference=inference,
        init_us=values["init_us"],
        first_inference_us=values["first_inference_us"],
        warmup_avg_us=values["warmup_avg_us"],
        inference_avg_us=values["inference_avg_us"],
        init_footprint_mb=_first(_float_after(r"init=", memory), litert.get("init_footprint_mb")),
        overall_footprint_mb=_first(
            _float_after(r"overall=", memory), litert.get("overall_footprint_mb")
        ),
        peak_memory_mb=_first(
            _float_after(r"peak memory footprint \(MB\) via periodic monitoring:", text),
            litert.get("peak_memory_mb"),
        ),
        model_size_mb=_float_after(r"The input model file size \(MB\):", text),
        num_threads=_int_or_none(_float_after(r"#threads used for CPU inference: \[", text)),
        xnnpack="XNNPACK delegate" in text,
        litert_summary=bool(litert),
    )


def _litert_summary(text: str) -> dict:
    """The LiteRT 2.x ``BENCHMARK RESULTS`` block (ms), converted to µs; empty if absent."""
    if "BENCHMARK RESULTS" not in text:
        return {}

    def ms(label: str) -> float | None:
        value = _float_after(label, text)
        return None if value is None else value * 1000.0

    found: dict = {}
    avg = re.search(rf"Inference \(avg\):\s*({_NUMBER}) ms \((\d+) runs\)", text)
    if avg:
        found["inference"] = RunStats(
            count=int(avg.group(2)),
            avg_us=float(avg.group(1)) * 1000.0,
            min_us=ms(r"Inference \(min\):"),
            max_us=ms(r"Inference \(max\):"),
            std_us=ms(r"Inference \(std\):"),
        )
        found["inference_avg_us"] = float(avg.group(1)) * 1000.0
    for key, label in (("init_us", r"Model initialization:"),
                       ("first_inference_us", r"Warmup \(first\):")):
        value = ms(label)
        if value is not None:
            found[key] = value
    for key, label in (("init_footprint_mb", r"Init footprint:"),
                       ("overall_footprint_mb", r"Overall footprint:"),
                       ("peak_memory_mb", r"Peak memory:")):
        value = _float_after(label, text)
        if value is not None:
            found[key] = value
    return found


def _first(*values: float | None) -> float | None:
    """The first value that is not None (0.0 is a value)."""
    return next((v for v in values if v is not None), None)


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


_PERF_FIELDS: tuple[tuple[str, str], ...] = (
    ("session_creation_s", r"Session creation time cost:"),
    ("first_inference_ms", r"First inference time cost:"),
    ("total_inference_s", r"Total (?:inference )?time cost:"),
    ("average_ms", r"Average (?:inference )?time cost:"),
    ("run_time_s", r"Total (?:inference )?run time:"),
    ("inferences_per_s", r"Number of inferences per second:"),
    ("avg_cpu_percent", r"Avg CPU usage:"),
)
_LATENCY = re.compile(rf"\b(Min|Max|P50|P90|P95|P99|P999) Latency(?: is|:)\s*({_NUMBER})\s*s")


def parse_perf_test(text: str) -> PerfTestReport:
    """Parse ``onnxruntime_perf_test`` console output of any generation.

    Raises ToolOutputUnreadable when it holds no average and no latency
    figure (the run did not finish).
    """
    values: dict = {key: _float_after(label, text) for key, label in _PERF_FIELDS}
    requests = _float_after(r"Total (?:inference requests|iterations):", text)
    peak = _float_after(r"Peak working set size:", text)
    latencies = {name.lower(): float(value) for name, value in _LATENCY.findall(text)}
    if values["average_ms"] is None and not latencies:
        raise _errors.ToolOutputUnreadable(
            "onnxruntime_perf_test printed no timing; its last lines:\n" + last_lines(text, 15)
        )
    return PerfTestReport(
        requests=_int_or_none(requests),
        peak_working_set_bytes=_int_or_none(peak),
        latencies_s=latencies,
        **values,
    )


def parse_perf_test_csv(text: str) -> list[float]:
    """Per-run times in **milliseconds** from a ``onnxruntime_perf_test`` result file.

    Rows of 5 fields take the time from field 2, rows of 6 (onnxruntime
    with #26313) from field 3 (the run's total time). Statistics lines that
    ``-s`` appends after the rows are skipped. Raises ToolOutputUnreadable
    when the run indexes are not 0, 1, 2, ... (a file left over from an
    earlier run was appended to) or a row's time is not a number.
    """
    samples: list[float] = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) not in (5, 6):
            continue
        try:
            index = int(fields[-1])
            seconds = float(fields[1] if len(fields) == 5 else fields[2])
        except ValueError as exc:
            raise _errors.ToolOutputUnreadable(
                f"onnxruntime_perf_test result row {line[:120]!r} is not numeric"
            ) from exc
        if index != len(samples):
            raise _errors.ToolOutputUnreadable(
                f"onnxruntime_perf_test result file has run {index} where run {len(samples)} "
                "was expected (left over from an earlier run?)"
            )
        samples.append(seconds * 1000.0)
    return samples
