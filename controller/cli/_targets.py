"""The target flags shared by ``fleetnas search`` and ``fleetnas measure``.

``--device NAME[:k=v,...]`` and ``--class NAME[:k=v,...]`` (repeatable) and
``--local`` reach a command as one :class:`TargetFlags` (parameter
``targets``). Each text is a :class:`~fleetnas.controller.driver.Target`:
the shared settings flags under the target's own ``k=v`` settings
(:func:`~fleetnas.controller.driver.parse_target`), so both commands read a
target the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli._options import collect_params
from fleetnas.controller.cli._scheduling import LOCAL_DEVICE
from fleetnas.controller.driver import DriverError, Target, parse_target

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class TargetFlags:
    """``--device`` / ``--class`` (each ``NAME[:k=v,...]``) and ``--local``."""

    devices: tuple[str, ...]
    classes: tuple[str, ...]
    local: bool

    @property
    def named(self) -> bool:
        """Whether any ``--device`` or ``--class`` was given."""
        return bool(self.devices or self.classes)

    def parse(self, base: agent_pb2.BenchmarkSettings, *, genes: bool = False) -> list[Target]:
        """The named targets (devices first), each with ``base`` under its own settings;
        a UsageError naming the bad text. ``genes``: whether a ``precision=`` key means
        something here (a search's precision gene); elsewhere it is refused."""
        try:
            targets = ([parse_target(text, "device", base) for text in self.devices]
                       + [parse_target(text, "class", base) for text in self.classes])
        except DriverError as exc:
            raise click.UsageError(str(exc)) from exc
        given = [t.key for t in targets if t.precisions is not None]
        if given and not genes:
            raise click.UsageError(
                f"{given[0]}: precision= is a search gene (fleetnas search); here models run "
                "as they are: make variants with `fleetnas quantize MODEL`")
        return targets

    def local_target(self, base: agent_pb2.BenchmarkSettings) -> Target:
        """The throw-away loopback agent's target; a UsageError when targets are named too."""
        if self.named:
            raise click.UsageError("--local measures on this machine; drop --device/--class")
        return parse_target(LOCAL_DEVICE, "device", base)

    def targets(self, base: agent_pb2.BenchmarkSettings, *, genes: bool = False) -> list[Target]:
        """:meth:`parse`, or the local target with ``--local``; a UsageError when none."""
        if self.local:
            return [self.local_target(base)]
        targets = self.parse(base, genes=genes)
        if not targets:
            raise click.UsageError(
                "say where latency is measured: --device NAME, --class NAME or --local")
        return targets


def target_options(what: str) -> Callable[[F], F]:
    """``--device``, ``--class`` and ``--local``, passed on as ``targets`` (a TargetFlags).

    ``what`` completes the help's first words (``"Latency target"``, ``"Measure"``).
    """

    def decorate(func: F) -> F:
        func = collect_params(func, "targets", TargetFlags, ("devices", "classes", "local"))
        for option in reversed([
            click.option("--device", "devices", multiple=True, metavar="NAME[:k=v,...]",
                         help=f"{what}: a fleet device, optionally with its own settings (the "
                         "settings flags without dashes: threads=2,warmup=20,...; label=NAME "
                         "names it; search: precision=int8|fp32); repeatable."),
            click.option("--class", "classes", multiple=True, metavar="NAME[:k=v,...]",
                         help=f"{what}: any one device of a class, optionally with its own "
                         "settings; repeatable."),
            click.option("--local", is_flag=True,
                         help="Measure on this machine (a throw-away loopback agent)."),
        ]):  # fmt: skip
            func = option(func)
        return func

    return decorate
