"""A stored search, read back: its configuration, its engine rebuilt, its candidate rows.

Since the search tables stopped holding whole snapshots, a search's engine
is stored in two parts (see :mod:`fleetnas.controller.search._persist`):
the engine's step state in ``searches.state`` (rewritten each step, a few
kilobytes whatever the search's length) and one ``search_candidates`` row per
candidate (written when it changes). :func:`load_search` puts them together
again; a trial rebuilt from its row is exactly the trial that was told,
because the driver only ever tells the canonical metadata of
:func:`~._candidates.trial_metadata`.

Searches stored by earlier versions hold a whole engine snapshot (format
``fleetnas.search/1``) in ``searches.state``: they are read from it as
before, and their next commit stores them the new way (every row rewritten
once, ``legacy`` tells the driver).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetnas.controller.driver._candidates import trial_metadata
from fleetnas.controller.driver._config import SearchConfig
from fleetnas.controller.driver._deploy import search_space
from fleetnas.controller.driver._evaluation import latency_key
from fleetnas.controller.driver._store import CandidateRecord, SearchRecord, SearchStore
from fleetnas.controller.driver._unknown import unknown_of
from fleetnas.controller.search import STEP_FORMAT, SearchEngine, parse_constraint
from fleetnas.controller.spaces import SearchSpace, get_space


@dataclass(frozen=True)
class StoredSearch:
    """What :func:`load_search` read: the row, its config, the engine, the candidate rows.

    ``legacy`` is true when the engine came from an old whole snapshot;
    ``inflight`` holds, by candidate id, the ``(values, sources)`` computed in
    the step in flight for trials already told (see ``SearchStore.put_inflight``).
    """

    record: SearchRecord
    config: SearchConfig
    engine: SearchEngine
    candidates: list[CandidateRecord]
    legacy: bool = False
    inflight: dict[int, tuple[dict[str, float], dict[str, str]]] = field(default_factory=dict)


def trial_records(rows: Sequence[CandidateRecord], latency_names: Sequence[str]) -> list[dict[str, Any]]:
    """The engine's trial records (``search.trial_record`` form) of the stored rows."""
    out = []
    for row in rows:
        complete = row.state == "complete"
        out.append({
            "id": row.candidate_id, "encoding": row.encoding, "generation": row.generation,
            "parents": list(row.parents), "state": row.state,
            "values": dict(row.metrics) if complete else None,
            "metadata": trial_metadata(
                row.sources, latency_names, measurements=row.measurements,
                model_sha256=row.model_sha256, measure_failed=row.failure,
            ) if complete else None,
            "failure": row.failure if row.state == "failed" else None,
            "unknown": unknown_of(row.metrics, row.sources) if complete else {},
        })  # fmt: skip
    return out


def load_search(
    store: SearchStore,
    search_id: int,
    *,
    space: SearchSpace | None = None,
    config: SearchConfig | None = None,
) -> StoredSearch:
    """The stored search ``search_id`` as of its last commit.

    ``space`` defaults to the config's; ``config`` to the stored one.
    Raises SearchNotFound, UnknownSpace / ValueError for a space that cannot
    be built, ValueError when the stored state does not fit the rows.
    """
    record = store.get(search_id)
    config = config or SearchConfig.from_dict(record.config)
    space = search_space(space or get_space(config.space, config.space_config), config)
    rows = store.candidates(search_id)
    state = store.state(search_id)
    if state is None:  # stored before its first commit
        engine = SearchEngine(space, config.make_strategy(), config.objective_list(),
                              constraints=list(config.constraints), seed=config.seed)
        return StoredSearch(record, config, engine, rows)
    if state.get("format") != STEP_FORMAT:
        engine = SearchEngine.from_state_dict(state, space, objectives=config.objective_list())
        return StoredSearch(record, config, engine, rows, legacy=True)
    names = [o.name for o in config.objective_list()]
    names += [parse_constraint(c).name for c in config.constraints]
    latency_names = [n for n in names if latency_key(n) is not None]
    engine = SearchEngine.restore(state, space, trial_records(rows, latency_names),
                                  objectives=config.objective_list())
    inflight = {int(cid): (dict(x["values"]), dict(x["sources"]))
                for cid, x in (state.get("inflight") or {}).items()}
    return StoredSearch(record, config, engine, rows, inflight=inflight)
