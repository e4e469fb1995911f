"""``fleetnas measure``: latency of ONNX models on fleet devices, cache first.

Every (model, target) pair is a job for the scheduler: answered from the cost
DB when it was measured before with the same resolved settings, else run on
the device (or any device of the class) and recorded. With no fleet file and
no target, or with ``--local``, one throw-away agent is started on loopback
for this command, so a new user can measure with no set-up at all; its
results are recorded as device ``local``.

With ``--profile`` every job is measured afresh (a profile needs a run; the
settings hash leaves ``profile`` out, so a cached measurement may have none),
its operator profile is stored with the measurement and shown (see
:mod:`._profile`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._measuring import job_tag, plan_jobs, run_jobs, run_options
from fleetnas.controller.cli._naming import Naming, naming_options
from fleetnas.controller.cli._options import costdb_errors, settings_request
from fleetnas.controller.cli._profile import DEFAULT_TOP, print_profile, save_profile_plot
from fleetnas.controller.cli._targets import TargetFlags, target_options
from fleetnas.controller.cli.fleet import db_path_of, fleet_option
from fleetnas.controller.costdb import CostDB, Measurement, message_to_dict
from fleetnas.controller.scheduler import JobOutcome, throughput


def _ms(value: float) -> str:
    """Milliseconds with 4 significant digits (latencies span µs to seconds)."""
    return f"{value:.4g}"


def _throughput_text(batch: int | None, m: Measurement) -> str:
    """``1234 items/s (batch 8)`` for a batch over 1, else empty."""
    items = throughput(batch, m.latency_ms)
    if batch is None or batch <= 1 or items is None:
        return ""
    return f"{items:.4g} items/s (batch {batch})"


def energy_text(m: Measurement) -> str | None:
    """``"12.3 ± 0.4 mJ (rapl-counter, package-0)"`` plus the net figure when measured;
    ``"none: <reason>"`` where the agent's meters read nothing; ``None`` where it has none."""
    if m.energy_mj is None:
        return None if m.energy_reason is None else f"none: {m.energy_reason}"
    text = _ms(m.energy_mj)
    if m.energy_uncertainty_mj is not None:
        text += f" ± {m.energy_uncertainty_mj:.2g}"
    meter = ", ".join(p for p in (m.energy_method, m.energy_scope) if p)
    text += f" mJ ({meter})"
    if m.energy_net_mj is not None:
        text += f"; net of idle {_ms(m.energy_net_mj)} mJ"
    return text


def _stat_rows(m: Measurement, batch: int | None = None) -> list[tuple[str, str]]:
    energy = energy_text(m)
    rows = [
        ("latency (ms)", _ms(m.latency_ms) + (" (paired)" if m.method == "paired" else "")),
        *([("throughput", text)] if (text := _throughput_text(batch, m)) else []),
        *([("energy / inference", energy)] if energy else []),
        ("median (ms)", _ms(m.median_ms)),
        ("mean (ms)", _ms(m.mean_ms)),
        ("p90 / p99 (ms)", f"{_ms(m.p90_ms)} / {_ms(m.p99_ms)}"),
        ("min / max (ms)", f"{_ms(m.min_ms)} / {_ms(m.max_ms)}"),
        ("std (ms) / CV", f"{_ms(m.std_ms)} / {m.cv:.3f}"),
        ("runs", str(len(m.samples_ms))),
        ("session create (ms)", f"{m.session_create_ms:.1f}"),
        ("first run (ms)", f"{m.first_run_ms:.3f}"),
        ("peak RSS (MiB)", f"{m.peak_rss_bytes / 2**20:.1f}"),
        ("provider / threads", f"{m.provider} / {m.intra_op_threads}x{m.inter_op_threads}"),
        ("onnxruntime / agent", f"{m.onnxruntime_version} / {m.agent_version}"),
    ]
    if m.warnings:
        rows.append(("warnings", "; ".join(m.warnings)))
    return rows


def _print_one(console: Console, outcome: JobOutcome) -> None:
    title = f"{outcome.job.tag} on {outcome.device} ({outcome.status.value})"
    if outcome.job.target.is_class:
        title += f", class {outcome.job.target.name}"
    table = Table(title=escape(title), show_header=False)
    table.add_column("stat", style="bold")
    table.add_column("value")
    assert outcome.measurement is not None
    for name, value in _stat_rows(outcome.measurement, job_tag(outcome.job).batch):
        table.add_row(name, escape(value))
    console.print(table)


def _print_many(console: Console, outcomes: list[JobOutcome]) -> None:
    table = Table()
    energy = any(o.measurement and o.measurement.energy_mj is not None for o in outcomes)
    columns = ("model", "target", "device", "status", "latency ms",
               *(("energy mJ",) if energy else ()), "p90 ms", "items/s", "CV", "runs")
    for column in columns:
        table.add_column(column, justify="right" if "ms" in column or column in ("CV", "runs")
                         or "mJ" in column else "left")
    for o in outcomes:
        m = o.measurement
        status = o.status.value if o.ok else f"[red]failed[/]: {escape(o.error_message or '')}"
        mj = "-" if m is None or m.energy_mj is None else _ms(m.energy_mj)
        table.add_row(
            escape(str(o.job.tag)), escape(job_tag(o.job).target), escape(o.device or "-"), status,
            _ms(m.latency_ms) if m else "-", *((mj,) if energy else ()),
            _ms(m.p90_ms) if m else "-", _items_text(job_tag(o.job).batch, m),
            f"{m.cv:.3f}" if m else "-", str(len(m.samples_ms)) if m else "-",
        )
    console.print(table)


def _items_text(batch: int | None, m: Measurement | None) -> str:
    items = None if m is None else throughput(batch, m.latency_ms)
    return "-" if items is None else f"{items:.4g}"


def outcome_dict(
    outcome: JobOutcome, profile: agent_pb2.OperatorProfile | None = None
) -> dict[str, Any]:
    """A JSON-ready view of one outcome (the measurement in the cost DB's export form, its
    operator profile as the agent's message, ``None`` when not profiled)."""
    error = outcome.error
    return {
        "model": str(outcome.job.tag),
        "model_sha256": outcome.job.model.sha256,
        "target": {"class" if outcome.job.target.is_class else "device": outcome.job.target.name,
                   **({"label": label} if (label := job_tag(outcome.job).label) else {})},
        "status": outcome.status.value,
        "device": outcome.device,
        "error": None if error is None else {
            "type": type(error).__name__,
            "message": outcome.error_message,
        },
        "attempts": [
            {"device": a.device, "started_at": a.started_at, "ended_at": a.ended_at,
             "error": a.error, "transient": a.transient}
            for a in outcome.attempts
        ],
        "measurement": outcome.measurement.to_dict() if outcome.measurement else None,
        "batch": job_tag(outcome.job).batch,
        "throughput_items_per_s": None if outcome.measurement is None else throughput(
            job_tag(outcome.job).batch, outcome.measurement.latency_ms),
        # the measurement's energy_* fields, as one object (None: no energy was readable)
        "energy": _energy_dict(outcome.measurement),
        "profile": None if profile is None else message_to_dict(profile),
    }


def _energy_dict(m: Measurement | None) -> dict[str, Any] | None:
    if m is None or m.energy_mj is None:
        return None
    return {"mj_per_inference": m.energy_mj, "uncertainty_mj": m.energy_uncertainty_mj,
            "net_mj_per_inference": m.energy_net_mj,
            "net_uncertainty_mj": m.energy_net_uncertainty_mj, "method": m.energy_method,
            "scope": m.energy_scope}


Profiles = dict[int, agent_pb2.OperatorProfile]


def _profiles_of(db: CostDB, outcomes: list[JobOutcome]) -> Profiles:
    """The stored operator profile of each measured outcome that has one, by outcome index."""
    found: Profiles = {}
    for i, o in enumerate(outcomes):
        stored = db.get_profile(o.measurement.uid) if o.measurement else None
        if stored is not None:
            found[i] = stored.proto()
    return found


def _show_profiles(console: Console | None, outcomes: list[JobOutcome], profiles: Profiles,
                   top: int, plot: Path | None) -> None:
    """Print the profile tables of every profiled outcome (unless ``console`` is None) and
    say why an outcome has none, on stderr; then write the plot when asked."""
    titled = []
    for i, o in enumerate(outcomes):
        title = f"{o.job.tag} on {o.device}"
        if i in profiles:
            if console is not None:
                print_profile(console, profiles[i], title, top=top)
            titled.append((title, profiles[i]))
        elif o.ok:
            why = "; ".join(o.measurement.warnings) if o.measurement else ""
            click.echo(f"note: {title}: no operator profile ({why or 'the agent sent none'})",
                       err=True)
    if plot is not None:
        if not titled:
            raise click.ClickException(f"no operator profile came back: {plot} not written")
        click.echo(f"wrote {save_profile_plot(titled, plot)}", err=True)


@click.command()
@click.argument("models", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@target_options("Measure on")
@settings_request()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--profile-top", default=DEFAULT_TOP, show_default=True, type=click.IntRange(1),
              help="With --profile: how many nodes the table shows, slowest first.")
@click.option("--profile-plot", type=click.Path(dir_okay=False, path_type=Path),
              help="With --profile: write a PNG bar chart of the time by op type to FILE.")
@naming_options
@run_options
@fleet_option
@click.pass_context
def measure(
    ctx: click.Context,
    models: tuple[Path, ...],
    targets: TargetFlags,
    as_json: bool,
    profile_top: int,
    profile_plot: Path | None,
    naming: Naming,
    max_retries: int,
    device_wait_s: float,
    fleet_file: Path | None,
    request: agent_pb2.BenchmarkSettings,
) -> None:
    """Measure the latency of ONNX models on devices; cached results are reused.

    Each model is measured on each --device and on one device of each
    --class. With no fleet file and no --device/--class (or with --local),
    a throw-away agent on this machine does the measuring.

    \b
    Example:
        fleetnas measure model.onnx                          # no set-up: this machine
        fleetnas measure model.onnx --class pi4 --threads 1 --json
        fleetnas measure a.onnx b.onnx --device pi4-a --device jetson-1
        fleetnas measure model.onnx --device x86:threads=1 --device x86:threads=2,label=x86-2t
        fleetnas measure model.onnx --local --profile --profile-plot ops.png
        fleetnas measure m.onnx --name resnet18-int8 --tag team=vision --tag owner=ana

    --name stores the model under that name with its tags, detected precision,
    params, FLOPs and input shapes (`fleetnas db models` lists them). Names
    are unique and a model has one: a second name for the same bytes is an
    error unless --rename is given. --tag alone adds tags to a model's
    stored name (or names it after its file).
    """
    if profile_plot is not None and not request.profile:
        raise click.UsageError("--profile-plot needs --profile")
    naming.check(models)
    plan = plan_jobs(models, targets, request, fleet_file)
    with costdb_errors(), CostDB(db_path_of(ctx)) as db:
        for line in naming.apply(db, models):
            if not as_json:
                click.echo(line, err=True)
        outcomes = run_jobs(db, plan, quiet=as_json, max_retries=max_retries,
                            device_wait_s=device_wait_s, use_cache=not request.profile)
        profiles = _profiles_of(db, outcomes) if request.profile else {}
    if as_json:
        console = None
        click.echo(json.dumps([outcome_dict(o, profiles.get(i))
                               for i, o in enumerate(outcomes)], indent=2))
    else:
        console = output_console()
        if len(outcomes) == 1 and outcomes[0].ok:
            _print_one(console, outcomes[0])
        else:
            _print_many(console, outcomes)
    if request.profile:
        _show_profiles(console, outcomes, profiles, profile_top, profile_plot)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        for o in failed:
            click.echo(f"error: {o.job.tag} on {o.job.target}: {o.error_message}", err=True)
        ctx.exit(1)
