"""Search results for people: the Pareto front as a table, CSV, JSON, a PNG plot, an HTML report.

Everything is built from a :class:`~fleetnas.controller.search.SearchEngine`
(live, or rebuilt from a stored snapshot)::

    from fleetnas.controller.report import all_rows, front_rows, front_table, plot_front

    rows = front_rows(engine)                     # ranked 1.. like `fleetnas export --rank`
    console.print(front_table(rows, engine.objectives))
    write_csv(rows, value_names(engine), "front.csv")
    plot_front(all_rows(engine), engine.objectives, "front.png",
               constraints=engine.constraints)

A whole stored search as one self-contained HTML page (``fleetnas report``)::

    data = load_report(db, search_id, hardware_line=lambda device: device.name)
    Path("report.html").write_text(render_report(data, show_time=str))

Importing this package imports neither torch nor matplotlib (plotting does).
"""

from __future__ import annotations

from fleetnas.controller.report._files import csv_text, json_document, write_csv, write_json
from fleetnas.controller.report._history import (
    History,
    HistoryPoint,
    Reference,
    hypervolume_history,
    reference_point,
)
from fleetnas.controller.report._html_report import duration, export_command, render_report
from fleetnas.controller.report._plot import front_figure, front_png, plot_front
from fleetnas.controller.report._rows import (
    ResultRow,
    all_rows,
    format_value,
    front_rows,
    objective_label,
    per_target_names,
    plane_front,
    unit_of,
    value_labels,
    value_names,
)
from fleetnas.controller.report._search_report import (
    DeviceUse,
    LutUse,
    SearchReport,
    load_report,
)
from fleetnas.controller.report._table import front_table
from fleetnas.controller.report._versus import Pair, Versus, compare_predictions

__all__ = [
    "DeviceUse",
    "History",
    "HistoryPoint",
    "LutUse",
    "Pair",
    "Reference",
    "ResultRow",
    "SearchReport",
    "Versus",
    "all_rows",
    "compare_predictions",
    "csv_text",
    "duration",
    "export_command",
    "format_value",
    "front_figure",
    "front_png",
    "front_rows",
    "per_target_names",
    "front_table",
    "hypervolume_history",
    "json_document",
    "load_report",
    "objective_label",
    "plane_front",
    "plot_front",
    "reference_point",
    "render_report",
    "unit_of",
    "value_labels",
    "value_names",
    "write_csv",
    "write_json",
]
