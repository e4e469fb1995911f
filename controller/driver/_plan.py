"""What a search would do, before it does anything: ``fleetnas search --dry-run``.

:func:`plan_search` reads a :class:`SearchConfig` and the cost DB and
returns a :class:`SearchPlan`: the targets, the budgets, how many latency
measurements the search takes at most, and how long they would take at the
speed the cost DB recorded for each target's devices with the target's
settings (the median ``wall_s`` of the space's arch measurements there, else
of any model measured there). It creates no search, measures nothing and
writes nothing.

The estimate is of device time only: export and accuracy are not counted,
measurements the cost DB already holds cost nothing in the real search, and
hybrid mode measures only candidates that could enter the front, so the
figures are upper bounds. A class's devices measure in parallel (the
scheduler runs one job per physical host at a time), so a target's time is
divided by its devices the DB knows; targets are added up.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._config import SearchConfig, Target
from fleetnas.controller.driver._luts import identity_request, target_devices
from fleetnas.controller.driver._source import latency_source_class
from fleetnas.controller.fleet import Fleet
from fleetnas.controller.lut import settings_mismatches
from fleetnas.controller.spaces import SearchSpace


@dataclass(frozen=True)
class TargetPlan:
    """One target: its devices, measurements at most, and the recorded seconds per one.

    ``seconds_each`` is ``None`` when nothing was recorded with the target's
    settings on its devices; ``recorded`` counts the measurements it is the
    median of, and ``basis`` says which (``"arch"``: the space's archs,
    ``"any"``: any model, e.g. LUT blocks).
    """

    target: Target
    devices: tuple[str, ...]
    measurements: int
    seconds_each: float | None
    recorded: int
    basis: str

    @property
    def estimate_s(self) -> float | None:
        if self.seconds_each is None:
            return None
        return self.measurements * self.seconds_each / max(1, len(self.devices))

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target.key, "describe": self.target.describe(),
                "devices": list(self.devices), "measurements_at_most": self.measurements,
                "seconds_per_measurement": self.seconds_each, "recorded": self.recorded,
                "basis": self.basis, "estimate_s": self.estimate_s}  # fmt: skip


@dataclass(frozen=True)
class SearchPlan:
    """The whole search: mode, budgets, measurements at most, per-target plans."""

    mode: str
    budget: int | None
    max_measurements: int | None
    measurements: int | None
    targets: tuple[TargetPlan, ...]

    @property
    def estimate_s(self) -> float | None:
        """Device seconds at the recorded speeds; ``None`` if any target has none recorded."""
        if self.measurements == 0:
            return 0.0
        parts = [t.estimate_s for t in self.targets]
        if not parts or any(p is None for p in parts):
            return None
        return sum(p for p in parts if p is not None)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "budget": self.budget,
                "max_measurements": self.max_measurements,
                "measurements_at_most": self.measurements, "estimate_s": self.estimate_s,
                "targets": [t.to_dict() for t in self.targets]}  # fmt: skip


def _at_most(config: SearchConfig) -> tuple[int | None, list[int | None]]:
    """Measurements at most, in all and per target (``None``: unbounded)."""
    if not latency_source_class(config.mode).measures:
        return 0, [0 for _ in config.targets]
    caps = [c for c in (config.budget, config.max_measurements) if c is not None]
    per_target = min(caps) if caps else None
    total_caps = [c for c in (None if config.budget is None else config.budget * len(config.targets),
                              config.max_measurements) if c is not None]  # fmt: skip
    return (min(total_caps) if total_caps else None), [per_target for _ in config.targets]


def plan_search(db: CostDB, space: SearchSpace, config: SearchConfig,
                fleet: Fleet | None = None) -> SearchPlan:
    """The plan of ``config`` (see the module docstring); reads the cost DB only."""
    total, per_target = _at_most(config)
    plans = []
    shares = _shares(total, per_target)
    for target, share in zip(config.targets, shares, strict=True):
        devices = tuple(target_devices(db, target, fleet))
        seconds, recorded, basis = _recorded_seconds(db, space, target, devices)
        plans.append(TargetPlan(target, devices, share, seconds, recorded, basis))
    return SearchPlan(config.mode, config.budget, config.max_measurements, total, tuple(plans))


def _shares(total: int | None, per_target: Sequence[int | None]) -> list[int]:
    """Each target's measurements, scaled down so they add up to at most ``total``."""
    if total is None or any(p is None for p in per_target):
        return [0 if p is None else p for p in per_target]
    caps = [p for p in per_target if p is not None]
    if sum(caps) <= total:
        return caps
    return [round(p * total / sum(caps)) for p in caps]


_WALL = """
SELECT m.wall_s AS wall_s, m.settings AS settings, md.space AS space
FROM measurements m JOIN models md ON md.sha256 = m.model_sha256
WHERE m.device IN ({devices}) AND m.wall_s > 0
"""


def _recorded_seconds(db: CostDB, space: SearchSpace, target: Target,
                      devices: Sequence[str]) -> tuple[float | None, int, str]:
    if not devices:
        return None, 0, "none"
    request = identity_request(target)
    rows = db.query(_WALL.format(devices=", ".join("?" for _ in devices)), list(devices))
    arch: list[float] = []
    other: list[float] = []
    for row in rows:
        settings = json.loads(row["settings"]) if isinstance(row["settings"], str) else row["settings"]
        if settings_mismatches(request, settings):
            continue
        (arch if row["space"] == space.network_identity() else other).append(float(row["wall_s"]))
    if arch:
        return statistics.median(arch), len(arch), "arch"
    if other:
        return statistics.median(other), len(other), "any"
    return None, 0, "none"
