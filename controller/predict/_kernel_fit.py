"""Calibrate a kernel LUT on whole nets of its device and score it on fresh ones.

:func:`fit_kernel_lut` measures the calibration and eval archs' whole networks
on the LUT's device by the shared-host protocol (one interleaved run, so both
sets see the same host), fits ``a * raw_sum + b`` on the calibration nets
(:meth:`KernelLut.calibrated`) and scores the calibrated LUT on the eval nets,
never on a net it was fitted on. The LUT must hold every kernel of those nets
(build it with them: ``build_kernel_lut(..., archs=[...cover, *calibration,
*evaluation])``), else :class:`MissingKernel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut import Accuracy, accuracy
from fleetnas.controller.predict._kernel_lut import KernelLut, arch_kernels
from fleetnas.controller.predict._protocol import Progress, Protocol
from fleetnas.controller.predict._transfer import Descriptors, measure_archs
from fleetnas.controller.scheduler import Scheduler
from fleetnas.controller.spaces import Arch, SearchSpace

#: the seeded stream of a kernel LUT's calibration and eval archs (``lut.sample_archs``)
KERNEL_CALIBRATION_PURPOSE = "kernel-calibration"
KERNEL_EVAL_PURPOSE = "kernel-eval"


@dataclass(frozen=True)
class KernelLutFit:
    """The calibrated LUT; per eval arch (encoding -> (predicted, measured) ms) and the
    figures over them (None without eval archs); archs that failed to measure; the
    device seconds the whole-net measurements took now (reused rounds cost nothing)."""

    lut: KernelLut
    rows: dict[str, tuple[float, float]]
    accuracy: Accuracy | None
    failed: dict[str, str]
    device_s: float


def fit_kernel_lut(
    lut: KernelLut,
    space: SearchSpace,
    calibration: Sequence[Arch],
    evaluation: Sequence[Arch] = (),
    *,
    db: CostDB,
    scheduler: Scheduler,
    request: agent_pb2.BenchmarkSettings,
    protocol: Protocol | None = None,
    cache_dir: str | Path | None = None,
    reuse_since: float | None = 0.0,
    on_progress: Progress | None = None,
) -> KernelLutFit:
    """Measure, calibrate and score (module docstring).

    ``request`` must be the one the LUT was built with (its threads and
    level). Raises CalibrationError when fewer than 5 calibration nets could
    be measured, TransferError when fewer than 2 nets in all, MissingKernel.
    """
    archs = [*calibration, *evaluation]
    measured, report = measure_archs(
        db, space, lut.device, archs, Descriptors(space, cache_dir), scheduler=scheduler,
        request=request, protocol=protocol, reuse_since=reuse_since, on_progress=on_progress,
    )  # fmt: skip
    nets = arch_kernels(space, archs, lut.level_value, cache_dir=cache_dir)
    fitted_on = [e for e in (space.encode(a) for a in calibration) if e in measured]
    fitted = lut.calibrated([nets[e] for e in fitted_on], [measured[e] for e in fitted_on],
                            fitted_on)
    scored = [e for e in (space.encode(a) for a in evaluation) if e in measured]
    rows = {e: (fitted.predict(nets[e]), measured[e]) for e in scored}
    figures = None
    if len(rows) >= 2:
        figures = accuracy([p for p, _ in rows.values()], [m for _, m in rows.values()])
    return KernelLutFit(fitted, rows, figures, dict(report.failed), report.device_s)
