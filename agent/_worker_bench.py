"""The benchmark protocol, run inside a worker process (see ``worker_main``), on any runtime.

Only the worker imports this module; the runtime itself comes from the
backend that ``settings.runtime`` names (``fleetnas.agent.backends``).

Protocol of one benchmark (plain): load the model (timed by the backend:
``session_create_ms``; input shapes resolved, seeded random inputs in place),
one first run (``first_run_ms``), ``warmup_runs`` untimed runs, then the timed
loop, one ``time.perf_counter`` pair per run, until
``(runs >= min_runs and elapsed >= min_duration_s) or runs >= max_runs or
elapsed >= max_duration_s``. The garbage collector is off during timed runs.
The loop's ends are stamped with ``time.monotonic_ns`` (``loop_start_ns``,
``loop_end_ns``: CLOCK_MONOTONIC, the agent's energy meters' clock) and its
run count is ``timed_inferences``.

Paired: the same for a candidate and the reference in one process, with the
warm-up interleaved; then, if the reference has no calibration for these
settings yet, ``calibration_runs`` reference runs whose median becomes it;
then pairs (candidate run, reference run) under the same stopping rule.

After the timed loop, never inside it: the host<->device copy rounds where
the model's inputs live on a GPU (``copies``), then, with
``settings.profile``, ``profile_runs`` profiled runs (``profile``).

Failures raise :class:`JobFailure` naming a class of ``fleetnas.agent.errors``.
"""

from __future__ import annotations

import gc
import hashlib
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetnas.agent._worker_protocol import Job, ReferenceJob
from fleetnas.agent.backends import (
    Backend,
    JobFailure,
    LoadContext,
    LoadedModel,
    ProfileUnavailable,
    backend_for,
    memory_failure,
)
from fleetnas.agent.reference import Calibration
from fleetnas.agent.runtimes import ONNXRUNTIME
from fleetnas.agent.stats import latency_stats, mean_std_cv
from fleetnas.api.v1 import agent_pb2

__all__ = ["JobFailure", "memory_failure", "run_job"]

NOISY_CV = 0.05
# Warn when the reference runs this much slower or faster than when calibrated.
REFERENCE_DRIFT_WARNING = 0.2


@dataclass(frozen=True)
class Loop:
    """A timed loop's samples (ms) and its ends on CLOCK_MONOTONIC (ns)."""

    samples: list[float]
    start_ns: int
    end_ns: int


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def _done(runs: int, elapsed: float, s: agent_pb2.BenchmarkSettings) -> bool:
    return (
        (runs >= s.min_runs and elapsed >= s.min_duration_s)
        or runs >= s.max_runs
        or elapsed >= s.max_duration_s
    )


def timed_loop(run: Callable[[], None], s: agent_pb2.BenchmarkSettings) -> Loop:
    """Per-run latencies (ms) until the stopping rule holds; at least one run."""
    samples: list[float] = []
    gc.collect()
    gc.disable()
    try:
        start_ns = time.monotonic_ns()
        loop_start = time.perf_counter()
        while True:
            start = time.perf_counter()
            run()
            end = time.perf_counter()
            samples.append((end - start) * 1000.0)
            if _done(len(samples), end - loop_start, s):
                return Loop(samples, start_ns, time.monotonic_ns())
    finally:
        gc.enable()


def paired_loop(
    candidate: Callable[[], None], reference: Callable[[], None], s: agent_pb2.BenchmarkSettings
) -> tuple[Loop, list[float]]:
    """Alternating (candidate, reference) runs: the candidate's loop and the reference's
    samples (ms), of the same length."""
    cand: list[float] = []
    ref: list[float] = []
    gc.collect()
    gc.disable()
    try:
        start_ns = time.monotonic_ns()
        loop_start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            candidate()
            t1 = time.perf_counter()
            reference()
            t2 = time.perf_counter()
            cand.append((t1 - t0) * 1000.0)
            ref.append((t2 - t1) * 1000.0)
            if _done(len(cand), t2 - loop_start, s):
                return Loop(cand, start_ns, time.monotonic_ns()), ref
    finally:
        gc.enable()


def robust_cv(values: list[float]) -> float:
    """1.4826 × median absolute deviation / median: a cv that a few preempted runs do not move."""
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    return 1.4826 * mad / median if median else 0.0


def calibrate(reference: Callable[[], None], runs: int) -> tuple[float, float]:
    """The reference's median latency (ms) over ``runs`` timed runs (already warmed up),
    and the robust cv of those runs."""
    samples: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(runs):
            samples.append(_timed(reference))
    finally:
        gc.enable()
    return statistics.median(samples), robust_cv(samples)


def _peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB elsewhere


def _read(path: str, what: str, s: agent_pb2.BenchmarkSettings) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        # the agent's own cache file is gone: a fault of this agent, not the model
        raise JobFailure("InternalError", f"cannot read the {what} file: {exc.strerror}") from exc
    except MemoryError as exc:
        raise memory_failure(s.memory_cap_bytes, f"reading the {what} file") from exc


def _load(backend: Backend, path: str, s: agent_pb2.BenchmarkSettings,
          context: LoadContext) -> LoadedModel:  # fmt: skip
    data = _read(path, context.what, s)
    if not data:
        raise JobFailure("ModelInvalid", f"the {context.what} is empty (0 bytes)")
    # Handed over, not kept: the backend may drop the bytes once its session has them.
    return backend.load(data, s, context)


def run_job(job: Job) -> tuple[agent_pb2.BenchmarkResult, Calibration | None]:
    """Run one benchmark. Returns the result (service-owned fields left empty) and the
    reference calibration the worker measured, if it measured one steady enough to keep."""
    started_at = time.time()
    wall_start = time.perf_counter()
    s = agent_pb2.BenchmarkSettings.FromString(job.settings)
    backend = backend_for(s.runtime)
    engines = Path(job.engine_cache_dir) if job.engine_cache_dir else None
    model = _load(backend, job.model_path, s, LoadContext("model", job.model_sha256, engines))
    result = agent_pb2.BenchmarkResult(
        settings=s,
        session_create_ms=model.create_ms,
        provider=model.provider,
        started_at=started_at,
        inputs=model.inputs,
        model_format=backend.model_format,
        runtime_version=backend.version(),
    )
    if backend.name == ONNXRUNTIME:  # the v1 field: provenance of onnxruntime runs only
        result.onnxruntime_version = backend.version()
    if model.engine_cache_hit is not None:
        result.engine_cache_hit = model.engine_cache_hit
    result.first_run_ms = _timed(model.run)
    calibration: Calibration | None = None
    if s.method == agent_pb2.METHOD_PAIRED:
        if job.reference is None:
            raise JobFailure("InternalError", "paired benchmark without a reference model")
        loop, calibration = _paired(backend, job.reference, s, model, result, engines)
    else:
        for _ in range(s.warmup_runs):
            model.run()
        loop = timed_loop(model.run, s)
    result.samples_ms.extend(loop.samples)
    result.loop_start_ns, result.loop_end_ns = loop.start_ns, loop.end_ns
    result.timed_inferences = len(loop.samples)
    result.stats.CopyFrom(latency_stats(result.samples_ms))
    copies = model.copies()
    if copies is not None:
        result.copies.CopyFrom(copies)
    if s.profile:
        _profile(model, s, result)
    result.peak_rss_bytes = _peak_rss_bytes()
    result.warnings.extend(_warnings(result, s))
    result.warnings.extend(model.warnings)
    result.wall_s = time.perf_counter() - wall_start
    return result, calibration


def _profile(model: LoadedModel, s: agent_pb2.BenchmarkSettings,
             result: agent_pb2.BenchmarkResult) -> None:  # fmt: skip
    """``profile_runs`` profiled runs into ``result.profile``, or a warning saying why not."""
    try:
        result.profile.CopyFrom(model.profile(s.profile_runs))
    except ProfileUnavailable as why:
        result.warnings.append(str(why))


def _paired(
    backend: Backend,
    ref_job: ReferenceJob,
    s: agent_pb2.BenchmarkSettings,
    model: LoadedModel,
    result: agent_pb2.BenchmarkResult,
    engines: Path | None,
) -> tuple[Loop, Calibration | None]:
    data = _read(ref_job.path, "reference model", s)
    digest = hashlib.sha256(data).hexdigest()
    if digest != ref_job.sha256:
        raise JobFailure(
            "InternalError",
            f"the agent's reference model changed on disk (sha256 {digest}); reinstall the agent",
        )
    reference = backend.load(data, s, LoadContext("reference", ref_job.sha256, engines))
    del data
    reference.run()
    for _ in range(s.warmup_runs):
        model.run()
        reference.run()
    calibration = None
    if ref_job.calibrated_ms is None or ref_job.calibrated_at is None:
        calibrated_ms, calibration_cv = calibrate(reference.run, ref_job.calibration_runs)
        calibrated_at = time.time()
        if calibration_cv <= ref_job.max_calibration_cv:
            calibration = Calibration(calibrated_ms, calibrated_at, ref_job.calibration_runs)
        else:
            # Every later paired result would inherit a calibration taken on a busy host.
            result.warnings.append(
                f"the reference calibration was noisy (robust cv {calibration_cv:.1%} over "
                f"{ref_job.calibration_runs} runs, above {ref_job.max_calibration_cv:.0%}); it was used "
                "for this result only and not kept: the next paired benchmark recalibrates"
            )
    else:
        calibrated_ms, calibrated_at = ref_job.calibrated_ms, ref_job.calibrated_at
    loop, ref = paired_loop(model.run, reference.run, s)
    ratios = [c / r for c, r in zip(loop.samples, ref, strict=True)]
    _, _, ratio_cv = mean_std_cv(ratios)
    ratio_median = statistics.median(ratios)
    drift = statistics.median(ref) / calibrated_ms - 1.0
    if abs(drift) > REFERENCE_DRIFT_WARNING:
        result.warnings.append(
            f"the reference ran {abs(drift):.0%} {'slower' if drift > 0 else 'faster'} than "
            f"when calibrated ({statistics.median(ref):.3f} ms vs {calibrated_ms:.3f} ms): the "
            "host's speed changed; the paired ratio compensates for uniform slowdowns only"
        )
    result.paired.CopyFrom(
        agent_pb2.PairedResult(
            reference_name=ref_job.name,
            reference_sha256=ref_job.sha256,
            reference_samples_ms=ref,
            ratios=ratios,
            ratio_median=ratio_median,
            ratio_cv=ratio_cv,
            reference_calibrated_ms=calibrated_ms,
            reference_calibrated_at=calibrated_at,
            latency_ms=ratio_median * calibrated_ms,
        )
    )
    return loop, calibration


def _warnings(result: agent_pb2.BenchmarkResult, s: agent_pb2.BenchmarkSettings) -> list[str]:
    out = []
    n = len(result.samples_ms)
    if result.stats.cv > NOISY_CV:
        out.append(
            f"noisy measurement: latency cv is {result.stats.cv:.1%} over {n} runs "
            f"(above {NOISY_CV:.0%}); compare medians with care, or use method PAIRED"
        )
    if result.HasField("paired") and result.paired.ratio_cv > NOISY_CV:
        out.append(
            f"noisy paired measurement: ratio cv is {result.paired.ratio_cv:.1%} over {n} pairs "
            f"(above {NOISY_CV:.0%})"
        )
    if n < s.min_runs:
        out.append(
            f"only {n} timed runs (min_runs is {s.min_runs}): max_duration_s "
            f"({s.max_duration_s:g} s) ran out first"
        )
    if s.providers and result.provider != s.providers[0]:
        out.append(
            f"requested provider {s.providers[0]} but {s.runtime} ran the model's nodes on "
            f"{result.provider}"
        )
    return out
