"""``fleetnas agent``: run agents on this machine for the controller to use."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import click

from fleetnas.controller.cli.fleet import fleet_errors, fleet_option
from fleetnas.controller.fleet import Device, fleet_path, load_fleet, save_fleet
from fleetnas.controller.local_agents import (
    LocalAgentError,
    start_local_agents,
    stop_local_agents,
)

#: Where `agent local` keeps its agents' models and logs, next to the project's fleet file.
LOCAL_AGENTS_DIR = Path(".fleetnas") / "local-agents"


def default_local_dir(fleet_file: Path) -> Path:
    """The project's own folder for local agents: beside ``fleet_file``, so two projects on
    one machine never share (or evict) each other's cached models."""
    return fleet_file.absolute().parent / LOCAL_AGENTS_DIR


@click.group()
def agent() -> None:
    """Agents on this machine (the devices themselves run `fleetnas-agent serve`).

    \b
    Example:
        fleetnas agent local --count 2
    """


@agent.command()
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 64),
              help="How many agents to start.")
@click.option("--class", "device_class", default="local", show_default=True,
              help="Device class of their fleet entries.")
@click.option("--name-prefix", default="local", show_default=True,
              help="Agents are named PREFIX-0, PREFIX-1, ...")
@click.option("--token-env", metavar="VAR",
              help="Require the token in this env var (and record it by name in the fleet).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the agents keep models and logs [default: .fleetnas/local-agents next to "
                   "the fleet file].")
@click.option("--memory-cap-mb", type=int, help="Memory cap of each benchmark worker.")
@click.option("--max-timeout", type=float, help="Longest one benchmark may take (s).")
@click.option("--distinct-hosts", is_flag=True,
              help="Give each agent its own host fingerprint so they run in parallel "
                   "(demos only: they share this machine and disturb each other's timings).")
@fleet_option
def local(
    count: int,
    device_class: str,
    name_prefix: str,
    token_env: str | None,
    cache_dir: Path | None,
    memory_cap_mb: int | None,
    max_timeout: float | None,
    distinct_hosts: bool,
    fleet_file: Path | None,
) -> None:
    """Start agents on loopback and add them to the fleet file, until Ctrl-C.

    Ports are picked by the OS. Agents on one machine share its host
    fingerprint, so the scheduler runs one benchmark at a time across them
    unless --distinct-hosts is given. On Ctrl-C (or SIGTERM) they drain and
    stop; their fleet entries stay (and show as down) until the next run.

    \b
    Example:
        fleetnas agent local --count 2 &
        fleetnas measure model.onnx --class local
    """
    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise click.ClickException(f"--token-env {token_env}: export {token_env}=<token> first")
    extra: list[str] = []
    if memory_cap_mb is not None:
        extra += ["--memory-cap-mb", str(memory_cap_mb)]
    if max_timeout is not None:
        extra += ["--max-timeout", str(max_timeout)]
    path = fleet_path(fleet_file)
    with fleet_errors():
        fleet = load_fleet(path, missing_ok=True)
        for i in range(count):  # fail on a bad name before starting anything
            Device(f"{name_prefix}-{i}", device_class, "127.0.0.1:1", token_env=token_env)
    base = cache_dir or default_local_dir(path)
    fingerprints = [f"local-{os.getpid()}-{i}" for i in range(count)] if distinct_hosts else None
    try:
        agents = start_local_agents(count, base, name_prefix=name_prefix,
                                    host_fingerprints=fingerprints, token=token,
                                    extra_args=extra)
    except LocalAgentError as exc:
        raise click.ClickException(str(exc)) from exc

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with fleet_errors():
            for a in agents:
                fleet = fleet.with_device(
                    Device(a.name, device_class, a.address, token_env=token_env), replace=True
                )
            save_fleet(fleet, path)
        for a in agents:
            click.echo(f"{a.name}  {a.address}  (class {device_class}, log {a.log_path})")
        click.echo(f"wrote {len(agents)} entries to {path}; Ctrl-C to stop", err=True)
        while not stop.wait(0.5):
            dead = [a for a in agents if not a.running()]
            if dead:
                raise click.ClickException(
                    f"agent {dead[0].name} exited (code {dead[0].process.returncode}); "
                    f"see {dead[0].log_path}"
                )
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        click.echo("stopping agents...", err=True)
        stop_local_agents(agents)
