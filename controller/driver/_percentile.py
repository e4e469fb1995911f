"""Percentile bounds: ``latency[pi4] <= p40`` resolved to milliseconds when a search starts.

A constraint whose bound is ``pQ`` (``0 <= Q <= 100``) on ``latency[T]``
means "the Q-th percentile of the space's latency on target ``T``". It is
resolved once, before the search is created, from the same statistics as
``fleetnas space stats``: the LUT that serves the target (archs sampled and
predicted), else the archs of the space measured on the target's devices
with the target's settings. The search stores the resolved text
(``latency[pi4] <= 3.21 ms``), so a resume uses the same number however the
LUT or the cost DB changed since. No LUT and no measurements is an error
naming ``fleetnas lut build``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._config import Target
from fleetnas.controller.driver._errors import SearchConfigError
from fleetnas.controller.driver._luts import find_lut_predictor, identity_request, target_devices
from fleetnas.controller.fleet import Fleet
from fleetnas.controller.lut import (
    DEFAULT_STATS_N,
    NoLatencyData,
    SpaceStats,
    lut_stats,
    measured_stats,
)
from fleetnas.controller.search import split_name
from fleetnas.controller.spaces import SearchSpace

_PERCENTILE = re.compile(
    r"^\s*(?P<name>[^<>=≤≥\s]+)\s*(?P<op><=|>=|≤|≥)\s*[pP](?P<q>\d+(?:\.\d+)?)\s*$"
)


def is_percentile_bound(text: str) -> bool:
    """Whether ``text`` is ``NAME <= pQ`` / ``NAME >= pQ``."""
    return _PERCENTILE.match(text) is not None


@dataclass(frozen=True)
class ResolvedBound:
    """One percentile constraint: as written, its value (ms) and where that came from."""

    text: str
    name: str
    op: str
    q: float
    value_ms: float
    stats: SpaceStats

    @property
    def resolved(self) -> str:
        """The constraint the search stores, e.g. ``latency[pi4] <= 3.2101 ms``."""
        return f"{self.name} {self.op} {self.value_ms:.6g} ms"

    def describe(self) -> str:
        """E.g. ``p40 of latency[pi4] = 3.210 ms (LUT, 1000 sampled archs)``."""
        return f"p{self.q:g} of {self.name} = {self.value_ms:.3f} ms ({self.stats.describe()})"


def resolve_percentiles(
    db: CostDB,
    space: SearchSpace,
    constraints: Sequence[str],
    targets: Sequence[Target],
    *,
    fleet: Fleet | None = None,
    n: int = DEFAULT_STATS_N,
) -> tuple[list[str], list[ResolvedBound]]:
    """The constraints with every percentile bound resolved, and what each one resolved to.

    Other constraints pass through unchanged. Raises SearchConfigError for a
    percentile on anything but ``latency[TARGET]``, a Q outside 0..100, or a
    target with neither a LUT nor measurements (naming ``fleetnas lut build``).
    """
    texts: list[str] = []
    resolved: list[ResolvedBound] = []
    by_key = {t.key: t for t in targets}
    for text in constraints:
        match = _PERCENTILE.match(text)
        if match is None:
            texts.append(text)
            continue
        name, q = match.group("name"), float(match.group("q"))
        op = {"≤": "<=", "≥": ">="}.get(match.group("op"), match.group("op"))
        target = _target_of(text, name, q, by_key)
        stats = _target_stats(db, space, target, fleet, n)
        bound = ResolvedBound(text=text, name=name, op=op, q=q,
                              value_ms=stats.latency_ms.percentile(q), stats=stats)
        resolved.append(bound)
        texts.append(bound.resolved)
    return texts, resolved


def _target_of(text: str, name: str, q: float, by_key: dict[str, Target]) -> Target:
    try:
        base, qualifier = split_name(name)
    except ValueError as exc:
        raise SearchConfigError(f"constraint {text!r}: {exc}") from exc
    if base != "latency" or qualifier is None:
        raise SearchConfigError(
            f"constraint {text!r}: a percentile bound applies to latency[TARGET] only; "
            "give other values a number, e.g. 'params <= 5 M'"
        )
    if not 0 <= q <= 100:
        raise SearchConfigError(f"constraint {text!r}: percentile p{q:g} is not within p0..p100")
    if qualifier not in by_key:
        raise SearchConfigError(
            f"constraint {text!r}: no target {qualifier!r} (targets: "
            f"{', '.join(by_key) or 'none'}); add --device or --class"
        )
    return by_key[qualifier]


def _target_stats(db: CostDB, space: SearchSpace, target: Target, fleet: Fleet | None,
                  n: int) -> SpaceStats:
    devices = target_devices(db, target, fleet)
    predictor = find_lut_predictor(db, space, target, devices)
    if predictor is not None:
        return lut_stats(space, predictor, n=n)
    try:
        return measured_stats(db, space, devices, request=identity_request(target), n=n)
    except NoLatencyData as exc:
        device = devices[0] if devices else target.name
        where = "--local" if device == "local" else f"--device {device}"
        raise SearchConfigError(
            f"latency[{target.key}] <= pQ needs the latency distribution of {space.identity()} "
            f"on {target.name}: no LUT and no measured archs with the target's settings; build "
            f"a LUT with `fleetnas lut build --space {space.name} {where}` (then check it "
            f"with `fleetnas space stats --space {space.name} --device {device}`), "
            "or give the bound in ms"
        ) from exc
