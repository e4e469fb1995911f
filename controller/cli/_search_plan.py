"""Before a new search starts: percentile bounds resolved, and ``--dry-run``'s plan.

``latency[pi4] <= p40`` becomes milliseconds here (the driver's
:func:`~fleetnas.controller.driver.resolve_percentiles`), printed with where
the number came from, before the config is built and stored. ``--dry-run``
prints :func:`~fleetnas.controller.driver.plan_search`'s plan and exits:
no search is created, nothing is measured, and a cost database that does
not exist yet is not created (an empty in-memory one stands in).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from fleetnas.controller.cli._options import format_duration
from fleetnas.controller.cli._results import search_errors
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (
    SearchConfig,
    SearchPlan,
    Target,
    is_percentile_bound,
    plan_search,
    resolve_percentiles,
)
from fleetnas.controller.fleet import Fleet, fleet_path, load_fleet
from fleetnas.controller.spaces import SearchSpace


def _open(db_path: Path) -> CostDB:
    """The cost DB, or an empty in-memory one when there is no file (nothing is created)."""
    return CostDB(db_path) if db_path.is_file() else CostDB(memory=True)


def _fleet(fleet_file: Path | None, local: bool) -> Fleet | None:
    """The fleet file's devices (for a class's members), None with ``--local``."""
    return None if local else load_fleet(fleet_path(fleet_file), missing_ok=True)


def resolve_constraints(console: Console, db_path: Path, space: SearchSpace,
                        constraints: Sequence[str], targets: Sequence[Target], *,
                        fleet_file: Path | None = None, local: bool = False) -> tuple[str, ...]:
    """The constraints with percentile bounds in ms; prints what each one resolved to."""
    if not any(is_percentile_bound(c) for c in constraints):
        return tuple(constraints)
    with search_errors(), _open(db_path) as db:
        texts, resolved = resolve_percentiles(db, space, constraints, targets,
                                              fleet=_fleet(fleet_file, local))
    for bound in resolved:
        console.print(escape(f"{bound.describe()}: searching with {bound.resolved!r}"),
                      highlight=False)
    return tuple(texts)


def _duration(seconds: float) -> str:
    return f"{seconds:.2f}s" if seconds < 1 else format_duration(seconds)


def _measurements_text(plan: SearchPlan) -> str:
    if plan.measurements is None:
        return "unbounded"
    hybrid = " (hybrid measures only what could enter the front)" if plan.mode == "hybrid" else ""
    return f"at most {plan.measurements}{hybrid}"


def print_plan(console: Console, db_path: Path, space: SearchSpace, config: SearchConfig,
               timeout_s: float | None, *, fleet_file: Path | None = None) -> SearchPlan:
    """Print what the search would do and how long its measurements would take; return it."""
    with search_errors(), _open(db_path) as db:
        plan = plan_search(db, space, config, _fleet(fleet_file, config.local))
    lines = [
        f"dry run: a {config.mode} search of {space.identity()} (nothing is measured or stored)",
        "budget: " + (f"{config.budget} candidates" if config.budget else "no candidate budget")
        + (f", {config.max_measurements} measurements" if config.max_measurements else "")
        + (f", timeout {format_duration(timeout_s)}" if timeout_s else ""),
        f"constraints: {', '.join(config.constraints) or 'none'}",
        f"latency measurements: {_measurements_text(plan)}",
    ]
    for target in plan.targets:
        devices = ", ".join(target.devices) or "no device in the fleet file or the cost DB"
        if target.seconds_each is None:
            speed = "no measurement recorded with these settings"
        else:
            what = "archs of this space" if target.basis == "arch" else "any model"
            speed = (f"{target.seconds_each:.2f} s per measurement (median of {target.recorded} "
                     f"recorded, {what})")
        estimate = "" if target.estimate_s is None else f" -> {_duration(target.estimate_s)}"
        lines.append(f"  {target.target.describe()} on {devices}: {target.measurements} at "
                     f"most; {speed}{estimate}")
    estimate = plan.estimate_s
    lines.append("estimated device time: " + (
        "unknown (a target has no recorded measurement)" if estimate is None
        else f"{_duration(estimate)} at most (export and accuracy not counted)"))
    for line in lines:
        console.print(escape(line), highlight=False)
    return plan


def dry_run_option(func: click.decorators.FC) -> click.decorators.FC:
    """``--dry-run``."""
    return click.option(
        "--dry-run", is_flag=True,
        help="Print the targets, budgets, measurements at most and their estimated device "
        "time at the speeds recorded in the cost DB, then exit (no search is created).",
    )(func)  # fmt: skip
