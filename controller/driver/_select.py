"""Which predicted candidates are worth a device measurement (hybrid mode).

A candidate is worth measuring when it *could* enter the Pareto front: take
every predicted value at the end of its interval that favours the candidate
(lower latency, higher accuracy; for a constraint, the end that violates it
least) and ask whether some already *measured* trial still
constraint-dominates that optimistic point. If none does, the measurement
could change the front, so it is made. This covers candidates near a
constraint bound too: one predicted just over a latency bound whose interval
reaches under it is optimistically feasible, and is measured if it would be
on the front as a feasible point.

Constraint-domination is Deb's, as in the engine: a feasible point beats an
infeasible one, the lower total violation wins between infeasible ones, and
Pareto dominance decides between equally violating (e.g. feasible) ones. All vectors are in
minimisation form.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fleetnas.controller.search import dominates
from fleetnas.controller.search._pareto import dominance_table

_CHUNK = 256

Point = tuple[Sequence[float], float]
"""A minimisation vector and its total relative constraint violation (0: feasible)."""


def constraint_dominates(a: Point, b: Point) -> bool:
    """Whether ``a`` constraint-dominates ``b`` (see the module docstring)."""
    (va, viol_a), (vb, viol_b) = a, b
    if viol_a <= 0.0 and viol_b > 0.0:
        return True
    if viol_a > 0.0 or viol_b > 0.0:
        if viol_a > 0.0 and viol_b <= 0.0:
            return False
        if viol_a != viol_b:
            return viol_a < viol_b
    return dominates(va, vb)


def dominated_counts(optimistic: Sequence[Point], measured: Sequence[Point]) -> np.ndarray:
    """For each optimistic point, how many measured points constraint-dominate it.

    Vectorised (numpy, in chunks of the measured points): exactly
    :func:`constraint_dominates` for every pair, at the cost of a few array
    operations per step whatever the number of trials.
    """
    if not optimistic:
        return np.zeros(0, dtype=np.int64)
    c = np.asarray([v for v, _ in optimistic], dtype=np.float64)
    cv = np.asarray([viol for _, viol in optimistic], dtype=np.float64)
    counts = np.zeros(len(c), dtype=np.int64)
    if not measured:
        return counts
    m_all = np.asarray([v for v, _ in measured], dtype=np.float64).reshape(len(measured), -1)
    mv_all = np.asarray([viol for _, viol in measured], dtype=np.float64)
    c_feasible = cv <= 0.0
    for start in range(0, len(m_all), _CHUNK):
        m, mv = m_all[start:start + _CHUNK], mv_all[start:start + _CHUNK]
        m_feasible = mv <= 0.0
        # rows: measured points; columns: candidates
        pareto = dominance_table(m, c)
        both_feasible = m_feasible[:, None] & c_feasible[None, :]
        by_feasibility = m_feasible[:, None] & ~c_feasible[None, :]
        infeasible_pair = ~m_feasible[:, None] & ~c_feasible[None, :]
        same_violation = mv[:, None] == cv[None, :]
        dominates_ = (by_feasibility
                      | (both_feasible & pareto)
                      | (infeasible_pair & ~same_violation & (mv[:, None] < cv[None, :]))
                      | (infeasible_pair & same_violation & pareto))
        counts += dominates_.sum(axis=0)
    return counts


def could_enter_front(optimistic: Sequence[Point], measured: Sequence[Point]) -> list[bool]:
    """For each optimistic candidate point: does no measured point constraint-dominate it?"""
    return [bool(n == 0) for n in dominated_counts(optimistic, measured)]
