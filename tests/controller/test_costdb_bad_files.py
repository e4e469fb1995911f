"""Garbled rows and damaged files give named, one-line errors that say what to do."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetnas.controller.cli import main
from fleetnas.controller.costdb import CorruptRow, CostDB, DatabaseDamaged, NotACostDB
from tests import onnx_models
from tests.controller.conftest import fleetnas_cli
from tests.controller.test_costdb_helpers import make_result

TINY = ["--warmup", "2", "--min-runs", "5", "--max-runs", "30", "--min-duration", "0",
        "--max-duration", "0.5"]


def _garble(path: Path, sql: str) -> None:
    with sqlite3.connect(path) as conn:  # another tool writing a bad value
        conn.execute(sql)


def _filled(path: Path, count: int = 3) -> Path:
    with CostDB(path) as db:
        for i in range(count):
            db.record_measurement("pi-1", make_result(f"m{i}", started_at=1000.0 + i))
    return path


def test_a_garbled_json_cell_is_named_in_export_and_merge(tmp_path: Path) -> None:
    path = _filled(tmp_path / "cost.db")
    _garble(path, "UPDATE measurements SET settings = '{\"warmup_runs\": 1' WHERE id = 2")
    runner = CliRunner()
    exported = runner.invoke(main, ["--db", str(path), "db", "export", str(tmp_path / "x.jsonl")])
    assert exported.exit_code == 1
    assert "Traceback" not in exported.output and "JSONDecodeError" not in exported.output
    assert "measurements row" in exported.output and "garbled settings" in exported.output
    assert not (tmp_path / "x.jsonl").exists()

    other = tmp_path / "other.db"
    merged = runner.invoke(main, ["--db", str(other), "db", "merge", str(path)])
    assert merged.exit_code == 1 and "Traceback" not in merged.output
    assert f"{path}: measurements row" in merged.output
    with CostDB(other) as db:
        assert db.count_measurements() == 0  # all or nothing
    with CostDB(path) as db, pytest.raises(CorruptRow) as info:
        db.measurements()
    assert info.value.table == "measurements" and info.value.column == "settings"


def test_a_garbled_cache_row_is_a_one_line_error_in_measure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEETNAS_FLEET", raising=False)
    monkeypatch.delenv("FLEETNAS_DB", raising=False)
    model = tmp_path / "mlp.onnx"
    model.write_bytes(onnx_models.mlp(16, 1, seed=3))
    cli = fleetnas_cli()
    runner = CliRunner()
    first = runner.invoke(cli, ["measure", str(model), *TINY])
    assert first.exit_code == 0, first.output
    _garble(tmp_path / "fleetnas.db", "UPDATE measurements SET samples_ms = '[1.0, 2.'")
    second = runner.invoke(cli, ["measure", str(model), *TINY])
    assert second.exit_code == 1
    assert "Traceback" not in second.output and "JSONDecodeError" not in second.output
    assert "measurements row" in second.output and "garbled samples_ms" in second.output


def _damaged_copy(good: Path, target: Path, offset: int, length: int) -> Path:
    data = bytearray(good.read_bytes())
    data[offset:offset + length] = random.Random(0).randbytes(length)
    target.write_bytes(bytes(data))
    return target


def test_a_damaged_file_says_it_is_damaged_and_how_to_recover(tmp_path: Path) -> None:
    good = _filled(tmp_path / "good.db", count=200)
    with CostDB(good) as db:
        db.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    runner = CliRunner()
    # the schema page itself: found when opening
    first_page = _damaged_copy(good, tmp_path / "first.db", 100, 3000)
    with pytest.raises(DatabaseDamaged) as info:
        CostDB(first_page)
    assert not isinstance(info.value, NotACostDB)  # a cost database, damaged
    result = runner.invoke(main, ["--db", str(first_page), "db", "stats"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{first_page} is damaged" in result.output
    assert f"sqlite3 {first_page} .recover" in result.output and "-wal" in result.output
    assert "is not a fleetnas cost database" not in result.output
    assert "point --db" not in result.output  # the message says what to do instead
    # pages in the middle: found when reading them
    middle = _damaged_copy(good, tmp_path / "middle.db", 4096 * 3, 4096 * 5)
    exported = runner.invoke(main, ["--db", str(middle), "db", "export", str(tmp_path / "x.csv")])
    assert exported.exit_code == 1 and "Traceback" not in exported.output
    assert "is damaged" in exported.output and ".recover" in exported.output
    merged = runner.invoke(main, ["--db", str(tmp_path / "new.db"), "db", "merge", str(middle)])
    assert merged.exit_code == 1 and "is damaged" in merged.output
