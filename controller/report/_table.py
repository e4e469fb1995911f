"""The Pareto front as a rich table."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from fleetnas.controller.report._rows import (
    UNKNOWN_TEXT,
    ResultRow,
    format_value,
    precision_text,
)
from fleetnas.controller.search import Objective


def front_table(
    rows: Sequence[ResultRow],
    objectives: Sequence[Objective],
    *,
    extra_names: Sequence[str] = (),
    title: str = "Pareto front",
    caption: str | None = None,
) -> Table:
    """Rank, candidate, each objective (with ↑/↓), constraint inputs, source, arch.

    Rows with precision genes add a ``precision`` column (per target). A predicted latency is marked ``~`` (it was never measured), an
    unknown value reads ``unknown``, an infeasible row is red.
    """
    table = Table(title=escape(title), caption=escape(caption) if caption else None)
    table.add_column("rank", justify="right")
    table.add_column("id", justify="right")
    for o in objectives:
        arrow = "↑" if o.direction == "maximize" else "↓"
        table.add_column(escape(f"{o.display_name} {arrow}"), justify="right")
    for name in extra_names:
        table.add_column(escape(name), justify="right")
    table.add_column("latency from")
    genes = any(r.precisions for r in rows)
    if genes:
        table.add_column("precision")
    table.add_column("arch", overflow="fold")
    for r in rows:
        cells = []
        for name in [*(o.name for o in objectives), *extra_names]:
            text = UNKNOWN_TEXT if name in r.unknown else format_value(name, r.values.get(name))
            origin = r.sources.get(name)
            if origin in ("lut", "surrogate"):
                text = "~" + text
            cells.append(escape(text))
        style = None if r.feasible else "red"
        table.add_row(
            "" if r.rank is None else str(r.rank), str(r.candidate_id), *cells,
            escape(r.source or "-"), *([escape(precision_text(r))] if genes else []),
            escape(r.encoding), style=style,
        )  # fmt: skip
    return table
