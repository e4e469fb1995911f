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

from fleetnas.controller.search import dominates

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


def could_enter_front(optimistic: Sequence[Point], measured: Sequence[Point]) -> list[bool]:
    """For each optimistic candidate point: does no measured point constraint-dominate it?"""
    return [not any(constraint_dominates(m, c) for m in measured) for c in optimistic]
