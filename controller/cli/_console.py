"""The console the commands print tables and results to (stdout)."""

from __future__ import annotations

import os
import sys

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
