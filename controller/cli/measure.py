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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._console import output_console
from fleetnas.controller.cli._options import costdb_errors, settings_request
from fleetnas.controller.cli._profile import DEFAULT_TOP, print_profile, save_profile_plot
from fleetnas.controller.cli._progress import job_progress
from fleetnas.controller.cli._scheduling import (
    LOCAL_DEVICE,
    STARTING_LOCAL_AGENT,
    local_scheduler,
)
from fleetnas.controller.cli._targets import TargetFlags, target_options
from fleetnas.controller.cli.fleet import db_path_of, fleet_errors, fleet_option
from fleetnas.controller.costdb import CostDB, Measurement, message_to_dict
from fleetnas.controller.driver import Target
from fleetnas.controller.fleet import FleetFileError, fleet_path, load_fleet
from fleetnas.controller.local_agents import LocalAgentError
from fleetnas.controller.scheduler import (
    DEFAULT_DEVICE_WAIT_S,
    DEFAULT_MAX_RETRIES,
    CacheLookup,
    Job,
    JobOutcome,
    ModelRef,
    OutcomeStatus,
    Scheduler,
)


@dataclass(frozen=True)
class _Tag:
    """A job's label: the model file, and the target as the tables show it."""

    model: str
    target: str
    label: str | None = None

    def __str__(self) -> str:
        return self.model


def _jobs(models: Sequence[Path], targets: Sequence[Target]) -> list[Job]:
    """One job per (model, target), model-major; each with its target's own request."""
    jobs = []
    for path in models:
        ref = ModelRef.from_path(path)
        for target in targets:
            make = Job.on_class if target.is_class else Job.on_device
            shown = target.label or (f"class {target.name}" if target.is_class else target.name)
            jobs.append(make(ref, target.name, target.request(),
                             tag=_Tag(path.name, shown, target.label)))
    return jobs


def _run_with_progress(
    scheduler: Scheduler, jobs: list[Job], quiet: bool, use_cache: bool
) -> list[JobOutcome]:
    with job_progress(quiet or len(jobs) < 2) as on_progress:
        return scheduler.run(jobs, on_progress=on_progress, use_cache=use_cache)


def _run_local(
    db: CostDB, jobs: list[Job], quiet: bool, max_retries: int, use_cache: bool
) -> list[JobOutcome]:
    """Answer from the cache if possible; otherwise start one loopback agent for the misses."""
    cache = CacheLookup(db)
    hits = [cache.find(job.model.sha256, [LOCAL_DEVICE], job.settings) if use_cache else None
            for job in jobs]
    if all(hits):
        return [JobOutcome(i, job, OutcomeStatus.CACHED, LOCAL_DEVICE, hit)
                for i, (job, hit) in enumerate(zip(jobs, hits, strict=True))]
    announce = None if quiet else f"{STARTING_LOCAL_AGENT} (use --device/--class for a fleet)"
    try:
        with local_scheduler(db, max_retries=max_retries, device_wait_s=10.0,
                             announce=announce) as scheduler:
            return _run_with_progress(scheduler, jobs, quiet, use_cache)
    except LocalAgentError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from exc


def _run_fleet(db: CostDB, path: Path, jobs: list[Job], quiet: bool, max_retries: int,
               device_wait_s: float, use_cache: bool) -> list[JobOutcome]:
    """Run the jobs on the fleet of ``path``; unknown devices and classes fail before any work."""
    with fleet_errors():
        try:
            fleet = load_fleet(path)
        except FleetFileError as exc:
            raise click.ClickException(f"{exc}; or measure on this machine with --local") from exc
        with Scheduler(fleet, db, max_retries=max_retries,
                       device_wait_s=device_wait_s) as scheduler:
            for job in jobs:
                scheduler.eligible_devices(job)
            return _run_with_progress(scheduler, jobs, quiet, use_cache)


def _ms(value: float) -> str:
    """Milliseconds with 4 significant digits (latencies span µs to seconds)."""
    return f"{value:.4g}"


def _tag(job: Job) -> _Tag:
    assert isinstance(job.tag, _Tag)
    return job.tag


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


def _stat_rows(m: Measurement) -> list[tuple[str, str]]:
    energy = energy_text(m)
    rows = [
        ("latency (ms)", _ms(m.latency_ms) + (" (paired)" if m.method == "paired" else "")),
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
    for name, value in _stat_rows(outcome.measurement):
        table.add_row(name, escape(value))
    console.print(table)


def _print_many(console: Console, outcomes: list[JobOutcome]) -> None:
    table = Table()
    energy = any(o.measurement and o.measurement.energy_mj is not None for o in outcomes)
    columns = ("model", "target", "device", "status", "latency ms",
               *(("energy mJ",) if energy else ()), "p90 ms", "CV", "runs")
    for column in columns:
        table.add_column(column, justify="right" if "ms" in column or column in ("CV", "runs")
                         or "mJ" in column else "left")
    for o in outcomes:
        m = o.measurement
        status = o.status.value if o.ok else f"[red]failed[/]: {escape(o.error_message or '')}"
        mj = "-" if m is None or m.energy_mj is None else _ms(m.energy_mj)
        table.add_row(
            escape(str(o.job.tag)), escape(_tag(o.job).target), escape(o.device or "-"), status,
            _ms(m.latency_ms) if m else "-", *((mj,) if energy else ()),
            _ms(m.p90_ms) if m else "-",
            f"{m.cv:.3f}" if m else "-", str(len(m.samples_ms)) if m else "-",
        )
    console.print(table)


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
                   **({"label": label} if (label := _tag(outcome.job).label) else {})},
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
@click.option("--max-retries", default=DEFAULT_MAX_RETRIES, show_default=True, type=int,
              help="Retries of a job on other devices of its class after transient failures.")
@click.option("--wait", "device_wait_s", default=DEFAULT_DEVICE_WAIT_S, show_default=True,
              type=float, help="Seconds a job waits for a down device to come back.")
@fleet_option
@click.pass_context
def measure(
    ctx: click.Context,
    models: tuple[Path, ...],
    targets: TargetFlags,
    as_json: bool,
    profile_top: int,
    profile_plot: Path | None,
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
    """
    if max_retries < 0:
        raise click.UsageError(f"--max-retries must be >= 0, got {max_retries}")
    if profile_plot is not None and not request.profile:
        raise click.UsageError("--profile-plot needs --profile")
    path = fleet_path(fleet_file)
    local = targets.local or not targets.named
    if local and not targets.local and path.exists():
        with fleet_errors():
            fleet = load_fleet(path)
        raise click.UsageError(
            f"say where to measure: --device NAME or --class CLASS ({path} has classes: "
            f"{', '.join(fleet.classes()) or 'none'}), or --local for this machine"
        )
    jobs = _jobs(models, [targets.local_target(request)] if local else targets.parse(request))
    with costdb_errors(), CostDB(db_path_of(ctx)) as db:
        use_cache = not request.profile
        if local:
            outcomes = _run_local(db, jobs, as_json, max_retries, use_cache)
        else:
            outcomes = _run_fleet(db, path, jobs, as_json, max_retries, device_wait_s, use_cache)
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
