"""End-to-end measurements against a LUT: calibrate it, evaluate it, check it for drift.

All three measure whole networks on the LUT's device with the LUT's own
settings (its resolved settings sent back as the request, minus the run
limits ``timeout_s``/``memory_cap_bytes``), so the measurements share the
LUT's settings hash and the cost DB's cache:

* :func:`calibrate_lut` fits ``a * sum + b`` on ``k`` random archs and stores it;
* :func:`evaluate_lut` calibrates on ``k`` archs and scores ``n`` *other*
  random archs (the two sets never overlap), stores an ``eval`` report and can
  draw the scatter plot;
* :func:`check_lut` re-measures ``n`` archs *afresh* (bypassing the cache:
  ``Scheduler.run(use_cache=False)``), compares them with the predictions and
  stores a ``check`` report that flags the LUT stale when the mean absolute
  percentage error exceeds a threshold.

A LUT of another precision than fp32 measures its nets converted to that
precision (:mod:`._precision`; int8 calibrated on ``calibration_data``, else on
random data with one RandomCalibrationWarning per call), so the line maps
int8 block sums onto int8 nets.

Arch sets are deterministic: each purpose draws from its own seeded stream
(``random.Random("fleetnas.lut.<purpose>/<seed>")``), so the same seed gives
the same archs, and the calibration archs of a build, an eval and a
``lut calibrate`` with equal ``k`` and seed are the same (cache hits).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import RUN_LIMIT_FIELDS, CostDB, settings_from_dict
from fleetnas.controller.export import register_arch
from fleetnas.controller.lut._calibration import MIN_CALIBRATION_ARCHS, Calibration
from fleetnas.controller.lut._errors import LutMismatch, MeasurementFailed
from fleetnas.controller.lut._metrics import Accuracy, accuracy
from fleetnas.controller.lut._precision import PrecisionConverter, check_model_format
from fleetnas.controller.lut._predictor import LatencyPredictor
from fleetnas.controller.lut._progress import LutProgress, ProgressCallback
from fleetnas.controller.lut._store import LutInfo, LutReport, LutStore
from fleetnas.controller.scheduler import Job, OutcomeStatus, Progress, Scheduler, Target
from fleetnas.controller.spaces import Arch, SearchSpace, get_space

if TYPE_CHECKING:
    from fleetnas.controller.compress import CalibrationSource

DEFAULT_CALIBRATION_N = 10
DEFAULT_EVAL_N = 100
DEFAULT_CHECK_N = 5
#: mean absolute percentage error (%) above which ``lut check`` calls a LUT stale
DEFAULT_STALE_THRESHOLD = 10.0


# -- arch sets ---------------------------------------------------------------------------


def sample_archs(
    space: SearchSpace,
    n: int,
    purpose: str,
    seed: int = 0,
    *,
    exclude: Sequence[str] = (),
) -> list[Arch]:
    """``n`` distinct archs (fewer if the space runs out) from the ``purpose`` stream.

    Archs whose encoding is in ``exclude`` are skipped.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"fleetnas.lut.{purpose}/{seed}")
    seen = set(exclude)
    out: list[Arch] = []
    attempts = 0
    while len(out) < n and attempts < 50 * n + 100:
        attempts += 1
        arch = space.sample(rng)
        encoding = space.encode(arch)
        if encoding not in seen:
            seen.add(encoding)
            out.append(arch)
    return out


# -- measuring archs ---------------------------------------------------------------------


def space_of(lut: LutInfo) -> SearchSpace:
    """The space the LUT was built for; raises LutMismatch when its version moved on."""
    space = get_space(lut.space_name, lut.space_config)
    if space.version != lut.space_version:
        raise LutMismatch(
            f"the LUT {lut.label()} was built for version {lut.space_version} of "
            f"{lut.space_name}, which is now version {space.version}: its block keys may "
            "name other modules; rebuild it with `fleetnas lut build`"
        )
    return space


def lut_request(lut: LutInfo, *, timeout_s: float | None = None) -> agent_pb2.BenchmarkSettings:
    """The LUT's resolved settings as a request (run limits dropped, ``timeout_s`` if given)."""
    request = settings_from_dict(lut.settings)
    for name in RUN_LIMIT_FIELDS:
        request.ClearField(name)
    if timeout_s is not None:
        request.timeout_s = timeout_s
    return request


@dataclass(frozen=True)
class ArchMeasurement:
    """One arch measured end to end (``status`` is ``"cached"`` or ``"measured"``)."""

    arch: str
    model_sha256: str
    measured_ms: float
    measurement_uid: str
    status: str
    onnxruntime_version: str
    agent_version: str


def measure_archs(
    space: SearchSpace,
    archs: Sequence[Arch],
    lut: LutInfo,
    *,
    db: CostDB,
    scheduler: Scheduler,
    cache_dir: str | Path | None = None,
    fresh: bool = False,
    timeout_s: float | None = None,
    on_progress: ProgressCallback | None = None,
    calibration_data: CalibrationSource = None,
) -> tuple[list[ArchMeasurement], list[tuple[str, str]]]:
    """Export and measure ``archs`` on the LUT's device with its settings, in the format
    of the LUT's runtime (``.tflite`` for a LiteRT LUT), converted to the LUT's
    precision (module docstring; ``calibration_data`` for int8).

    Returns ``(measured, failed)``; ``failed`` holds ``(encoding, reason)``,
    in the order of ``archs``. ``fresh`` measures even what the cache holds.
    Each arch's model is recorded with its origin (space identity, encoding,
    params, FLOPs).
    """
    request = lut_request(lut, timeout_s=timeout_s)
    # The LUT's own runtime decides the format (UnknownDevice before any export).
    model_format = scheduler.model_format_for(Target.device(lut.device), request)
    check_model_format(lut.precision, model_format, lut.device)
    converter = PrecisionConverter(db, lut.precision, calibration_data, cache_dir)
    jobs = []
    for i, arch in enumerate(archs, start=1):
        ref = register_arch(db, space, arch, cache_dir=cache_dir, model_format=model_format)
        ref = converter.arch(space, arch, ref)
        encoding = space.encode(arch)
        jobs.append(Job.on_device(ref, lut.device, request, tag=encoding))
        if on_progress is not None:
            on_progress(LutProgress("export", i, len(archs), encoding))
    converter.warn("nets")

    counts = {"cached": 0, "measured": 0, "failed": 0}

    def progress(p: Progress) -> None:
        o = p.outcome
        counts["failed" if not o.ok else o.status.value] += 1
        if on_progress is not None:
            on_progress(LutProgress("measure", p.done, p.total, str(o.job.tag), **counts))

    outcomes = scheduler.run(jobs, on_progress=progress, use_cache=not fresh)
    measured: list[ArchMeasurement] = []
    failed: list[tuple[str, str]] = []
    for o in outcomes:
        tag = str(o.job.tag)
        m = o.measurement
        if not o.ok or m is None:
            failed.append((tag, o.error_message or "failed"))
        elif m.settings_hash != lut.settings_hash:
            failed.append((tag, (
                f"measured with settings {m.settings_hash}, not the LUT's {lut.settings_hash}: "
                f"{lut.device} now resolves the LUT's settings differently"
            )))  # fmt: skip
        else:
            status = "cached" if o.status is OutcomeStatus.CACHED else "measured"
            measured.append(ArchMeasurement(
                tag, m.model_sha256, m.latency_ms, m.uid, status, m.onnxruntime_version,
                m.agent_version,
            ))  # fmt: skip
    return measured, failed


def _require(measured: Sequence[ArchMeasurement], failed: Sequence[tuple[str, str]],
             needed: int, what: str) -> None:
    if len(measured) >= needed:
        return
    first = "; ".join(f"{arch}: {reason}" for arch, reason in failed[:3])
    raise MeasurementFailed(
        f"{what} needs {needed} measured archs, got {len(measured)} ({len(failed)} failed"
        + (f": {first}" if first else "") + ")"
    )


# -- calibrate ---------------------------------------------------------------------------


def calibrate_lut(
    lut: LutInfo,
    *,
    db: CostDB,
    scheduler: Scheduler,
    k: int = DEFAULT_CALIBRATION_N,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    timeout_s: float | None = None,
    on_progress: ProgressCallback | None = None,
    calibration_data: CalibrationSource = None,
) -> Calibration:
    """Measure ``k`` calibration archs, fit the line and store it with the LUT.

    Raises MeasurementFailed when fewer than 5 archs could be measured,
    CalibrationError for an unusable fit, MissingBlock when the LUT lacks a
    block of a calibration arch (build it first). A precision LUT's archs are
    measured converted to its precision (``calibration_data``: module docstring).
    """
    space = space_of(lut)
    predictor = LatencyPredictor.from_lut(db, space, lut)
    archs = sample_archs(space, max(k, MIN_CALIBRATION_ARCHS), "calibration", seed)
    for arch in archs:
        predictor.raw_sum(arch)  # MissingBlock before any measuring
    measured, failed = measure_archs(
        space, archs, lut, db=db, scheduler=scheduler, cache_dir=cache_dir,
        timeout_s=timeout_s, on_progress=on_progress, calibration_data=calibration_data,
    )  # fmt: skip
    _require(measured, failed, MIN_CALIBRATION_ARCHS, "calibration")
    calibration = predictor.calibrate(
        [space.decode(m.arch) for m in measured], [m.measured_ms for m in measured]
    )
    LutStore(db).set_calibration(lut.id, calibration)
    return calibration


# -- evaluate ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalRow:
    """One evaluated arch."""

    arch: str
    raw_sum_ms: float
    predicted_ms: float
    measured_ms: float
    measurement_uid: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "raw_sum_ms": self.raw_sum_ms,
            "predicted_ms": self.predicted_ms,
            "measured_ms": self.measured_ms,
            "measurement_uid": self.measurement_uid,
        }


@dataclass(frozen=True)
class EvalResult:
    """What ``lut eval`` found. ``raw_accuracy`` scores the uncalibrated sums."""

    lut: LutInfo
    calibration: Calibration
    accuracy: Accuracy
    raw_accuracy: Accuracy
    rows: tuple[EvalRow, ...]
    failed: tuple[tuple[str, str], ...]
    report: LutReport
    plot: Path | None
    measured_now: int


def _rows(predictor: LatencyPredictor, space: SearchSpace,
          measured: Sequence[ArchMeasurement]) -> list[EvalRow]:
    rows = []
    for m in measured:
        arch = space.decode(m.arch)
        raw = predictor.raw_sum(arch)
        rows.append(EvalRow(m.arch, raw, predictor.predict(arch), m.measured_ms,
                            m.measurement_uid))
    return rows


def evaluate_lut(
    lut: LutInfo,
    *,
    db: CostDB,
    scheduler: Scheduler,
    n: int = DEFAULT_EVAL_N,
    calibration_n: int = DEFAULT_CALIBRATION_N,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    plot_path: str | Path | None = None,
    timeout_s: float | None = None,
    on_progress: ProgressCallback | None = None,
    calibration_data: CalibrationSource = None,
) -> EvalResult:
    """Calibrate on ``calibration_n`` archs, score ``n`` others, store both (module docstring).

    ``plot_path``: write the predicted-vs-measured scatter (PNG) there.
    Raises MeasurementFailed when fewer than 5 calibration or 2 evaluation
    archs could be measured, MissingBlock, CalibrationError.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 to score a LUT, got {n}")
    space = space_of(lut)
    predictor = LatencyPredictor.from_lut(db, space, lut)
    calibration_archs = sample_archs(
        space, max(calibration_n, MIN_CALIBRATION_ARCHS), "calibration", seed
    )
    eval_archs = sample_archs(
        space, n, "eval", seed, exclude=[space.encode(a) for a in calibration_archs]
    )
    for arch in [*calibration_archs, *eval_archs]:
        predictor.raw_sum(arch)  # MissingBlock before any measuring
    everything, failed = measure_archs(
        space, [*calibration_archs, *eval_archs], lut, db=db, scheduler=scheduler,
        cache_dir=cache_dir, timeout_s=timeout_s, on_progress=on_progress,
        calibration_data=calibration_data,
    )  # fmt: skip
    calibration_set = {space.encode(a) for a in calibration_archs}
    calib = [m for m in everything if m.arch in calibration_set]
    scored = [m for m in everything if m.arch not in calibration_set]
    _require(calib, [f for f in failed if f[0] in calibration_set], MIN_CALIBRATION_ARCHS,
             "calibration")
    _require(scored, [f for f in failed if f[0] not in calibration_set], 2, "evaluation")
    calibration = predictor.calibrate(
        [space.decode(m.arch) for m in calib], [m.measured_ms for m in calib]
    )
    store = LutStore(db)
    store.set_calibration(lut.id, calibration)
    rows = _rows(predictor, space, scored)
    measured_ms = [r.measured_ms for r in rows]
    acc = accuracy([r.predicted_ms for r in rows], measured_ms)
    raw_acc = accuracy([r.raw_sum_ms for r in rows], measured_ms)
    report = store.add_report(LutReport(
        lut_id=lut.id, kind="eval", accuracy=acc, calibration=calibration,
        details={
            "seed": seed, "raw": raw_acc.to_dict(), "rows": [r.to_dict() for r in rows],
            "failed": [list(f) for f in failed],
        },
    ))  # fmt: skip
    plot = None
    if plot_path is not None:
        from fleetnas.controller.lut._plot import scatter_plot

        plot = scatter_plot(
            [r.predicted_ms for r in rows], measured_ms, plot_path,
            title=f"{lut.space} on {lut.device} ({lut.threads} threads, {lut.method})",
            subtitle=(f"n={acc.n}  within 10%: {100 * acc.within_10:.0f}%  "
                      f"within 5%: {100 * acc.within_5:.0f}%  RMSPE {acc.rmspe:.1f}%"),
        )  # fmt: skip
    return EvalResult(
        lut=store.get(lut.id), calibration=calibration, accuracy=acc, raw_accuracy=raw_acc,
        rows=tuple(rows), failed=tuple(failed), report=report, plot=plot,
        measured_now=sum(m.status == "measured" for m in everything),
    )  # fmt: skip


# -- check -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """What ``lut check`` found; ``stale`` is the verdict, ``reasons`` say why."""

    lut: LutInfo
    accuracy: Accuracy
    rows: tuple[EvalRow, ...]
    stale: bool
    threshold: float
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    report: LutReport


def _version_drift(db: CostDB, lut: LutInfo, fresh: Sequence[ArchMeasurement]) -> list[str]:
    """Warnings when the fresh measurements ran on other agent/onnxruntime versions."""
    store = LutStore(db)
    old_ort: set[str] = set()
    old_agent: set[str] = set()
    for entry in list(store.entries(lut.id).values())[:20]:
        if entry.measurement_uid is None:
            continue
        m = db.get_measurement(entry.measurement_uid)
        if m is not None:
            old_ort.add(m.onnxruntime_version)
            old_agent.add(m.agent_version)
    new_ort = {m.onnxruntime_version for m in fresh}
    new_agent = {m.agent_version for m in fresh}
    out = []
    if old_ort and new_ort - old_ort:
        out.append(f"onnxruntime is now {', '.join(sorted(new_ort))} "
                   f"(the LUT was measured with {', '.join(sorted(old_ort))})")
    if old_agent and new_agent - old_agent:
        out.append(f"the agent is now {', '.join(sorted(new_agent))} "
                   f"(the LUT was measured with {', '.join(sorted(old_agent))})")
    return out


def check_lut(
    lut: LutInfo,
    *,
    db: CostDB,
    scheduler: Scheduler,
    n: int = DEFAULT_CHECK_N,
    seed: int = 0,
    threshold: float = DEFAULT_STALE_THRESHOLD,
    cache_dir: str | Path | None = None,
    timeout_s: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> CheckResult:
    """Measure ``n`` archs afresh and flag the LUT stale when its predictions drifted.

    Stale when the mean absolute percentage error of the (calibrated)
    predictions exceeds ``threshold`` percent. The fresh measurements are
    recorded (the cache serves them from now on) and the verdict is stored
    as a ``check`` report, which ``lut show`` displays. Raises
    MeasurementFailed when fewer than 1 arch could be measured.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 percent, got {threshold}")
    space = space_of(lut)
    predictor = LatencyPredictor.from_lut(db, space, lut)
    archs = sample_archs(space, n, "check", seed)
    for arch in archs:
        predictor.raw_sum(arch)
    measured, failed = measure_archs(
        space, archs, lut, db=db, scheduler=scheduler, cache_dir=cache_dir, fresh=True,
        timeout_s=timeout_s, on_progress=on_progress,
    )  # fmt: skip
    _require(measured, failed, 1, "a check")
    rows = _rows(predictor, space, measured)
    acc = accuracy([r.predicted_ms for r in rows], [r.measured_ms for r in rows])
    reasons = []
    if acc.mape > threshold:
        reasons.append(f"mean error {acc.mape:.1f}% exceeds the {threshold:g}% threshold")
    warnings = _version_drift(db, lut, measured)
    if lut.calibration is None:
        warnings.append("the LUT is not calibrated: predictions are raw block sums; "
                        "run `fleetnas lut eval` or `fleetnas lut calibrate`")
    stale = bool(reasons)
    report = LutStore(db).add_report(LutReport(
        lut_id=lut.id, kind="check", accuracy=acc, created_at=time.time(), threshold=threshold,
        stale=stale, calibration=lut.calibration,
        details={"seed": seed, "rows": [r.to_dict() for r in rows], "reasons": reasons,
                 "warnings": warnings, "failed": [list(f) for f in failed]},
    ))  # fmt: skip
    return CheckResult(
        lut=lut, accuracy=acc, rows=tuple(rows), stale=stale, threshold=threshold,
        reasons=tuple(reasons), warnings=tuple(warnings), failed=tuple(failed), report=report,
    )  # fmt: skip
