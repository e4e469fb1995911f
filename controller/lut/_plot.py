"""The ``lut eval`` scatter plot: predicted against measured latency, with the +-10 % band.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global
backend switch, no display needed); matplotlib is imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def scatter_plot(
    predicted_ms: Sequence[float],
    measured_ms: Sequence[float],
    path: str | Path,
    *,
    title: str = "LUT prediction",
    subtitle: str = "",
) -> Path:
    """Write a PNG of predicted (y) against measured (x) latency; return its path.

    The diagonal is a perfect prediction; the shaded band is +-10 % of the
    measurement, the dashed lines +-5 %. Points outside the band are red.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if len(predicted_ms) != len(measured_ms) or not measured_ms:
        raise ValueError("need as many predictions as measurements, at least one")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6.0, 6.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    lo = min(min(predicted_ms), min(measured_ms)) * 0.9
    hi = max(max(predicted_ms), max(measured_ms)) * 1.1
    line = [lo, hi]
    ax.fill_between(line, [v * 0.9 for v in line], [v * 1.1 for v in line],
                    color="tab:green", alpha=0.15, label="within 10%")
    ax.plot(line, [v * 0.95 for v in line], "--", color="tab:green", lw=0.8, label="within 5%")
    ax.plot(line, [v * 1.05 for v in line], "--", color="tab:green", lw=0.8)
    ax.plot(line, line, "-", color="black", lw=0.8, label="exact")
    inside = [abs(p - m) <= 0.1 * m for p, m in zip(predicted_ms, measured_ms, strict=True)]
    for flag, colour, label in ((True, "tab:blue", "arch"), (False, "tab:red", "outside 10%")):
        xs = [m for m, ok in zip(measured_ms, inside, strict=True) if ok is flag]
        ys = [p for p, ok in zip(predicted_ms, inside, strict=True) if ok is flag]
        if xs:
            ax.scatter(xs, ys, s=14, color=colour, label=label, zorder=3)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, format="png")
    return out
