"""The cost database on real SQLite files: records, the cache lookup, migrations, errors."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import (
    LATEST_VERSION,
    MIGRATIONS,
    CostDB,
    CostDBError,
    DeviceNotFound,
    InvalidRecord,
    Measurement,
    NotACostDB,
    SchemaTooNew,
    settings_hash,
)
from tests.controller.test_costdb_helpers import make_result, resolved_settings, sha_of


@pytest.fixture
def db(tmp_path: Path):
    with CostDB(tmp_path / "cost.db") as database:
        yield database


def test_record_then_lookup_returns_the_measurement(db: CostDB) -> None:
    result = make_result("m1")
    stored = db.record_measurement("pi-1", result)
    found = db.lookup(result.model_sha256, "pi-1", settings_hash(result.settings))
    assert found == stored
    assert found is not None and found.id is not None
    assert found.samples_ms == tuple(result.samples_ms)
    assert found.latency_ms == result.stats.median_ms
    assert found.method == "plain" and found.paired is None
    assert found.source == "local"
    assert found.freq_before_mhz == 2400.0 and found.temp_after_c is None
    assert found.throttled_after is True and found.throttled_before is False
    assert found.intra_op_threads == 1
    assert found.settings_proto() == result.settings
    assert db.get_model(result.model_sha256) is not None  # created on the fly


def test_lookup_misses_on_any_other_key(db: CostDB) -> None:
    result = make_result("m1")
    db.record_measurement("pi-1", result)
    h = settings_hash(result.settings)
    other_settings = settings_hash(resolved_settings(intra_op_threads=2))
    assert db.lookup(sha_of("m2"), "pi-1", h) is None
    assert db.lookup(result.model_sha256, "pi-2", h) is None
    assert db.lookup(result.model_sha256, "pi-1", other_settings) is None


def test_lookup_returns_the_newest_of_several_measurements(db: CostDB) -> None:
    older = make_result("m1", started_at=1000.0, samples=[5.0, 5.0, 5.0])
    newer = make_result("m1", started_at=2000.0, samples=[4.0, 4.0, 4.0])
    db.record_measurement("pi-1", newer)
    db.record_measurement("pi-1", older)  # recorded later, but measured earlier
    assert db.count_measurements() == 2
    found = db.lookup(older.model_sha256, "pi-1", settings_hash(older.settings))
    assert found is not None and found.started_at == 2000.0 and found.latency_ms == 4.0


def test_paired_latency_is_the_headline(db: CostDB) -> None:
    result = make_result("m1", paired=True)
    stored = db.record_measurement("pi-1", result)
    assert stored.method == "paired"
    assert stored.latency_ms == result.paired.latency_ms != result.stats.median_ms
    assert stored.paired is not None and stored.paired["reference_name"] == "ref"


def test_recording_the_same_result_twice_is_a_no_op(db: CostDB) -> None:
    result = make_result("m1")
    first = db.record_measurement("pi-1", result)
    second = db.record_measurement("pi-1", result, source="elsewhere")
    assert second == first  # the stored copy, with its id, recorded_at and source
    assert db.count_measurements() == 1


def test_timeout_and_memory_cap_do_not_change_the_settings_hash() -> None:
    a = resolved_settings(timeout_s=10.0)
    b = resolved_settings(timeout_s=999.0)
    b.memory_cap_bytes = 1
    assert settings_hash(a) == settings_hash(b)
    assert settings_hash(a) != settings_hash(resolved_settings(intra_op_threads=4))
    unspecified = resolved_settings()
    unspecified.graph_optimization = agent_pb2.GRAPH_OPTIMIZATION_UNSPECIFIED
    unspecified.method = agent_pb2.METHOD_UNSPECIFIED
    assert settings_hash(unspecified) == settings_hash(resolved_settings())
    assert len(settings_hash(a)) == 16


def test_cache_lookup_uses_the_index_without_sorting(db: CostDB) -> None:
    plan = db.db.conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM measurements "
        "WHERE model_sha256 = ? AND device = ? AND settings_hash = ? "
        "ORDER BY started_at DESC, id DESC LIMIT 1",
        ("a", "b", "c"),
    ).fetchall()
    details = " ".join(row[-1] for row in plan)
    assert "measurements_cache" in details
    assert "TEMP B-TREE" not in details


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.ClearField("samples_ms"), "at least one sample"),
        (lambda r: r.samples_ms.append(float("nan")), "finite"),
        (lambda r: setattr(r, "model_sha256", "not-a-hash"), "model_sha256"),
        (lambda r: r.ClearField("settings"), "no settings"),
        (lambda r: setattr(r.stats, "mean_ms", float("inf")), "mean_ms"),
    ],
)
def test_malformed_results_are_refused(db: CostDB, mutate, message: str) -> None:
    result = make_result("m1")
    mutate(result)
    with pytest.raises(InvalidRecord, match=message):
        db.record_measurement("pi-1", result)
    assert db.count_measurements() == 0


def test_paired_method_without_details_is_refused(db: CostDB) -> None:
    result = make_result("m1", paired=True)
    result.ClearField("paired")
    with pytest.raises(InvalidRecord, match="paired"):
        db.record_measurement("pi-1", result)


def test_devices_upsert_keeps_first_seen_and_description(db: CostDB) -> None:
    desc = agent_pb2.DeviceDescription(agent_version="0.1.0", host_fingerprint="h1")
    desc.cpu.logical_cores = 4
    first = db.upsert_device(
        "pi-1", device_class="pi4", address="10.0.0.5:50051", host_fingerprint="h1",
        description=desc, seen_at=100.0,
    )
    second = db.upsert_device(
        "pi-1", device_class="pi4b", address="10.0.0.6:50051", host_fingerprint="h1",
        seen_at=200.0,
    )
    assert first.first_seen == second.first_seen == 100.0
    assert second.last_seen == 200.0
    assert second.device_class == "pi4b" and second.address == "10.0.0.6:50051"
    assert second.description_proto() == desc  # None did not clobber it
    assert db.get_device("pi-1") == second
    assert [d.name for d in db.list_devices(device_class="pi4b")] == ["pi-1"]
    assert db.list_devices(device_class="other") == []


def test_device_addresses_never_carry_credentials(db: CostDB) -> None:
    for address in ("user:secret@10.0.0.5:50051", "host:1?token=abc"):
        with pytest.raises(InvalidRecord, match="credentials"):
            db.upsert_device("d", device_class="c", address=address, host_fingerprint="h")
    assert db.list_devices() == []


def test_removing_a_device_keeps_its_measurements(db: CostDB) -> None:
    db.upsert_device("pi-1", device_class="pi4", address="a:1", host_fingerprint="h")
    result = make_result("m1")
    db.record_measurement("pi-1", result)
    db.remove_device("pi-1")
    assert db.get_device("pi-1") is None
    assert db.lookup(result.model_sha256, "pi-1", settings_hash(result.settings)) is not None
    with pytest.raises(DeviceNotFound):
        db.remove_device("pi-1")
    (row,) = db.summary().per_device
    assert row.device == "pi-1" and row.device_class is None and row.measurements == 1


def test_record_model_never_clobbers_known_origin(db: CostDB) -> None:
    sha = sha_of("m1")
    db.record_model(sha, 1000, space="nb201", arch="|conv|", params=10, flops=20)
    model = db.record_model(sha, None, space=None, arch="", params=None, flops=None)
    assert (model.size_bytes, model.space, model.arch, model.params, model.flops) == (
        1000, "nb201", "|conv|", 10, 20,
    )
    assert db.record_model(sha, 1000, arch="|skip|").arch == "|skip|"
    with pytest.raises(InvalidRecord):
        db.record_model("ABC", 1)
    with pytest.raises(InvalidRecord):
        db.record_model(sha_of("x"), -1)


def test_measurement_queries_filter_and_count(db: CostDB) -> None:
    for i, device in enumerate(["a", "a", "b"]):
        db.record_measurement(device, make_result(f"m{i}", started_at=1000.0 + i))
    assert db.count_measurements() == 3
    assert db.count_measurements(device="a") == 2
    assert [m.started_at for m in db.measurements(device="a")] == [1000.0, 1001.0]
    assert len(db.measurements(limit=1)) == 1
    assert db.measurements(model_sha256=sha_of("m2"))[0].device == "b"
    one = db.measurements()[0]
    assert db.get_measurement(one.uid) == one


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "cost.db"
    with CostDB(path) as first:
        first.record_measurement("pi-1", make_result())
    with CostDB(path) as second:
        assert second.schema_version == LATEST_VERSION
        assert second.count_measurements() == 1
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT version, name FROM migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in MIGRATIONS]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cost.db"
    CostDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO migrations VALUES (?, 'from_the_future', 0)", (LATEST_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNew):
        CostDB(path)


def test_files_that_are_not_cost_databases_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("hello, this is not SQLite at all " * 100)
    with pytest.raises(NotACostDB):
        CostDB(text)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(NotACostDB, match="no fleetnas migration history"):
        CostDB(other)
    assert sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall() == [
        ("people",)
    ]


def test_a_path_in_a_missing_folder_is_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "no-such-folder" / "cost.db"
    with pytest.raises(CostDBError, match="create its folder or pass another --db") as caught:
        CostDB(path)
    assert str(path) in str(caught.value)
    assert not path.parent.exists()


def test_one_instance_can_be_shared_by_threads(db: CostDB) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(50):
                db.record_measurement(f"d{worker}", make_result(f"m{worker}-{i}"))
                db.lookup(sha_of(f"m{worker}-{i}"), f"d{worker}", "0" * 16)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.count_measurements() == 200


def test_memory_databases_work_and_need_no_path() -> None:
    with CostDB(memory=True) as db:
        db.record_measurement("d", make_result())
        assert db.count_measurements() == 1
    with pytest.raises(ValueError):
        CostDB()
    with pytest.raises(ValueError):
        CostDB("x.db", memory=True)


def test_bulk_insert_streams_and_creates_model_rows(db: CostDB) -> None:
    base = db.record_measurement("pi-1", make_result("m0"))

    def generated():
        for i in range(1, 6):
            yield Measurement.from_result(
                "pi-1", make_result(f"m{i % 3}", started_at=5000.0 + i), recorded_at=1.0
            )
        yield base  # already stored

    assert db.insert_measurements(generated()) == (5, 1)
    assert db.count_measurements() == 6
    for i in range(3):
        assert db.get_model(sha_of(f"m{i}")) is not None


def test_a_measurement_writes_its_model_row_once_with_the_size(db: CostDB) -> None:
    result = make_result("sized")
    db.record_measurement("pi-1", result, size_bytes=4321)
    model = db.get_model(result.model_sha256)
    assert model is not None and model.size_bytes == 4321
    again = make_result("sized", started_at=1_800_000_000.0)
    writes = db.db.conn.total_changes
    db.record_measurement("pi-1", again, size_bytes=4321)
    assert db.db.conn.total_changes == writes + 1  # the measurement; the model row is known
    stub = make_result("unsized")
    db.record_measurement("pi-1", stub)
    stored = db.get_model(stub.model_sha256)
    assert stored is not None and stored.size_bytes is None


def test_measurements_carry_the_hardware_of_their_device(db: CostDB) -> None:
    description = agent_pb2.DeviceDescription(
        host_fingerprint="host-1", board_model="Raspberry Pi 4",
        cpu=agent_pb2.CpuInfo(architecture="aarch64", model="Cortex-A72", logical_cores=4),
        runtime=agent_pb2.RuntimeInfo(available_providers=["CPUExecutionProvider"]),
    )
    db.upsert_device("pi-1", device_class="pi4", address="10.0.0.5:1", host_fingerprint="host-1",
                     description=description)
    device = db.get_device("pi-1")
    assert device is not None and device.hardware_id is not None
    stored = db.record_measurement("pi-1", make_result("hw"))
    assert stored.hardware_id == device.hardware_id
    # a result from another host than the described one: its hardware is not known
    other = db.record_measurement("pi-1", make_result("hw2", host_fingerprint="host-2"))
    assert other.hardware_id is None
    # another board behind the same name: other hardware, a miss
    description.board_model = "Raspberry Pi 5"
    db.upsert_device("pi-1", device_class="pi4", address="10.0.0.5:1", host_fingerprint="host-1",
                     description=description)
    new = db.get_device("pi-1")
    assert new is not None and new.hardware_id != device.hardware_id
    h = stored.settings_hash
    assert db.lookup(stored.model_sha256, "pi-1", h, hardware_id=device.hardware_id) == stored
    assert db.lookup(stored.model_sha256, "pi-1", h, hardware_id=new.hardware_id) is None
