"""The ``fleetnas`` controller command line.

Subcommand groups live in their own modules (``controller/cli/<name>.py``)
and are registered below with one line each; a module is imported only when
its command runs or help lists it, so ``fleetnas db ...`` never pays for
torch. Shared options and error handling are in :mod:`._options`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from fleetnas.controller.cli._options import CliState, db_option

# name -> "module:attribute" of a click command or group; one line per module.
SUBCOMMANDS: dict[str, str] = {
    "agent": "fleetnas.controller.cli.agent:agent",
    "compare": "fleetnas.controller.cli.compare:compare",
    "db": "fleetnas.controller.cli.db:db",
    "demo": "fleetnas.controller.cli.demo:demo",
    "export": "fleetnas.controller.cli.export:export",
    "fleet": "fleetnas.controller.cli.fleet:fleet",
    "lut": "fleetnas.controller.cli.lut:lut",
    "measure": "fleetnas.controller.cli.measure:measure",
    "proxies": "fleetnas.controller.cli.proxies:proxies",
    "quantize": "fleetnas.controller.cli.quantize:quantize",
    "report": "fleetnas.controller.cli.report:report",
    "search": "fleetnas.controller.cli.search:search",
    "space": "fleetnas.controller.cli.space:space",
    "supernet": "fleetnas.controller.cli.supernet:supernet",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy and cmd_name not in self.commands:
            module_name, attribute = self._lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self._lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=SUBCOMMANDS)
@db_option
@click.version_option(package_name="fleetnas", prog_name="fleetnas")
@click.pass_context
def main(ctx: click.Context, db_path: Path) -> None:
    """fleetnas: hardware-aware NAS with latency measured on real devices.

    \b
    Example:
        fleetnas --db team.db db stats
    """
    ctx.obj = CliState(db_path=db_path)
