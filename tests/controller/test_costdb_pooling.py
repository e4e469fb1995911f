"""Pooling measurements: export, import and merge between real database files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB, ImportFormatError, ImportReport, NotACostDB
from tests.controller.test_costdb_helpers import make_result, sha_of


def _fill(db: CostDB, device: str, labels: list[str], *, started_at: float = 1000.0) -> None:
    desc = agent_pb2.DeviceDescription(agent_version="0.1.0", hostname=device)
    db.upsert_device(
        device, device_class="pi4", address=f"{device}:50051", host_fingerprint=f"h-{device}",
        description=desc, seen_at=started_at,
    )
    for i, label in enumerate(labels):
        db.record_model(sha_of(label), 1000 + i, space="nb201", arch=f"|{label}|", params=i)
        db.record_measurement(device, make_result(label, started_at=started_at + i))


def _snapshot(path: Path) -> list[tuple]:
    """Every table's rows, minus the row ids and import-time columns, for comparisons."""
    conn = sqlite3.connect(path)
    try:
        devices = conn.execute("SELECT * FROM devices ORDER BY name").fetchall()
        models = conn.execute("SELECT * FROM models ORDER BY sha256").fetchall()
        cols = [r[1] for r in conn.execute("PRAGMA table_info(measurements)") if r[1] != "id"]
        measurements = conn.execute(
            f"SELECT {', '.join(cols)} FROM measurements ORDER BY uid"
        ).fetchall()
        return [*devices, *models, *measurements]
    finally:
        conn.close()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_export_then_import_reproduces_the_rows(tmp_path: Path, suffix: str) -> None:
    origin = tmp_path / "origin.db"
    with CostDB(origin) as db:
        _fill(db, "pi-1", ["a", "b"])
        _fill(db, "pi-2", ["b", "c"], started_at=5000.0)
        db.record_measurement("gone", make_result("d", paired=True))  # no device row
        report = db.export(tmp_path / f"dump{suffix}")
    assert (report.measurements, report.devices, report.models) == (5, 2, 4)
    fresh = tmp_path / "fresh.db"
    with CostDB(fresh) as db:
        imported = db.import_file(tmp_path / f"dump{suffix}", source="local")
    assert imported == ImportReport(added=5, skipped_duplicates=0, devices_added=2, models_added=4)
    assert _snapshot(fresh) == _snapshot(origin)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_importing_twice_adds_nothing_the_second_time(tmp_path: Path, suffix: str) -> None:
    with CostDB(tmp_path / "a.db") as db:
        _fill(db, "pi-1", ["a", "b", "c"])
        db.export(tmp_path / f"a{suffix}")
    with CostDB(tmp_path / "b.db") as db:
        first = db.import_file(tmp_path / f"a{suffix}")
        second = db.import_file(tmp_path / f"a{suffix}")
        assert (first.added, first.skipped_duplicates) == (3, 0)
        assert second == ImportReport(0, 3, 0, 0)
        assert {m.source for m in db.measurements()} == {"a"}  # the file's stem


def test_merge_keeps_provenance_and_skips_duplicates(tmp_path: Path) -> None:
    alice, bob = tmp_path / "alice.db", tmp_path / "bob.db"
    with CostDB(alice) as db:
        _fill(db, "pi-1", ["a", "b", "c"])
        shared = db.export(tmp_path / "shared.jsonl")
    assert shared.measurements == 3
    with CostDB(bob) as db:
        # Bob already pooled Alice's first export, then measured on his own device.
        db.import_file(tmp_path / "shared.jsonl", source="alice")
        _fill(db, "jetson-1", ["a", "z"], started_at=9000.0)
    with CostDB(alice) as db:
        db.record_measurement("pi-1", make_result("e", started_at=7000.0))  # new since

    with CostDB(alice) as db:
        report = db.merge(bob)
        assert report == ImportReport(
            added=2, skipped_duplicates=3, devices_added=1, models_added=1
        )
        assert db.count_measurements() == 6
        by_source = {(m.device, m.source) for m in db.measurements()}
        assert by_source == {("pi-1", "local"), ("jetson-1", "bob")}
        theirs = db.measurements(device="jetson-1")
        with CostDB(bob) as other:
            original = other.measurements(device="jetson-1")
        for mine, orig in zip(theirs, original, strict=True):
            assert (mine.uid, mine.agent_version, mine.onnxruntime_version) == (
                orig.uid, orig.agent_version, orig.onnxruntime_version,
            )
            assert (mine.started_at, mine.recorded_at) == (orig.started_at, orig.recorded_at)
        assert db.get_device("jetson-1") is not None
        assert db.merge(bob) == ImportReport(0, 5, 0, 0)

    with CostDB(bob) as db:  # and back: Bob gets Alice's new one, keeps his labels
        report = db.merge(alice)
        assert (report.added, report.skipped_duplicates) == (1, 5)
        assert {m.source for m in db.measurements(device="pi-1")} == {"alice"}


def test_merge_refuses_files_that_are_not_cost_databases(tmp_path: Path) -> None:
    with CostDB(tmp_path / "mine.db") as db:
        with pytest.raises(NotACostDB, match="no such file"):
            db.merge(tmp_path / "missing.db")
        assert not (tmp_path / "missing.db").exists()
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"x" * 4096)
        with pytest.raises(NotACostDB):
            db.merge(junk)


def _export_lines(tmp_path: Path) -> list[str]:
    with CostDB(tmp_path / "src.db") as db:
        _fill(db, "pi-1", ["a", "b", "c"])
        db.export(tmp_path / "src.jsonl")
    return (tmp_path / "src.jsonl").read_text().splitlines()


def _corrupt_uid(lines: list[str]) -> int:
    index = max(i for i, line in enumerate(lines) if '"type":"measurement"' in line)
    record = json.loads(lines[index])
    record["samples_ms"][0] += 1.0  # content no longer matches its uid
    lines[index] = json.dumps(record)
    return index


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda lines: lines.__setitem__(len(lines) - 2, "{not json") or len(lines) - 2, "not JSON"),
        (_corrupt_uid, "uid"),
        (lambda lines: lines.__setitem__(3, '{"type": "spaceship"}') or 3, "spaceship"),
        (lambda lines: lines.__setitem__(0, '{"hello": 1}') or 0, "header"),
    ],
)
def test_a_malformed_jsonl_line_names_its_number_and_changes_nothing(
    tmp_path: Path, corrupt, message: str
) -> None:
    lines = _export_lines(tmp_path)
    index = corrupt(lines)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    target = tmp_path / "target.db"
    with CostDB(target) as db:
        _fill(db, "other", ["x"])
    before = _snapshot(target)
    with CostDB(target) as db:
        with pytest.raises(ImportFormatError, match=message) as info:
            db.import_file(bad)
    assert info.value.line == index + 1
    assert f"bad.jsonl:{index + 1}:" in str(info.value)
    assert _snapshot(target) == before


def test_a_malformed_csv_row_names_its_line_and_changes_nothing(tmp_path: Path) -> None:
    with CostDB(tmp_path / "src.db") as db:
        _fill(db, "pi-1", ["a", "b", "c"])
        db.export(tmp_path / "src.csv")
    lines = (tmp_path / "src.csv").read_text().splitlines()
    lines[2] = lines[2].replace(",plain,", ",sideways,", 1)
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    target = tmp_path / "target.db"
    CostDB(target).close()
    before = _snapshot(target)
    with CostDB(target) as db:
        with pytest.raises(ImportFormatError, match="method") as info:
            db.import_file(tmp_path / "bad.csv")
    assert info.value.line == 3
    assert _snapshot(target) == before


def test_export_writes_nothing_on_failure_and_replaces_atomically(tmp_path: Path) -> None:
    with CostDB(tmp_path / "src.db") as db:
        _fill(db, "pi-1", ["a"])
        with pytest.raises(FileNotFoundError):
            db.export(tmp_path / "no-such-dir" / "x.jsonl")
        db.export(tmp_path / "out.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
