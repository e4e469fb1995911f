"""A space's latency distribution on one device, to choose constraints from data.

Two sources, one result (:class:`SpaceStats`):

* **LUT** (:func:`lut_stats`): ``n`` archs sampled from the space (a fixed
  stream: the same seed gives the same archs) and predicted by the device's
  LUT (calibrated when the LUT is). Cheap: thousands of archs per second.
* **measured** (:func:`measured_stats`): the archs of the space measured on
  the device(s) in the cost DB, one latency per arch (the median of its
  measurements), all with one settings hash (the one that has the most archs,
  unless the caller picks settings): mixing thread counts would mix two
  distributions.

Params and FLOPs come from the space itself (exact counts, no device). The
percentiles are linear interpolations between order statistics (numpy's
default), so ``percentile(q)`` of the same values is always the same number.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut._errors import LutError
from fleetnas.controller.lut._predictor import LatencyPredictor
from fleetnas.controller.lut._settings import settings_mismatches
from fleetnas.controller.spaces import Arch, SearchSpace

#: the percentiles a summary lists
PERCENTILES = (5, 10, 25, 50, 75, 90, 95)
#: archs sampled for a LUT-predicted distribution unless told otherwise
DEFAULT_STATS_N = 1000
#: percentile -> what a latency bound there means (the suggestions printed)
SUGGESTED_BOUNDS = (
    (10, "very tight: 1 arch in 10 fits"),
    (25, "a tight budget"),
    (50, "half the space fits"),
    (75, "a loose budget"),
)
SOURCES = ("lut", "measured")


class NoLatencyData(LutError):
    """Neither a LUT nor measured archs give this space's latency on the device."""


@dataclass(frozen=True)
class Distribution:
    """Sorted values of one quantity over the archs; at least one value."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        if not values:
            raise ValueError("a distribution needs at least one value")
        return cls(tuple(sorted(float(v) for v in values)))

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100), linearly interpolated."""
        if not 0 <= q <= 100:
            raise ValueError(f"percentile {q!r}: expected 0..100")
        return float(np.percentile(np.asarray(self.values), q))

    def percentiles(self) -> dict[int, float]:
        return {q: self.percentile(q) for q in PERCENTILES}

    def histogram(self, bins: int = 10) -> list[tuple[float, float, int]]:
        """``(low, high, count)`` of ``bins`` equal-width bins between min and max."""
        counts, edges = np.histogram(np.asarray(self.values), bins=bins)
        return [(float(edges[i]), float(edges[i + 1]), int(c)) for i, c in enumerate(counts)]

    def to_dict(self) -> dict[str, Any]:
        return {"min": self.values[0], "max": self.values[-1],
                "mean": float(np.mean(self.values)),
                "percentiles": {f"p{q}": v for q, v in self.percentiles().items()}}  # fmt: skip


@dataclass(frozen=True)
class SpaceStats:
    """Latency (ms), params and FLOPs of ``n`` archs of ``space`` on ``device``.

    ``source`` is ``"lut"`` or ``"measured"``; ``origin`` names the LUT or the
    settings hash of the measurements.
    """

    space: str
    device: str
    source: str
    origin: str
    n: int
    latency_ms: Distribution
    params: Distribution
    flops: Distribution

    def describe(self) -> str:
        """E.g. ``LUT, 1000 sampled archs`` or ``measured, 37 archs``."""
        if self.source == "lut":
            return f"LUT, {self.n} sampled archs"
        return f"measured, {self.n} archs"

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space, "device": self.device, "source": self.source,
            "origin": self.origin, "n": self.n, "latency_ms": self.latency_ms.to_dict(),
            "params": self.params.to_dict(), "flops": self.flops.to_dict(),
            "suggested_bounds": [
                {"percentile": q, "latency_ms": self.latency_ms.percentile(q), "meaning": text}
                for q, text in SUGGESTED_BOUNDS
            ],
        }  # fmt: skip


def _stats(space: SearchSpace, device: str, source: str, origin: str,
           archs: Sequence[Arch], latencies: Sequence[float]) -> SpaceStats:
    return SpaceStats(
        space=space.identity(), device=device, source=source, origin=origin, n=len(archs),
        latency_ms=Distribution.of(latencies),
        params=Distribution.of([space.count_params(a) for a in archs]),
        flops=Distribution.of([space.count_flops(a) for a in archs]),
    )  # fmt: skip


def lut_stats(space: SearchSpace, predictor: LatencyPredictor, *, n: int = DEFAULT_STATS_N,
              seed: int = 0) -> SpaceStats:
    """``n`` archs sampled (with repeats, as a search samples) and predicted by ``predictor``.

    Raises MissingBlock when the LUT lacks a block of a sampled arch.
    """
    if n < 1:
        raise ValueError(f"n={n!r}: expected at least 1 arch")
    rng = random.Random(f"fleetnas.lut.stats/{seed}")
    archs = [space.sample(rng) for _ in range(n)]
    origin = "LUT" if predictor.lut is None else f"LUT settings {predictor.lut.settings_hash}"
    return _stats(space, predictor.device, "lut", origin, archs,
                  [predictor.predict(a) for a in archs])


def measured_stats(db: CostDB, space: SearchSpace, devices: Sequence[str], *,
                   request: agent_pb2.BenchmarkSettings | None = None,
                   n: int | None = None) -> SpaceStats:
    """The archs of ``space`` measured on ``devices`` (newest ``n`` if given).

    ``request`` keeps only measurements whose settings match every field it
    sets (see :func:`settings_mismatches`). Raises :class:`NoLatencyData`
    when there are none.
    """
    label = ", ".join(devices)
    by_settings = _measured_archs(db, space, devices, request)
    if not by_settings:
        raise NoLatencyData(
            f"no LUT and no measured archs of {space.identity()} on {label}: build a LUT "
            f"with `fleetnas lut build --space {space.name} --device {devices[0] if devices else 'NAME'}`"
            " (or run a --mode measured search first)"
        )
    settings_hash, per_arch = max(by_settings.items(), key=lambda kv: (len(kv[1]), kv[0]))
    encodings = sorted(per_arch, key=lambda e: per_arch[e][0], reverse=True)[:n]
    archs = [space.decode(e) for e in encodings]
    latencies = [float(np.median(per_arch[e][1])) for e in encodings]
    return _stats(space, label, "measured", f"settings {settings_hash}", archs, latencies)


_MEASURED_ARCHS = """
SELECT md.arch AS arch, m.settings_hash AS settings_hash, m.settings AS settings,
       m.latency_ms AS latency_ms, m.started_at AS started_at
FROM measurements m JOIN models md ON md.sha256 = m.model_sha256
WHERE md.space = ? AND md.arch IS NOT NULL AND m.device IN ({devices})
"""


def _measured_archs(
    db: CostDB, space: SearchSpace, devices: Sequence[str],
    request: agent_pb2.BenchmarkSettings | None,
) -> dict[str, dict[str, tuple[float, list[float]]]]:
    """settings hash -> arch encoding -> (newest start time, latencies); decodable archs only."""
    if not devices:
        return {}
    sql = _MEASURED_ARCHS.format(devices=", ".join("?" for _ in devices))
    found: dict[str, dict[str, tuple[float, list[float]]]] = defaultdict(dict)
    matching: dict[str, bool] = {}
    for row in db.query(sql, [space.network_identity(), *devices]):
        settings_hash = row["settings_hash"]
        if request is not None and settings_hash not in matching:
            matching[settings_hash] = not settings_mismatches(request, _settings(row["settings"]))
        if (request is not None and not matching[settings_hash]) or not _decodes(space, row["arch"]):
            continue
        if not math.isfinite(row["latency_ms"]) or row["latency_ms"] <= 0:
            continue
        newest, values = found[settings_hash].get(row["arch"], (0.0, []))
        values.append(row["latency_ms"])
        found[settings_hash][row["arch"]] = (max(newest, row["started_at"]), values)
    return dict(found)


def _settings(value: Any) -> Mapping[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def _decodes(space: SearchSpace, encoding: str) -> bool:
    try:
        space.decode(encoding)
    except ValueError:
        return False
    return True


def device_predictor(db: CostDB, space: SearchSpace, devices: Sequence[str], *,
                     settings_hash: str | None = None) -> LatencyPredictor | None:
    """The newest complete fp32 LUT of ``space`` on one of ``devices`` (in order), or ``None``.

    ``settings_hash`` picks among LUTs measured with different settings.
    """
    from fleetnas.controller.lut._errors import LutNotFound
    from fleetnas.controller.lut._store import DEFAULT_LUT_PRECISION, LutStore

    store = LutStore(db)
    for device in devices:
        for info in store.find(space_name=space.name, device=device, settings_hash=settings_hash,
                               precision=DEFAULT_LUT_PRECISION):
            if info.status != "complete" or info.space_version != space.version:
                continue
            try:
                return LatencyPredictor.from_db(db, space, device, info.settings_hash)
            except LutNotFound:
                continue
    return None
