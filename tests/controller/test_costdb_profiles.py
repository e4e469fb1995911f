"""Operator profiles in the cost database: stored with their measurement, read back by uid,
carried by export, import and merge."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB, ImportFormatError, InvalidRecord, Profile
from fleetnas.controller.costdb._codec import decode_csv, encode_csv
from tests.controller.test_costdb_helpers import make_result

V3_DUMP = Path(__file__).parent / "data" / "costdb_v3.sql"


def make_profile(scale: float = 1.0) -> agent_pb2.OperatorProfile:
    """A 3-node profile as an onnxruntime agent reports it."""
    nodes = [("conv_0", "Conv", 0.6 * scale), ("relu_0", "Relu", 0.1 * scale),
             ("gemm_0", "Gemm", 0.3 * scale)]
    total = sum(ms for _, _, ms in nodes)
    profile = agent_pb2.OperatorProfile(
        source=agent_pb2.PROFILE_SOURCE_ORT_PROFILING, profiled_runs=10,
        total_ms=total, run_median_ms=total * 1.2,
    )
    for name, op_type, ms in nodes:
        profile.operators.add(node_name=name, op_type=op_type, median_ms=ms, share=ms / total,
                              provider="CPUExecutionProvider", runs=10)
    for _, op_type, ms in sorted(nodes, key=lambda n: -n[2]):
        profile.op_types.add(op_type=op_type, nodes=1, total_ms=ms, share=ms / total)
    return profile


def profiled_result(label: str, *, started_at: float = 1000.0,
                    scale: float = 1.0) -> agent_pb2.BenchmarkResult:
    result = make_result(label, started_at=started_at)
    result.settings.profile = True
    result.profile.CopyFrom(make_profile(scale))
    return result


def _fill(db: CostDB) -> list[str]:
    """Two profiled measurements and one not; returns the uids of all three."""
    a = db.record_measurement("pi-1", profiled_result("a"))
    b = db.record_measurement("pi-1", profiled_result("b", started_at=2000.0, scale=2.0))
    c = db.record_measurement("pi-1", make_result("c"))
    return [a.uid, b.uid, c.uid]


def _profiles(db: CostDB, uids: list[str]) -> list[agent_pb2.OperatorProfile | None]:
    return [None if (p := db.get_profile(uid)) is None else p.proto() for uid in uids]


def test_a_profiled_result_stores_its_profile_under_the_measurements_uid() -> None:
    with CostDB(memory=True) as db:
        uids = _fill(db)
        a, b, c = _profiles(db, uids)
        assert a == make_profile() and b == make_profile(2.0) and c is None
        assert [op.median_ms for op in b.operators] == pytest.approx([1.2, 0.2, 0.6])
        assert {op.provider for op in a.operators} == {"CPUExecutionProvider"}
        # recording the same result again is a no-op for the profile too
        db.record_measurement("pi-1", profiled_result("a"))
        (n,) = db.db.execute("SELECT count(*) FROM measurement_profiles").fetchone()
        assert n == 2
        assert db.get_profile("0" * 32) is None


def test_a_bad_profile_stores_neither_profile_nor_measurement() -> None:
    result = profiled_result("a")
    result.profile.operators[1].median_ms = float("nan")
    with CostDB(memory=True) as db:
        with pytest.raises(InvalidRecord, match="profile: every time must be finite"):
            db.record_measurement("pi-1", result)
        assert db.count_measurements() == 0


def test_sql_reads_the_stored_profile(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with CostDB(path) as db:
        uid = _fill(db)[0]
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT json_extract(o.value, '$.op_type'), json_extract(o.value, '$.median_ms') "
            "FROM measurement_profiles, json_each(profile, '$.operators') AS o "
            "WHERE measurement_uid = ?", (uid,),
        ).fetchall()
    assert rows == [("Conv", 0.6), ("Relu", 0.1), ("Gemm", 0.3)]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_export_then_import_carries_the_profiles(tmp_path: Path, suffix: str) -> None:
    with CostDB(tmp_path / "origin.db") as db:
        uids = _fill(db)
        expected = _profiles(db, uids)
        report = db.export(tmp_path / f"dump{suffix}")
    assert (report.measurements, report.profiles) == (3, 2)
    with CostDB(tmp_path / "fresh.db") as db:
        imported = db.import_file(tmp_path / f"dump{suffix}")
        assert (imported.added, imported.profiles_added) == (3, 2)
        assert _profiles(db, uids) == expected
        again = db.import_file(tmp_path / f"dump{suffix}")
        assert (again.added, again.profiles_added) == (0, 0)


def test_merge_carries_the_profiles(tmp_path: Path) -> None:
    with CostDB(tmp_path / "bob.db") as db:
        uids = _fill(db)
        expected = _profiles(db, uids)
    with CostDB(tmp_path / "alice.db") as db:
        db.record_measurement("pi-1", profiled_result("a"))  # one of bob's, already here
        report = db.merge(tmp_path / "bob.db", source="bob")
        assert (report.added, report.skipped_duplicates, report.profiles_added) == (2, 1, 1)
        assert _profiles(db, uids) == expected


def _exported(tmp_path: Path) -> tuple[list[str], int]:
    """The lines of an export of :func:`_fill`, and the index of its first profile line."""
    with CostDB(tmp_path / "origin.db") as db:
        _fill(db)
        db.export(tmp_path / "dump.jsonl")
    lines = (tmp_path / "dump.jsonl").read_text().splitlines()
    return lines, next(i for i, line in enumerate(lines) if '"type":"profile"' in line)


def test_a_profile_line_before_its_measurement_is_refused(tmp_path: Path) -> None:
    lines, profile_at = _exported(tmp_path)
    lines.insert(1, lines.pop(profile_at))
    (tmp_path / "dump.jsonl").write_text("\n".join(lines) + "\n")
    with CostDB(tmp_path / "fresh.db") as db:
        with pytest.raises(ImportFormatError, match=r"dump.jsonl:2: profile of measurement"):
            db.import_file(tmp_path / "dump.jsonl")
        assert db.count_measurements() == 0


def test_a_garbled_profile_record_names_its_line(tmp_path: Path) -> None:
    lines, at = _exported(tmp_path)
    record = json.loads(lines[at])
    record["profile"]["operators"][0]["median_ms"] = "slow"
    lines[at] = json.dumps(record)
    (tmp_path / "dump.jsonl").write_text("\n".join(lines) + "\n")
    with CostDB(tmp_path / "fresh.db") as db:
        with pytest.raises(ImportFormatError, match=rf":{at + 1}: bad profile: profile: not an"):
            db.import_file(tmp_path / "dump.jsonl")


def test_a_database_from_before_profiles_migrates_and_merges(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.executescript(V3_DUMP.read_text())
    with CostDB(tmp_path / "new.db") as db:
        report = db.merge(old)  # read as it is: no profiles table there
        assert (report.added, report.profiles_added) == (3, 0)
    with CostDB(old) as db:  # migrated on open
        (measurement, *_) = db.measurements()
        assert db.get_profile(measurement.uid) is None
        uid = db.record_measurement("pi-1", profiled_result("new")).uid
        profile = db.get_profile(uid)
        assert isinstance(profile, Profile) and profile.proto() == make_profile()


_times = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)
_names = st.text(min_size=0, max_size=12)


@st.composite
def operator_profiles(draw: st.DrawFn) -> agent_pb2.OperatorProfile:
    profile = agent_pb2.OperatorProfile(
        source=draw(st.sampled_from(agent_pb2.ProfileSource.values())),
        profiled_runs=draw(st.integers(0, 1000)), total_ms=draw(_times),
        run_median_ms=draw(_times),
    )
    for _ in range(draw(st.integers(0, 5))):
        profile.operators.add(node_name=draw(_names), op_type=draw(_names),
                              median_ms=draw(_times), share=draw(st.floats(0, 1)),
                              provider=draw(_names), runs=draw(st.integers(0, 1000)))
    for _ in range(draw(st.integers(0, 3))):
        profile.op_types.add(op_type=draw(_names), nodes=draw(st.integers(0, 100)),
                             total_ms=draw(_times), share=draw(st.floats(0, 1)))
    return profile


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operator_profiles(), st.text("0123456789abcdef", min_size=32, max_size=32))
def test_a_profile_round_trips_through_json_sqlite_and_csv(
    message: agent_pb2.OperatorProfile, uid: str
) -> None:
    profile = Profile.from_message(uid, message)
    assert Profile.from_dict(json.loads(json.dumps(profile.to_dict()))).proto() == message
    assert Profile.from_row(profile.to_row()).proto() == message
    (column,) = [c for c in Profile.COLUMNS if c.name == "profile"]
    assert Profile(uid, decode_csv(column, encode_csv(column, profile.profile))).proto() == message
