"""``fleetnas fleet``: the devices in the fleet file, and how they are doing.

Also home of the ``--fleet`` option and the fleet error translation shared by
``fleetnas measure`` and ``fleetnas agent``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from fleetnas.agent.proto_json import message_dict
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._console import output_console, when
from fleetnas.controller.cli._options import CliState, costdb_errors
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import (
    DEFAULT_FLEET_FILE,
    FLEET_ENV,
    ClientFactory,
    Device,
    Fleet,
    FleetError,
    ProbeResult,
    add_device,
    fleet_path,
    load_fleet,
    probe_devices,
    record_probes,
    save_fleet,
)

F = TypeVar("F", bound=Callable[..., Any])


def fleet_option(func: F) -> F:
    """``--fleet PATH`` (env ``FLEETNAS_FLEET``, default ``./fleet.toml``)."""
    return click.option(
        "--fleet",
        "fleet_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"The fleet file [env: {FLEET_ENV}; default: ./{DEFAULT_FLEET_FILE}].",
    )(func)


@contextmanager
def fleet_errors() -> Iterator[None]:
    """Turn named fleet errors into one-line click errors (their messages say what to do)."""
    try:
        yield
    except FleetError as exc:
        raise click.ClickException(str(exc)) from exc


def db_path_of(ctx: click.Context) -> Path:
    """The ``--db`` path given to the root group (its default when run standalone)."""
    state = ctx.find_object(CliState)
    return state.db_path if state is not None else Path("fleetnas.db")


def _devices(fleet_file: Path | None, *, if_none: str = "") -> tuple[Path, Fleet] | None:
    """The fleet file's path and fleet; None, after saying how to add a device, when it has none.

    ``if_none`` is appended to that advice (another way to get devices).
    """
    path = fleet_path(fleet_file)
    with fleet_errors():
        current = load_fleet(path)
    if not len(current):
        click.echo(f"No devices in {path}: add one with `fleetnas fleet add NAME --address "
                   f"HOST:PORT --class CLASS`{if_none}")
        return None
    return path, current


def hardware_summary(desc: agent_pb2.DeviceDescription | None) -> str:
    """One line: board or CPU, cores, memory, GPUs."""
    if desc is None:
        return "-"
    parts = [desc.board_model or desc.cpu.model or desc.cpu.architecture or "?"]
    if desc.cpu.logical_cores:
        parts.append(f"{desc.cpu.logical_cores} cores")
    if desc.memory.total_bytes:
        parts.append(f"{desc.memory.total_bytes / 2**30:.1f} GiB")
    parts.extend(gpu.name for gpu in desc.gpus)
    return ", ".join(parts)


@click.group()
def fleet() -> None:
    """The devices that measure: add, remove, list, and check them.

    The fleet file (TOML) lists each device's name, class, address and
    secrets *by reference*: the token comes from the environment variable
    named by --token-env when connecting, and is never written anywhere.

    \b
    Example:
        fleetnas fleet add pi4-a --address 192.168.1.20:50051 --class pi4 --token-env FLEETNAS_PI4_TOKEN
        fleetnas fleet status
    """


@fleet.command()
@click.argument("name")
@click.option("--address", required=True, metavar="HOST:PORT", help="Where the agent listens.")
@click.option("--class", "device_class", metavar="CLASS",
              help="Device class: a pool of interchangeable devices (e.g. pi4) [default: "
                   "the agent's own serve --class].")
@click.option("--token-env", metavar="VAR",
              help="Environment variable holding the agent's token (read at connect time).")
@click.option("--tls", is_flag=True, help="Use TLS with the system's CAs.")
@click.option("--tls-ca", metavar="PEM", help="CA bundle to verify the agent (implies TLS).")
@click.option("--tls-cert", metavar="PEM", help="Client certificate for mTLS (with --tls-key).")
@click.option("--tls-key", metavar="PEM", help="Client private key for mTLS.")
@click.option("--tls-server-name", metavar="NAME", help="Name to expect in the agent's cert.")
@click.option("--replace", is_flag=True, help="Replace a device of the same name.")
@fleet_option
@click.pass_context
def add(
    ctx: click.Context,
    name: str,
    address: str,
    device_class: str | None,
    token_env: str | None,
    tls: bool,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_server_name: str | None,
    replace: bool,
    fleet_file: Path | None,
) -> None:
    """Add a device to the fleet file, then check that it answers.

    \b
    Example:
        export FLEETNAS_PI4_TOKEN=...            # the same token the agent was started with
        fleetnas fleet add pi4-a --address 192.168.1.20:50051 --class pi4 --token-env FLEETNAS_PI4_TOKEN
    """
    path = fleet_path(fleet_file)
    with fleet_errors():
        added = add_device(load_fleet(path, missing_ok=True), name, address,
                           device_class=device_class, replace=replace, token_env=token_env,
                           tls=tls, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
                           tls_server_name=tls_server_name)
        save_fleet(added.fleet, path)
    updated, probe = added.fleet, added.probe
    for note in added.notes:
        click.echo(f"{name}: {note}")
    if probe.up:
        _record(db_path_of(ctx), updated, [probe])
        click.echo(f"added {name} to {path}: up, {hardware_summary(probe.description)}")
    else:
        click.echo(f"added {name} to {path}; not answering now: {probe.reason}. If the "
                   f"address is wrong, fix it with `fleetnas fleet add {name} --address "
                   "HOST:PORT --replace`")


@fleet.command()
@click.argument("name")
@fleet_option
def remove(name: str, fleet_file: Path | None) -> None:
    """Remove a device from the fleet file (its measurements stay in the cost DB).

    \b
    Example:
        fleetnas fleet remove pi4-a
    """
    path = fleet_path(fleet_file)
    with fleet_errors():
        save_fleet(load_fleet(path).without(name), path)
    click.echo(f"removed {name} from {path}")


@fleet.command("list")
@fleet_option
def list_(fleet_file: Path | None) -> None:
    """List the devices in the fleet file (no device is contacted).

    \b
    Example:
        fleetnas fleet list
    """
    found = _devices(fleet_file)
    if found is None:
        return
    path, current = found
    table = Table(title=escape(str(path)))
    for column in ("name", "class", "address", "token from", "TLS"):
        table.add_column(column)
    for d in current:
        tls = "mTLS" if d.tls_cert else ("yes" if d.uses_tls else "no")
        token = f"${d.token_env}" if d.token_env else "-"
        table.add_row(escape(d.name), escape(d.device_class), escape(d.address), token, tls)
    output_console().print(table)


def _record(db_path: Path, current: Fleet, probes: list[ProbeResult]) -> dict[str, str]:
    """Upsert every device that answered into the cost DB; return its hardware changes."""
    if not any(p.up and p.description is not None for p in probes):
        return {}
    with costdb_errors(), CostDB(db_path) as db:
        return record_probes(db, current, probes)


def _status_row(
    device: Device,
    probe: ProbeResult,
    known: agent_pb2.DeviceDescription | None,
    last_seen: float | None,
    changed: str | None = None,
) -> list[str]:
    status = probe.status
    if probe.up and status is not None:
        health = "[green]up[/]"
        busy = "busy" if status.busy else "idle"
        if status.queue_length:
            busy += f" (+{status.queue_length} queued)"
        state = status.state
        temp = f"{state.temperature_c:.0f} °C" if state.temperature_available else "-"
        if state.throttled:
            temp += " [yellow]throttled[/]"
        seen = "now"
    else:
        health = f"[red]down[/]: {escape(probe.reason or '')}"
        busy, temp, seen = "-", "-", when(last_seen, empty="never")
    hardware = escape(hardware_summary(probe.description or known))
    if changed:
        hardware += f" [yellow]hardware changed ({escape(changed)}): a new device history[/]"
    return [escape(device.name), escape(device.device_class), escape(device.address), health,
            busy, hardware, temp, seen]


@fleet.command()
@click.option("--timeout", default=2.0, show_default=True, type=float,
              help="Seconds to wait for each device.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@fleet_option
@click.pass_context
def status(ctx: click.Context, timeout: float, as_json: bool, fleet_file: Path | None) -> None:
    """Ask every device how it is, all at once: health, busy, hardware, temperature.

    A device that does not answer shows as down with the reason. Devices that
    answer are recorded in the cost DB with their description; one whose
    hardware changed since is flagged: it starts a new device history (its
    old measurements no longer serve the cache).

    \b
    Example:
        fleetnas fleet status --timeout 5
    """
    found = _devices(fleet_file, if_none=", or run `fleetnas agent local`")
    if found is None:
        return
    path, current = found
    probes = probe_devices(list(current), ClientFactory.for_fleet(current), timeout_s=timeout)
    db_path = db_path_of(ctx)
    changes = _record(db_path, current, probes)
    last_seen: dict[str, float] = {}
    known: dict[str, agent_pb2.DeviceDescription | None] = {}
    if db_path.is_file():
        with costdb_errors(), CostDB(db_path) as db:
            for record in db.list_devices():
                last_seen[record.name] = record.last_seen
                known[record.name] = record.description_proto()
    if as_json:
        click.echo(json.dumps([_probe_dict(p, last_seen.get(p.name), changes.get(p.name))
                               for p in probes], indent=2))
        return
    table = Table(title=f"{escape(str(path))} ({sum(p.up for p in probes)}/{len(probes)} up)")
    for column in ("name", "class", "address", "health", "busy", "hardware", "temp",
                   "last seen"):
        table.add_column(column, overflow="fold")
    for device, probe in zip(current, probes, strict=True):
        table.add_row(
            *_status_row(device, probe, known.get(device.name), last_seen.get(device.name),
                         changes.get(device.name))
        )
    output_console().print(table)


def _probe_dict(
    probe: ProbeResult, last_seen: float | None, changed: str | None = None
) -> dict[str, Any]:
    def as_dict(message: Any) -> Any:
        if message is None:
            return None
        return message_dict(message)

    return {
        "name": probe.name,
        "up": probe.up,
        "reason": probe.reason,
        "checked_at": probe.at,
        "last_seen": probe.at if probe.up else last_seen,
        "status": as_dict(probe.status),
        "description": as_dict(probe.description),
        "hardware_changed": changed,
    }
