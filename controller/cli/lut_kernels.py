"""``fleetnas lut kernels``: a fusion-aware kernel LUT of a device, calibrated and scored.

A thin layer over :func:`fleetnas.controller.predict.build_kernel_lut` and
:func:`~fleetnas.controller.predict.fit_kernel_lut`: the units measured are
the nodes onnxruntime executes at the device's optimisation level (fused
convolutions, layout changes), each measured alone by the shared-host
protocol, and a net is predicted as the calibrated sum of its kernels.

The kernels come from a *cover* of the space (seeded archs that together
hold every block; ``--archs N``: N random archs instead) plus the calibration
and eval archs' own: a kernel that appears only between two particular
blocks is measured because a net that has it is. The output says how many
kernels only the eval archs brought, which tells how complete a cover is.

What it produces: the calibrated LUT, stored in the cost DB
(:class:`~fleetnas.controller.predict.KernelLutStore`, its id printed), where
``fleetnas search --mode lut|hybrid`` finds it for a target without a block
LUT; with ``--out``, also a JSON file (``KernelLut.to_dict``; load with
``KernelLut.from_dict``). Every measurement behind it is in the cost DB, so
the same command again measures nothing and stores the same LUT (same id).
``fleetnas lut show --kernels`` lists the stored ones
(:func:`show_kernel_luts`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.atomic_files import write_bytes_atomic
from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._errors import one_line_errors
from fleetnas.controller.cli._options import settings_request
from fleetnas.controller.cli._progress import phase_progress, quiet_option
from fleetnas.controller.cli._protocol_options import protocol_options
from fleetnas.controller.cli._space import SpaceFlags, space_options
from fleetnas.controller.cli.lut import (
    Where,
    _echo_calibration,
    _measuring,
    _space,
    device_options,
    lut,
)
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut import (
    DEFAULT_CALIBRATION_N,
    MIN_CALIBRATION_ARCHS,
    CalibrationError,
    sample_archs,
)
from fleetnas.controller.predict import (
    KERNEL_CALIBRATION_PURPOSE,
    KERNEL_EVAL_PURPOSE,
    KernelExtractionError,
    KernelLutBuild,
    KernelLutFit,
    KernelLutStore,
    KernelLutUnusable,
    MissingKernel,
    Protocol,
    StoredKernelLut,
    TransferError,
    arch_kernels,
    build_kernel_lut,
    cover_archs,
    fit_kernel_lut,
)
from fleetnas.controller.spaces import Arch, SearchSpace


@lut.command(name="kernels")
@space_options(required=True)
@device_options
@settings_request()
@click.option("--archs", "n_archs", type=click.IntRange(min=1), metavar="N",
              help="Take the kernels of N random archs instead of a cover of every block.")
@click.option("--calibration-n", default=DEFAULT_CALIBRATION_N, show_default=True,
              type=click.IntRange(min=MIN_CALIBRATION_ARCHS),
              help="Whole nets measured to fit predicted = a × kernel sum + b.")
@click.option("--eval", "eval_n", type=click.IntRange(min=2), metavar="M",
              help="Also measure M fresh whole nets and score the LUT on them.")
@protocol_options
@click.option("--arch-seed", default=0, show_default=True, type=int,
              help="Seed of the cover, calibration and eval archs.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the LUT as JSON to FILE (it is stored in the cost DB anyway).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@quiet_option
@click.pass_context
def kernels_command(
    ctx: click.Context,
    space_flags: SpaceFlags,
    where: Where,
    n_archs: int | None,
    calibration_n: int,
    eval_n: int | None,
    arch_seed: int,
    out_path: Path | None,
    as_json: bool,
    quiet: bool,
    request: agent_pb2.BenchmarkSettings,
    protocol: Protocol,
) -> None:
    """Build a fusion-aware kernel LUT of a device, calibrate it, and score it.

    Extracts the nodes onnxruntime runs for each arch at the device's
    optimisation level (--opt-level), measures each distinct one alone and
    the per-run cost of an empty model by the shared-host protocol, measures
    --calibration-n whole nets to fit the overhead, and writes the LUT as
    stores it in the cost DB, where `fleetnas search --mode lut|hybrid` predicts
    with it any target of this device and settings that has no block LUT. A
    rerun reuses every stored round, measures nothing and stores the same LUT.

    \b
    Example:
        fleetnas lut kernels --space mbv3 --device pi4 --threads 4 --eval 30
        fleetnas lut kernels --space nb201 --local --archs 20 --out nb201-kernels.json
    """
    space = _space(space_flags)
    with (one_line_errors(TransferError, CalibrationError, MissingKernel,
                          KernelExtractionError, KernelLutUnusable),
          _measuring(ctx, where) as (db, scheduler, target)):  # fmt: skip
        base, calibration, evaluation = _archs(space, n_archs, calibration_n, eval_n, arch_seed)
        cache_dir = where.scheduling.cache_dir
        with phase_progress(quiet or as_json, "kernels / nets") as on_progress:
            build = build_kernel_lut(space, target, request, db=db, scheduler=scheduler,
                                     archs=[*base, *calibration, *evaluation],
                                     protocol=protocol, cache_dir=cache_dir,
                                     on_progress=on_progress)
            fit = fit_kernel_lut(build.lut, space, calibration, evaluation, db=db,
                                 scheduler=scheduler, request=request, protocol=protocol,
                                 cache_dir=cache_dir, on_progress=on_progress)
        eval_only = _eval_only_kernels(space, build, [*base, *calibration], evaluation,
                                       cache_dir)
        stored = KernelLutStore(db).save(space, fit.lut)
    if out_path is not None:
        write_bytes_atomic(out_path, json.dumps(fit.lut.to_dict(), indent=1).encode())
    doc = _document(target, space, build, fit, eval_only, out_path, stored.id)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    _print(doc, fit)


def _archs(space: SearchSpace, n_archs: int | None, calibration_n: int, eval_n: int | None,
           seed: int) -> tuple[list[Arch], list[Arch], list[Arch]]:
    """The archs whose kernels are taken, the calibration archs, the eval archs."""
    base = cover_archs(space, seed=seed) if n_archs is None else sample_archs(
        space, n_archs, "kernel-archs", seed)
    calibration = sample_archs(space, calibration_n, KERNEL_CALIBRATION_PURPOSE, seed)
    evaluation = [] if eval_n is None else sample_archs(
        space, eval_n, KERNEL_EVAL_PURPOSE, seed, exclude=[space.encode(a) for a in calibration])
    return base, calibration, evaluation


def _eval_only_kernels(space: SearchSpace, build: KernelLutBuild, known: list[Arch],
                       evaluation: list[Arch], cache_dir: Path | None) -> int:
    """Distinct kernels the eval archs run that no other arch of the build has."""
    if not evaluation:
        return 0

    def kernels_of(archs: list[Arch]) -> set[str]:
        nets = arch_kernels(space, archs, build.lut.level_value, cache_dir=cache_dir)
        return {key for net in nets.values() for key in net.counts()}

    return len(kernels_of(evaluation) - kernels_of(known))


def _document(device: str, space: SearchSpace, build: KernelLutBuild, fit: KernelLutFit,
              eval_only: int, path: Path | None, lut_id: str) -> dict[str, Any]:
    calibration = fit.lut.calibration
    assert calibration is not None
    return {
        "device": device, "space": space.identity(), "id": lut_id,
        "path": None if path is None else str(path),
        "level": build.lut.level, "archs": build.archs, "kernels": build.kernels,
        "eval_only_kernels": eval_only, "null_ms": build.lut.null_ms,
        "rewritten": build.rewritten, "failed": {**build.failed, **fit.failed},
        "kernel_device_s": build.protocol.device_s, "net_device_s": fit.device_s,
        "calibration": calibration.to_dict(),
        "eval": None if fit.accuracy is None else {
            **fit.accuracy.to_dict(),
            "rows": [{"arch": a, "predicted_ms": p, "measured_ms": m}
                     for a, (p, m) in fit.rows.items()],
        },
    }  # fmt: skip


def _print(doc: dict[str, Any], fit: KernelLutFit) -> None:
    table = Table(title=escape(f"kernel LUT of {doc['device']} ({doc['space']}, level "
                               f"{doc['level']})"), show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for name, value in (
        ("archs whose kernels were taken", doc["archs"]),
        ("distinct kernels measured", doc["kernels"]),
        ("kernels only the eval archs have", doc["eval_only_kernels"]),
        ("kernels onnxruntime rewrites when alone", len(doc["rewritten"])),
        ("failed", len(doc["failed"])),
        ("empty model (per-run cost)", f"{doc['null_ms']:.4f} ms"),
        ("device time now: kernels / nets",
         f"{doc['kernel_device_s']:.1f} s / {doc['net_device_s']:.1f} s"),
    ):
        table.add_row(name, str(value))
    output_console().print(table)
    assert fit.lut.calibration is not None
    _echo_calibration("calibrated", fit.lut.calibration)
    if fit.accuracy is not None:
        acc = fit.accuracy
        tau = "-" if acc.kendall_tau is None else f"{acc.kendall_tau:.3f}"
        click.echo(f"eval on {acc.n} fresh nets: within ±10% {100 * acc.within_10:.1f}%, "
                   f"RMSPE {acc.rmspe:.1f}%, Kendall tau {tau}")
    for tag, reason in list(doc["failed"].items())[:5]:
        click.echo(f"warning: {escape(tag)} failed: {reason}", err=True)
    click.echo(f"stored kernel LUT {doc['id'][:12]} ({len(fit.lut.entries)} entries): "
               "`fleetnas search --mode lut` predicts with it")
    if doc["path"] is not None:
        click.echo(f"wrote {doc['path']}")


def show_kernel_luts(db: CostDB, space_name: str | None, device: str | None,
                     as_json: bool) -> None:
    """``fleetnas lut show --kernels``: the stored kernel LUTs, newest first."""
    rows = KernelLutStore(db).find(space_name=space_name, device=device)
    if as_json:
        click.echo(json.dumps([_stored_dict(r) for r in rows], indent=2))
        return
    if not rows:
        click.echo("No kernel LUTs yet: build one with `fleetnas lut kernels --space SPACE "
                   "--device NAME` (or --local)")
        return
    table = Table(title="kernel LUTs")
    for column in ("id", "space", "device", "settings", "level", "kernels", "LOO RMSPE",
                   "onnxruntime", "created"):
        table.add_column(column, justify="right" if column in ("kernels", "LOO RMSPE")
                         else "left")
    for row in rows:
        table.add_row(row.id[:12], escape(row.space), escape(row.device), row.settings_hash,
                      row.level, str(row.kernels), f"{row.loo_rmspe:.1f}%",
                      escape(f"{row.lut.onnxruntime} {row.lut.machine}"),
                      time.strftime("%Y-%m-%d %H:%M", time.gmtime(row.created_at)))
    output_console().print(table)


def _stored_dict(row: StoredKernelLut) -> dict[str, Any]:
    calibration = row.lut.calibration
    return {"id": row.id, "space": row.space, "device": row.device,
            "settings_hash": row.settings_hash, "level": row.level, "kernels": row.kernels,
            "loo_rmspe": row.loo_rmspe, "onnxruntime": row.lut.onnxruntime,
            "machine": row.lut.machine, "created_at": row.created_at,
            "calibration": None if calibration is None else calibration.to_dict()}
