"""The job path of ``fleetnas measure``, shared by ``compare`` and ``quantize``.

:func:`plan_jobs` turns model files and the target flags into jobs (one per
(model, target), model-major) and decides where they run: a throw-away
loopback agent (``--local``, or no target and no fleet file) or the fleet;
:func:`run_jobs` runs them, answering from the cost DB first (a job whose
model, device and resolved settings were measured before is a cache hit and
runs nothing) and recording every new result as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._progress import job_progress
from fleetnas.controller.cli._scheduling import (
    LOCAL_DEVICE,
    STARTING_LOCAL_AGENT,
    local_scheduler,
)
from fleetnas.controller.cli._targets import TargetFlags
from fleetnas.controller.cli.fleet import fleet_errors
from fleetnas.controller.costdb import CostDB
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
    model_batch,
)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class JobTag:
    """A job's label: the model file, and the target as the tables show it."""

    model: str
    target: str
    label: str | None = None
    batch: int | None = None  # the model's batch under the job's settings (throughput)

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
            request = target.request()
            jobs.append(make(ref, target.name, request,
                             tag=JobTag(path.name, shown, target.label, model_batch(ref, request))))
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


def job_tag(job: Job) -> JobTag:
    """The :class:`JobTag` of a job made here."""
    assert isinstance(job.tag, JobTag)
    return job.tag


@dataclass(frozen=True)
class JobPlan:
    """Jobs and where they run: ``local`` (a loopback agent) or the fleet file ``fleet``."""

    jobs: list[Job]
    local: bool
    fleet: Path


def plan_jobs(models: Sequence[Path], targets: TargetFlags, request: agent_pb2.BenchmarkSettings,
              fleet_file: Path | None) -> JobPlan:
    """The jobs of ``models`` x targets; a UsageError when no target is named but a fleet
    file exists (the user must say where), or a target is malformed."""
    path = fleet_path(fleet_file)
    local = targets.local or not targets.named
    if local and not targets.local and path.exists():
        with fleet_errors():
            fleet = load_fleet(path)
        raise click.UsageError(
            f"say where to measure: --device NAME or --class CLASS ({path} has classes: "
            f"{', '.join(fleet.classes()) or 'none'}), or --local for this machine"
        )
    chosen = [targets.local_target(request)] if local else targets.parse(request)
    return JobPlan(_jobs(models, chosen), local, path)


def run_jobs(db: CostDB, plan: JobPlan, *, quiet: bool, max_retries: int,
             device_wait_s: float, use_cache: bool = True) -> list[JobOutcome]:
    """Run ``plan`` (cache first unless ``use_cache`` is False); one outcome per job, in order."""
    if max_retries < 0:
        raise click.UsageError(f"--max-retries must be >= 0, got {max_retries}")
    if plan.local:
        return _run_local(db, plan.jobs, quiet, max_retries, use_cache)
    return _run_fleet(db, plan.fleet, plan.jobs, quiet, max_retries, device_wait_s, use_cache)


def run_options(func: F) -> F:
    """``--max-retries`` and ``--wait`` (parameters ``max_retries``, ``device_wait_s``)."""
    func = click.option("--wait", "device_wait_s", default=DEFAULT_DEVICE_WAIT_S,
                        show_default=True, type=float,
                        help="Seconds a job waits for a down device to come back.")(func)
    return click.option("--max-retries", default=DEFAULT_MAX_RETRIES, show_default=True,
                        type=int, help="Retries of a job on other devices of its class after "
                        "transient failures.")(func)
