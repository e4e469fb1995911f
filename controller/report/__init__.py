"""Search results for people: the Pareto front as a table, CSV, JSON and a PNG plot.

Everything is built from a :class:`~fleetnas.controller.search.SearchEngine`
(live, or rebuilt from a stored snapshot)::

    from fleetnas.controller.report import all_rows, front_rows, front_table, plot_front

    rows = front_rows(engine)                     # ranked 1.. like `fleetnas export --rank`
    console.print(front_table(rows, engine.objectives))
    write_csv(rows, value_names(engine), "front.csv")
    plot_front(all_rows(engine), engine.objectives, "front.png",
               constraints=engine.constraints)

Importing this package imports neither torch nor matplotlib (plotting does).
"""

from __future__ import annotations

from fleetnas.controller.report._files import csv_text, json_document, write_csv, write_json
from fleetnas.controller.report._plot import front_figure, front_png, plot_front
from fleetnas.controller.report._rows import (
    ResultRow,
    all_rows,
    format_value,
    front_rows,
    objective_label,
    plane_front,
    unit_of,
    value_names,
)
from fleetnas.controller.report._table import front_table

__all__ = [
    "ResultRow",
    "all_rows",
    "csv_text",
    "format_value",
    "front_figure",
    "front_png",
    "front_rows",
    "front_table",
    "json_document",
    "objective_label",
    "plane_front",
    "plot_front",
    "unit_of",
    "value_names",
    "write_csv",
    "write_json",
]
