"""``fleetnas space stats``: a space's latency, params and FLOPs distribution on a device.

Read-only: from the device's LUT (archs sampled and predicted) or from the
archs of the space measured on it in the cost DB (``--source``; by default
the LUT when there is one). Prints percentiles, a text histogram and
latency bounds to start a ``--constraint`` from. The figures are the
library's (:func:`fleetnas.controller.lut.lut_stats`,
:func:`~fleetnas.controller.lut.measured_stats`). See ``docs/lut.md``.
"""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._errors import one_line_errors
from fleetnas.controller.cli._options import existing_db_path
from fleetnas.controller.cli._space import SpaceFlags, space_options
from fleetnas.controller.cli.fleet import db_path_of
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut import (
    DEFAULT_STATS_N,
    PERCENTILES,
    SUGGESTED_BOUNDS,
    Distribution,
    LutError,
    NoLatencyData,
    SpaceStats,
    device_predictor,
    lut_stats,
    measured_stats,
)
from fleetnas.controller.spaces import SearchSpace, UnknownSpace, get_space

#: width of the longest histogram bar, in characters
BAR_WIDTH = 40


@click.group()
def space() -> None:
    """Look at a search space before searching it.

    \b
    Example:
        fleetnas space stats --space nb201 --device pi4-a
    """


def _space(flags: SpaceFlags) -> SearchSpace:
    try:
        return get_space(flags.required_name, flags.config())
    except UnknownSpace as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.UsageError(f"{exc} (check --resolution / --space-config)") from exc


def devices_of(db: CostDB, device: str) -> list[str]:
    """``device``, or the devices of the class of that name the cost DB knows."""
    in_class = [d.name for d in db.list_devices(device_class=device)]
    return [device] if db.get_device(device) is not None or not in_class else in_class


def space_stats(db: CostDB, space: SearchSpace, device: str, *, source: str, n: int,
                seed: int, settings_hash: str | None) -> SpaceStats:
    """The stats the flags ask for (``source``: auto, lut or measured)."""
    devices = devices_of(db, device)
    if source != "measured":
        predictor = device_predictor(db, space, devices, settings_hash=settings_hash)
        if predictor is not None:
            return lut_stats(space, predictor, n=n, seed=seed)
        if source == "lut":
            raise NoLatencyData(
                f"no complete LUT of {space.identity()} on {device}: build one with `fleetnas "
                f"lut build --space {space.name} --device {device}`, or use --source measured"
            )
    return measured_stats(db, space, devices, n=n)


def _histogram(values: Distribution, unit: str) -> list[str]:
    bins = values.histogram()
    top = max(count for *_, count in bins) or 1
    return [f"{low:10.3f} - {high:10.3f} {unit} | {'#' * round(BAR_WIDTH * count / top):<{BAR_WIDTH}} "
            f"{count}" for low, high, count in bins]


def _print(stats: SpaceStats) -> None:
    console = output_console()
    table = Table(title=escape(f"{stats.space} on {stats.device} ({stats.describe()}; "
                               f"{stats.origin})"))
    table.add_column("")
    for q in PERCENTILES:
        table.add_column(f"p{q}", justify="right")
    rows = (("latency ms", stats.latency_ms, "{:.3f}"), ("params M", stats.params, "{:.3f}"),
            ("MFLOPs", stats.flops, "{:.2f}"))
    for label, dist, fmt in rows:
        scale = 1e-6 if label != "latency ms" else 1.0
        table.add_row(label, *(fmt.format(v * scale) for v in dist.percentiles().values()))
    console.print(table)
    click.echo("latency histogram:")
    for line in _histogram(stats.latency_ms, "ms"):
        click.echo(f"  {line}")
    click.echo("suggested bounds (--constraint):")
    for q, meaning in SUGGESTED_BOUNDS:
        device = stats.device if "," not in stats.device else "TARGET"
        click.echo(f"  p{q}: {meaning}: \"latency[{device}] <= {stats.latency_ms.percentile(q):.3f} "
                   f"ms\" (or \"latency[{device}] <= p{q}\")")


@space.command()
@space_options(required=True)
@click.option("--device", required=True, metavar="NAME",
              help="The device (or device class) whose latency to show.")
@click.option("--source", type=click.Choice(["auto", "lut", "measured"]), default="auto",
              show_default=True,
              help="lut: archs sampled and predicted by the device's LUT; measured: archs "
              "measured on it in the cost DB; auto: the LUT if there is one.")
@click.option("--n", "n", default=DEFAULT_STATS_N, show_default=True, type=click.IntRange(min=1),
              help="Archs to sample (LUT), or the newest measured archs to use at most.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the arch sample.")
@click.option("--settings-hash", metavar="HASH", help="Pick the LUT measured with these settings.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def stats(ctx: click.Context, space_flags: SpaceFlags, device: str, source: str, n: int,
          seed: int, settings_hash: str | None, as_json: bool) -> None:
    """Percentiles of a space's latency (and params/FLOPs) on a device, with bounds to use.

    \b
    Example:
        fleetnas space stats --space nb201 --device pi4-a
        fleetnas space stats --space mbv3 --resolution 160 --device pi4-a --source measured --json
    """
    chosen = _space(space_flags)
    with one_line_errors(LutError, UnknownSpace), CostDB(existing_db_path(db_path_of(ctx))) as db:
        result = space_stats(db, chosen, device, source=source, n=n, seed=seed,
                             settings_hash=settings_hash)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print(result)
