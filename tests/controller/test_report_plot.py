"""The Pareto plot's rank labels: every label drawn, none overlapping another or a front marker."""

from __future__ import annotations

import itertools

from matplotlib.text import Text

from fleetnas.controller.report import ResultRow, front_figure
from fleetnas.controller.report._labels import MARKER_POINTS
from fleetnas.controller.search import Objective

OBJECTIVES = [Objective("accuracy", "maximize"), Objective("latency[pi]"), Objective("latency[orin]")]


def _row(i: int, accuracy: float, pi: float, orin: float, rank: int | None) -> ResultRow:
    return ResultRow(candidate_id=i, encoding=f"arch-{i}",
                     values={"accuracy": accuracy, "latency[pi]": pi, "latency[orin]": orin},
                     feasible=True, violation=0.0, source="measured",
                     sources={"latency[pi]": "measured", "latency[orin]": "measured"}, rank=rank)


def _clustered_front() -> list[ResultRow]:
    """20 front members packed into a tiny corner of each panel, plus a spread of other trials."""
    rows = [_row(i, 0.90 + 0.0004 * i, 1.0 + 0.002 * i, 0.5 + 0.001 * (20 - i), i + 1)
            for i in range(20)]
    rows += [_row(100 + i, 0.5 + 0.02 * i, 1.0 + 0.3 * i, 0.5 + 0.2 * i, None) for i in range(20)]
    return rows


def test_rank_labels_do_not_overlap_each_other_or_the_markers() -> None:
    fig = front_figure(_clustered_front(), OBJECTIVES, title="clustered")
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    fig.canvas.draw()
    for ax in fig.axes:
        labels = [t for t in ax.texts if t.get_text().isdigit()]
        assert sorted(int(t.get_text()) for t in labels) == list(range(1, 21))
        # the text's own box: an Annotation's extent includes its leader line
        boxes = [Text.get_window_extent(t, renderer) for t in labels]
        for (a, ta), (b, tb) in itertools.combinations(zip(boxes, labels, strict=True), 2):
            assert not a.overlaps(b), f"labels {ta.get_text()} and {tb.get_text()} overlap"
        half = MARKER_POINTS * fig.dpi / 72.0
        markers = [ax.transData.transform(t.xy) for t in labels]
        for label, box in zip(labels, boxes, strict=True):
            for x, y in markers:
                covers = box.x0 < x + half and x - half < box.x1 and box.y0 < y + half and y - half < box.y1
                assert not covers, f"label {label.get_text()} covers a front marker"
        frame = ax.get_window_extent(renderer)
        assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 for b in boxes)


def test_a_label_with_no_room_is_left_out_and_counted() -> None:
    # 30 members on one pixel: the rings around it cannot hold them all.
    rows = [_row(i, 0.9, 1.0, 0.5, i + 1) for i in range(30)]
    rows += [_row(100 + i, 0.1 * i, 1.0 + i, 0.5 + i, None) for i in range(10)]
    fig = front_figure(rows, OBJECTIVES[:2])
    (ax,) = fig.axes
    drawn = [t for t in ax.texts if t.get_text().isdigit()]
    notes = [t.get_text() for t in ax.texts if "not labelled" in t.get_text()]
    assert 0 < len(drawn) < 30
    assert notes == [f"{30 - len(drawn)} rank(s) not labelled: no room (see the table)"]


def test_an_objective_with_a_label_is_drawn_under_its_label() -> None:
    """A proxy's ``accuracy`` objective labelled ``naswot score`` heads the axis as such."""
    labelled = [Objective("accuracy", "maximize", "naswot score"), Objective("latency[pi]")]
    fig = front_figure(_clustered_front(), labelled)
    (ax,) = fig.axes
    assert ax.get_ylabel().startswith("naswot score") and "accuracy" not in ax.get_ylabel()
    assert ax.get_xlabel().startswith("latency[pi] (ms)")
