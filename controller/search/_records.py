"""The engine's records: a proposed :class:`Candidate`, its :class:`Evaluation`, the :class:`Trial` of both.

All three are frozen; the engine replaces a trial's record when it is told,
failed or revised, so a record a caller holds never changes under it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Candidate:
    """An arch the engine asks the driver to evaluate.

    ``id`` is unique within a search and increases in ask order; ``encoding``
    is the space's stable string of ``arch``; ``generation`` is the strategy's
    generation counter (0 for the initial random ones); ``parents`` are the
    ids of the candidates it was bred from (empty for random samples).
    ``duplicate_of`` is set only when the engine could not find an unseen arch
    and proposed an already proposed one again (see ``SearchEngine.ask``).
    """

    id: int
    arch: Any
    encoding: str
    generation: int
    parents: tuple[int, ...] = ()
    duplicate_of: int | None = None


@dataclass(frozen=True)
class Evaluation:
    """What the driver told about a candidate, and what the engine derived from it.

    ``values`` holds every told value by name (objectives, constraint inputs
    and any extra ones); ``violations`` each constraint's violation amount by
    its text (0 when satisfied); ``total_violation`` the sum of relative
    violations (Deb's overall violation); ``feasible`` whether it is 0.
    ``metadata`` is free-form JSON-safe data, e.g. ``{"source": "measured"}``.
    ``unknown`` names the values the evaluator could not know, each with the
    reason (``{"accuracy": "naswot sees the fp32 network only"}``); such a
    name is not in ``values``, and an unknown objective ranks as its worst
    possible value (see ``SearchEngine.tell``).
    """

    values: Mapping[str, float]
    violations: Mapping[str, float] = field(default_factory=dict)
    total_violation: float = 0.0
    metadata: Mapping[str, Any] = field(default_factory=dict)
    unknown: Mapping[str, str] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.total_violation <= 0.0

    def __post_init__(self) -> None:
        for name, value in self.values.items():
            if not math.isfinite(value):
                raise ValueError(f"value {name!r} = {value}: values must be finite numbers")
        both = sorted(set(self.values) & set(self.unknown))
        if both:
            raise ValueError(f"values {both} are told and unknown at once")


class TrialState(str, enum.Enum):
    """Where a candidate is: asked and waiting, told (complete), or failed."""

    PENDING = "pending"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class Trial:
    """A candidate with its state; ``evaluation`` is set when complete, ``failure`` when failed."""

    candidate: Candidate
    state: TrialState = TrialState.PENDING
    evaluation: Evaluation | None = None
    failure: str | None = None

    @property
    def id(self) -> int:
        return self.candidate.id

    @property
    def values(self) -> Mapping[str, float]:
        """The told values; empty unless complete."""
        return self.evaluation.values if self.evaluation is not None else {}
