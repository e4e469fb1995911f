"""The console the commands print tables and results to (stdout), and how they show times."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time

from rich.console import Console

#: width used when stdout is not a terminal and COLUMNS does not say otherwise
PIPE_WIDTH = 200


def output_console() -> Console:
    """A stdout console. Redirected to a file or a pipe (logs, CI), rich would assume
    80 columns and fold long cells such as arch strings character by character;
    there it is wide enough to keep each row whole. A terminal's own width, or
    COLUMNS, always wins."""
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=PIPE_WIDTH)


def when(timestamp: float | None, *, empty: str = "-", now: float | None = None) -> str:
    """A unix time as every command shows one: ``"12 s ago"`` within two minutes,
    else ``"2026-12-01 23:55 UTC"`` (UTC, so that a shared database reads the same
    everywhere); ``empty`` for none."""
    if not timestamp:
        return empty
    ago = (time.time() if now is None else now) - timestamp
    if 0 <= ago < 120:
        return f"{ago:.0f} s ago"
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
