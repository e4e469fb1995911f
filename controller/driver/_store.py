"""Searches in the cost database: the ``searches`` and ``search_candidates`` tables.

A search row holds the search's whole configuration (JSON) and the engine's
**step state** (``SearchEngine.step_state()``: strategy state, generator
state, tell order; a few kilobytes whatever the search's length); each
candidate has one row, written when it changes. The driver replaces the step
state in the **same transaction** as the candidate rows that changed since
the previous commit (:meth:`SearchStore.commit`), so the stored state and
the stored candidates always describe the same moment, and each step writes
what changed, not the whole search. ``driver.load_search`` rebuilds the
engine from the two. What happened after the last commit (a batch measured
but not yet told, say) is redone on resume; the cost DB's cache answers its
measurements, so nothing is measured twice. See ``docs/search.md`` for the
schema.

Rows are read and written by column name; the column lists come from the
record dataclasses (:class:`SearchRecord`, :class:`CandidateRecord`). Writes
go through the cost database's own write transactions (``BEGIN IMMEDIATE``,
its lock), so the store is as safe as ``CostDB`` with several threads and
processes.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._errors import SearchBusy, SearchConfigError, SearchNotFound

STATUSES = ("running", "interrupted", "failed", "complete")
CANDIDATE_STATES = ("pending", "complete", "failed")



def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def owner_label() -> str:
    """``host:pid`` of this process: who is running a search."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool | None:
    """Whether the process named by ``owner`` runs; ``None`` when it is on another host."""
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # ourselves: a previous run in this process finished or crashed
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class SearchRecord:
    """One stored search (without its engine state; see :meth:`SearchStore.state`).

    ``measured`` counts latency values taken from measurements (the device
    measurements the search used), ``device_runs`` the benchmarks it ran
    itself (the rest came from the cost DB's cache), ``predicted`` the
    latency values currently predicted (LUT or surrogate). ``budget`` is
    the candidate budget, ``None`` for none (a search bounded by its
    measurement budget or time; stored as 0, the column being NOT NULL).
    """

    id: int
    space: str
    mode: str
    config: dict[str, Any]
    status: str
    budget: int | None
    trials: int
    measured: int
    device_runs: int
    predicted: int
    step: int
    owner: str | None
    error: str | None
    created_at: float
    updated_at: float
    finished_at: float | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SearchRecord:
        """From a ``searches`` row read by name (the JSON config decoded)."""
        values = {f.name: row[f.name] for f in fields(cls)}
        return cls(**{**values, "config": json.loads(values["config"]),
                      "budget": values["budget"] or None})


@dataclass(frozen=True)
class CandidateRecord:
    """One candidate of a search as stored.

    ``metrics`` holds its values by name (objectives, constraint inputs,
    extras; partial while pending), ``sources`` where each came from
    (``measured``, ``lut``, ``surrogate``, ``estimator``, ``analytic``,
    ``callable``), ``source`` whether its latencies are ``measured``,
    ``predicted`` or ``mixed``, ``measurements`` the cost DB measurement uid
    of each measured latency. ``model_sha256`` is set once it was exported.
    """

    search_id: int
    candidate_id: int
    encoding: str
    generation: int
    parents: tuple[int, ...]
    state: str
    model_sha256: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    measurements: Mapping[str, str] = field(default_factory=dict)
    feasible: bool | None = None
    violation: float | None = None
    failure: str | None = None
    asked_at: float = 0.0
    told_at: float | None = None
    updated_at: float = 0.0

    def to_row(self) -> dict[str, Any]:
        """The ``search_candidates`` row, by column name (JSON columns encoded)."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _JSON_COLUMNS:
            row[name] = _dumps(list(row[name]) if name == "parents" else dict(row[name]))
        row["feasible"] = None if self.feasible is None else int(self.feasible)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CandidateRecord:
        """From a ``search_candidates`` row read by name."""
        values = {f.name: row[f.name] for f in fields(cls)}
        for name in _JSON_COLUMNS:
            values[name] = json.loads(values[name])
        values["parents"] = tuple(values["parents"])
        values["feasible"] = None if values["feasible"] is None else bool(values["feasible"])
        return cls(**values)


_JSON_COLUMNS = ("parents", "metrics", "sources", "measurements")
_SEARCH_COLUMNS = ", ".join(f.name for f in fields(SearchRecord))
_CANDIDATE_COLUMNS = [f.name for f in fields(CandidateRecord)]
_PUT_CANDIDATE = (
    f"INSERT OR REPLACE INTO search_candidates ({', '.join(_CANDIDATE_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _CANDIDATE_COLUMNS)})"
)


def _named(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of ``sql`` by column name (the shared connection's row factory is left alone)."""
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return [dict(row) for row in cursor.execute(sql, args)]


@dataclass(frozen=True)
class Counters:
    """The running totals stored with a search (see :class:`SearchRecord`)."""

    trials: int = 0
    measured: int = 0
    device_runs: int = 0
    predicted: int = 0


class SearchStore:
    """The search tables of one cost database. Thread-safe as ``CostDB`` is."""

    def __init__(self, db: CostDB) -> None:
        self.db = db

    # -- searches -------------------------------------------------------------------------

    def create(self, *, space: str, mode: str, config: Mapping[str, Any], budget: int | None,
               owner: str | None = None) -> SearchRecord:
        """A new search, status ``running``; returns it with its id."""
        now = time.time()
        try:
            search_id = self._insert(space, mode, config, budget, owner, now)
        except sqlite3.IntegrityError as exc:
            if "mode" not in str(exc):
                raise
            raise SearchConfigError(
                f"mode {mode!r}: this cost database stores searches of the modes "
                "measured, lut and hybrid only (its schema's CHECK on searches.mode; a "
                "migration must widen it for other latency sources); run such a search "
                "unstored from Python, SearchDriver.create(config) without a db"
            ) from exc
        return self.get(search_id)

    def _insert(self, space: str, mode: str, config: Mapping[str, Any], budget: int | None,
                owner: str | None, now: float) -> int:
        with self.db.write_transaction() as conn:
            cursor = conn.execute(
                """
                INSERT INTO searches (space, mode, config, status, budget, trials, measured,
                                      device_runs, predicted, state, step, owner, error,
                                      created_at, updated_at, finished_at)
                VALUES (?, ?, ?, 'running', ?, 0, 0, 0, 0, NULL, 0, ?, NULL, ?, ?, NULL)
                """,
                (space, mode, _dumps(dict(config)), budget or 0, owner, now, now),
            )
            search_id = cursor.lastrowid
        assert search_id is not None
        return search_id

    def get(self, search_id: int) -> SearchRecord:
        """The search with this id; raises SearchNotFound."""
        with self.db.read_snapshot() as conn:
            rows = _named(conn, f"SELECT {_SEARCH_COLUMNS} FROM searches WHERE id = ?", (search_id,))
        if not rows:
            raise SearchNotFound(
                f"no search {search_id} in {self.db.path or 'this database'}; "
                "see `fleetnas search list`"
            )
        return SearchRecord.from_row(rows[0])

    def searches(self) -> list[SearchRecord]:
        """Every search, newest first."""
        with self.db.read_snapshot() as conn:
            rows = _named(conn, f"SELECT {_SEARCH_COLUMNS} FROM searches ORDER BY id DESC")
        return [SearchRecord.from_row(r) for r in rows]

    def state(self, search_id: int) -> dict[str, Any] | None:
        """The engine state of the last commit (``None`` before the first): a step state, or
        the whole snapshot a search stored by an earlier version holds."""
        with self.db.read_snapshot() as conn:
            row = conn.execute("SELECT state FROM searches WHERE id = ?", (search_id,)).fetchone()
        if row is None:
            raise SearchNotFound(f"no search {search_id}")
        return None if row[0] is None else json.loads(row[0])

    def claim(self, search_id: int, owner: str, *, force: bool = False) -> SearchRecord:
        """Mark the search ``running`` by ``owner``.

        Raises SearchBusy when another live process on this host runs it, or
        when it is ``running`` on another host (``force`` takes it anyway).
        """
        with self.db.write_transaction() as conn:
            row = conn.execute(
                "SELECT status, owner FROM searches WHERE id = ?", (search_id,)
            ).fetchone()
            if row is None:
                raise SearchNotFound(f"no search {search_id}; see `fleetnas search list`")
            status, current = row
            if status == "running" and current and current != owner and not force:
                alive = _owner_alive(current)
                if alive is None:
                    raise SearchBusy(
                        f"search {search_id} is marked running by {current} (another host); "
                        "if that process is gone, resume with --force"
                    )
                if alive:
                    raise SearchBusy(f"search {search_id} is running in process {current}")
            conn.execute(
                "UPDATE searches SET status = 'running', owner = ?, error = NULL, "
                "finished_at = NULL, updated_at = ? WHERE id = ?",
                (owner, time.time(), search_id),
            )
        return self.get(search_id)

    def set_status(self, search_id: int, status: str, *, error: str | None = None) -> None:
        """Set the status (and error text); ``complete``/``failed`` also set ``finished_at``."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r}: choose one of {', '.join(STATUSES)}")
        now = time.time()
        finished = now if status in ("complete", "failed") else None
        with self.db.write_transaction() as conn:
            conn.execute(
                "UPDATE searches SET status = ?, error = ?, updated_at = ?, finished_at = ?, "
                "owner = CASE WHEN ? = 'running' THEN owner ELSE NULL END WHERE id = ?",
                (status, error, now, finished, status, search_id),
            )

    def set_config(self, search_id: int, config: Mapping[str, Any], budget: int | None) -> None:
        """Replace the configuration (e.g. a larger budget on resume)."""
        with self.db.write_transaction() as conn:
            conn.execute(
                "UPDATE searches SET config = ?, budget = ?, updated_at = ? WHERE id = ?",
                (_dumps(dict(config)), budget or 0, time.time(), search_id),
            )

    def commit(
        self,
        search_id: int,
        state: Mapping[str, Any],
        candidates: Sequence[CandidateRecord],
        counters: Counters,
    ) -> None:
        """Store the engine's step state, the changed candidate rows and the totals, atomically."""
        now = time.time()
        with self.db.write_transaction() as conn:
            conn.executemany(_PUT_CANDIDATE, [c.to_row() for c in candidates])
            cursor = conn.execute(
                "UPDATE searches SET state = ?, step = step + 1, trials = ?, measured = ?, "
                "device_runs = ?, predicted = ?, updated_at = ? WHERE id = ?",
                (_dumps(dict(state)), counters.trials, counters.measured, counters.device_runs,
                 counters.predicted, now, search_id),
            )  # fmt: skip
            if cursor.rowcount == 0:
                raise SearchNotFound(f"no search {search_id}")

    def put_candidates(self, candidates: Sequence[CandidateRecord]) -> None:
        """Store candidate rows alone (e.g. a pending candidate's accuracy, before measuring).

        Only for rows the stored snapshot already has as pending: the engine
        state is not touched.
        """
        with self.db.write_transaction() as conn:
            conn.executemany(_PUT_CANDIDATE, [c.to_row() for c in candidates])

    def put_inflight(self, search_id: int, candidate_id: int, values: Mapping[str, float],
                     sources: Mapping[str, str]) -> None:
        """Keep values computed in the step in flight for a trial already told (e.g. the
        accuracy of a front member, trained before its revision is committed).

        They live in the stored step state under ``inflight`` until the next
        :meth:`commit` replaces it (by then they are in the trial's row).
        """
        with self.db.write_transaction() as conn:
            row = conn.execute("SELECT state FROM searches WHERE id = ?", (search_id,)).fetchone()
            if row is None or row[0] is None:
                raise SearchNotFound(f"no committed search {search_id}")
            state = json.loads(row[0])
            state.setdefault("inflight", {})[str(candidate_id)] = {
                "values": dict(values), "sources": dict(sources)}
            conn.execute("UPDATE searches SET state = ?, updated_at = ? WHERE id = ?",
                         (_dumps(state), time.time(), search_id))

    def delete(self, search_id: int) -> None:
        """Remove a search and its candidates (measurements and models stay)."""
        with self.db.write_transaction() as conn:
            if conn.execute("DELETE FROM searches WHERE id = ?", (search_id,)).rowcount == 0:
                raise SearchNotFound(f"no search {search_id}")

    # -- candidates -----------------------------------------------------------------------

    def candidates(self, search_id: int, *, state: str | None = None) -> list[CandidateRecord]:
        """The search's candidates by id (only those in ``state`` if given)."""
        sql = f"SELECT {', '.join(_CANDIDATE_COLUMNS)} FROM search_candidates WHERE search_id = ?"
        args: list[Any] = [search_id]
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        with self.db.read_snapshot() as conn:
            rows = _named(conn, sql + " ORDER BY candidate_id", args)
        return [CandidateRecord.from_row(r) for r in rows]
