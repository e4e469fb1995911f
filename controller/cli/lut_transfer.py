"""``fleetnas lut transfer``: predict a new device from a few of its own measurements.

The command is a thin layer over :func:`fleetnas.controller.predict.transfer`
(and :func:`~fleetnas.controller.predict.evaluate_transfer` for ``--eval``):
the new device measures the first ``--n`` archs of the space's reference
sequence by the shared-host protocol, and a model over the other devices'
measurements in the cost DB plus arch features is fitted on them.

What it produces: a *model*, not a LUT. Its inputs (the new device's
reference measurements, the sources' measurements) are in the cost DB, and
the fit is deterministic, so the same command again refits the same model
without measuring anything. Every fit is stored whole (``TransferStore``, id
= the hash of its parameters, so an unchanged rerun stores nothing new):
``fleetnas search --mode lut`` or ``--mode hybrid`` predicts a target
without a LUT with its newest stored fit and keeps the id, so a resumed
search predicts with the same fit however the DB grew. ``fleetnas lut show
--transfers`` lists them (:func:`show_transfer_fits`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._errors import one_line_errors
from fleetnas.controller.cli._options import settings_request
from fleetnas.controller.cli._progress import phase_progress, quiet_option
from fleetnas.controller.cli._protocol_options import protocol_options
from fleetnas.controller.cli._space import SpaceFlags, space_options
from fleetnas.controller.cli.lut import Where, _measuring, _space, device_options, lut
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.predict import (
    DEFAULT_MIN_SOURCE_ARCHS,
    Protocol,
    StoredTransfer,
    TransferError,
    TransferEval,
    TransferResult,
    TransferStore,
    evaluate_transfer,
    transfer,
)


@lut.command(name="transfer")
@space_options(required=True)
@device_options
@settings_request()
@click.option("--n", "n", default=20, show_default=True, type=click.IntRange(min=2),
              help="Reference archs to measure on the new device.")
@click.option("--from", "sources", multiple=True, metavar="DEVICE",
              help="Use only these devices' measurements (repeatable) [default: every other "
              "device in the cost DB].")
@click.option("--eval", "eval_n", type=click.IntRange(min=2), metavar="M",
              help="Also measure M fresh archs on the new device and score the prediction "
              "(Kendall tau, share within ±10%).")
@click.option("--min-source-archs", default=DEFAULT_MIN_SOURCE_ARCHS, show_default=True,
              type=click.IntRange(min=1),
              help="Archs a device must have measured in the cost DB to serve as a source.")
@protocol_options
@click.option("--arch-seed", default=0, show_default=True, type=int,
              help="Seed of the reference and eval arch sequences.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@quiet_option
@click.pass_context
def transfer_command(
    ctx: click.Context,
    space_flags: SpaceFlags,
    where: Where,
    n: int,
    sources: tuple[str, ...],
    eval_n: int | None,
    min_source_archs: int,
    arch_seed: int,
    as_json: bool,
    quiet: bool,
    request: agent_pb2.BenchmarkSettings,
    protocol: Protocol,
) -> None:
    """Predict a new device from N of its own measurements and the fleet's cost DB.

    Measures the first N archs of the space's reference sequence on the new
    device (the shared-host protocol; a rerun reuses its rounds), then fits
    the device's latency as a mixture of the other devices' latencies plus a
    correction per arch feature. Needs at least one other device with
    --min-source-archs measured archs of the space (e.g. from `fleetnas lut
    eval` or a search on it).

    \b
    Example:
        fleetnas lut transfer --space nb201 --device new-pi --n 20 --eval 30
        fleetnas lut transfer --space mbv3 --device new-pi --n 10 --from pi4-a --from pi4-b
    """
    space = _space(space_flags)
    evaluation: TransferEval | None = None
    with one_line_errors(TransferError), _measuring(ctx, where) as (db, scheduler, target):
        with phase_progress(quiet or as_json, "archs") as on_progress:
            result = transfer(db, space, target, n, scheduler=scheduler, request=request,
                              protocol=protocol, cache_dir=where.scheduling.cache_dir,
                              min_source_archs=min_source_archs, sources=sources or None,
                              seed=arch_seed, on_progress=on_progress)
            if eval_n is not None:
                evaluation = evaluate_transfer(result, db, space, target, eval_n,
                                               scheduler=scheduler, request=request,
                                               protocol=protocol, seed=arch_seed,
                                               on_progress=on_progress)
        stored = TransferStore(db).save(space, target, result)
    missing = sorted(set(sources) - {s.device for s in result.sources})
    if as_json:
        doc = {**_document(target, space.identity(), result, evaluation), "fit_id": stored.id}
        click.echo(json.dumps(doc, indent=2))
    else:
        _print(target, space.identity(), result, evaluation)
        click.echo(f"stored as transfer fit {stored.id[:12]}: `fleetnas search --mode lut` "
                   f"(or hybrid) predicts {target} with it where it has no LUT")
    for device in missing:
        click.echo(f"warning: --from {device}: not a source (fewer than {min_source_archs} "
                   f"measured archs of {space.identity()} in the cost DB)", err=True)


def _document(device: str, space: str, result: TransferResult,
              evaluation: TransferEval | None) -> dict[str, Any]:
    fit = result.fit
    return {
        "device": device, "space": space, "n": len(result.measured),
        "reference_archs": result.measured, "device_s": result.device_s,
        "sources": [{"device": s.device, "settings_hash": s.settings_hash, "threads": s.threads,
                     "archs": len(s.measured), "fit_rmspe": s.fit_rmspe, "weight": float(w)}
                    for s, w in zip(result.sources, fit.embedding, strict=True)],
        "nearest": result.nearest, "loo_rmspe": fit.loo_rmspe,
        "eval": None if evaluation is None else {
            **evaluation.accuracy.to_dict(), "device_s": evaluation.device_s,
            "failed": evaluation.failed,
            "rows": [{"arch": a, "predicted_ms": p, "measured_ms": m}
                     for a, (p, m) in evaluation.rows.items()],
        },
    }  # fmt: skip


def _print(device: str, space: str, result: TransferResult,
           evaluation: TransferEval | None) -> None:
    console = output_console()
    sources = Table(title=escape(f"sources for {device} ({space})"))
    for column in ("device", "settings", "archs", "fit RMSPE", "weight"):
        sources.add_column(column, justify="left" if column in ("device", "settings") else "right")
    for source, weight in zip(result.sources, result.fit.embedding, strict=True):
        sources.add_row(escape(source.device), f"{source.settings_hash} ({source.threads} thr)",
                        str(len(source.measured)), f"{source.fit_rmspe:.1f}%", f"{weight:.3f}")
    console.print(sources)
    refs = Table(title=escape(f"reference archs measured on {device}"))
    refs.add_column("arch")
    refs.add_column("ms", justify="right")
    for arch, ms in result.measured.items():
        refs.add_row(escape(arch), f"{ms:.4f}")
    console.print(refs)
    click.echo(f"measured {len(result.measured)} reference archs on {device} "
               f"({result.device_s:.1f} s of device time now); nearest source: "
               f"{result.nearest or '-'}; leave-one-out RMSPE {result.fit.loo_rmspe:.1f}%")
    if evaluation is not None:
        acc = evaluation.accuracy
        tau = "-" if acc.kendall_tau is None else f"{acc.kendall_tau:.3f}"
        click.echo(f"eval on {acc.n} fresh archs: Kendall tau {tau}, within ±10% "
                   f"{100 * acc.within_10:.1f}%, RMSPE {acc.rmspe:.1f}% "
                   f"({evaluation.device_s:.1f} s of device time now"
                   + (f", {len(evaluation.failed)} failed)" if evaluation.failed else ")"))


def show_transfer_fits(db: CostDB, space_name: str | None, device: str | None,
                       as_json: bool) -> None:
    """``fleetnas lut show --transfers``: the stored transfer fits, newest first."""
    fits = TransferStore(db).find(space_name=space_name, device=device)
    if as_json:
        click.echo(json.dumps([_fit_dict(f) for f in fits], indent=2))
        return
    if not fits:
        click.echo("No transfer fits yet: fit one with `fleetnas lut transfer --space SPACE "
                   "--device NEW`")
        return
    table = Table(title="transfer fits")
    for column in ("id", "space", "device", "settings", "n", "sources", "LOO RMSPE", "created"):
        table.add_column(column, justify="right" if column in ("n", "LOO RMSPE") else "left")
    for fit in fits:
        table.add_row(fit.id[:12], escape(fit.space), escape(fit.device), fit.settings_hash,
                      str(fit.n), escape(", ".join(fit.sources)), f"{fit.loo_rmspe:.1f}%",
                      time.strftime("%Y-%m-%d %H:%M", time.gmtime(fit.created_at)))
    output_console().print(table)


def _fit_dict(fit: StoredTransfer) -> dict[str, Any]:
    return {"id": fit.id, "space": fit.space, "device": fit.device,
            "settings_hash": fit.settings_hash, "n": fit.n, "sources": fit.sources,
            "loo_rmspe": fit.loo_rmspe, "created_at": fit.created_at,
            "reference_archs": fit.params["measured"]}
