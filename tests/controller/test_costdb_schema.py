"""The schema stated once: tables from the records' fields, and files written before still open."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import (
    LATEST_VERSION,
    MIGRATIONS,
    RUN_LIMIT_FIELDS,
    CostDB,
    Device,
    Measurement,
    Model,
    Profile,
    settings_from_dict,
    settings_hash,
)
from fleetnas.controller.costdb._migrations import _MIGRATIONS_TABLE
from fleetnas.controller.lut import LutStore
from fleetnas.controller.scheduler import CacheLookup, resolve_for

V3_DUMP = Path(__file__).parent / "data" / "costdb_v3.sql"


def _columns(conn: sqlite3.Connection, table: str) -> dict[str, tuple[str, int, int]]:
    """name -> (type, notnull, pk) of every column of ``table``."""
    return {r[1]: (r[2], r[3], r[5]) for r in conn.execute(f"PRAGMA table_info({table})")}


@pytest.fixture
def v3_file(tmp_path: Path) -> Path:
    """A database written by fleetnas at schema version 3 (before the schema came from fields)."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(V3_DUMP.read_text())
    return path


def test_a_database_written_before_opens_and_reads_back_by_name(v3_file: Path) -> None:
    with CostDB(v3_file) as db:
        assert db.schema_version == LATEST_VERSION
        (device,) = db.list_devices()
        assert device.name == "pi-1" and device.host_fingerprint == "host-1"
        assert device.description is not None and device.description["cpu"]["model"] == "Test CPU"
        rows = db.measurements()
        assert [m.device for m in rows] == ["pi-1", "pi-1", "gone-1"]
        assert [m.method for m in rows] == ["plain", "paired", "plain"]
        assert all(m.validate() is m for m in rows)  # uid and settings hash still match
        model = db.get_model(rows[0].model_sha256)
        assert model is not None and model.arch == "|a|" and model.size_bytes == 1234
        (lut,) = LutStore(db).find()
        assert lut.entries == 1 and LutStore(db).entries(lut.id)["conv|3"].latency_ms == 1.5
        assert lut.precision == "fp32" and lut.statistic == "median"  # migrations 7 and 10
        history = [r[0] for r in db.db.execute("SELECT version FROM migrations ORDER BY version")]
    assert history == list(range(1, LATEST_VERSION + 1))


def test_the_record_tables_are_the_records_fields(v3_file: Path, tmp_path: Path) -> None:
    with CostDB(tmp_path / "new.db") as fresh, CostDB(v3_file) as upgraded:
        for cls in (Device, Model, Measurement, Profile):
            names = [c.name for c in cls.COLUMNS]
            new = _columns(fresh.db.conn, cls.TABLE)
            assert sorted(new) == sorted(names)
            # a file created before has the same columns, types and constraints
            assert _columns(upgraded.db.conn, cls.TABLE) == new
        measurements = _columns(fresh.db.conn, "measurements")
    assert measurements["id"] == ("INTEGER", 0, 1)  # the rowid
    assert measurements["samples_ms"] == ("TEXT", 1, 0)
    assert measurements["freq_before_mhz"] == ("REAL", 0, 0)


def test_the_upgrade_stamps_old_measurements_with_their_devices_hardware(v3_file: Path) -> None:
    with CostDB(v3_file) as db:
        device = db.get_device("pi-1")
        assert device is not None and device.hardware_id is not None
        by_device = {m.device: m.hardware_id for m in db.measurements()}
        # same host fingerprint as the device's description: that hardware
        assert by_device["pi-1"] == device.hardware_id
        # no device row to say what it ran on: unknown, so it no longer serves the cache
        assert by_device["gone-1"] is None
        plain = db.measurements(device="pi-1")[0]
        assert db.lookup(plain.model_sha256, "pi-1", plain.settings_hash,
                         hardware_id=device.hardware_id) == plain
        assert db.lookup(plain.model_sha256, "pi-1", plain.settings_hash,
                         hardware_id="0" * 16) is None


def test_an_export_from_before_hardware_ids_imports(v3_file: Path, tmp_path: Path) -> None:
    export = tmp_path / "old.jsonl"
    with CostDB(v3_file) as db:
        db.export(export)
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    lines[0]["version"] = 1  # as fleetnas wrote it before measurements had a hardware_id
    for line in lines[1:]:
        line.pop("hardware_id", None)
    export.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with CostDB(tmp_path / "new.db") as db:
        report = db.import_file(export)
        assert report.added == 3
        device = db.get_device("pi-1")
        assert device is not None
        assert {m.device: m.hardware_id for m in db.measurements()} == {
            "pi-1": device.hardware_id, "gone-1": None}


# -- one measurement identity: hashes of v1 settings do not move ---------------------


def _stored_v1(path: Path) -> list[tuple[dict[str, object], str]]:
    """``(settings, settings_hash)`` of every measurement and LUT a v1 agent's era stored."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT settings, settings_hash FROM measurements "
            "UNION ALL SELECT settings, settings_hash FROM luts"
        ).fetchall()
    return [(json.loads(text), stored) for text, stored in rows]


def _later_echo(settings: agent_pb2.BenchmarkSettings) -> agent_pb2.BenchmarkSettings:
    """The same settings as an agent of today echoes them for an ONNX model."""
    echo = agent_pb2.BenchmarkSettings()
    echo.CopyFrom(settings)
    echo.runtime = "onnxruntime"
    echo.profile = True
    echo.profile_runs = 25
    echo.agent_defaults.extend(["intra_op_threads", "providers"])
    return echo


def test_v1_hashes_are_unchanged_and_later_echoes_share_them(v3_file: Path) -> None:
    stored = _stored_v1(v3_file)
    assert len(stored) == 4 and len({h for _, h in stored}) == 2
    for settings_dict, stored_hash in stored:
        settings = settings_from_dict(settings_dict)  # type: ignore[arg-type]
        assert settings_hash(settings) == stored_hash
        assert settings_hash(_later_echo(settings)) == stored_hash
        # what is measured still counts: another runtime, fp16 kernels
        litert = _later_echo(settings)
        litert.runtime = "litert"
        assert settings_hash(litert) != stored_hash
        fp16 = _later_echo(settings)
        fp16.fp16 = True
        assert settings_hash(fp16) != stored_hash


def _described_like_today(db: CostDB, name: str) -> agent_pb2.DeviceDescription:
    """The stored (v1) description of ``name`` plus what a current agent adds to it."""
    record = db.get_device(name)
    assert record is not None
    description = record.description_proto()
    description.limits.max_timeout_s = 60.0
    description.limits.memory_cap_bytes = 2 << 30
    description.runtimes.add(name="onnxruntime", accelerators=["CPUExecutionProvider"],
                             formats=[agent_pb2.MODEL_FORMAT_ONNX], available=True)
    description.runtimes.add(name="litert", accelerators=["XNNPACK"],
                             formats=[agent_pb2.MODEL_FORMAT_TFLITE], available=True)
    return description


def test_an_old_database_still_serves_a_current_agent(v3_file: Path) -> None:
    with CostDB(v3_file) as db:
        old = db.measurements(device="pi-1")[0]
        description = _described_like_today(db, "pi-1")
        request = old.settings_proto()
        for name in RUN_LIMIT_FIELDS:
            request.ClearField(name)
        resolved = resolve_for(request, description)
        assert resolved is not None and resolved.runtime == "onnxruntime"
        assert resolved.HasField("profile_runs")
        cache = CacheLookup(db, live=lambda _name: description)
        assert cache.find(old.model_sha256, ["pi-1"], request) == old
        # the same request for a TFLite model resolves to LiteRT: another measurement
        assert cache.find(old.model_sha256, ["pi-1"], request,
                          agent_pb2.MODEL_FORMAT_TFLITE) is None


def _v9_file(path: Path) -> Path:
    """A cost DB as fleetnas wrote it at schema version 9 (migrations 1-9, before LUTs had a
    precision), holding a LUT with an entry, a calibration, a non-default statistic and a
    report."""
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    db.execute(_MIGRATIONS_TABLE)
    db.execute("PRAGMA foreign_keys = ON")
    for migration in MIGRATIONS[:9]:
        migration.apply(db)
        db.execute("INSERT INTO migrations VALUES (?, ?, 0)", (migration.version, migration.name))
    assert MIGRATIONS[8].version == 9
    sha = "ab" * 32
    db.execute("INSERT INTO models (sha256, created_at) VALUES (?, 0)", (sha,))
    db.execute(
        "INSERT INTO luts (id, space, space_name, space_config, space_version, device, "
        "settings_hash, settings, status, blocks_total, calibration, source, created_at, "
        "updated_at, statistic) VALUES (7, 'nb201', 'nb201', '{}', 1, 'pi-1', ?, '{}', "
        "'complete', 1, ?, 'local', 1, 2, 'p10')",
        ("0123456789abcdef", json.dumps({"a": 1.1, "b": 0.2, "n": 5})),
    )  # fmt: skip
    db.execute("INSERT INTO lut_entries VALUES (7, 'conv|3', ?, 2.5, 'uid-1')", (sha,))
    db.execute(
        "INSERT INTO lut_reports (id, lut_id, kind, created_at, n, within_5, within_10, rmspe, "
        "mape, max_ape, kendall_tau, threshold, stale, calibration, details) "
        "VALUES (3, 7, 'eval', 5, 10, 0.5, 0.9, 4.0, 3.0, 9.0, 0.8, NULL, 0, NULL, '{}')"
    )  # fmt: skip
    db.conn.close()
    return path


def test_a_v9_database_keeps_its_luts_as_fp32_and_takes_an_int8_one(tmp_path: Path) -> None:
    path = _v9_file(tmp_path / "v9.db")
    with CostDB(path) as db, CostDB(tmp_path / "fresh.db") as fresh:
        assert db.schema_version == LATEST_VERSION == 11
        store = LutStore(db)
        (old,) = store.find()
        # every id, column, entry and report is kept; the precision is fp32
        assert (old.id, old.precision, old.statistic, old.status) == (7, "fp32", "p10", "complete")
        assert old.calibration is not None and old.calibration.a == 1.1
        assert store.entries(7)["conv|3"].latency_ms == 2.5
        assert [r.id for r in store.reports(7)] == [3]
        # the same space, device and settings at int8 is another LUT beside it
        int8 = store.ensure(space="nb201", space_name="nb201", space_config={}, space_version=1,
                            device="pi-1", settings_hash="0123456789abcdef", settings={},
                            blocks_total=1, precision="int8")  # fmt: skip
        assert int8.id != 7 and int8.precision == "int8" and int8.entries == 0
        assert store.select(space_name="nb201", device="pi-1").id == 7
        assert store.select(space_name="nb201", device="pi-1", precision="int8").id == int8.id
        # deleting the old LUT still cascades to its entries and reports (the rebuilt tables
        # keep their foreign keys)
        store.delete(7)
        assert store.entries(7) == {} and store.reports(7) == []
        # an upgraded file has the very schema of a fresh one
        for table in ("luts", "lut_entries", "lut_reports"):
            assert _columns(db.db.conn, table) == _columns(fresh.db.conn, table)
        def indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return sorted(conn.execute(
                "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name LIKE 'lut%'"
            ).fetchall())  # fmt: skip
        assert indexes(db.db.conn) == indexes(fresh.db.conn)
        assert not db.db.execute("PRAGMA foreign_key_check").fetchall()
