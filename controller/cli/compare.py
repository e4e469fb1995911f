"""``fleetnas compare``: several models on several targets, in one table.

The models are measured as ``fleetnas measure`` measures them (the same
jobs and settings, so cached results are reused and new ones recorded);
the table has one row per model and, per target, its latency and its
speed-up against the first model (see :mod:`._comparison`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._comparison import (
    Comparison,
    comparison,
    comparison_table,
    save_comparison_plot,
)
from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._measuring import plan_jobs, run_jobs, run_options
from fleetnas.controller.cli._options import costdb_errors, settings_request
from fleetnas.controller.cli._targets import TargetFlags, target_options
from fleetnas.controller.cli.fleet import db_path_of, fleet_option
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.scheduler import ModelRef


def compare_models(
    ctx: click.Context, models: list[Path], targets: TargetFlags,
    request: agent_pb2.BenchmarkSettings, *, fleet_file: Path | None, quiet: bool,
    max_retries: int, device_wait_s: float,
) -> tuple[Comparison, bool]:
    """Measure what is missing and compare; returns the comparison and whether every job
    succeeded. Rows are labelled by the models' stored names where they have one."""
    plan = plan_jobs(models, targets, request, fleet_file)
    with costdb_errors(), CostDB(db_path_of(ctx)) as db:
        outcomes = run_jobs(db, plan, quiet=quiet, max_retries=max_retries,
                            device_wait_s=device_wait_s)
        labels = []
        for path in models:
            named = db.get_user_model(ModelRef.from_path(path).sha256)
            labels.append(named.name if named is not None else path.name)
    return comparison(outcomes, len(models), labels), all(o.ok for o in outcomes)


def show_comparison(c: Comparison, *, as_json: bool, plot: Path | None, title: str) -> None:
    """Print the table (or JSON) and write the plot when asked."""
    if as_json:
        click.echo(json.dumps(c.to_dict(), indent=2))
    else:
        output_console().print(comparison_table(c, title))
    if plot is not None:
        click.echo(f"wrote {save_comparison_plot(c, plot)}", err=True)


def report_failures(ctx: click.Context, c: Comparison) -> None:
    """Say which jobs failed (on stderr) and exit 1, when any did."""
    failed = [f"error: {m.file} on {w.replace(': failed: ', ': ', 1)}"
              for m in c.models for w in m.warnings if ": failed: " in w]
    if failed:
        for line in failed:
            click.echo(line, err=True)
        ctx.exit(1)


@click.command()
@click.argument("models", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@target_options("Measure on")
@settings_request()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG grouped bar chart of the latencies to FILE.")
@run_options
@fleet_option
@click.pass_context
def compare(
    ctx: click.Context,
    models: tuple[Path, ...],
    targets: TargetFlags,
    as_json: bool,
    plot: Path | None,
    max_retries: int,
    device_wait_s: float,
    fleet_file: Path | None,
    request: agent_pb2.BenchmarkSettings,
) -> None:
    """Compare models on devices: latency per target, speed-up against the first model.

    Every model is measured on every target as `fleetnas measure` would
    (cached results are reused); rows are models (by their stored name, see
    `measure --name`), columns the latency and speed-up on each target, then
    the measurements' warnings.

    \b
    Example:
        fleetnas compare a.onnx b.onnx c.onnx --device pi4 --device x86
        fleetnas compare fp32.onnx int8.onnx --local --threads 1 --plot latency.png
        fleetnas compare a.onnx b.onnx --class jetson --json
    """
    result, ok = compare_models(ctx, list(models), targets, request, fleet_file=fleet_file,
                                quiet=as_json, max_retries=max_retries,
                                device_wait_s=device_wait_s)
    show_comparison(result, as_json=as_json, plot=plot, title="Comparison")
    if not ok:
        report_failures(ctx, result)
