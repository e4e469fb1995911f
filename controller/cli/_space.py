"""The search-space flags shared by ``fleetnas lut`` and ``fleetnas search``.

``--space NAME``, ``--resolution R`` (repeatable) and ``--space-config JSON``
reach a command as one :class:`SpaceFlags` (parameter ``space_flags``);
:meth:`SpaceFlags.config` turns them into the space's constructor options.
Turning those into a space stays with each command, whose error hints
differ (a LUT command builds the space now, a search stores the options
with the search and builds the space from them on every resume).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from fleetnas.controller.cli._options import collect_params

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class SpaceFlags:
    """The space flags as given: ``name`` is None when ``--space`` was not."""

    name: str | None
    resolutions: tuple[int, ...]
    config_json: str | None

    @property
    def required_name(self) -> str:
        """The name, for a command that declares ``--space`` required (click enforces it)."""
        assert self.name is not None, "this command does not require --space"
        return self.name

    @property
    def configured(self) -> bool:
        """Whether ``--resolution`` or ``--space-config`` was given."""
        return bool(self.resolutions or self.config_json)

    def config(self) -> dict[str, Any]:
        """The constructor options: the JSON object, plus the sorted distinct resolutions.

        Raises :class:`click.UsageError` when ``--space-config`` is not a JSON object.
        """
        config: dict[str, Any] = {}
        if self.config_json:
            try:
                config = json.loads(self.config_json)
            except json.JSONDecodeError as exc:
                raise click.UsageError(f"--space-config is not JSON: {exc}") from exc
            if not isinstance(config, dict):
                raise click.UsageError("--space-config must be a JSON object")
        if self.resolutions:
            config["resolutions"] = sorted(set(self.resolutions))
        return config


def space_options(*, required: bool) -> Callable[[F], F]:
    """``--space``, ``--resolution`` and ``--space-config``, passed on as ``space_flags``."""

    def decorate(func: F) -> F:
        func = collect_params(func, "space_flags", SpaceFlags,
                              ("space_name", "resolutions", "space_config"))  # fmt: skip
        func = click.option(
            "--space-config", metavar="JSON",
            help='Other constructor options of the space, e.g. \'{"width_mult": 0.5}\'.',
        )(func)  # fmt: skip
        func = click.option(
            "--resolution", "resolutions", multiple=True, type=click.IntRange(min=1),
            help="Input resolution(s) of the space (spaces that have them, e.g. mbv3); "
            "repeat for several [default: all of the space's].",
        )(func)  # fmt: skip
        return click.option(
            "--space", "space_name", required=required, metavar="NAME",
            help="Search space (e.g. nb201, mbv3, or a registered one).",
        )(func)  # fmt: skip

    return decorate
