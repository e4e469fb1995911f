"""The ``fleetnas`` root group with the fleet, measure and agent commands on it."""

from __future__ import annotations

import importlib

import click

from fleetnas.controller.cli import SUBCOMMANDS, main

OWN_COMMANDS = {
    "fleet": "fleetnas.controller.cli.fleet:fleet",
    "measure": "fleetnas.controller.cli.measure:measure",
    "agent": "fleetnas.controller.cli.agent:agent",
}


def fleetnas_cli() -> click.Group:
    """``main``, with our commands added the way the root registers them if it does not yet."""
    for name, target in OWN_COMMANDS.items():
        if name not in SUBCOMMANDS and name not in main.commands:
            module_name, attribute = target.split(":")
            main.add_command(getattr(importlib.import_module(module_name), attribute), name)
    return main
