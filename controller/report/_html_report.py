"""The search report as one self-contained HTML page.

Sections: the search (status, configuration, counters, timings), its devices
(hardware from the cost DB), the Pareto front across devices (plot and
table: each member's arch, value per objective, latency per device,
precision per device and the command that exports it), the front of each
device alone, the history (hypervolume per measurement), and measured vs
predicted latency. Plots are inline PNGs; every value from the database is
HTML-escaped (:mod:`._html`); nothing is loaded from anywhere.

:func:`render_report` is pure given a :class:`~._search_report.SearchReport`;
``on_step`` hears of each plot as it is drawn (they take the time).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from fleetnas.controller.report._history import ALL
from fleetnas.controller.report._html import Safe, join, key_values, page, png, table, tag
from fleetnas.controller.report._plot import front_png
from fleetnas.controller.report._report_plots import history_png, versus_png
from fleetnas.controller.report._rows import (
    UNKNOWN_TEXT,
    ResultRow,
    format_value,
    objective_label,
    plane_front,
)
from fleetnas.controller.report._search_report import SearchReport
from fleetnas.controller.report._versus import PREDICTED, WITHIN, by_name

TimeFormat = Callable[[float | None], str]
#: at most this many rows in the measured-vs-predicted table (the plot has them all)
MAX_PAIR_ROWS = 200


def duration(seconds: float | None) -> str:
    """``"42.0 s"``, ``"3 min 20 s"``, ``"2 h 05 min"``; ``"-"`` for none."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min {int(seconds % 60)} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def export_command(report: SearchReport, rank: int, db_path: str | None) -> str:
    """The shell command that writes front member ``rank`` as ONNX (quoted for a POSIX shell)."""
    sid = report.record.id
    parts = ["fleetnas"] + (["--db", db_path] if db_path else [])
    parts += ["export", str(sid), "--rank", str(rank), "-o", f"search-{sid}-rank-{rank}.onnx"]
    return shlex.join(parts)


def _value_cell(row: ResultRow, name: str) -> str:
    if name in row.unknown:
        return UNKNOWN_TEXT
    text = format_value(name, row.values.get(name))
    return "~" + text if row.sources.get(name) in PREDICTED else text


def _target_keys(report: SearchReport) -> list[str]:
    return [t.key for t in report.config.targets]


def _overview(report: SearchReport, show_time: TimeFormat) -> Safe:
    r = report.record
    end = r.finished_at or r.updated_at
    evaluated = r.trials
    budget = "-" if not r.budget else str(r.budget)
    pairs: list[tuple[object, object]] = [
        ("status", r.status + (f" ({r.error})" if r.error else "")),
        ("space", r.space), ("mode", r.mode),
        ("targets", join(tag("div", t.describe()) for t in report.config.targets)),
        ("objectives", ", ".join(objective_label(o) for o in report.objectives)),
        ("constraints", ", ".join(c.text for c in report.constraints) or "-"),
        ("candidates", f"{evaluated} evaluated of a budget of {budget}; "
                       f"{len(report.failed)} failed, {report.pending} pending"),
        ("latency values", f"{r.measured} measured ({r.device_runs} run on devices for this "
                           f"search, {r.measured - r.device_runs} from the cost DB), "
                           f"{r.predicted} predicted"),
        ("steps committed", r.step),
        ("created", show_time(r.created_at)),
        ("finished" if r.finished_at else "last update", show_time(end)),
        ("wall time", duration(end - r.created_at)),
        ("per candidate", duration((end - r.created_at) / evaluated) if evaluated else "-"),
        ("device time", f"{duration(report.device_s)} (the benchmarks behind the measured "
                        "values, cache hits included)"),
    ]
    return join([tag("h2", "Search"), key_values(pairs)])


def _config(report: SearchReport) -> Safe:
    rows = [(key, json.dumps(value, sort_keys=True)) for key, value in report.record.config.items()]
    return join([tag("h2", "Configuration"),
                 tag("p", "As stored in the cost DB (searches.config).", class_="note"),
                 key_values((k, tag("code", v)) for k, v in rows)])


def _description_fields(description: Mapping[str, Any] | None) -> tuple[str, str, str]:
    if not description:
        return "-", "-", "-"
    os_info = description.get("os") or {}
    runtime = description.get("runtime") or {}
    system = " ".join(str(os_info.get(k, "")) for k in ("system", "release")).strip() or "-"
    providers = ", ".join(runtime.get("available_providers") or []) or "-"
    return system, str(runtime.get("onnxruntime_version") or "-"), providers


def _devices(report: SearchReport) -> Safe:
    rows = []
    for d in report.devices:
        system, ort, providers = _description_fields(d.description)
        rows.append([d.name, d.device_class or "-", d.hardware, system, ort, providers,
                     d.measurements, duration(d.device_s) if d.measurements else "-"])
    headers = ["device", "class", "hardware", "OS", "onnxruntime", "providers",
               "measured values", "device time"]
    luts = [(u.target, f"LUT {u.lut_id}: " + (
        f"{u.lut.space} on {u.lut.device}, {u.lut.entries}/{u.lut.blocks_total} blocks, "
        f"settings {u.lut.settings_hash}" if u.lut else "no longer in the cost DB"))
        for u in report.luts]  # fmt: skip
    parts = [tag("h2", "Devices"), table(headers, rows, numeric=(6, 7))]
    if luts:
        parts += [tag("h3", "LUTs predicting latency"), key_values(luts)]
    return join(parts)


def _front(report: SearchReport, db_path: str | None) -> Safe:
    keys = _target_keys(report)
    headers: list[object] = ["rank", "id", *(objective_label(o) for o in report.objectives)]
    extra = [n for n in report.names if n not in {o.name for o in report.objectives}]
    headers += [*extra, "precision", "latency from", "arch", "export"]
    rows, classes = [], []
    for r in report.front:
        precision = join(tag("div", f"{k}: {report.precision(r, k)}") for k in keys)
        command = tag("code", export_command(report, r.rank or 0, db_path), class_="cmd")
        rows.append([r.rank, r.candidate_id, *(_value_cell(r, n) for n in report.names),
                     precision, r.source or "-", tag("span", r.encoding, class_="arch"), command])
        classes.append("" if r.feasible else "infeasible")
    numeric = tuple(range(2 + len(report.names)))
    note = ("~ predicted, never measured; red: violates a constraint. The export command "
            "writes the net as ONNX with its arch string (run it where the cost DB is).")
    return join([tag("h3", f"Front table ({len(report.front)} members)"),
                 tag("p", note, class_="note"),
                 table(headers, rows, id_="front", row_classes=classes, numeric=numeric)])


def _plane_fronts(report: SearchReport) -> Iterator[Safe]:
    y_obj = next((o for o in report.objectives if o.direction == "maximize"), None)
    if y_obj is None:
        return
    for x_obj in (o for o in report.objectives if o is not y_obj):
        members = plane_front(report.rows, x_obj, y_obj)
        rows = [[r.rank or "-", r.candidate_id, _value_cell(r, y_obj.name),
                 _value_cell(r, x_obj.name), tag("span", r.encoding, class_="arch")]
                for r in members]
        plane = f"{y_obj.display_name} × {x_obj.display_name}"
        yield join([tag("h3", f"{plane}: {len(members)} on this front"),
                    table(["rank (all objectives)", "id", objective_label(y_obj),
                           objective_label(x_obj), "arch"], rows, numeric=(0, 1, 2, 3))])


def _history(report: SearchReport, on_step: Callable[[str], None]) -> Safe:
    history = report.history
    parts = [tag("h2", "History")]
    if history is None or not history.points:
        return join([*parts, tag("p", "No complete candidate yet.")])
    on_step("history plot")
    last = history.points[-1].hypervolumes
    finals = [(name if name != ALL else "all objectives", f"{last[name]:.6g}")
              for name in history.curves]
    parts += [
        tag("p", f"Hypervolume of the feasible front after each candidate, against "
                 f"{history.axis} (only candidates with every latency measured count, unless "
                 f"none has one). Reference point: {history.reference.describe()}.",
            class_="note"),
        png(history_png(history), "hypervolume history"),
        key_values(finals),
    ]
    return join(parts)


def _versus(report: SearchReport, on_step: Callable[[str], None]) -> Safe:
    versus = report.versus
    parts = [tag("h2", "Measured vs predicted latency")]
    explain = ("Each latency the search predicted (LUT or surrogate) against a measurement of "
               "the same candidate on the same target with matching settings, made by other "
               "work (another search, `fleetnas lut build`, `fleetnas measure` of its export). A hybrid search "
               "replaces the predictions of what it measures and does not keep them, so only "
               "the candidates it left predicted can be compared.")
    parts.append(tag("p", explain, class_="note"))
    if not versus.predicted:
        return join([*parts, tag("p", "This search has no predicted latency.")])
    grouped = by_name(versus)
    summary = []
    for name in sorted({*grouped, *(p.name for p in versus.pairs)}):
        share = versus.within(WITHIN, name)
        summary.append([name, len(grouped.get(name, [])),
                        "-" if share is None else f"{100 * share:.0f} %"])
    parts.append(tag("p", f"{versus.predicted} predicted latencies; {len(versus.pairs)} have a "
                          f"measurement, {versus.unmatched} have none."))
    if not versus.pairs:
        return join(parts)
    on_step("measured vs predicted plot")
    rows = [[p.candidate_id, p.name, p.predictor, f"{p.predicted_ms:.4g}", f"{p.measured_ms:.4g}",
             f"{100 * p.error:+.1f} %", p.device, tag("code", p.measurement_uid)]
            for p in versus.pairs[:MAX_PAIR_ROWS]]
    parts += [
        table(["latency", "pairs", "within ±10 %"], summary, id_="versus-summary", numeric=(1, 2)),
        png(versus_png(grouped), "measured vs predicted latency"),
        table(["id", "latency", "predictor", "predicted ms", "measured ms", "error", "device",
               "measurement"], rows, id_="versus", numeric=(0, 3, 4, 5)),
    ]
    if len(versus.pairs) > MAX_PAIR_ROWS:
        parts.append(tag("p", f"First {MAX_PAIR_ROWS} of {len(versus.pairs)} pairs shown.",
                         class_="note"))
    return join(parts)


def _pareto(report: SearchReport, db_path: str | None, on_step: Callable[[str], None]) -> Safe:
    parts = [tag("h2", "Pareto front")]
    if not report.rows:
        return join([*parts, tag("p", "No complete candidate yet.")])
    on_step("Pareto plot")
    title = f"search {report.record.id}: {len(report.rows)} candidates, {len(report.front)} on the front"
    image = front_png(list(report.rows), report.objectives, constraints=report.constraints,
                      title=title)
    note = ("Across devices: the front of all objectives (blue, with ranks). Per device: each "
            "panel's step line is the front of that plane alone. Filled: measured; hollow: "
            "predicted; red crosses: violate a constraint.")
    parts += [tag("p", note, class_="note"), png(image, "Pareto front"), _front(report, db_path)]
    parts += list(_plane_fronts(report))
    return join(parts)


def render_report(
    report: SearchReport,
    *,
    show_time: TimeFormat,
    db_path: str | None = None,
    generated: str = "",
    on_step: Callable[[str], None] | None = None,
) -> str:
    """The whole page. ``db_path`` goes into the export commands (``--db``) when given;
    ``generated`` is a line for the footer (who made the page, when)."""
    step = on_step or (lambda _name: None)
    title = f"fleetnas search {report.record.id} ({report.record.space}, {report.record.mode})"
    body: Sequence[object] = [
        tag("h1", title),
        _overview(report, show_time),
        _devices(report),
        _pareto(report, db_path, step),
        _history(report, step),
        _versus(report, step),
        _config(report),
        tag("p", generated, class_="note") if generated else "",
    ]
    return page(title, body)

