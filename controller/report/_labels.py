"""Point labels that do not overlap: each label goes to the first free spot around its point.

Front members of a search are often close together (a dozen nets within a
few percent of each other), and a label at a fixed offset then covers its
neighbours' labels. :func:`place_labels` tries, for each point in order,
offsets on rings of growing radius around it (right, up, left, down, then
the diagonals) and keeps the first whose text box overlaps no label placed
before and no labelled point's marker (its own included), and stays inside the axes; past the
first ring a thin leader line joins the label to its point. A label that
finds no free spot within the largest ring is left out, and counted.

Works in display (pixel) coordinates, so it must run after the figure's
layout is final (after ``tight_layout``); it measures each label with the
figure's renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.text import Annotation
    from matplotlib.transforms import Bbox

#: ring radii in points; the first ring needs no leader line
RADII = (5.0, 11.0, 18.0, 27.0, 38.0, 52.0, 68.0, 86.0)
_DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (-1, -1), (1, -1))
#: half the side of the square kept free around each labelled point, in points
MARKER_POINTS = 3.5


HAlign = Literal["left", "center", "right"]
VAlign = Literal["bottom", "center", "top"]


def _alignment(dx: float, dy: float) -> tuple[HAlign, VAlign]:
    ha: HAlign = "left" if dx > 0 else "right" if dx < 0 else "center"
    va: VAlign = "bottom" if dy > 0 else "top" if dy < 0 else "center"
    return ha, va


def _marker_box(x: float, y: float, half: float) -> Bbox:
    from matplotlib.transforms import Bbox

    return Bbox.from_extents(x - half, y - half, x + half, y + half)


def place_labels(ax: Axes, items: Sequence[tuple[str, tuple[float, float]]], *,
                 fontsize: float = 7) -> int:
    """Label each ``(text, (x, y))`` (data coordinates) of ``ax`` without overlaps.

    Returns how many labels found no free spot (they are not drawn).
    """
    fig = ax.get_figure()
    assert fig is not None
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    marker = MARKER_POINTS * fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    pixels = [ax.transData.transform(xy) for _, xy in items]
    markers = [_marker_box(float(px), float(py), marker) for px, py in pixels]
    placed: list[Bbox] = []
    left_out = 0
    for text, xy in items:
        label = ax.annotate(text, xy, textcoords="offset points", xytext=(0, 0),
                            fontsize=fontsize, zorder=5)
        spot = _first_free_spot(label, renderer, frame, [*placed, *markers])
        label.remove()
        if spot is None:
            left_out += 1
            continue
        (dx, dy), ring, box = spot
        ha, va = _alignment(dx, dy)
        leader = {"arrowstyle": "-", "color": "0.45", "lw": 0.5, "shrinkA": 0, "shrinkB": 2}
        ax.annotate(text, xy, textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                    ha=ha, va=va, zorder=5, arrowprops=leader if ring > 0 else None)
        placed.append(box)
    return left_out


def _first_free_spot(label: Annotation, renderer: object, frame: Bbox, taken: Sequence[Bbox],
                     ) -> tuple[tuple[float, float], int, Bbox] | None:
    """The first free offset (points) for ``label``, its ring and its box; ``None`` if none."""
    for ring, radius in enumerate(RADII):
        for ux, uy in _DIRECTIONS:
            scale = radius / (2**0.5 if ux and uy else 1.0)
            offset = (ux * scale, uy * scale)
            ha, va = _alignment(*offset)
            label.xyann = offset
            label.set_horizontalalignment(ha)
            label.set_verticalalignment(va)
            box = label.get_window_extent(renderer)  # type: ignore[arg-type]
            inside = (frame.x0 <= box.x0 and box.x1 <= frame.x1
                      and frame.y0 <= box.y0 and box.y1 <= frame.y1)
            if inside and not any(box.overlaps(other) for other in taken):
                return offset, ring, box
    return None
