"""Where the measuring commands (``measure``, ``lut``, ``search``) run their jobs.

Either the devices of the fleet file, or one throw-away agent on loopback
(``--local``), recorded as device and class ``local``. Both end as a
:class:`Scheduler` over the cost database; the options that tune it
(``--fleet``, ``--max-retries``, ``--wait``) and where exported models are
cached (``--cache-dir``) are declared here once and reach a command as one
:class:`Scheduling`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from fleetnas.controller.cli._options import collect_params
from fleetnas.controller.cli.fleet import fleet_option
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import Device, Fleet, fleet_path, load_fleet
from fleetnas.controller.local_agents import spawn_local_agent, temporary_agent_dir
from fleetnas.controller.scheduler import DEFAULT_DEVICE_WAIT_S, DEFAULT_MAX_RETRIES, Scheduler

F = TypeVar("F", bound=Callable[..., Any])
LOCAL_DEVICE = "local"
LOCAL_CLASS = "local"
STARTING_LOCAL_AGENT = "starting a local agent on loopback"


@dataclass(frozen=True)
class Scheduling:
    """How a measuring command schedules: the fleet file, retries, waits, the export cache."""

    fleet_file: Path | None
    max_retries: int
    device_wait_s: float
    cache_dir: Path | None


def scheduler_options(func: F) -> F:
    """``--fleet``, ``--max-retries``, ``--wait`` and ``--cache-dir``, passed on as
    ``scheduling`` (a :class:`Scheduling`)."""
    func = collect_params(func, "scheduling", Scheduling,
                          ("fleet_file", "max_retries", "device_wait_s", "cache_dir"))
    for option in reversed([
        fleet_option,
        click.option("--max-retries", default=DEFAULT_MAX_RETRIES, show_default=True,
                     type=click.IntRange(min=0), help="Retries of a job after transient failures."),
        click.option("--wait", "device_wait_s", default=DEFAULT_DEVICE_WAIT_S, show_default=True,
                     type=float, help="Seconds a job waits for a down device to come back."),
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Where exported ONNX files are cached [default: ~/.cache/fleetnas/onnx]."),
    ]):  # fmt: skip
        func = option(func)
    return func


@contextmanager
def local_scheduler(
    db: CostDB,
    *,
    max_retries: int,
    device_wait_s: float,
    announce: str | None = STARTING_LOCAL_AGENT,
) -> Iterator[Scheduler]:
    """One throw-away agent on loopback (device and class ``local``) and a scheduler over it.

    ``announce`` is echoed to stderr before the agent starts (None: nothing).
    The agent is stopped and its folder removed on exit, whatever happened;
    an agent that does not come up raises ``LocalAgentError``.
    """
    with temporary_agent_dir() as tmp:
        if announce is not None:
            click.echo(announce, err=True)
        agent = spawn_local_agent(LOCAL_DEVICE, tmp)
        try:
            agent.wait_ready()
            fleet = Fleet.of([Device(LOCAL_DEVICE, LOCAL_CLASS, agent.address)])
            with Scheduler(fleet, db, max_retries=max_retries,
                           device_wait_s=device_wait_s) as scheduler:
                yield scheduler
        finally:
            agent.stop()


@contextmanager
def open_scheduler(
    db: CostDB, scheduling: Scheduling, *, local: bool, if_missing: str
) -> Iterator[Scheduler]:
    """A scheduler over one local agent (``local``) or the fleet file's devices.

    ``if_missing`` follows "no fleet file at PATH" when there is none (what
    to do instead).
    """
    if local:
        with local_scheduler(db, max_retries=scheduling.max_retries,
                             device_wait_s=scheduling.device_wait_s) as scheduler:
            yield scheduler
        return
    _, fleet = existing_fleet(scheduling.fleet_file, if_missing=if_missing)
    with Scheduler(fleet, db, max_retries=scheduling.max_retries,
                   device_wait_s=scheduling.device_wait_s) as scheduler:
        yield scheduler


def existing_fleet(fleet_file: Path | None, *, if_missing: str) -> tuple[Path, Fleet]:
    """The fleet file's path (``--fleet``, env, or default) and its fleet.

    A missing file is a click error ``no fleet file at PATH`` followed by
    ``if_missing`` (what to do instead); a malformed one raises the fleet
    package's named error.
    """
    path = fleet_path(fleet_file)
    if not path.exists():
        raise click.ClickException(f"no fleet file at {path}{if_missing}")
    return path, load_fleet(path)
