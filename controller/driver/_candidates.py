"""The driver's record of each candidate, from ask to the commit that stores it.

The engine owns a candidate's lineage, state and told values. What the
driver adds lives in one :class:`CandidateState` per candidate, kept by a
:class:`CandidateBook`: the values it has computed while the candidate is
still pending (params, FLOPs, callables, the accuracy estimate), when it was
asked and told, and whether its stored row is out of date. The book turns a
candidate into the :class:`~._store.CandidateRecord` the store writes, and is
rebuilt from those records on resume.

Trial metadata (what the engine stores with told values) has one canonical
form, :func:`trial_metadata`, so that a trial rebuilt from its stored row is
exactly the trial that was told.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fleetnas.controller.driver._store import CandidateRecord
from fleetnas.controller.search import Candidate, Trial

MEASURED = "measured"


@dataclass
class CandidateState:
    """One candidate as the driver knows it.

    ``values`` and ``sources`` hold what was computed before the candidate
    was told (each value's origin: ``analytic``, ``callable``,
    ``estimator``, ``measured``...); ``prepared`` says they are complete, so a
    resumed search does not compute them again. ``asked_at`` and ``told_at``
    are unix times.
    """

    candidate: Candidate
    asked_at: float
    values: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    prepared: bool = False
    told_at: float | None = None

    @property
    def id(self) -> int:
        return self.candidate.id


def latency_source(sources: Mapping[str, str], latency_names: Sequence[str]) -> str | None:
    """``measured``, ``predicted`` or ``mixed``: where a trial's latencies came from."""
    kinds = {sources.get(name) == MEASURED for name in latency_names}
    if not kinds:
        return None
    if kinds == {True}:
        return MEASURED
    return "predicted" if kinds == {False} else "mixed"


def trial_metadata(
    sources: Mapping[str, str],
    latency_names: Sequence[str],
    *,
    measurements: Mapping[str, str] | None = None,
    model_sha256: str | None = None,
    measure_failed: str | None = None,
) -> dict[str, Any]:
    """The metadata told with a trial: every value's source, the latencies' summary,
    the measurement uid of each measured latency, the model (once exported) and
    why a predicted trial could not be measured (if it could not)."""
    metadata: dict[str, Any] = {
        "sources": dict(sources),
        "source": latency_source(sources, latency_names),
        "measurements": dict(measurements or {}),
    }
    if model_sha256 is not None:
        metadata["model_sha256"] = model_sha256
    if measure_failed is not None:
        metadata["measure_failed"] = measure_failed
    return metadata


class CandidateBook:
    """Every candidate's :class:`CandidateState`, and which stored rows are out of date."""

    def __init__(self) -> None:
        self._states: dict[int, CandidateState] = {}
        self._dirty: set[int] = set()

    def asked(self, candidates: Iterable[Candidate], now: float | None = None) -> None:
        """New candidates, just asked (their rows must be written)."""
        at = time.time() if now is None else now
        for candidate in candidates:
            self._states[candidate.id] = CandidateState(candidate, at)
            self._dirty.add(candidate.id)

    def __getitem__(self, candidate_id: int) -> CandidateState:
        return self._states[candidate_id]

    def get(self, candidate: Candidate) -> CandidateState:
        """The state of ``candidate`` (created, asked now, when the book has none)."""
        if candidate.id not in self._states:
            self.asked([candidate])
        return self._states[candidate.id]

    def prepared(self, state: CandidateState, values: Mapping[str, float],
                 sources: Mapping[str, str]) -> None:
        """``state``'s pre-tell values are complete."""
        state.values, state.sources, state.prepared = dict(values), dict(sources), True
        self.changed(state.id)

    def told(self, candidate_id: int, now: float | None = None) -> None:
        state = self._states[candidate_id]
        state.told_at = time.time() if now is None else now
        state.values, state.sources = {}, {}
        self.changed(candidate_id)

    def changed(self, candidate_id: int) -> None:
        """The candidate's stored row is out of date."""
        self._dirty.add(candidate_id)

    def take_changed(self) -> list[int]:
        """The ids whose rows are out of date, ascending; the book forgets them."""
        ids = sorted(self._dirty)
        self._dirty.clear()
        return ids

    # -- storage -----------------------------------------------------------------------

    def record(self, trial: Trial, search_id: int) -> CandidateRecord:
        """The row that stores ``trial`` and what the driver knows of it."""
        c = trial.candidate
        state = self._states.get(c.id)
        now = time.time()
        base = CandidateRecord(
            search_id=search_id, candidate_id=c.id, encoding=c.encoding,
            generation=c.generation, parents=c.parents, state=trial.state.value,
            asked_at=state.asked_at if state else now,
            told_at=state.told_at if state else None, updated_at=now,
        )  # fmt: skip
        if trial.evaluation is not None:
            e = trial.evaluation
            return replace(
                base, model_sha256=e.metadata.get("model_sha256"), metrics=dict(e.values),
                sources=dict(e.metadata.get("sources", {})), source=e.metadata.get("source"),
                measurements=dict(e.metadata.get("measurements", {})), feasible=e.feasible,
                violation=e.total_violation, failure=e.metadata.get("measure_failed"),
            )  # fmt: skip
        values, sources = (state.values, state.sources) if state else ({}, {})
        return replace(base, metrics=dict(values), sources=dict(sources), failure=trial.failure)

    def restore(
        self,
        rows: Iterable[CandidateRecord],
        candidates: Mapping[int, Candidate],
        inflight: Mapping[int, tuple[Mapping[str, float], Mapping[str, str]]] | None = None,
    ) -> None:
        """Rebuild the book from stored rows (``candidates``: the engine's, by id) and the
        values a killed step had computed for told trials (``inflight``)."""
        for row in rows:
            state = CandidateState(candidates[row.candidate_id], row.asked_at,
                                   told_at=row.told_at)
            if row.state == "pending" and row.metrics:
                state.values, state.sources = dict(row.metrics), dict(row.sources)
                state.prepared = True
            self._states[row.candidate_id] = state
        for cid, (values, sources) in (inflight or {}).items():
            self._states[cid].values, self._states[cid].sources = dict(values), dict(sources)
