"""The Pareto plot: one panel per latency target (or other objective), PNG.

The vertical axis is the first maximised objective (accuracy), else the
first objective; each other objective gets a panel with it on the
horizontal axis: one per device for a multi-device search. In each panel:
every trial in grey (hollow when its values there were predicted, not
measured), infeasible ones as red crosses, the Pareto front (of *all*
objectives) in colour with its ranks, the panel's own 2-D front as a step
line, and constraint bounds on that axis as dashed lines.

Rank labels never overlap each other or the front's markers
(:func:`~._labels.place_labels`: each goes to the first free spot around its
point, with a leader line when it had to move away); a rank that finds no
free spot is left out and the panel says how many (the table has them all).

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no display);
matplotlib is imported only when plotting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fleetnas.controller.report._figure import new_figure, png_bytes, save_png
from fleetnas.controller.report._labels import place_labels
from fleetnas.controller.report._rows import ResultRow, plane_front, unit_of
from fleetnas.controller.search import Constraint, Objective

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_PREDICTED = ("lut", "surrogate")


def _scale(name: str) -> float:
    return 1.0 / 2**20 if unit_of(name) == "MiB" else 1.0


def _axis_label(objective: Objective) -> str:
    unit = unit_of(objective.name)
    arrow = "higher is better" if objective.direction == "maximize" else "lower is better"
    return objective.display_name + (f" ({unit})" if unit else "") + f" — {arrow}"


#: at most this many front members get a rank label per panel
MAX_LABELS = 30

LabelItems = list[tuple[str, tuple[float, float]]]


def plot_front(
    rows: Sequence[ResultRow],
    objectives: Sequence[Objective],
    path: str | Path,
    *,
    constraints: Sequence[Constraint] = (),
    title: str = "Pareto front",
) -> Path:
    """Write the PNG (see the module docstring) for ``rows`` (all complete trials); return its path."""
    return save_png(front_figure(rows, objectives, constraints=constraints, title=title), path)


def front_png(
    rows: Sequence[ResultRow],
    objectives: Sequence[Objective],
    *,
    constraints: Sequence[Constraint] = (),
    title: str = "Pareto front",
) -> bytes:
    """The same plot as :func:`plot_front`, as PNG bytes."""
    return png_bytes(front_figure(rows, objectives, constraints=constraints, title=title))


def front_figure(
    rows: Sequence[ResultRow],
    objectives: Sequence[Objective],
    *,
    constraints: Sequence[Constraint] = (),
    title: str = "Pareto front",
) -> Figure:
    """The figure of :func:`plot_front`: one panel per objective other than the vertical one."""
    if not objectives:
        raise ValueError("no objectives to plot")
    y_obj = next((o for o in objectives if o.direction == "maximize"), objectives[0])
    x_objs = [o for o in objectives if o is not y_obj] or [y_obj]
    panels = len(x_objs)
    columns = min(panels, 3)
    lines = math.ceil(panels / columns)
    fig = new_figure(5.2 * columns, 4.4 * lines)
    labels: list[tuple[Axes, LabelItems]] = []
    for index, x_obj in enumerate(x_objs):
        ax = fig.add_subplot(lines, columns, index + 1)
        labels.append((ax, _panel(ax, rows, x_obj, y_obj, constraints)))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    for ax, items in labels:  # after the layout: placement works in pixels
        left_out = place_labels(ax, items[:MAX_LABELS]) + max(0, len(items) - MAX_LABELS)
        if left_out:
            ax.text(0.99, 0.01, f"{left_out} rank(s) not labelled: no room (see the table)",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=6, color="0.4")
    return fig


def robust_limits(values: Sequence[float]) -> tuple[float, float] | None:
    """Axis limits that leave out far outliers, or ``None`` when none are far.

    A degenerate network can score orders of magnitude off the rest (a
    proxy's log-determinant of a near-empty cell), which would squash every
    interesting point into a line. Limits are the 5th-95th percentile range
    widened by its own width each way; ``None`` when every value fits in them.
    """
    if len(values) < 10:
        return None
    ordered = sorted(values)
    low = ordered[int(0.05 * (len(ordered) - 1))]
    high = ordered[math.ceil(0.95 * (len(ordered) - 1))]
    span = high - low
    if span <= 0:
        return None
    limits = (low - span, high + span)
    if ordered[0] >= limits[0] and ordered[-1] <= limits[1]:
        return None
    return (max(limits[0], ordered[0] - 0.05 * span), min(limits[1], ordered[-1] + 0.05 * span))


def _clamp(value: float, limits: tuple[float, float] | None) -> float:
    if limits is None:
        return value
    return min(max(value, limits[0]), limits[1])


def _outside(point: tuple[float, float], x_lim: tuple[float, float] | None,
             y_lim: tuple[float, float] | None) -> bool:
    return any(lim is not None and not lim[0] <= v <= lim[1]
               for v, lim in zip(point, (x_lim, y_lim), strict=True))


def _panel(
    ax: Axes,
    rows: Sequence[ResultRow],
    x_obj: Objective,
    y_obj: Objective,
    constraints: Sequence[Constraint],
) -> LabelItems:
    """Draw one panel; return the rank labels to place once the layout is final."""
    xs_scale, ys_scale = _scale(x_obj.name), _scale(y_obj.name)
    same = x_obj is y_obj
    rows = [r for r in rows if x_obj.name in r.values and y_obj.name in r.values]  # not unknown

    def raw(r: ResultRow) -> tuple[float, float]:
        x = r.values[x_obj.name] * xs_scale
        y = float(r.candidate_id) if same else r.values[y_obj.name] * ys_scale
        return x, y

    x_lim = robust_limits([raw(r)[0] for r in rows])
    y_lim = robust_limits([raw(r)[1] for r in rows])
    clipped = sum(1 for r in rows if _outside(raw(r), x_lim, y_lim))

    def xy(r: ResultRow) -> tuple[float, float]:
        x, y = raw(r)
        return _clamp(x, x_lim), _clamp(y, y_lim)

    def predicted(r: ResultRow) -> bool:
        return any(r.sources.get(n) in _PREDICTED for n in (x_obj.name, y_obj.name))

    groups = {
        "measured": [r for r in rows if r.feasible and not predicted(r) and not r.on_front],
        "predicted": [r for r in rows if r.feasible and predicted(r) and not r.on_front],
        "infeasible": [r for r in rows if not r.feasible],
    }

    def coords(group: Sequence[ResultRow]) -> tuple[list[float], list[float]]:
        pairs = [xy(r) for r in group]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    if groups["measured"]:
        ax.scatter(*coords(groups["measured"]), s=14, color="0.6", label="trial (measured)",
                   zorder=2)
    if groups["predicted"]:
        ax.scatter(*coords(groups["predicted"]), s=14, facecolors="none", edgecolors="0.6",
                   label="trial (predicted)", zorder=2)
    if groups["infeasible"]:
        ax.scatter(*coords(groups["infeasible"]), s=14, marker="x", color="tab:red", alpha=0.6,
                   label="violates a constraint", zorder=2)
    front = sorted((r for r in rows if r.on_front), key=lambda r: r.rank or 0)
    if front:
        ax.scatter(*coords(front), s=36, color="tab:blue", edgecolors="black", linewidths=0.5,
                   label="Pareto front (all objectives)", zorder=4)
    if not same:
        panel_front = sorted(xy(r) for r in plane_front(rows, x_obj, y_obj))
        if panel_front:
            ax.step([p[0] for p in panel_front], [p[1] for p in panel_front], where="post",
                    color="tab:blue", lw=1.0, alpha=0.7, label="front in this plane")
    for c in constraints:
        if c.name == x_obj.name:
            ax.axvline(c.bound * xs_scale, ls="--", color="tab:red", lw=0.9, label=c.text)
        elif c.name == y_obj.name and not same:
            ax.axhline(c.bound * ys_scale, ls="--", color="tab:red", lw=0.9, label=c.text)
    if x_lim is not None:
        ax.set_xlim(*x_lim)
    if y_lim is not None:
        ax.set_ylim(*y_lim)
    note = f"\n{clipped} far outlier(s) drawn on the frame" if clipped else ""
    ax.set_xlabel(_axis_label(x_obj) + note, fontsize=8)
    ax.set_ylabel("candidate" if same else _axis_label(y_obj), fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return [(str(r.rank), xy(r)) for r in front]
