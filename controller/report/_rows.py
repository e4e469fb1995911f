"""Rows of a search's results: the Pareto front (ranked) and every trial, as plain records.

Built from a :class:`~fleetnas.controller.search.SearchEngine` (live, or
rebuilt from a stored snapshot), so the table, the files and the plot all
show exactly what the engine considers the front. A row's ``rank`` is its
1-based position in ``engine.pareto_front()`` (best first by the first
objective); ``fleetnas export ID --rank K`` picks the same row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetnas.controller.search import Objective, SearchEngine, Trial, pareto_indices, split_name
from fleetnas.controller.spaces import split_precision_genes


@dataclass(frozen=True)
class ResultRow:
    """One complete trial: its values, where they came from, whether it is on the front.

    ``rank`` is set for front members (1 = best by the first objective).
    ``source`` says whether its latencies are ``measured``, ``predicted`` or
    ``mixed``; ``sources`` gives each value's origin. ``unknown`` names the
    values the search could not know (absent from ``values``), with the
    reason: shown as :data:`UNKNOWN_TEXT` in tables, ``null`` in JSON, empty
    in CSV.
    """

    candidate_id: int
    encoding: str
    values: Mapping[str, float]
    feasible: bool
    violation: float
    source: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    model_sha256: str | None = None
    measurements: Mapping[str, str] = field(default_factory=dict)
    rank: int | None = None
    generation: int = 0
    unknown: Mapping[str, str] = field(default_factory=dict)

    @property
    def on_front(self) -> bool:
        return self.rank is not None

    @property
    def precisions(self) -> dict[str, str]:
        """Target key -> precision of a candidate with precision genes (``{}`` without)."""
        return split_precision_genes(self.encoding)[1]

    def to_dict(self, names: list[str], labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """JSON-ready: identity, each named value (keyed by its label in ``labels``,
        e.g. ``"naswot score"``, else by its name), provenance; ``precision`` (target key ->
        precision) for a candidate with precision genes."""
        labels = labels or {}
        genes = self.precisions
        return {
            "rank": self.rank,
            "candidate_id": self.candidate_id,
            "arch": self.encoding,
            **{labels.get(name, name): self.values.get(name) for name in names},
            "feasible": self.feasible,
            "violation": self.violation,
            "source": self.source,
            "sources": dict(self.sources),
            "model_sha256": self.model_sha256,
            "measurements": dict(self.measurements),
            "generation": self.generation,
            **({"precision": genes} if genes else {}),
        }


def precision_text(row: ResultRow) -> str:
    """``pi4=int8 x86=fp32``, or ``""`` for a candidate without precision genes."""
    return " ".join(f"{k}={v}" for k, v in row.precisions.items())


def _row(trial: Trial, rank: int | None) -> ResultRow:
    assert trial.evaluation is not None
    e = trial.evaluation
    meta = e.metadata
    return ResultRow(
        candidate_id=trial.id, encoding=trial.candidate.encoding, values=dict(e.values),
        feasible=e.feasible, violation=e.total_violation, source=meta.get("source"),
        sources=dict(meta.get("sources", {})), model_sha256=meta.get("model_sha256"),
        measurements=dict(meta.get("measurements", {})), rank=rank,
        generation=trial.candidate.generation, unknown=dict(e.unknown),
    )  # fmt: skip


def front_rows(engine: SearchEngine) -> list[ResultRow]:
    """The Pareto front, ranked 1.. in the engine's order."""
    return [_row(t, rank) for rank, t in enumerate(engine.pareto_front(), start=1)]


def all_rows(engine: SearchEngine) -> list[ResultRow]:
    """Every complete trial in candidate order, front members with their rank."""
    ranks = {t.id: rank for rank, t in enumerate(engine.pareto_front(), start=1)}
    trials = sorted(engine.complete(), key=lambda t: t.id)
    return [_row(t, ranks.get(t.id)) for t in trials]


def plane_front(rows: Sequence[ResultRow], x_obj: Objective, y_obj: Objective) -> list[ResultRow]:
    """The feasible rows no other feasible row beats on ``x_obj`` and ``y_obj`` alone (the
    front of one device's plane, e.g. accuracy × latency[pi4]), in ``x_obj`` order."""
    feasible = [r for r in rows if r.feasible and x_obj.name in r.values and y_obj.name in r.values]
    points = [(x_obj.sign * r.values[x_obj.name], y_obj.sign * r.values[y_obj.name])
              for r in feasible]
    front = [feasible[i] for i in pareto_indices(points)]
    return sorted(front, key=lambda r: (x_obj.sign * r.values[x_obj.name], r.candidate_id))


def value_names(engine: SearchEngine) -> list[str]:
    """Objective names, then any constraint input that is not an objective."""
    names = [o.name for o in engine.objectives]
    return names + [c.name for c in engine.constraints if c.name not in names]


#: per-target values a search adds to its objectives (``accuracy[pi4]``: deployed accuracy)
PER_TARGET_VALUES = ("accuracy", "accuracy_drop")
#: values a search adds without a target: a precision-blind estimator's fp32 score of a
#: member whose accuracy is unknown (``fleetnas.controller.driver.FP32_SCORE``)
EXTRA_VALUES = ("accuracy_fp32",)
#: a table's cell for a value the search could not know
UNKNOWN_TEXT = "unknown"


def per_target_names(engine: SearchEngine) -> list[str]:
    """The ``accuracy[KEY]`` / ``accuracy_drop[KEY]`` values complete trials carry beyond the
    objectives (a trained search with precision genes scores each target's deployed model),
    in the order the first trial holding them gives, then ``accuracy_fp32`` when a trial
    has it (:data:`EXTRA_VALUES`); ``[]`` without."""
    used = set(value_names(engine))
    out: dict[str, None] = {}
    for trial in sorted(engine.complete(), key=lambda t: t.id):
        assert trial.evaluation is not None
        for name in trial.evaluation.values:
            try:
                base, key = split_name(name)
            except ValueError:
                continue
            if key is not None and base in PER_TARGET_VALUES and name not in used:
                out.setdefault(name)
    extras = [n for n in EXTRA_VALUES if n not in used and n not in out
              and any(n in t.values for t in engine.complete())]
    return list(out) + extras


def value_labels(engine: SearchEngine) -> dict[str, str]:
    """What people read for each labelled objective (``{"accuracy": "naswot score"}``):
    headings of tables, plots, CSV columns and JSON keys."""
    return {o.name: o.display_name for o in engine.objectives if o.label}


def unit_of(name: str) -> str:
    """The display unit of a value: ``ms`` for latency, ``MiB`` for memory, ``mJ`` for
    energy, else ``""``."""
    base, _ = split_name(name)
    if base.startswith("latency"):
        return "ms"
    if base == "energy":
        return "mJ"
    if "memory" in base:
        return "MiB"
    return ""


def format_value(name: str, value: float | None) -> str:
    """Human-readable value: latencies and memory with units, counts with K/M/G."""
    if value is None:
        return "-"
    base, _ = split_name(name)
    if base.startswith("latency"):
        return f"{value:.4g} ms"
    if base == "energy":
        return f"{value:.4g} mJ"
    if "memory" in base:
        return f"{value / 2**20:.1f} MiB"
    if base in ("params", "flops", "macs"):
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{suffix}"
        return f"{value:.0f}"
    return f"{value:.4g}"


def objective_label(objective: Objective) -> str:
    arrow = "↑" if objective.direction == "maximize" else "↓"
    return f"{objective.display_name} {arrow}"
