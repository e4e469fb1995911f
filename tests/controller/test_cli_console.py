"""Tables printed to a file or pipe keep whole rows; a terminal or COLUMNS decides otherwise."""

from __future__ import annotations

import subprocess
import sys

from fleetnas.controller.cli._console import PIPE_WIDTH, output_console


def test_piped_output_is_wide_unless_columns_says_otherwise(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_console().width == PIPE_WIDTH  # pytest captures stdout: not a terminal
    monkeypatch.setenv("COLUMNS", "90")
    assert output_console().width == 90


def test_a_long_cell_is_not_folded_when_piped():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    code = (
        "from rich.table import Table\n"
        "from fleetnas.controller.cli._console import output_console\n"
        "t = Table(); t.add_column('rank'); t.add_column('value'); t.add_column('arch', overflow='fold')\n"
        f"t.add_row('1', '0.1035 ms', {arch!r})\n"
        "output_console().print(t)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout
    assert arch in out  # on one line, not folded into pieces
