"""``fleetnas demo --tiny`` end to end: real loopback agents, LUTs, a hybrid multi-device search."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from click.testing import CliRunner, Result

from fleetnas.controller.cli import main
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import SearchConfig, SearchStore
from fleetnas.controller.lut import LutStore


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "240"}, catch_exceptions=False)


def test_the_demo_runs_end_to_end_and_a_rerun_measures_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    first = invoke("demo", "--tiny", "--dir", str(workdir), "--quiet")
    assert first.exit_code == 0, first.output
    for step in ("1/4", "2/4", "3/4", "4/4", "Pareto front", "timings:"):
        assert step in first.stdout
    assert (workdir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (workdir / "pareto.csv").read_text().startswith(  # a proxy's value is a score
        "rank,candidate_id,arch,naswot score,latency[cpu-1t],latency[cpu-2t],feasible"
    )
    assert "naswot score ↑" in first.stdout and "accuracy ↑" not in first.stdout
    assert "maximise naswot score (a training-free proxy, not an accuracy)" in first.stdout
    onnx.checker.check_model(onnx.load(str(workdir / "best.onnx")))
    document = json.loads((workdir / "pareto.json").read_text())
    (constraint,) = document["constraints"]
    bound = float(constraint.split("<=")[1].split()[0])
    assert document["front"]
    for row in document["front"]:  # the front is measured on both classes and feasible
        assert row["source"] == "measured" and row["feasible"]
        assert set(row["measurements"]) == {"latency[cpu-1t]", "latency[cpu-2t]"}
        assert row["latency[cpu-1t]"] <= bound
    best = json.loads((workdir / "best.json").read_text())
    assert best["arch"] == document["front"][0]["arch"]

    db_path = workdir / "fleetnas.db"
    with CostDB(db_path) as db:
        luts = LutStore(db).find(space_name="nb201")
        assert sorted((lut.device, lut.threads, lut.status) for lut in luts) == [
            ("cpu-1t-0", 1, "complete"), ("cpu-2t-0", 2, "complete")]
        # calibrated, or (a tiny LUT on a noisy host: the slope came out <= 0) said so
        uncalibrated = sum(lut.calibration is None for lut in luts)
        assert " ".join(first.stdout.split()).count("; not calibrated (") == uncalibrated
        (record,) = SearchStore(db).searches()
        config = SearchConfig.from_dict(record.config)
        assert (record.status, record.mode, record.trials) == ("complete", "hybrid", 12)
        assert set(config.luts) == {"cpu-1t", "cpu-2t"}
        assert [t.request().intra_op_threads for t in config.targets] == [1, 2]
        assert record.measured + record.predicted == 2 * 12
        threads = {t for (t,) in db.db.execute("SELECT DISTINCT intra_op_threads FROM measurements")}
        assert threads == {1, 2}

    # Without any agent: a LUT-only search over the same classes, from the demo's database.
    lut_only = invoke("--db", str(db_path), "search", "--space", "nb201", "--space-config",
                      json.dumps(config.space_config), "--class", "cpu-1t:threads=1",
                      "--class", "cpu-2t:threads=2", "--mode", "lut", "--budget", "10",
                      "--population", "5", "--quiet", "--no-plot",
                      "--fleet", str(tmp_path / "no-fleet.toml"))
    assert lut_only.exit_code == 0, lut_only.output
    assert "10 candidates evaluated; 0 latency measurements" in lut_only.stdout
    assert "20 latencies predicted" in lut_only.stdout

    again = invoke("demo", "--tiny", "--dir", str(workdir), "--quiet")
    assert again.exit_code == 0, again.output
    with CostDB(db_path) as db:
        rerun = SearchStore(db).searches()[0]
    assert rerun.trials == 12 and rerun.measured > 0
    assert rerun.device_runs == 0  # same seed: every measurement came from the cost DB
    assert f"search {rerun.id}: 12 candidates evaluated" in again.stdout
