"""A search's history: the hypervolume of its measured front after each device measurement.

The search replays in the order its candidates got their measurements (the
time each row was stored with them; ties by candidate id). After each
candidate, the hypervolume of the feasible trials measured so far is taken
against one reference point, over all objectives (``all``) and, for a
search with a maximised objective and several others, over that objective
and each other one alone (one curve per device: accuracy × latency[T]).
The horizontal axis counts the latency values taken from measurements (the
search's ``measured`` counter), so searches that spend device time
differently compare on the same axis.

A search that measures nothing (``lut`` mode) is replayed over all its
trials, in candidate order, per candidate evaluated (``axis`` says so).

**Reference point.** The search itself keeps none, so the report states
one: each objective's value given by the caller, else the worst value any
complete trial of this search reached, moved a tenth of the trials' range
further (so the worst trials still count a little). :class:`Reference`
carries the numbers and how they were chosen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fleetnas.controller.report._rows import ResultRow
from fleetnas.controller.search import Objective, dominates, hypervolume

#: how far past the worst trial the stated reference lies, as a share of the trials' range
MARGIN = 0.1
ALL = "all"


@dataclass(frozen=True)
class Reference:
    """The reference point by objective name, and which values the caller gave."""

    values: Mapping[str, float]
    given: frozenset[str] = frozenset()

    def describe(self) -> str:
        """One line per objective: its value and where it came from."""
        return "; ".join(
            f"{name} {value:.6g} ({'given' if name in self.given else 'worst trial + 10% of range'})"
            for name, value in self.values.items()
        )


def reference_point(rows: Sequence[ResultRow], objectives: Sequence[Objective],
                    given: Mapping[str, float] | None = None) -> Reference:
    """The reference for ``rows`` (module docstring); ``given`` values win.

    Raises ValueError for a given name that is not an objective, or when an
    objective has neither a given value nor any trial value.
    """
    given = dict(given or {})
    names = [o.name for o in objectives]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"reference for {', '.join(unknown)}: not an objective of this search "
                         f"(objectives: {', '.join(names)})")
    values: dict[str, float] = {}
    for o in objectives:
        if o.name in given:
            values[o.name] = float(given[o.name])
            continue
        seen = [float(r.values[o.name]) for r in rows if o.name in r.values]
        if not seen:
            raise ValueError(f"no trial has a value of {o.name}: give its reference point")
        worst = max(seen) if o.direction == "minimize" else min(seen)
        span = (max(seen) - min(seen)) or abs(worst) or 1.0
        values[o.name] = worst + o.sign * MARGIN * span
    return Reference(values, frozenset(given))


@dataclass(frozen=True)
class HistoryPoint:
    """The state after one more candidate: ``x`` on the history's axis, the hypervolumes."""

    x: int
    candidate_id: int
    hypervolumes: Mapping[str, float]


@dataclass(frozen=True)
class History:
    """Hypervolume after each candidate; ``curves`` names them (``all``, then one per panel)."""

    axis: str
    reference: Reference
    curves: tuple[str, ...]
    points: tuple[HistoryPoint, ...] = field(default_factory=tuple)


def _curves(objectives: Sequence[Objective]) -> dict[str, list[Objective]]:
    curves = {ALL: list(objectives)}
    y_obj = next((o for o in objectives if o.direction == "maximize"), None)
    others = [o for o in objectives if o is not y_obj]
    if y_obj is not None and len(others) > 1:
        for o in others:
            curves[f"{y_obj.display_name} × {o.display_name}"] = [y_obj, o]
    return curves


def hypervolume_history(
    rows: Sequence[ResultRow],
    objectives: Sequence[Objective],
    reference: Reference,
    order: Mapping[int, float] | None = None,
) -> History:
    """Replay ``rows`` (complete trials) as the module docstring says.

    ``order`` gives, by candidate id, when the candidate's measurement was
    stored; without it candidates replay in id order. Only trials whose
    latencies are all measured count, unless none is (then every trial, per
    candidate).
    """
    measured = [r for r in rows if r.source == "measured"]
    axis = "latency measurements" if measured else "candidates evaluated (predicted values)"
    replay = measured or list(rows)
    when = order or {}
    replay.sort(key=lambda r: (when.get(r.candidate_id, 0.0), r.candidate_id))
    curves = _curves(objectives)
    fronts: dict[str, list[tuple[float, ...]]] = {name: [] for name in curves}
    current = {name: 0.0 for name in curves}
    points = []
    x = 0
    for r in replay:
        x += max(len(r.measurements), 1) if measured else 1
        if r.feasible:
            for name, objs in curves.items():
                if any(o.name not in r.values for o in objs):
                    continue  # an unknown value: worse than any reference, it adds no volume
                point = tuple(o.sign * float(r.values[o.name]) for o in objs)
                front = fronts[name]
                if any(dominates(p, point) or p == point for p in front):
                    continue
                front[:] = [p for p in front if not dominates(point, p)] + [point]
                ref = tuple(o.sign * reference.values[o.name] for o in objs)
                current[name] = hypervolume(front, ref)
        points.append(HistoryPoint(x, r.candidate_id, dict(current)))
    return History(axis, reference, tuple(curves), tuple(points))
