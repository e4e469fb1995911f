"""Showing a measurement's operator profile: rich tables and a PNG bar chart.

The profile is the agent's ``OperatorProfile`` as the cost DB stores it
(:class:`~fleetnas.controller.costdb.Profile`): per node (execution order) and
per op type (largest total first). The tables show the ``top`` nodes by median
time and every op type; the figure is a horizontal bar chart of the op types'
total time, one panel per profiled measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.report._figure import new_figure, save_png

DEFAULT_TOP = 15


def _source(profile: agent_pb2.OperatorProfile) -> str:
    name = agent_pb2.ProfileSource.Name(profile.source)
    return name.removeprefix("PROFILE_SOURCE_").lower()


def statistic(profile: agent_pb2.OperatorProfile) -> str:
    """``"mean"`` where the tool reports per-node means (benchmark_model), else ``"median"``."""
    return "mean" if profile.times_are_means else "median"


def node_table(profile: agent_pb2.OperatorProfile, title: str, top: int) -> Table:
    """The ``top`` nodes by time (median, or mean where the tool gives means), slowest first."""
    nodes = sorted(profile.operators, key=lambda op: -op.median_ms)[:top]
    shown = f"top {len(nodes)} of {len(profile.operators)}" if top < len(profile.operators) else (
        f"all {len(nodes)}")
    table = Table(title=escape(
        f"{title}: {shown} nodes ({_source(profile)}, {profile.profiled_runs} runs, "
        f"sum {profile.total_ms:.4g} ms, run {profile.run_median_ms:.4g} ms)"
    ))
    time_column = f"{statistic(profile)} ms"
    for name in ("#", "node", "op type", time_column, "share", "provider"):
        table.add_column(name, justify="right" if name in ("#", time_column, "share") else "left")
    for rank, op in enumerate(nodes, start=1):
        table.add_row(str(rank), escape(op.node_name), escape(op.op_type), f"{op.median_ms:.4g}",
                      f"{op.share:.1%}", escape(op.provider or "-"))
    return table


def op_type_table(profile: agent_pb2.OperatorProfile, title: str) -> Table:
    """Every op type, largest total first."""
    table = Table(title=escape(f"{title}: time by op type"))
    for name in ("op type", "nodes", "total ms", "share"):
        table.add_column(name, justify="left" if name == "op type" else "right")
    for t in sorted(profile.op_types, key=lambda t: -t.total_ms):
        table.add_row(escape(t.op_type), str(t.nodes), f"{t.total_ms:.4g}", f"{t.share:.1%}")
    return table


def print_profile(
    console: Console, profile: agent_pb2.OperatorProfile, title: str, *, top: int = DEFAULT_TOP
) -> None:
    """Print the node table and the op-type breakdown of one profile."""
    console.print(node_table(profile, title, top))
    console.print(op_type_table(profile, title))


def save_profile_plot(
    profiles: Sequence[tuple[str, agent_pb2.OperatorProfile]], path: str | Path
) -> Path:
    """A PNG bar chart of each profile's time by op type (one panel per ``(title,
    profile)``) at ``path``; returns the path. Raises ``ValueError`` for no profiles."""
    if not profiles:
        raise ValueError("no operator profile to plot")
    heights = [max(1.6, 0.32 * len(p.op_types) + 1.0) for _, p in profiles]
    fig = new_figure(7.0, sum(heights))
    axes = fig.subplots(len(profiles), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (title, profile) in zip(axes, profiles, strict=True):
        types = sorted(profile.op_types, key=lambda t: t.total_ms)  # largest at the top
        bars = ax.barh([t.op_type for t in types], [t.total_ms for t in types], color="#4c72b0")
        ax.bar_label(bars, labels=[f"{t.share:.0%}" for t in types], padding=3, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"total {statistic(profile)} time (ms)")
        ax.margins(x=0.15)
    fig.tight_layout()
    return save_png(fig, path)
