"""One-line CLI errors for the commands that drive several packages (``lut``, ``search``),
and how they stop: Ctrl-C and SIGTERM alike, cleanly and resumably.

Each such command names the errors of its own packages; the cost-DB and
fleet translations (with their hints) and local-agent failures are common.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click

from fleetnas.controller.cli._options import costdb_errors
from fleetnas.controller.cli.fleet import fleet_errors
from fleetnas.controller.local_agents import LocalAgentError

#: exit status of a long command stopped with Ctrl-C (the shell's 128 + SIGINT)
EXIT_INTERRUPTED = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the clean, resumable stop Ctrl-C gives (see :func:`sigterm_stops`)."""

    #: the shell's 128 + SIGTERM
    exit_code = 128 + signal.SIGTERM


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return int(getattr(interrupt, "exit_code", EXIT_INTERRUPTED))


@contextmanager
def sigterm_stops() -> Iterator[None]:
    """Inside, SIGTERM raises :class:`Terminated` in the main thread, as SIGINT raises
    KeyboardInterrupt: a long command (``search``, ``lut build``) stops cleanly, stores
    what it has and says how to resume, instead of dying with its search marked running.

    Only the first SIGTERM does this (a second one, during the clean-up, ends the
    process as usual); the previous handler is back on exit. Outside the main
    thread (where signals cannot be handled) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated(f"stopped by {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
