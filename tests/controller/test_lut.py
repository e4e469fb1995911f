"""LUTs built, evaluated, checked, exported and resumed against real loopback agents.

The space is NAS-Bench-201 with 4 channels and one cell per stage (16 distinct
blocks, networks of well under a millisecond) and the benchmark settings are
tiny, so a whole build takes seconds. One agent and one LUT are shared by the
module's tests; the resume test starts its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.export import export_block
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.local_agents import start_local_agents, stop_local_agents
from fleetnas.controller.lut import (
    LatencyPredictor,
    LutStore,
    distinct_blocks,
    export_lut,
    import_lut,
    sample_archs,
)
from tests.controller.lut_cli import SPACE, SPACE_ARGS, TINY, LutCli, invoke, lut_cli


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LutCli]:
    with lut_cli(tmp_path_factory.mktemp("lut")) as b:
        b.build("--calibration-n", "5")
        yield b


def _lut(db: CostDB):  # type: ignore[no-untyped-def]
    (info,) = LutStore(db).find(space=SPACE.identity(), device="a0")
    return info


def test_build_measures_exactly_the_space_blocks_once(built: LutCli) -> None:
    keys = {b.key for b in SPACE.all_blocks()}
    # Every block of every arch of the space is a LUT key, and every key is used.
    used = {b.key for arch in SPACE.archs() for b in SPACE.blocks(arch)}
    assert used == keys and len(keys) == 16
    with CostDB(built.db_path) as db:
        info = _lut(db)
        entries = LutStore(db).entries(info.id)
        assert set(entries) == keys
        assert info.status == "complete" and info.entries == info.blocks_total == 16
        assert info.threads == 1 and info.calibration is not None and info.calibration.n == 5
        for block in distinct_blocks(SPACE):
            entry = entries[block.key]
            # The entry's model is the ONNX of that very block, recorded with its origin.
            assert entry.model_sha256 == export_block(
                SPACE, block, cache_dir=built.cache_dir).sha256
            model = db.get_model(entry.model_sha256)
            assert model is not None and (model.space, model.arch) == ("nb201",
                                                                       "block:" + block.key)
            measurement = db.get_measurement(entry.measurement_uid or "")
            assert measurement is not None
            assert measurement.latency_ms == entry.latency_ms
            assert measurement.settings_hash == info.settings_hash
            assert db.count_measurements(model_sha256=entry.model_sha256) == 1


def test_rebuild_is_all_cache_hits(built: LutCli) -> None:
    with CostDB(built.db_path) as db:
        before = db.count_measurements()
    result = invoke(*built.args("lut", "build", *SPACE_ARGS, *built.device_args(), *TINY,
                                "--calibration-n", "5", "--quiet"))
    assert result.exit_code == 0, result.output
    assert "│ from the cost DB │               16 │" in result.stdout
    assert "measured now     │                0" in result.stdout
    with CostDB(built.db_path) as db:
        assert db.count_measurements() == before


def test_prediction_equals_the_calibrated_sum_of_stored_entries(built: LutCli) -> None:
    with CostDB(built.db_path) as db:
        info = _lut(db)
        predictor = LatencyPredictor.from_db(db, SPACE, "a0", info.settings_hash)
        # Read the stored numbers straight from the tables, not through LutStore.
        stored = dict(db.db.execute(
            "SELECT block_key, latency_ms FROM lut_entries WHERE lut_id = ?", [info.id]
        ).fetchall())
        calibration = json.loads(db.db.execute(
            "SELECT calibration FROM luts WHERE id = ?", [info.id]).fetchone()[0])
    for arch in sample_archs(SPACE, 25, "test", 3):
        total = 0.0
        for block in SPACE.blocks(arch):
            total += stored[block.key]
        assert predictor.raw_sum(arch) == total
        assert predictor.predict(arch) == calibration["a"] * total + calibration["b"]


def test_eval_reports_the_figures_and_draws_the_scatter(built: LutCli) -> None:
    plot = built.root / "eval.png"
    result = invoke(*built.args("lut", "eval", *SPACE_ARGS, *built.device_args(),
                                "--n", "6", "--calibration-n", "5", "--plot", str(plot),
                                "--json"))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    acc = out["accuracy"]
    assert acc["n"] == 6 and len(out["rows"]) == 6
    assert 0 <= acc["within_5"] <= acc["within_10"] <= 1
    assert acc["rmspe"] >= acc["mape"] * 0.999 and acc["kendall_tau"] is not None
    calibration_archs = set(out["calibration"]["archs"])
    assert len(calibration_archs) == 5
    assert not calibration_archs & {row["arch"] for row in out["rows"]}  # never scored
    # The calibration archs are the build's: their measurements came from the DB.
    assert out["measured_now"] == 6
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    shown = json.loads(invoke(*built.args("lut", "show", "--device", "a0", "--json")).stdout)
    assert shown[0]["last_eval"]["n"] == 6
    assert shown[0]["last_eval"]["rmspe"] == pytest.approx(acc["rmspe"])


def test_check_measures_afresh_and_flags_a_stale_lut(built: LutCli) -> None:
    with CostDB(built.db_path) as db:
        before = db.count_measurements()
    ok = invoke(*built.args("lut", "check", *SPACE_ARGS, *built.device_args(), "--n", "2",
                            "--threshold", "10000", "--quiet"))
    assert ok.exit_code == 0, ok.output
    assert "ok: mean error" in ok.stdout
    stale = invoke(*built.args("lut", "check", *SPACE_ARGS, *built.device_args(), "--n", "2",
                               "--threshold", "1e-9", "--quiet"))
    assert stale.exit_code == 3, stale.output
    assert "STALE" in stale.stdout
    with CostDB(built.db_path) as db:
        # Same two archs both times, each measured afresh despite being cached.
        assert db.count_measurements() == before + 4
    shown = invoke(*built.args("lut", "show", *SPACE_ARGS))
    assert "STALE" in shown.stdout


def test_export_then_import_round_trips(built: LutCli, tmp_path: Path) -> None:
    result = invoke(*built.args("lut", "export", *SPACE_ARGS, "--device", "a0",
                                "--out-dir", str(tmp_path / "profiles")))
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "profiles" / "a0").iterdir())
    assert [p.suffix for p in written] == [".csv", ".json"]
    csv_path, json_path = written
    assert json_path.stem == f"nb201-{json_path.stem.split('-')[1]}-{_settings_hash(built)}"
    doc = json.loads(json_path.read_text())
    assert doc["provenance"]["onnxruntime_versions"] and doc["device"]["summary"]
    assert "hostname" not in doc["device"]["description"]
    with CostDB(built.db_path) as db:
        original = _lut(db)
        original_entries = LutStore(db).entries(original.id)
    archs = sample_archs(SPACE, 10, "test", 5)
    with CostDB(tmp_path / "other.db") as other:
        imported = import_lut(other, json_path).lut
        from_csv = import_lut(other, csv_path, device="a0-csv").lut
        for info in (imported, from_csv):
            assert info.settings == original.settings
            assert info.settings_hash == original.settings_hash
            assert info.status == "complete" and info.entries == 16
            entries = LutStore(other).entries(info.id)
            assert {k: e.latency_ms for k, e in entries.items()} == {
                k: e.latency_ms for k, e in original_entries.items()}
        assert imported.calibration == original.calibration
        assert from_csv.calibration is None  # the CSV carries entries, not the calibration
        mine = LatencyPredictor.from_lut(other, SPACE, imported)
        with CostDB(built.db_path) as db:
            theirs = LatencyPredictor.from_lut(db, SPACE, _lut(db))
        assert [mine.predict(a) for a in archs] == [theirs.predict(a) for a in archs]
        # Exporting the imported LUT writes the same entries again.
        again, _ = export_lut(other, imported, out_dir=tmp_path / "again")
        assert json.loads(again.read_text())["entries"] == [
            {k: e[k] for k in ("block_key", "model_sha256", "latency_ms", "measurement_uid")}
            for e in doc["entries"]
        ]


def test_unknown_space_and_device_are_clear_errors(built: LutCli, tmp_path: Path) -> None:
    result = invoke("--db", str(tmp_path / "x.db"), "lut", "build", "--space", "nope",
                    "--local")
    assert result.exit_code == 1
    assert "unknown search space 'nope'" in result.output
    assert "mbv3" in result.output and "nb201" in result.output
    result = invoke(*built.args("lut", "build", *SPACE_ARGS, "--device", "ghost",
                                "--fleet", str(built.fleet_path)))
    assert result.exit_code == 1
    assert "fleetnas fleet add ghost --address HOST:PORT --class CLASS" in result.output
    assert "devices in" in result.output and "a0" in result.output
    result = invoke("--db", str(tmp_path / "x.db"), "lut", "build", *SPACE_ARGS, "--device",
                    "ghost", "--fleet", str(tmp_path / "none.toml"))
    assert result.exit_code == 1 and "no fleet file" in result.output
    result = invoke(*built.args("lut", "eval", "--space", "mbv3", *built.device_args()))
    assert result.exit_code == 1 and "no LUT of mbv3 on a0" in result.output


def _settings_hash(built: LutCli) -> str:
    with CostDB(built.db_path) as db:
        return _lut(db).settings_hash


def _count(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    with CostDB(db_path) as db:
        return db.count_measurements()


def test_a_killed_build_resumes_without_measuring_anything_twice(tmp_path: Path) -> None:
    agents = start_local_agents(1, tmp_path / "agents", name_prefix="r")
    try:
        fleet_path = tmp_path / "fleet.toml"
        save_fleet(Fleet.of([Device("r0", "cpu", agents[0].address)]), fleet_path)
        db_path = tmp_path / "cost.db"
        fleetnas = [sys.executable, "-c", "from fleetnas.controller.cli import main; main()"]
        # Slower blocks (0.3 s of timed runs each) so the kill lands mid-build.
        argv = [*fleetnas, "--db", str(db_path), "lut", "build", *SPACE_ARGS, "--device", "r0",
                "--fleet", str(fleet_path), "--cache-dir", str(tmp_path / "onnx"),
                "--warmup", "2", "--min-runs", "5", "--min-duration", "0.3", "--max-duration",
                "0.4", "--calibration-n", "0", "--quiet"]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env={**os.environ, "COLUMNS": "200"})
        deadline = time.monotonic() + 120
        while _count(db_path) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        done_before = _count(db_path)
        assert 3 <= done_before < 16

        rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                               env={**os.environ, "COLUMNS": "200"})
        assert rerun.returncode == 0, rerun.stderr
        with CostDB(db_path) as db:
            assert db.count_measurements() == 16
            per_model = db.db.execute(
                "SELECT model_sha256, count(*) FROM measurements GROUP BY model_sha256"
            ).fetchall()
            assert len(per_model) == 16 and all(n == 1 for _, n in per_model)
            (info,) = LutStore(db).find(device="r0")
            assert info.status == "complete" and info.entries == 16
        assert f"│ from the cost DB │ {done_before:>16} │" in rerun.stdout
    finally:
        stop_local_agents(agents)
