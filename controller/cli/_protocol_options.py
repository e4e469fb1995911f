"""``--rounds`` / ``--max-rounds``: the shared-host protocol of the commands that measure by it
(``fleetnas lut transfer``, ``fleetnas lut kernels``), passed on as ``protocol``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from fleetnas.controller.cli._options import collect_params
from fleetnas.controller.predict import Protocol

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_PROTOCOL = Protocol()


def protocol_from_flags(rounds: int, max_rounds: int | None) -> Protocol:
    """The default protocol with ``rounds`` and ``max_rounds``; UsageError naming the flags."""
    top = max(rounds, DEFAULT_PROTOCOL.max_rounds) if max_rounds is None else max_rounds
    try:
        return Protocol(rounds=rounds, max_rounds=top, keep=min(DEFAULT_PROTOCOL.keep, rounds))
    except ValueError as exc:
        raise click.UsageError(f"{exc} (check --rounds / --max-rounds)") from exc


def protocol_options(func: F) -> F:
    """``--rounds N --max-rounds M``, passed on as ``protocol`` (a :class:`Protocol`)."""
    func = collect_params(func, "protocol", protocol_from_flags, ("rounds", "max_rounds"))
    func = click.option("--max-rounds", type=click.IntRange(min=1),
                        help="Rounds per model at most, re-measuring unsettled ones "
                        f"[default: max(--rounds, {DEFAULT_PROTOCOL.max_rounds})].")(func)
    return click.option("--rounds", default=DEFAULT_PROTOCOL.rounds, show_default=True,
                        type=click.IntRange(min=1),
                        help="Interleaved protocol rounds per model (at least).")(func)
