"""``fleetnas report ID -o report.html``: a stored search as one self-contained HTML page.

The page needs no server and loads nothing (plots are inline PNGs): open it
in any browser, mail it, attach it to an issue. What it holds is in
``docs/report.md``; building it is the report library's
(``report.load_report``, ``report.render_report``), this module only reads
the options, shows progress on stderr and writes the file.
"""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path

import click
from rich.markup import escape

from fleetnas.controller.atomic_files import write_text_atomic
from fleetnas.controller.cli._console import output_console, when
from fleetnas.controller.cli._options import existing_db_path
from fleetnas.controller.cli._progress import ProgressEvent, progress, quiet_option
from fleetnas.controller.cli._results import search_errors
from fleetnas.controller.cli.fleet import db_path_of, hardware_summary
from fleetnas.controller.costdb import CostDB, Device
from fleetnas.controller.report import load_report, render_report
from fleetnas.controller.search import parse_constraint


def parse_reference(texts: tuple[str, ...]) -> dict[str, float]:
    """``NAME=VALUE[ UNIT]`` items as canonical values (``latency[pi4]=30ms`` -> 30.0);
    a click error naming the bad item."""
    out: dict[str, float] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise click.BadParameter(f"{text!r}: expected NAME=VALUE, e.g. 'latency[pi4]=30ms'",
                                     param_hint="--reference")
        try:  # the units of a constraint's bound, converted the same way
            out[name.strip()] = parse_constraint(f"{name.strip()} <= {value.strip()}").bound
        except ValueError as exc:
            raise click.BadParameter(f"{text!r}: {exc}", param_hint="--reference") from exc
    return out


def _hardware_line(device: Device) -> str:
    return hardware_summary(device.description_proto())


def _static_time(timestamp: float | None) -> str:
    """A time as every command shows one, never "N s ago": a page is read later."""
    return when(timestamp, now=float("inf"))


@click.command()
@click.argument("search_id", type=int, metavar="ID")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write [default: fleetnas-search-ID.html].")
@click.option("--reference", multiple=True, metavar="NAME=VALUE",
              help="Hypervolume reference of an objective, e.g. 'latency[pi4]=30ms' "
              "(repeatable; default: the worst trial + 10% of the range).")
@quiet_option
@click.pass_context
def report(ctx: click.Context, search_id: int, output: Path | None, reference: tuple[str, ...],
           quiet: bool) -> None:
    """Write a stored search as one self-contained HTML page (no server, no external files).

    The page holds the Pareto front per device and across devices, the
    history (hypervolume per measurement), measured vs predicted latency,
    each front member's arch, latency and precision per device with the
    command that exports it, the configuration, devices, counters and
    timings.

    \b
    Example:
        fleetnas report 3 -o report.html
        fleetnas --db team.db report 3 --reference 'latency[pi4]=30ms' --reference accuracy=0
    """
    given = parse_reference(reference)
    db_path = existing_db_path(db_path_of(ctx))
    out = output or Path(f"fleetnas-search-{search_id}.html")
    with search_errors(), progress(quiet) as sink, CostDB(db_path) as db:
        def loading(step: str, done: int, total: int) -> None:
            if sink is not None:
                sink(ProgressEvent(f"read {step}", done, total))

        drawn = [0]

        def drawing(name: str) -> None:
            if sink is not None:
                sink(ProgressEvent("draw", drawn[0], None, detail=name))
            drawn[0] += 1

        try:
            data = load_report(db, search_id, hardware_line=_hardware_line, reference=given,
                               progress=loading)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--reference") from exc
        version = importlib.metadata.version("fleetnas")
        footer = f"Made by fleetnas {version} from {db_path} on {_static_time(time.time())}."
        page = render_report(data, show_time=_static_time, db_path=str(db_path),
                             generated=footer, on_step=drawing)
    write_text_atomic(out, page)
    output_console().print(escape(
        f"wrote {out} (search {search_id}: {len(data.front)} on the front, "
        f"{len(data.rows)} complete candidates, {len(page) // 1024} KiB)"), highlight=False)

