"""The report's other plots: hypervolume history, measured vs predicted latency (PNG bytes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleetnas.controller.report._figure import new_figure, png_bytes
from fleetnas.controller.report._history import ALL, History
from fleetnas.controller.report._versus import WITHIN, Pair


def _plain(value: float, _position: object) -> str:
    return f"{value:.3g}"


def history_png(history: History) -> bytes:
    """Hypervolume after each candidate: all objectives, and one panel per device plane."""
    curves = list(history.curves)
    columns = min(len(curves), 3)
    lines = -(-len(curves) // columns)
    fig = new_figure(4.6 * columns, 3.4 * lines)
    xs = [p.x for p in history.points]
    for index, name in enumerate(curves):
        ax = fig.add_subplot(lines, columns, index + 1)
        ax.step(xs, [p.hypervolumes[name] for p in history.points], where="post",
                color="tab:blue", lw=1.2)
        ax.set_title("all objectives" if name == ALL else name, fontsize=9)
        ax.set_xlabel(history.axis, fontsize=8)
        ax.set_ylabel("hypervolume", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        if xs:
            ax.set_xlim(0, max(xs) * 1.02 or 1)
    fig.tight_layout()
    return png_bytes(fig)


def versus_png(pairs_by_name: Mapping[str, Sequence[Pair]]) -> bytes:
    """Predicted against measured latency per target, log-log, with y = x and the ±10 % band."""
    names = list(pairs_by_name)
    columns = min(len(names), 3)
    lines = -(-len(names) // columns)
    from matplotlib.ticker import FuncFormatter

    fig = new_figure(4.4 * columns, 4.0 * lines)
    for index, name in enumerate(names):
        pairs = pairs_by_name[name]
        ax = fig.add_subplot(lines, columns, index + 1)
        measured = [p.measured_ms for p in pairs]
        predicted = [p.predicted_ms for p in pairs]
        low = min(measured + predicted) / 1.2
        high = max(measured + predicted) * 1.2
        line = [low, high]
        ax.plot(line, line, color="0.3", lw=0.8, label="predicted = measured")
        ax.fill_between(line, [v * (1 - WITHIN) for v in line], [v * (1 + WITHIN) for v in line],
                        color="tab:green", alpha=0.12, label="±10 %")
        for predictor, colour in (("lut", "tab:blue"), ("surrogate", "tab:orange")):
            chosen = [p for p in pairs if p.predictor == predictor]
            if chosen:
                ax.scatter([p.measured_ms for p in chosen], [p.predicted_ms for p in chosen],
                           s=14, color=colour, label=f"{predictor} ({len(chosen)})", zorder=3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers (0.4, 0.6, 1), not 4×10⁻¹
            axis.set_major_formatter(FuncFormatter(_plain))
            if high / low < 10:  # within a decade the minor ticks are the only labels
                axis.set_minor_formatter(FuncFormatter(_plain))
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("measured (ms)", fontsize=8)
        ax.set_ylabel("predicted (ms)", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return png_bytes(fig)
