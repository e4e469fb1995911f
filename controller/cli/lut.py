"""``fleetnas lut``: build, calibrate, evaluate, check, show, export and import latency LUTs.

A LUT is one (space, device, settings, precision): ``build`` measures every
distinct block of the space (converted to ``--precision``) on the device through the scheduler (cache first, so a
rerun after Ctrl-C or a crash measures only what is missing), ``eval`` scores
it against fresh end-to-end measurements, ``check`` flags it stale when the
device drifted. Measuring commands take ``--device NAME`` (a device of the
fleet file) or ``--local`` (a throw-away agent on this machine, recorded as
device ``local``). See ``docs/lut.md``.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._console import output_console, when
from fleetnas.controller.cli._errors import exit_code, one_line_errors, sigterm_stops
from fleetnas.controller.cli._options import collect_params, existing_db_path, settings_request
from fleetnas.controller.cli._progress import lut_progress, quiet_option
from fleetnas.controller.cli._scheduling import (
    LOCAL_DEVICE,
    Scheduling,
    open_scheduler,
    scheduler_options,
)
from fleetnas.controller.cli._space import SpaceFlags, space_options
from fleetnas.controller.cli.fleet import db_path_of
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import UnknownDevice, fleet_path
from fleetnas.controller.lut import (
    DEFAULT_CALIBRATION_N,
    DEFAULT_CHECK_N,
    DEFAULT_EVAL_N,
    DEFAULT_EXPORT_DIR,
    DEFAULT_LUT_PRECISION,
    DEFAULT_LUT_STATISTIC,
    DEFAULT_REMEASURE_ATTEMPTS,
    DEFAULT_STALE_THRESHOLD,
    STATISTICS,
    BuildReport,
    Calibration,
    LutError,
    LutInfo,
    LutStore,
    build_lut,
    calibrate_lut,
    canonical_precision,
    check_lut,
    cli_name,
    entry_noise,
    evaluate_lut,
    export_lut,
    export_paths,
    from_cli_name,
    import_lut,
    is_empty_request,
    refresh_lut,
)
from fleetnas.controller.scheduler import Scheduler
from fleetnas.controller.spaces import SearchSpace, UnknownSpace, get_space

F = TypeVar("F", bound=Callable[..., Any])
#: exit status of ``lut check`` when the LUT is stale
EXIT_STALE = 3


# -- options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """Where a command measures: ``--device`` / ``--local`` and how it schedules."""

    device: str | None
    local: bool
    scheduling: Scheduling


def device_options(func: F) -> F:
    """``--device NAME`` / ``--local`` plus the scheduler's options, passed on as ``where``."""
    func = collect_params(func, "where", Where, ("device", "local", "scheduling"))
    for option in reversed([
        click.option("--device", metavar="NAME", help="The device of the fleet file to measure on."),
        click.option("--local", is_flag=True,
                     help="Measure on this machine with a throw-away loopback agent "
                     f"(device {LOCAL_DEVICE!r})."),
        scheduler_options,
    ]):  # fmt: skip
        func = option(func)
    return func


def _arch_seed(help_text: str) -> Callable[[F], F]:
    """``--arch-seed N``: the seed of the random archs a command measures."""
    return click.option("--arch-seed", "arch_seed", default=0, show_default=True, type=int,
                        help=help_text)


def _precision_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return canonical_precision(value)
    except ValueError as exc:  # UnknownPrecision
        raise click.BadParameter(str(exc)) from exc


def precision_option(help_text: str, *, default: str | None = DEFAULT_LUT_PRECISION) -> Callable[[F], F]:
    """``--precision NAME`` (fp32, fp16, int8, int8-dynamic), canonicalised."""
    return click.option("--precision", default=default, show_default=default is not None,
                        metavar="NAME", callback=_precision_name, help=help_text)


def calibration_data_option(func: F) -> F:
    """``--calibration DATA``: what an int8 LUT's models are calibrated on."""
    return click.option(
        "--calibration", "calibration_data", metavar="DATA",
        help="int8 only: calibration data (an .npz, or a dataset spec such as digits) for the "
        "models whose input it fits [default, and for the other blocks: random data, with a "
        "warning; latency does not depend on it].",
    )(func)  # fmt: skip


def selection_options(func: F) -> F:
    """``--settings-hash``, ``--precision`` and the settings flags, which pick one LUT among
    several."""
    func = settings_request()(func)
    func = precision_option("Pick the LUT of this precision (fp32, fp16, int8, int8-dynamic).")(func)
    return click.option(
        "--settings-hash", metavar="HASH",
        help="Pick the LUT measured with these settings (see `fleetnas lut show`).",
    )(func)  # fmt: skip


@contextmanager
def _calibration_warnings() -> Iterator[None]:
    """The compress package's random-calibration warnings as ``warning: ...`` lines on
    stderr, each text once (a build warns once for all its blocks)."""
    from fleetnas.controller.compress import RandomCalibrationWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RandomCalibrationWarning)
        try:
            yield
        finally:
            shown: set[str] = set()
            for w in caught:
                if issubclass(w.category, RandomCalibrationWarning):
                    if str(w.message) not in shown:
                        shown.add(str(w.message))
                        click.echo(f"warning: {w.message}", err=True)
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _space(flags: SpaceFlags) -> SearchSpace:
    try:
        return get_space(flags.required_name, flags.config())
    except UnknownSpace as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.UsageError(f"{exc} (check --resolution / --space-config)") from exc


def _space_filter(flags: SpaceFlags) -> str | None:
    """The space identity to filter on, when the user configured the space; else None."""
    if flags.name is None or not flags.configured:
        return None
    return _space(flags).identity()


def _errors() -> AbstractContextManager[None]:
    """Named errors of LUTs, fleets and the cost DB as one-line CLI errors."""
    from fleetnas.controller.export import ExportError

    return one_line_errors(LutError, UnknownSpace, ExportError)


@contextmanager
def _scheduler(db: CostDB, where: Where) -> Iterator[tuple[Scheduler, str]]:
    """A scheduler over the fleet file (or one local agent) and the device name to use."""
    device = where.device
    if where.local and device not in (None, LOCAL_DEVICE):
        raise click.UsageError("--local measures on this machine; drop --device")
    if not where.local and device is None:
        raise click.UsageError("say where to measure: --device NAME (of the fleet file) or --local")
    if_missing = (
        f", so device {device!r} is unknown: add it with `fleetnas fleet add {device} --address "
        "HOST:PORT --class CLASS`, or measure on this machine with --local"
    )
    with open_scheduler(db, where.scheduling, local=where.local, if_missing=if_missing) as scheduler:
        if where.local:
            yield scheduler, LOCAL_DEVICE
            return
        assert device is not None
        try:
            scheduler.fleet.get(device)
        except UnknownDevice as exc:
            known = ", ".join(d.name for d in scheduler.fleet) or "none"
            path = fleet_path(where.scheduling.fleet_file)
            raise click.ClickException(f"{exc} (devices in {path}: {known})") from exc
        yield scheduler, device


@contextmanager
def _measuring(ctx: click.Context, where: Where) -> Iterator[tuple[CostDB, Scheduler, str]]:
    """The cost DB, the scheduler and the device name, with errors as one-line CLI errors.

    Errors of the command's body inside the ``with`` are translated too.
    """
    with _errors(), CostDB(db_path_of(ctx)) as db, _scheduler(db, where) as (scheduler, target):
        yield db, scheduler, target


@contextmanager
def _selected(
    ctx: click.Context, space_flags: SpaceFlags, where: Where, settings_hash: str | None,
    request: agent_pb2.BenchmarkSettings, precision: str,
) -> Iterator[tuple[CostDB, Scheduler, LutInfo]]:
    """The cost DB, the scheduler and the one LUT the flags select (for calibrate/eval/check)."""
    identity = _space_filter(space_flags)
    with _measuring(ctx, where) as (db, scheduler, target):
        yield db, scheduler, _select(db, space_flags.required_name, target, identity,
                                     settings_hash, request, precision)


# -- formatting --------------------------------------------------------------------------


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _echo_calibration(what: str, calibration: Calibration) -> None:
    """The fitted line, its leave-one-out uncertainty, and a warning (stderr) per problem of
    the calibration set (``Calibration.warnings``)."""
    loo = ""
    if math.isfinite(calibration.loo_rmspe):
        loo = f", leave-one-out RMSPE {calibration.loo_rmspe:.1f}%"
        if calibration.a_interval is not None:
            low, high = calibration.a_interval
            loo += f", slope {low:.4f}–{high:.4f}"
    click.echo(f"{what} on {calibration.n} archs: predicted = {calibration.a:.4f} × "
               f"sum {calibration.b:+.4f} ms (fit RMSPE {calibration.fit_rmspe:.1f}%{loo})")
    for warning in calibration.warnings:
        click.echo(f"warning: {warning}", err=True)


def _calibration_text(lut: LutInfo) -> str:
    c = lut.calibration
    if c is None:
        return "[yellow]none[/]"
    return f"{c.a:.4f}×Σ{c.b:+.4f} ms (n={c.n}, fit {c.fit_rmspe:.1f}%)"


def _lut_table(store: LutStore, luts: list[LutInfo]) -> Table:
    table = Table(title="latency LUTs")
    for column in ("space", "device", "settings", "precision", "statistic", "status", "entries",
                   "coverage", "calibration", "last eval", "last check"):
        table.add_column(column, justify="right" if column in ("entries", "coverage") else "left")
    for lut in luts:
        ev = store.last_report(lut.id, "eval")
        ck = store.last_report(lut.id, "check")
        eval_text = "-" if ev is None else (
            f"±10%: {_pct(ev.accuracy.within_10)}, RMSPE {ev.accuracy.rmspe:.1f}% (n={ev.accuracy.n})"
        )
        if ck is None:
            check_text = "never"
        else:
            verdict = "[red]STALE[/]" if ck.stale else "[green]ok[/]"
            check_text = f"{verdict} {when(ck.created_at)}, error {ck.accuracy.mape:.1f}%"
        status = "[green]complete[/]" if lut.status == "complete" else "[yellow]building[/]"
        table.add_row(
            escape(lut.space), escape(lut.device),
            f"{lut.settings_hash} ({lut.threads} thr, {lut.method})", lut.precision,
            cli_name(lut.statistic), status,
            f"{lut.entries}/{lut.blocks_total}", _pct(lut.coverage), _calibration_text(lut),
            eval_text, check_text,
        )  # fmt: skip
    return table


def _accuracy_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=escape(title), show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _timeout(request: agent_pb2.BenchmarkSettings) -> float | None:
    """``--timeout`` limits the end-to-end runs; the other flags only pick the LUT."""
    return request.timeout_s if request.HasField("timeout_s") else None


def _select(
    db: CostDB,
    space_name: str,
    device: str,
    space_identity: str | None,
    settings_hash: str | None,
    request: agent_pb2.BenchmarkSettings,
    precision: str = DEFAULT_LUT_PRECISION,
) -> LutInfo:
    return LutStore(db).select(
        space_name=space_name, device=device, space=space_identity, settings_hash=settings_hash,
        request=None if is_empty_request(request) else request, precision=precision,
    )  # fmt: skip


# -- commands ----------------------------------------------------------------------------


@click.group()
def lut() -> None:
    """Per-device latency lookup tables: build, evaluate, check, share.

    \b
    Example:
        fleetnas lut build --space mbv3 --device pi4-a --resolution 160
        fleetnas lut build --space mbv3 --device pi4-a --resolution 160 --precision int8
        fleetnas lut eval --space mbv3 --device pi4-a --n 100
        fleetnas lut show
        fleetnas lut transfer --space mbv3 --device new-pi --n 20 --eval 30
    """


@dataclass(frozen=True)
class Refresh:
    """How ``lut build`` treats entries: the statistic, and what it measures again."""

    statistic: str | None
    remeasure: bool
    max_cv: float | None
    max_remeasure: int | None


def refresh_options(func: F) -> F:
    """``--statistic``, ``--remeasure``, ``--max-cv`` and ``--max-remeasure``, as ``refresh``."""
    func = collect_params(func, "refresh", Refresh,
                          ("statistic", "remeasure", "max_cv", "max_remeasure"))
    for option in reversed([
        click.option("--statistic", type=click.Choice([cli_name(s) for s in STATISTICS]),
                     help="Statistic of each block's raw samples an entry is "
                     f"[default: the LUT's own; {cli_name(DEFAULT_LUT_STATISTIC)} for a new "
                     "LUT]. Changing it recomputes the entries from the stored samples."),
        click.option("--remeasure", is_flag=True,
                     help="Refresh an existing (stale) LUT: measure its entries again, afresh "
                     "(all, or those over --max-cv), with its own settings."),
        click.option("--max-cv", type=click.FloatRange(min=0),
                     help="Noise threshold (CV of the samples; for paired, also reference "
                     "drift), e.g. 0.05. With --remeasure: only entries over it. Without: "
                     f"blocks over it are measured again up to {DEFAULT_REMEASURE_ATTEMPTS} "
                     "times."),
        click.option("--max-remeasure", type=click.IntRange(min=1), metavar="N",
                     help="With --remeasure: at most N blocks, the noisiest first."),
    ]):  # fmt: skip
        func = option(func)
    return func


@lut.command()
@space_options(required=True)
@device_options
@settings_request()
@click.option("--calibration-n", default=DEFAULT_CALIBRATION_N, show_default=True,
              type=click.IntRange(min=0),
              help="End-to-end archs to calibrate on once the LUT is complete (0: skip).")
@_arch_seed("Seed of the calibration archs.")
@refresh_options
@precision_option("Convert every block (and calibration net) to this precision before "
                  "measuring: fp32, fp16, int8 (static QDQ), int8-dynamic; each precision is "
                  "its own LUT.")
@calibration_data_option
@quiet_option
@click.pass_context
def build(
    ctx: click.Context,
    space_flags: SpaceFlags,
    where: Where,
    calibration_n: int,
    arch_seed: int,
    refresh: Refresh,
    precision: str,
    calibration_data: str | None,
    quiet: bool,
    request: agent_pb2.BenchmarkSettings,
) -> None:
    """Measure every distinct block of a space on a device and store the LUT.

    Blocks already measured on the device with the same settings are taken
    from the cost database, so an interrupted build resumes where it
    stopped: run the same command again. Then calibrates the LUT on
    --calibration-n whole networks. --statistic on an existing LUT
    recomputes its entries from the stored raw samples (no measuring);
    --remeasure refreshes a stale one. --precision int8 builds the int8 LUT
    (its blocks quantized with onnxruntime, static QDQ) beside the fp32 one.

    \b
    Example:
        fleetnas lut build --space mbv3 --device pi4-a --resolution 160 --resolution 192
        fleetnas lut build --space nb201 --device pi4-a --precision int8 --calibration data.npz
        fleetnas lut build --space nb201 --local --threads 1 --statistic p10
        fleetnas lut build --space nb201 --device pi4-a --remeasure --max-cv 0.05 --max-remeasure 20
    """
    space = _space(space_flags)
    if refresh.max_remeasure is not None and not refresh.remeasure:
        raise click.UsageError("--max-remeasure bounds --remeasure: add --remeasure")
    if calibration_data is not None and precision != "int8":
        raise click.UsageError("--calibration calibrates int8 models: add --precision int8")
    with sigterm_stops():
        try:
            with _measuring(ctx, where) as (db, scheduler, target), _calibration_warnings():
                if refresh.remeasure:
                    info = _refresh(db, scheduler, target, space, request, where, refresh, quiet,
                                    precision, calibration_data)
                else:
                    info = _build(db, scheduler, target, space, request, where, refresh, quiet,
                                  precision, calibration_data)
                _calibrate_built(db, scheduler, info, request, where, calibration_n, arch_seed,
                                 quiet, calibration_data)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
            device = LOCAL_DEVICE if where.local else where.device
            with CostDB(db_path_of(ctx)) as db:
                luts = LutStore(db).find(space=space.identity(), device=device,
                                         precision=precision)
            stored = max((x.entries for x in luts), default=0)
            click.echo(f"interrupted ({exc or 'Ctrl-C'}): {stored} blocks are stored; run the "
                       "same command again to resume (nothing is measured twice)", err=True)
            ctx.exit(exit_code(exc))


def _build(db: CostDB, scheduler: Scheduler, target: str, space: SearchSpace,
           request: agent_pb2.BenchmarkSettings, where: Where, refresh: Refresh,
           quiet: bool, precision: str, calibration_data: str | None) -> LutInfo:
    with lut_progress(quiet, "blocks") as on_progress:
        report = build_lut(space, target, request, db=db, scheduler=scheduler,
                           cache_dir=where.scheduling.cache_dir, on_progress=on_progress,
                           max_cv=refresh.max_cv, statistic=_statistic(refresh),
                           precision=precision, calibration_data=calibration_data)
    _print_build(space, target, report)
    if report.remeasured:
        click.echo(f"{len(report.remeasured)} noisy blocks (CV over {refresh.max_cv:g}) were "
                   "measured again; each entry keeps its least noisy measurement")
    return _complete(report)


def _statistic(refresh: Refresh) -> str | None:
    return None if refresh.statistic is None else from_cli_name(refresh.statistic)


def _print_build(space: SearchSpace, target: str, report: BuildReport) -> None:
    precision = "" if report.lut is None else f" ({report.lut.precision})"
    table = _accuracy_table(f"LUT of {space.identity()} on {target}{precision}", [
        ("distinct blocks", report.blocks),
        ("from the cost DB", report.cached),
        ("measured now", report.measured),
        ("failed", len(report.failed)),
        ("export (s)", f"{report.export_s:.1f}"),
        ("measure (s)", f"{report.measure_s:.1f}"),
        ("settings", report.lut.settings_hash if report.lut else "-"),
        ("precision", report.lut.precision if report.lut else "-"),
        ("statistic", cli_name(report.lut.statistic) if report.lut else "-"),
        ("status", report.lut.status if report.lut else "-"),
    ])  # fmt: skip
    output_console().print(table)
    if report.statistic_before is not None and report.lut is not None:
        click.echo(f"statistic {cli_name(report.statistic_before)} -> "
                   f"{cli_name(report.lut.statistic)}: {report.restated} entries recomputed "
                   "from their stored raw samples (nothing re-measured); calibration cleared")
    if report.unconverted and report.lut is not None:
        click.echo(f"{len(report.unconverted)} blocks have no op to convert to "
                   f"{report.lut.precision} (skip, pooling): they run as they are inside a "
                   f"{report.lut.precision} net, so their entries measure the fp32 block")
    for key, reason in report.failed[:10]:
        click.echo(f"error: block {key}: {reason}", err=True)


def _complete(report: BuildReport) -> LutInfo:
    if not report.complete:
        raise click.ClickException(
            f"{len(report.failed)} of {report.blocks} blocks failed; fix the cause and run "
            "the same command again (measured blocks are kept)"
        )
    assert report.lut is not None
    return report.lut


def _calibrate_built(db: CostDB, scheduler: Scheduler, info: LutInfo,
                     request: agent_pb2.BenchmarkSettings, where: Where, calibration_n: int,
                     arch_seed: int, quiet: bool, calibration_data: str | None) -> None:
    if calibration_n:
        with lut_progress(quiet, "calibration archs") as on_progress:
            calibration = calibrate_lut(
                info, db=db, scheduler=scheduler, k=calibration_n, seed=arch_seed,
                cache_dir=where.scheduling.cache_dir, timeout_s=_timeout(request),
                on_progress=on_progress, calibration_data=calibration_data,
            )  # fmt: skip
        _echo_calibration("calibrated", calibration)


def _refresh(db: CostDB, scheduler: Scheduler, target: str, space: SearchSpace,
             request: agent_pb2.BenchmarkSettings, where: Where, refresh: Refresh,
             quiet: bool, precision: str, calibration_data: str | None) -> LutInfo:
    """``--remeasure``: the existing LUT the flags select, its entries measured again."""
    info = _select(db, space.name, target, space.identity(), None, request, precision)
    with lut_progress(quiet, "blocks") as on_progress:
        result = refresh_lut(space, info, db=db, scheduler=scheduler, max_cv=refresh.max_cv,
                             max_blocks=refresh.max_remeasure, statistic=_statistic(refresh),
                             cache_dir=where.scheduling.cache_dir, on_progress=on_progress,
                             calibration_data=calibration_data)
    if not result.selected:
        click.echo(f"nothing to re-measure: no entry of {info.label()} is over --max-cv "
                   f"{refresh.max_cv:g}")
        return _complete(result.build)
    _print_build(space, target, result.build)
    table = Table(title=escape(f"entries measured again ({info.label()})"))
    for column in ("block", "before ms", "after ms", "change", "noise before", "noise after"):
        table.add_column(column, justify="left" if column == "block" else "right")
    for row in result.entries:
        change = ("-" if row.before_ms is None or row.after_ms is None
                  else f"{100 * (row.after_ms / row.before_ms - 1):+.1f}%")
        table.add_row(escape(row.block_key), _ms(row.before_ms), _ms(row.after_ms), change,
                      _share(row.before_noise), _share(row.after_noise))  # fmt: skip
    output_console().print(table)
    refreshed = sum(1 for r in result.entries if r.after_ms is not None)
    line = (f"re-measured {refreshed} of {result.selected} selected blocks"
            + (f" ({result.left} left by --max-remeasure: run again for them)"
               if result.left else ""))
    if refresh.max_cv is not None:
        line += (f"; entries over --max-cv {refresh.max_cv:g}: {result.over_before} before, "
                 f"{result.over_after} after")
    click.echo(line)
    return _complete(result.build)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _share(value: float | None) -> str:
    return "-" if value is None or value != value else f"{100 * value:.1f}%"


@lut.command()
@space_options(required=True)
@device_options
@selection_options
@click.option("--calibration-n", default=DEFAULT_CALIBRATION_N, show_default=True,
              type=click.IntRange(min=5), help="End-to-end archs to fit the line on.")
@_arch_seed("Seed of the calibration archs.")
@calibration_data_option
@quiet_option
@click.pass_context
def calibrate(
    ctx: click.Context,
    space_flags: SpaceFlags,
    where: Where,
    settings_hash: str | None,
    precision: str,
    calibration_n: int,
    arch_seed: int,
    calibration_data: str | None,
    quiet: bool,
    request: agent_pb2.BenchmarkSettings,
) -> None:
    """Fit a LUT's calibration line on end-to-end measurements of random archs.

    The archs of a --precision LUT are measured converted to its precision.

    \b
    Example:
        fleetnas lut calibrate --space mbv3 --device pi4-a --calibration-n 20
        fleetnas lut calibrate --space nb201 --device pi4-a --precision int8
    """
    with _selected(ctx, space_flags, where, settings_hash, request, precision) as (
        db, scheduler, info
    ), _calibration_warnings():
        with lut_progress(quiet, "calibration archs") as on_progress:
            calibration = calibrate_lut(info, db=db, scheduler=scheduler, k=calibration_n,
                                        seed=arch_seed, cache_dir=where.scheduling.cache_dir,
                                        timeout_s=_timeout(request), on_progress=on_progress,
                                        calibration_data=calibration_data)
    _echo_calibration(f"calibrated {info.label()}", calibration)


@lut.command(name="eval")
@space_options(required=True)
@device_options
@selection_options
@click.option("--n", "n", default=DEFAULT_EVAL_N, show_default=True, type=click.IntRange(min=2),
              help="Random archs to measure end to end and score.")
@click.option("--calibration-n", default=DEFAULT_CALIBRATION_N, show_default=True,
              type=click.IntRange(min=5),
              help="Other random archs to calibrate on (never scored).")
@_arch_seed("Seed of the arch samples.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Scatter plot PNG [default: lut-eval-<device>-<space>-<settings>.png].")
@click.option("--no-plot", is_flag=True, help="Do not draw the scatter plot.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@quiet_option
@click.pass_context
def eval_(
    ctx: click.Context,
    space_flags: SpaceFlags,
    where: Where,
    settings_hash: str | None,
    precision: str,
    n: int,
    calibration_n: int,
    arch_seed: int,
    plot_path: Path | None,
    no_plot: bool,
    as_json: bool,
    quiet: bool,
    request: agent_pb2.BenchmarkSettings,
) -> None:
    """Score a LUT against N random archs measured end to end (cached).

    Calibrates on --calibration-n other archs first, then reports the share
    of predictions within ±5% and ±10%, RMSPE and Kendall tau, stores the
    result (see `lut show`) and draws predicted against measured. Archs are
    measured with the LUT's own settings; settings flags only pick the LUT
    (--timeout limits each run).

    \b
    Example:
        fleetnas lut eval --space mbv3 --device pi4-a --n 100 --calibration-n 10
        fleetnas lut eval --space nb201 --device pi4-a --precision int8 --n 30
    """
    with _selected(ctx, space_flags, where, settings_hash, request, precision) as (
        db, scheduler, info
    ), _calibration_warnings():
        if no_plot:
            plot = None
        elif plot_path is not None:
            plot = plot_path
        else:
            plot = Path(f"lut-eval-{info.device}-{export_paths(info)[0].stem}.png")
        with lut_progress(quiet or as_json, "archs") as on_progress:
            result = evaluate_lut(info, db=db, scheduler=scheduler, n=n,
                                  calibration_n=calibration_n, seed=arch_seed,
                                  cache_dir=where.scheduling.cache_dir, plot_path=plot,
                                  timeout_s=_timeout(request), on_progress=on_progress)
    acc, raw, cal = result.accuracy, result.raw_accuracy, result.calibration
    if as_json:
        click.echo(json.dumps({
            "lut": {"space": info.space, "device": info.device,
                    "settings_hash": info.settings_hash, "precision": info.precision},
            "accuracy": acc.to_dict(), "raw_accuracy": raw.to_dict(),
            "calibration": cal.to_dict(), "plot": None if result.plot is None else str(result.plot),
            "failed": [list(f) for f in result.failed], "measured_now": result.measured_now,
            "rows": [r.to_dict() for r in result.rows],
        }, indent=2))  # fmt: skip
        return
    tau = "-" if acc.kendall_tau is None else f"{acc.kendall_tau:.3f}"
    output_console().print(_accuracy_table(f"{info.label()}: {acc.n} archs", [
        ("within ±10%", _pct(acc.within_10)),
        ("within ±5%", _pct(acc.within_5)),
        ("RMSPE", f"{acc.rmspe:.2f}%"),
        ("mean / max error", f"{acc.mape:.2f}% / {acc.max_ape:.1f}%"),
        ("Kendall tau", tau),
        ("uncalibrated sum: ±10% / RMSPE", f"{_pct(raw.within_10)} / {raw.rmspe:.1f}%"),
        ("calibration", f"{cal.a:.4f} × sum {cal.b:+.4f} ms on {cal.n} other archs"),
        ("measured now / from the DB", f"{result.measured_now} / "
                                       f"{len(result.rows) + cal.n - result.measured_now}"),
        ("failed", len(result.failed)),
    ]))  # fmt: skip
    if result.plot is not None:
        click.echo(f"scatter plot: {result.plot}")


@lut.command()
@space_options(required=True)
@device_options
@selection_options
@click.option("--n", "n", default=DEFAULT_CHECK_N, show_default=True, type=click.IntRange(min=1),
              help="Archs to measure afresh.")
@click.option("--threshold", default=DEFAULT_STALE_THRESHOLD, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Mean error (%) above which the LUT is stale.")
@_arch_seed("Seed of the arch sample.")
@quiet_option
@click.pass_context
def check(
    ctx: click.Context,
    space_flags: SpaceFlags,
    where: Where,
    settings_hash: str | None,
    precision: str,
    n: int,
    threshold: float,
    arch_seed: int,
    quiet: bool,
    request: agent_pb2.BenchmarkSettings,
) -> None:
    """Re-measure a few archs (never from the cache) and flag the LUT stale if it drifted.

    Exits with status 3 when the LUT is stale; the verdict is stored and
    shown by `lut show`. Archs are measured with the LUT's own settings.

    \b
    Example:
        fleetnas lut check --space mbv3 --device pi4-a --n 5 --threshold 10
    """
    with _selected(ctx, space_flags, where, settings_hash, request, precision) as (
        db, scheduler, info
    ), _calibration_warnings():
        with lut_progress(quiet, "archs") as on_progress:
            result = check_lut(info, db=db, scheduler=scheduler, n=n, seed=arch_seed,
                               threshold=threshold, cache_dir=where.scheduling.cache_dir,
                               timeout_s=_timeout(request), on_progress=on_progress)
    table = Table(title=escape(f"check of {info.label()}"))
    for column in ("arch", "predicted ms", "measured ms", "error"):
        table.add_column(column, justify="left" if column == "arch" else "right")
    for row in result.rows:
        error = 100 * (row.predicted_ms - row.measured_ms) / row.measured_ms
        table.add_row(escape(row.arch), f"{row.predicted_ms:.3f}", f"{row.measured_ms:.3f}",
                      f"{error:+.1f}%")
    console = output_console()
    console.print(table)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.stale:
        click.echo(f"STALE: {'; '.join(result.reasons)}; rebuild with `fleetnas lut build` "
                   "(a fresh DB, or new settings) and re-run `fleetnas lut eval`")
        ctx.exit(EXIT_STALE)
    click.echo(f"ok: mean error {result.accuracy.mape:.1f}% is within the {threshold:g}% threshold")


@lut.command()
@space_options(required=False)
@click.option("--device", metavar="NAME", help="Only LUTs of this device.")
@precision_option("Only LUTs of this precision [default: every precision].", default=None)
@click.option("--blocks", is_flag=True, help="Also list the entries of the one LUT selected.")
@click.option("--transfers", is_flag=True,
              help="List the stored transfer fits (`fleetnas lut transfer`) instead of LUTs.")
@click.option("--kernels", is_flag=True,
              help="List the stored kernel LUTs (`fleetnas lut kernels`) instead of LUTs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def show(
    ctx: click.Context,
    space_flags: SpaceFlags,
    device: str | None,
    precision: str | None,
    blocks: bool,
    transfers: bool,
    kernels: bool,
    as_json: bool,
) -> None:
    """List the LUTs in the cost database: coverage, calibration, accuracy, staleness.

    \b
    Example:
        fleetnas lut show --device pi4-a
        fleetnas lut show --space nb201 --device local --blocks
        fleetnas lut show --transfers --device new-pi
        fleetnas lut show --kernels --space mbv3

    With --blocks, each entry's noise is the CV of its measurement's runs (for a
    paired one, at least the reference's drift): what `lut build --remeasure
    --max-cv` compares; "-" when the measurement is not in this cost DB.
    """
    identity = _space_filter(space_flags)
    with _errors(), CostDB(existing_db_path(db_path_of(ctx))) as db:
        if sum((transfers, kernels, blocks)) > 1:
            raise click.UsageError("--blocks lists one LUT's entries, --kernels the kernel "
                                   "LUTs and --transfers the transfer fits: use one of them")
        if kernels:
            _lut_kernels.show_kernel_luts(db, space_flags.name, device, as_json)
            return
        if transfers:
            _lut_transfer.show_transfer_fits(db, space_flags.name, device, as_json)
            return
        store = LutStore(db)
        luts = store.find(space_name=space_flags.name, space=identity, device=device,
                          precision=precision)
        entries = {}
        if blocks:
            if len(luts) != 1:
                raise click.UsageError(
                    f"--blocks lists one LUT; {len(luts)} match: narrow with --space, "
                    "--resolution, --device, --precision"
                )
            entries = store.entries(luts[0].id)
        if as_json:
            click.echo(json.dumps([_lut_dict(store, x) for x in luts], indent=2))
            return
        if not luts:
            click.echo("No LUTs yet: build one with `fleetnas lut build --space SPACE "
                       "--device NAME` (or --local)")
            return
        console = output_console()
        console.print(_lut_table(store, luts))
        if entries:
            table = Table(title=escape(f"entries of {luts[0].label()}"))
            table.add_column("block")
            table.add_column("latency ms", justify="right")
            table.add_column("noise", justify="right")
            table.add_column("model")
            for entry in entries.values():
                m = db.get_measurement(entry.measurement_uid or "")
                table.add_row(escape(entry.block_key), f"{entry.latency_ms:.4f}",
                              _share(None if m is None else entry_noise(m)),
                              entry.model_sha256[:12])
            console.print(table)


def _lut_dict(store: LutStore, info: LutInfo) -> dict[str, Any]:
    ev = store.last_report(info.id, "eval")
    ck = store.last_report(info.id, "check")
    return {
        "id": info.id, "space": info.space, "space_name": info.space_name,
        "space_config": info.space_config, "space_version": info.space_version,
        "device": info.device, "settings_hash": info.settings_hash, "threads": info.threads,
        "method": info.method, "precision": info.precision,
        "statistic": cli_name(info.statistic), "status": info.status,
        "entries": info.entries,
        "blocks_total": info.blocks_total, "coverage": info.coverage,
        "calibration": None if info.calibration is None else info.calibration.to_dict(),
        "last_eval": None if ev is None else {"created_at": ev.created_at,
                                              **ev.accuracy.to_dict()},
        "last_check": None if ck is None else {"created_at": ck.created_at, "stale": ck.stale,
                                               "threshold": ck.threshold,
                                               **ck.accuracy.to_dict()},
        "source": info.source, "created_at": info.created_at, "updated_at": info.updated_at,
    }  # fmt: skip


@lut.command(name="export")
@space_options(required=True)
@click.option("--device", required=True, metavar="NAME", help="The LUT's device.")
@selection_options
@click.option("--out-dir", default=str(DEFAULT_EXPORT_DIR), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Files go to OUT_DIR/<device>/<space>-<settings hash>.json|csv.")
@click.option("--format", "formats", multiple=True, type=click.Choice(["json", "csv"]),
              help="Repeatable [default: both].")
@click.pass_context
def export(
    ctx: click.Context,
    space_flags: SpaceFlags,
    device: str,
    settings_hash: str | None,
    precision: str,
    out_dir: Path,
    formats: tuple[str, ...],
    request: agent_pb2.BenchmarkSettings,
) -> None:
    """Write a LUT to profiles/ as JSON and CSV, with its provenance.

    \b
    Example:
        fleetnas lut export --space mbv3 --device pi4-a
        fleetnas lut export --space nb201 --device local --format json --out-dir shared/luts
    """
    identity = _space_filter(space_flags)
    with _errors(), CostDB(existing_db_path(db_path_of(ctx))) as db:
        info = _select(db, space_flags.required_name, device, identity, settings_hash, request,
                       precision)
        written = export_lut(db, info, out_dir=out_dir, formats=formats or ("json", "csv"))
    for file in written:
        click.echo(f"wrote {file}")


@lut.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--device", metavar="NAME", help="Store it under this device name [default: the file's].")
@click.option("--space", "space_name", metavar="NAME",
              help="Refuse the file unless it is a LUT of this space (name or identity).")
@settings_request()
@click.option("--force", is_flag=True,
              help="Import despite a space, space-version, block or settings mismatch.")
@click.option("--replace", is_flag=True, help="Overwrite a LUT with the same identity.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]),
              help="[default: from the suffix]")
@click.pass_context
def import_(
    ctx: click.Context,
    file: Path,
    device: str | None,
    space_name: str | None,
    force: bool,
    replace: bool,
    fmt: str | None,
    request: agent_pb2.BenchmarkSettings,
) -> None:
    """Add an exported LUT (JSON or CSV) to the cost database, after validating it.

    Settings flags state what you expect (e.g. --threads 1): a file
    measured otherwise is refused unless --force.

    \b
    Example:
        fleetnas lut import profiles/luts/pi4-a/mbv3-0123456789abcdef.json --threads 1
        fleetnas lut import colleague.json --device pi4-b --replace
    """
    started = time.monotonic()
    with _errors(), CostDB(db_path_of(ctx)) as db:
        result = import_lut(
            db, file, fmt=fmt, device=device, expect_space=space_name,
            expect_settings=None if is_empty_request(request) else request,
            force=force, replace=replace,
        )  # fmt: skip
    for problem in result.forced:
        click.echo(f"warning (forced): {problem}", err=True)
    info = result.lut
    click.echo(
        f"imported {result.entries} entries as {info.label()}"
        + (" (replaced the old one)" if result.replaced else "")
        + f": {info.status}, coverage {_pct(info.coverage)}, calibration "
        + ("none" if info.calibration is None else f"{info.calibration.a:.4f}×Σ"
           f"{info.calibration.b:+.4f} ms")
        + f" ({time.monotonic() - started:.1f} s)"
    )


# ``lut transfer`` and ``lut kernels`` live in their own modules; importing them registers
# them on the group.
from fleetnas.controller.cli import lut_kernels as _lut_kernels  # noqa: E402,F401
from fleetnas.controller.cli import lut_transfer as _lut_transfer  # noqa: E402,F401
