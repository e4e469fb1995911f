"""Pareto utilities: dominance, non-dominated sorting, crowding distance, hypervolume.

Every function here works on *minimisation* vectors (tuples of floats where
lower is better in every coordinate), except :func:`hypervolume`, which takes
the objectives' own directions and converts. Functions are pure and
deterministic: ties keep input order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Point = Sequence[float]

MINIMIZE = "minimize"
MAXIMIZE = "maximize"


def dominates(a: Point, b: Point) -> bool:
    """True when ``a`` is no worse than ``b`` everywhere and better somewhere (minimisation)."""
    better = False
    for x, y in zip(a, b, strict=True):
        if x > y:
            return False
        if x < y:
            better = True
    return better


def non_dominated_sort(points: Sequence[Point]) -> list[list[int]]:
    """Deb's fast non-dominated sort: indices grouped into fronts, best front first.

    Front 0 holds the points no other point dominates; front k the points only
    dominated by fronts < k. Within a front, indices keep input order.
    O(M·N²) for N points of M objectives.
    """
    n = len(points)
    dominated_by_me: list[list[int]] = [[] for _ in range(n)]
    domination_count = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                dominated_by_me[i].append(j)
                domination_count[j] += 1
            elif dominates(points[j], points[i]):
                dominated_by_me[j].append(i)
                domination_count[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if domination_count[i] == 0]
    while current:
        fronts.append(current)
        nxt: list[int] = []
        for i in current:
            for j in dominated_by_me[i]:
                domination_count[j] -= 1
                if domination_count[j] == 0:
                    nxt.append(j)
        current = sorted(nxt)
    return fronts


def constrained_non_dominated_sort(
    points: Sequence[Point], violations: Sequence[float]
) -> list[list[int]]:
    """Fronts under Deb's constraint-domination.

    A feasible point (violation 0) beats every infeasible one; among infeasible
    points, lower total violation wins; equal violations (and all feasible
    points) fall back to Pareto dominance. So the feasible points' fronts come
    first, then the infeasible points grouped by increasing violation, each
    group sorted by Pareto dominance.
    """
    if len(points) != len(violations):
        raise ValueError(f"{len(points)} points but {len(violations)} violations")
    feasible = [i for i, v in enumerate(violations) if v <= 0.0]
    fronts = [
        [feasible[k] for k in front] for front in non_dominated_sort([points[i] for i in feasible])
    ]
    by_violation: dict[float, list[int]] = {}
    for i, v in enumerate(violations):
        if v > 0.0:
            by_violation.setdefault(v, []).append(i)
    for v in sorted(by_violation):
        group = by_violation[v]
        fronts.extend(
            [[group[k] for k in front] for front in non_dominated_sort([points[i] for i in group])]
        )
    return fronts


#: points compared with each other at once (each chunk's pairwise table: _CHUNK² x M booleans)
_CHUNK = 64


def dominance_table(by: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``table[i, j]``: does row ``i`` of ``by`` dominate row ``j`` of ``points``
    (minimisation; exactly :func:`dominates`)? Both are ``rows x objectives`` arrays.

    Built one objective at a time on ``by x points`` tables: a reduction over
    a last axis of a few objectives costs more than all the comparisons.
    """
    no_worse = np.ones((len(by), len(points)), dtype=bool)
    better = np.zeros((len(by), len(points)), dtype=bool)
    for m in range(points.shape[1]):
        column, against = by[:, m, None], points[None, :, m]
        no_worse &= column <= against
        better |= column < against
    return no_worse & better


def _dominated_by_any(by: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each row of ``points``: does some row of ``by`` dominate it (minimisation)?"""
    if not len(by) or not len(points):
        return np.zeros(len(points), dtype=bool)
    return np.asarray(dominance_table(by, points).any(axis=0), dtype=bool)


def _non_dominated_mask(points: np.ndarray) -> np.ndarray:
    """Which rows no other row dominates (minimisation).

    In lexicographic order a point can only be dominated by one before it (a
    dominator is smaller at the first coordinate where they differ), and if
    it is dominated at all, a non-dominated point dominates it too
    (transitivity). So the points are taken in that order, a chunk at a time,
    and each is compared with the front found so far and with its own chunk:
    O(N·(F + chunk)·M) for a front of F points, every comparison in numpy.
    """
    n = len(points)
    order = np.lexsort(points.T[::-1])
    front: list[int] = []
    for start in range(0, n, _CHUNK):
        chunk = order[start:start + _CHUNK]
        block = points[chunk]
        dominated = _dominated_by_any(points[front], block) | _dominated_by_any(block, block)
        front.extend(int(i) for i in chunk[~dominated])
    mask = np.zeros(n, dtype=bool)
    mask[front] = True
    return mask


def constrained_front(points: Sequence[Point] | np.ndarray,
                      violations: Sequence[float]) -> list[int]:
    """Front 0 under Deb's constraint-domination, in input order, vectorised.

    The indices of :func:`constrained_non_dominated_sort`'s first front: the
    feasible points no feasible point dominates when any point is feasible,
    else the points of least violation that no equally violating point
    dominates. Exactly the same indices (float comparisons as in
    :func:`dominates`); about O(N·(F + 64)·M) numpy element operations for a
    front of F points, instead of the sort's O(M·N²) Python comparisons.
    """
    if len(points) != len(violations):
        raise ValueError(f"{len(points)} points but {len(violations)} violations")
    if not len(points):
        return []
    matrix = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    v = np.asarray(violations, dtype=np.float64)
    feasible = v <= 0.0
    group = np.flatnonzero(feasible) if feasible.any() else np.flatnonzero(v == v.min())
    keep = _non_dominated_mask(matrix[group])
    return [int(i) for i in group[keep]]


def pareto_indices(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points (front 0), in input order."""
    fronts = non_dominated_sort(points)
    return fronts[0] if fronts else []


def crowding_distance(points: Sequence[Point]) -> list[float]:
    """NSGA-II crowding distance of each point of one front (larger = more isolated).

    Boundary points of every objective get ``inf``; an objective whose values
    are all equal contributes nothing. Fronts of one or two points are all
    ``inf``. An infinite coordinate (an unknown value, ranked worst) counts as
    the largest finite one of its objective (all 0 when none is finite), so
    it never turns a distance into NaN.
    """
    n = len(points)
    if n == 0:
        return []
    distance = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    points = _finite_columns(points)
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        span = hi - lo
        if span <= 0.0:
            continue
        for k in range(1, n - 1):
            i = order[k]
            if distance[i] != math.inf:
                distance[i] += (points[order[k + 1]][m] - points[order[k - 1]][m]) / span
    return distance


def _finite_columns(points: Sequence[Point]) -> list[tuple[float, ...]]:
    """``points`` with each infinite coordinate replaced by its column's largest finite one."""
    columns = list(zip(*points, strict=True))
    tops = [max((x for x in c if math.isfinite(x)), default=0.0) for c in columns]
    return [tuple(x if math.isfinite(x) else top for x, top in zip(p, tops, strict=True))
            for p in points]


def hypervolume(
    points: Sequence[Point],
    reference: Point,
    directions: Sequence[str] | None = None,
) -> float:
    """Exact hypervolume dominated by ``points`` and bounded by ``reference``.

    ``directions`` gives ``"minimize"`` or ``"maximize"`` per coordinate (all
    minimise when omitted); ``reference`` is in the same units and must be worse
    than the points that should count (above them when minimising, below when
    maximising). Points not strictly better than the reference in every
    coordinate contribute nothing. Exact for any number of objectives by
    recursive slicing along the last one (O(N^(M-1) log N)): instant for two or
    three objectives and a few hundred points.
    """
    m = len(reference)
    if directions is None:
        directions = [MINIMIZE] * m
    if len(directions) != m:
        raise ValueError(f"{len(directions)} directions for a {m}-objective reference")
    signs: list[float] = []
    for d in directions:
        if d not in (MINIMIZE, MAXIMIZE):
            raise ValueError(f"direction {d!r}: expected 'minimize' or 'maximize'")
        signs.append(1.0 if d == MINIMIZE else -1.0)
    ref = tuple(s * r for s, r in zip(signs, reference, strict=True))
    inside: list[tuple[float, ...]] = []
    for p in points:
        if len(p) != m:
            raise ValueError(f"point {tuple(p)} has {len(p)} coordinates, reference has {m}")
        q = tuple(s * float(x) for s, x in zip(signs, p, strict=True))
        if any(math.isnan(x) for x in q):
            raise ValueError(f"point {tuple(p)} has a NaN coordinate")
        if all(x < r for x, r in zip(q, ref, strict=True)):
            inside.append(q)
    return _hv(inside, ref)


def _hv(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    if not points:
        return 0.0
    m = len(ref)
    if m == 1:
        return ref[0] - min(p[0] for p in points)
    if m == 2:
        return _hv2(points, ref)
    # Sweep the last coordinate upwards: between two consecutive values, the
    # slab's cross-section is the (m-1)-d hypervolume of the points seen so far.
    ordered = sorted(points, key=lambda p: p[-1])
    sub_ref = ref[:-1]
    volume = 0.0
    active: list[tuple[float, ...]] = []
    for k, p in enumerate(ordered):
        active.append(p[:-1])
        upper = ordered[k + 1][-1] if k + 1 < len(ordered) else ref[-1]
        height = upper - p[-1]
        if height > 0.0:
            if m > 3:  # the 2-d sweep filters dominated points itself
                active = _nondominated(active)
            volume += _hv(active, sub_ref) * height
    return volume


def _hv2(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    ordered = sorted(points)
    area = 0.0
    best_y = ref[1]
    front: list[tuple[float, float]] = []
    for x, y in ordered:
        if y < best_y:
            front.append((x, y))
            best_y = y
    for k, (x, y) in enumerate(front):
        next_x = front[k + 1][0] if k + 1 < len(front) else ref[0]
        area += (next_x - x) * (ref[1] - y)
    return area


def _nondominated(points: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """Drop dominated and duplicate points (keeps the recursion small)."""
    unique = sorted(set(points))
    kept: list[tuple[float, ...]] = []
    for p in unique:
        # In lexicographic order, a dominator of p always comes before p.
        if not any(all(a <= b for a, b in zip(q, p, strict=True)) for q in kept):
            kept.append(p)
    return kept
