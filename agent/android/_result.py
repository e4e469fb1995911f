"""Settings and results of a phone benchmark, and their v1 wire form.

A result says plainly where its numbers come from (``samples_source``):

* ``raw`` — the tool wrote every timed run (``onnxruntime_perf_test``):
  ``samples_ms`` holds them and the statistics are computed from them
  exactly as for a local benchmark (``agent/stats.py``);
* ``tool-statistics`` — the tool printed only statistics (LiteRT
  ``benchmark_model``): ``samples_ms`` is empty, mean/min/max/std are the
  tool's own, and there is **no median**. Its v1 result says so three
  ways: ``samples_source`` is ``SAMPLES_SOURCE_TOOL_STATISTICS``, the first
  warning begins ``tool statistics:``, and ``LatencyStats.median_ms`` holds
  the tool's **mean** (so that nothing downstream ever takes a 0 for a
  latency), with ``p90_ms``/``p99_ms`` 0 (unknown).

A per-operator profile (``profile_runs`` > 0) comes from a run of its own
after the timed one, so the profiler's bookkeeping never touches the timed
statistics: ``benchmark_model``'s op profiler (its times are the tool's
means: ``OperatorProfile.times_are_means``) or onnxruntime's profiling JSON
from ``onnxruntime_perf_test -p`` (medians, as in-process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from fleetnas.agent.android._cooldown import CoolDownPolicy, CoolDownRecord
from fleetnas.agent.android._state import PhoneState
from fleetnas.agent.android._tools import SOURCE_RAW, SOURCE_TOOL_STATISTICS, RunSpec, Statistics
from fleetnas.agent.errors import InvalidSettings
from fleetnas.agent.runtimes import LITERT_CPU, ONNXRUNTIME
from fleetnas.agent.settings import DEFAULT_PROFILE_RUNS
from fleetnas.agent.stats import latency_stats
from fleetnas.api.v1 import agent_pb2

MAX_RUNS = 1_000_000
# What a request may name as providers: onnxruntime_perf_test's CPU provider,
# benchmark_model's XNNPACK (its CPU path).
PHONE_ACCELERATORS = ("CPUExecutionProvider", LITERT_CPU)
TOOL_STATISTICS_WARNING = (
    "tool statistics: {tool} gives no per-run times; mean/min/max/std are the tool's own "
    "figures, median_ms is its mean (it gives no median), p90/p99 are unknown (0)"
)
SAMPLES_SOURCES = {
    SOURCE_RAW: agent_pb2.SAMPLES_SOURCE_RAW,
    SOURCE_TOOL_STATISTICS: agent_pb2.SAMPLES_SOURCE_TOOL_STATISTICS,
}


@dataclass(frozen=True)
class PhoneBenchSettings:
    """How to benchmark on a phone. ``threads`` 0 = the tool's default; ``cluster`` one of
    the phone's roles (``little``, ``big``, ``prime`` where present, ``all``);
    ``cooldown`` None skips the cool-down wait; ``profile_runs`` > 0 adds a profiled run of
    that many runs (one warm-up) after the timed one. InvalidSettings on bad values."""

    threads: int = 1
    warmup_runs: int = 10
    runs: int = 50
    min_duration_s: float = 0.0
    max_duration_s: float = 150.0
    cluster: str = "big"
    use_xnnpack: bool = True
    graph_optimization: int = agent_pb2.GRAPH_OPTIMIZATION_ALL
    timeout_s: float = 600.0
    cooldown: CoolDownPolicy | None = field(default_factory=CoolDownPolicy)
    profile_runs: int = 0

    def __post_init__(self) -> None:
        for name, low in (("threads", 0), ("warmup_runs", 0), ("runs", 1), ("profile_runs", 0)):
            value = getattr(self, name)
            if not (isinstance(value, int) and low <= value <= MAX_RUNS):
                raise InvalidSettings(f"{name} must be an integer in [{low}, {MAX_RUNS}], "
                                      f"got {value!r}")
        for name in ("min_duration_s", "max_duration_s", "timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidSettings(f"{name} must be a finite number >= 0, got {value!r}")
        if self.timeout_s <= 0:
            raise InvalidSettings(f"timeout_s must be > 0, got {self.timeout_s!r}")

    def spec(self) -> RunSpec:
        """The timed run."""
        return RunSpec(
            threads=self.threads,
            warmup_runs=self.warmup_runs,
            runs=self.runs,
            min_duration_s=self.min_duration_s,
            max_duration_s=self.max_duration_s,
            use_xnnpack=self.use_xnnpack,
            graph_optimization=self.graph_optimization,
        )

    def profile_spec(self) -> RunSpec:
        """The profiled run: one warm-up, exactly ``profile_runs`` runs, the profiler on."""
        return replace(self.spec(), warmup_runs=1, runs=max(1, self.profile_runs),
                       min_duration_s=0.0, profile=True)

    @classmethod
    def from_proto(
        cls,
        settings: agent_pb2.BenchmarkSettings,
        *,
        cluster: str = "big",
        cooldown: CoolDownPolicy | None = None,
        use_xnnpack: bool = True,
    ) -> PhoneBenchSettings:
        """From resolved v1 settings (``settings.resolve_settings``).

        ``min_runs`` is the run count; ``max_runs`` is not enforced (the tools
        have no such limit; ``max_duration_s`` bounds the runs instead). The
        paired method, providers other than the CPU and input shapes are not
        available on phones yet: InvalidSettings. ``seed`` has no effect (the
        tools generate their own inputs). ``profile`` asks for ``profile_runs``
        (default 10) profiled runs; whether the model's tool can profile is
        checked when the tool is chosen (``PhoneBench``).
        """
        if settings.method == agent_pb2.METHOD_PAIRED:
            raise InvalidSettings("method: the paired method is not available on phones yet")
        other = [p for p in settings.providers if p not in PHONE_ACCELERATORS]
        if other:
            raise InvalidSettings(f"providers: only the CPU is available on phones "
                                  f"({' or '.join(PHONE_ACCELERATORS)}), got {other}")
        if len(settings.input_shapes):
            raise InvalidSettings("input_shapes: not available on phones yet (the tools use "
                                  "the model's own static shapes)")
        return cls(
            threads=settings.intra_op_threads,
            warmup_runs=settings.warmup_runs,
            runs=max(1, settings.min_runs),
            min_duration_s=settings.min_duration_s,
            max_duration_s=settings.max_duration_s,
            cluster=cluster,
            use_xnnpack=use_xnnpack and (not settings.providers
                                         or LITERT_CPU in settings.providers),
            graph_optimization=settings.graph_optimization or agent_pb2.GRAPH_OPTIMIZATION_ALL,
            timeout_s=settings.timeout_s,
            cooldown=cooldown if cooldown is not None else CoolDownPolicy(),
            profile_runs=(settings.profile_runs or DEFAULT_PROFILE_RUNS) if settings.profile
            else 0,
        )


@dataclass(frozen=True)
class PhoneBenchResult:
    """One benchmark on a phone. ``headline_ms`` is the median of the raw samples, or the
    tool's mean when it gave only statistics (``samples_source`` says which)."""

    model_sha256: str
    tool: str
    command: str
    settings: PhoneBenchSettings
    mask: str
    samples_ms: tuple[float, ...]
    samples_source: str
    statistics: Statistics
    init_ms: float | None
    first_run_ms: float | None
    peak_memory_bytes: int | None
    provider: str
    before: PhoneState
    after: PhoneState
    cooldown: CoolDownRecord | None
    warnings: tuple[str, ...]
    started_at: float
    wall_s: float
    fingerprint: str
    tool_version: str = ""
    runtime: str = ""
    profile: agent_pb2.OperatorProfile | None = None  # from a run of its own (module doc)

    @property
    def headline_ms(self) -> float:
        if self.samples_source == SOURCE_RAW and self.samples_ms:
            return latency_stats(self.samples_ms).median_ms
        return self.statistics.mean_ms

    def latency_stats(self) -> agent_pb2.LatencyStats:
        """v1 statistics: computed from raw samples, else the tool's (median = its mean)."""
        if self.samples_source == SOURCE_RAW and self.samples_ms:
            return latency_stats(self.samples_ms)
        s = self.statistics
        std = s.std_ms or 0.0
        return agent_pb2.LatencyStats(
            mean_ms=s.mean_ms,
            min_ms=s.min_ms or 0.0,
            max_ms=s.max_ms or 0.0,
            std_ms=std,
            cv=std / s.mean_ms if s.mean_ms else 0.0,
            median_ms=s.median_ms if s.median_ms is not None else s.mean_ms,
            p90_ms=s.p90_ms or 0.0,
            p99_ms=s.p99_ms or 0.0,
        )

    def to_proto(
        self, settings: agent_pb2.BenchmarkSettings | None = None
    ) -> agent_pb2.BenchmarkResult:
        """The v1 ``BenchmarkResult``. ``settings``: the resolved request settings to echo
        (else the phone settings are written into the matching fields). ``agent_version``
        is the caller's to set."""
        echo = agent_pb2.BenchmarkSettings()
        if settings is not None:
            echo.CopyFrom(settings)
        else:
            s = self.settings
            echo.warmup_runs, echo.min_runs = s.warmup_runs, s.runs
            echo.min_duration_s, echo.max_duration_s = s.min_duration_s, s.max_duration_s
            echo.intra_op_threads, echo.timeout_s = s.threads, s.timeout_s
        warnings = list(self.warnings)
        if self.samples_source != SOURCE_RAW:
            warnings.insert(0, TOOL_STATISTICS_WARNING.format(tool=self.tool))
        return agent_pb2.BenchmarkResult(
            model_sha256=self.model_sha256,
            settings=echo,
            samples_ms=list(self.samples_ms),
            stats=self.latency_stats(),
            session_create_ms=self.init_ms or 0.0,
            first_run_ms=self.first_run_ms or 0.0,
            peak_rss_bytes=self.peak_memory_bytes or 0,
            provider=self.provider,
            state_before=self.before.to_proto(),
            state_after=self.after.to_proto(),
            warnings=warnings,
            started_at=self.started_at,
            wall_s=self.wall_s,
            host_fingerprint=self.fingerprint,
            samples_source=SAMPLES_SOURCES[self.samples_source],
            timed_inferences=len(self.samples_ms) or self.statistics.count,
            runtime_version=self.tool_version,
            onnxruntime_version=self.tool_version if self.runtime == ONNXRUNTIME else "",
            profile=self.profile,
        )


@dataclass(frozen=True)
class SustainedResult:
    """Back-to-back runs with no cool-down between them, for ``duration_s``.

    ``drift`` is the last round's headline over the first's (> 1: the phone
    slowed as it heated). Temperatures and statuses are taken between rounds.
    """

    rounds: tuple[PhoneBenchResult, ...]
    duration_s: float

    @property
    def drift(self) -> float:
        first, last = self.rounds[0].headline_ms, self.rounds[-1].headline_ms
        return last / first if first else math.nan

    @property
    def max_temperature_c(self) -> float | None:
        temps = [s.soc_temperature_c for r in self.rounds for s in (r.before, r.after)
                 if s.soc_temperature_c is not None]
        return max(temps) if temps else None

    @property
    def worst_thermal_status(self) -> int | None:
        statuses = [s.thermal_status for r in self.rounds for s in (r.before, r.after)
                    if s.thermal_status is not None]
        return max(statuses) if statuses else None
