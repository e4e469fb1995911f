"""One-line CLI errors for the commands that drive several packages (``lut``, ``search``).

Each such command names the errors of its own packages; the cost-DB and
fleet translations (with their hints) and local-agent failures are common.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from fleetnas.controller.cli._options import costdb_errors
from fleetnas.controller.cli.fleet import fleet_errors
from fleetnas.controller.local_agents import LocalAgentError

#: exit status of a long command stopped with Ctrl-C (the shell's 128 + SIGINT)
EXIT_INTERRUPTED = 130


@contextmanager
def one_line_errors(*named: type[Exception]) -> Iterator[None]:
    """Turn these errors into one-line click errors.

    Cost-DB and fleet errors as :func:`costdb_errors` and :func:`fleet_errors`
    do; an error of a ``named`` type as its message; a local agent that
    failed to start as the first line of its message (the rest is its log).
    """
    with costdb_errors(), fleet_errors():
        try:
            yield
        except named as exc:
            raise click.ClickException(str(exc)) from exc
        except LocalAgentError as exc:
            raise click.ClickException(str(exc).splitlines()[0]) from exc
