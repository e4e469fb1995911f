"""Several controller processes writing one cost database file at the same time."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from fleetnas.controller.costdb import MIGRATIONS, CostDB
from tests.controller.test_costdb_helpers import make_result

WRITERS = 4
PER_WRITER = 2000


def _write_many(path: str, worker: int, count: int, start: multiprocessing.synchronize.Event) -> None:
    start.wait(timeout=60)
    with CostDB(path) as db:
        for i in range(count):
            # Same models and settings across workers: only the samples and the
            # time differ, as when several controllers re-measure the same work.
            result = make_result(
                f"model-{i % 50}",
                samples=[1.0 + worker, 2.0 + i * 1e-6],
                started_at=1_700_000_000.0 + i,
            )
            db.record_measurement(f"device-{worker % 2}", result)


def _open_and_record(path: str, worker: int, start: multiprocessing.synchronize.Event) -> None:
    start.wait(timeout=60)
    with CostDB(path) as db:
        db.record_measurement("device", make_result(f"m{worker}"))


def _run_all(target, args_per_worker: list[tuple]) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=target, args=(*args, start)) for args in args_per_worker]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=240)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_four_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    CostDB(path).close()
    _run_all(_write_many, [(path, w, PER_WRITER) for w in range(WRITERS)])
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM measurements").fetchone()[0] == 8000
        assert conn.execute("SELECT count(DISTINCT uid) FROM measurements").fetchone()[0] == 8000
        assert conn.execute("SELECT count(*) FROM models").fetchone()[0] == 50
    finally:
        conn.close()


def test_processes_opening_a_fresh_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = str(tmp_path / "fresh.db")
    _run_all(_open_and_record, [(path, w) for w in range(6)])
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM measurements").fetchone()[0] == 6
    finally:
        conn.close()
