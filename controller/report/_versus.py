"""Measured vs predicted latency: a search's predictions against measurements of the same nets.

A latency a search predicted (``lut`` or ``surrogate``, in its stored rows)
is paired with a measurement **of the same candidate** on the target it
predicts: the same model (the candidate's exported model, else any model
the cost DB records with the candidate's space and arch string), on the
target's device or any device of its class the cost DB knows, with settings
that match every setting the target's request sets (run limits aside,
:func:`fleetnas.controller.lut.settings_mismatches`). When there are
several, the newest is used. Such measurements come from other work (before or after): a
measured or hybrid search over the same candidates, ``fleetnas measure`` of
an export.

A hybrid search replaces the prediction of each candidate it measures by
the measurement, and does not store the prediction: its own measured
candidates cannot be compared here (only the ones it left predicted).

The headline is the share of pairs within ±10 % (``|predicted / measured -
1| <= 0.10``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB, Measurement
from fleetnas.controller.driver import SearchConfig, target_devices
from fleetnas.controller.lut import settings_mismatches
from fleetnas.controller.report._rows import ResultRow
from fleetnas.controller.search import split_name

PREDICTED = ("lut", "surrogate")
WITHIN = 0.10


@dataclass(frozen=True)
class Pair:
    """One predicted latency and the measurement of the same candidate on its target."""

    candidate_id: int
    name: str
    predicted_ms: float
    predictor: str
    measured_ms: float
    measurement_uid: str
    device: str

    @property
    def error(self) -> float:
        """``predicted / measured - 1``."""
        return self.predicted_ms / self.measured_ms - 1.0


@dataclass(frozen=True)
class Versus:
    """Every pair found, and how many predicted latencies had no measurement to compare with."""

    pairs: tuple[Pair, ...]
    predicted: int

    @property
    def unmatched(self) -> int:
        return self.predicted - len(self.pairs)

    def within(self, share: float = WITHIN, name: str | None = None) -> float | None:
        """The share of pairs (of ``name`` only, if given) within ±``share``; None without pairs."""
        pairs = [p for p in self.pairs if name is None or p.name == name]
        if not pairs:
            return None
        return sum(1 for p in pairs if abs(p.error) <= share + 1e-12) / len(pairs)


def _latency_target(name: str) -> str | None:
    base, qualifier = split_name(name)
    return qualifier if base == "latency" else None


class _Models:
    """The models the cost DB records for a space's arch strings (cached per arch)."""

    def __init__(self, db: CostDB, space_identity: str) -> None:
        self._db = db
        self._space = space_identity
        self._cache: dict[str, list[str]] = {}

    def of(self, row: ResultRow) -> list[str]:
        if row.encoding not in self._cache:
            found = [r["sha256"] for r in self._db.query(
                "SELECT sha256 FROM models WHERE space = ? AND arch = ? ORDER BY created_at",
                (self._space, row.encoding))]
            self._cache[row.encoding] = found
        known = [row.model_sha256] if row.model_sha256 else []
        return list(dict.fromkeys(known + self._cache[row.encoding]))


def _newest_match(db: CostDB, models: Sequence[str], devices: Sequence[str],
                  matches: Callable[[Measurement], bool]) -> Measurement | None:
    best: Measurement | None = None
    for sha in models:
        for device in devices:
            for m in db.measurements(device=device, model_sha256=sha):
                if matches(m) and (best is None or m.started_at > best.started_at):
                    best = m
    return best


def compare_predictions(
    db: CostDB,
    config: SearchConfig,
    space_identity: str,
    rows: Sequence[ResultRow],
    *,
    on_row: Callable[[int, int], None] | None = None,
) -> Versus:
    """Pair every predicted latency of ``rows`` with a measurement (module docstring).

    ``on_row(done, total)`` is called after each row (progress).
    """
    models = _Models(db, space_identity)
    devices: dict[str, list[str]] = {}
    requests: dict[str, agent_pb2.BenchmarkSettings] = {}
    pairs: list[Pair] = []
    predicted = 0
    for done, row in enumerate(rows, start=1):
        for name, origin in sorted(row.sources.items()):
            key = _latency_target(name)
            if origin not in PREDICTED or key is None or name not in row.values:
                continue
            predicted += 1
            try:
                target = config.target(key)
            except KeyError:
                continue
            if key not in devices:
                devices[key] = target_devices(db, target)
                requests[key] = target.request()
            request = requests[key]

            def matches(m: Measurement, request: agent_pb2.BenchmarkSettings = request) -> bool:
                return not settings_mismatches(request, m.settings)

            found = _newest_match(db, models.of(row), devices[key], matches)
            if found is not None:
                pairs.append(Pair(row.candidate_id, name, float(row.values[name]), origin,
                                  found.latency_ms, found.uid, found.device))
        if on_row is not None:
            on_row(done, len(rows))
    return Versus(tuple(pairs), predicted)


def by_name(versus: Versus) -> Mapping[str, list[Pair]]:
    """The pairs grouped by latency name, in name order."""
    out: dict[str, list[Pair]] = {}
    for p in sorted(versus.pairs, key=lambda p: (p.name, p.candidate_id)):
        out.setdefault(p.name, []).append(p)
    return out
