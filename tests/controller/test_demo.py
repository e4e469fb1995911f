"""``fleetnas demo --tiny`` end to end: real loopback agents, LUTs, a supernet on digits, a hybrid
multi-device search; then ``--accuracy naswot``."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner, Result

from fleetnas.controller.accuracy.supernet import SupernetStore
from fleetnas.controller.cli import main
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import SearchConfig, SearchStore
from fleetnas.controller.lut import LutStore
from fleetnas.controller.spaces import get_space

SUPERNET = "supernet accuracy (held-out digits)"

# Three tiny demos (the first trains a supernet); every benchmark waits for this host's
# cross-process lock, which other processes on a shared machine hold too.
pytestmark = pytest.mark.timeout(900)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "240"}, catch_exceptions=False)


def test_the_demo_runs_end_to_end_and_a_rerun_measures_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    first = invoke("demo", "--tiny", "--dir", str(workdir), "--quiet")
    assert first.exit_code == 0, first.output
    for step in ("1/5", "2/5", "3/5", "4/5", "5/5", "Pareto front", "timings:"):
        assert step in first.stdout
    assert (workdir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (workdir / "pareto.csv").read_text().startswith(  # held-out accuracy, and on what
        f"rank,candidate_id,arch,{SUPERNET},latency[cpu-1t],latency[cpu-2t],feasible"
    )
    text = " ".join(first.stdout.split())
    assert f"{SUPERNET} ↑" in first.stdout and "naswot" not in first.stdout
    assert f"maximise {SUPERNET} (validation top-1 of each candidate on the supernet's weights)" in text
    assert "384 of 1438 training images, 359 held out (20 %), 120 of them scored" in text
    assert "(trained: 1 epochs on digits;" in text
    onnx.checker.check_model(onnx.load(str(workdir / "best.onnx")))
    document = json.loads((workdir / "pareto.json").read_text())
    (constraint,) = document["constraints"]
    bound = float(constraint.split("<=")[1].split()[0])
    assert document["front"]
    for row in document["front"]:  # the front is measured on both classes and feasible
        assert row["source"] == "measured" and row["feasible"]
        assert 0.0 <= row[SUPERNET] <= 1.0 and row["sources"]["accuracy"] == "estimator"
        assert set(row["measurements"]) == {"latency[cpu-1t]", "latency[cpu-2t]"}
        assert row["latency[cpu-1t]"] <= bound
    # a real supernet scores archs differently (a constant would be no estimator at all)
    scores = {row["candidate_id"]: row[SUPERNET] for row in document["trials"]}
    assert len(scores) == 12 and len(set(scores.values())) > 1
    assert all(0.0 <= value <= 1.0 for value in scores.values())
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
        assert config.accuracy is not None and config.accuracy.startswith("supernet:digits,")
        assert [t.request().intra_op_threads for t in config.targets] == [1, 2]
        assert record.measured + record.predicted == 2 * 12
        threads = {t for (t,) in db.db.execute("SELECT DISTINCT intra_op_threads FROM measurements")}
        assert threads == {1, 2}
        measurements = db.db.execute("SELECT count(*) FROM measurements").fetchone()[0]
    store = SupernetStore(workdir / "supernets")
    (manifest,) = store.manifests()  # one supernet, trained on digits in the demo's folder
    assert manifest.complete and manifest.epochs_done == 1 and manifest.dataset["name"] == "digits"
    assert manifest.space == get_space("nb201", config.space_config).identity()
    checkpoint = store.folder(manifest.key) / "checkpoint.pt"
    trained = (checkpoint.stat().st_mtime_ns, checkpoint.read_bytes(),
               (store.folder(manifest.key) / "manifest.json").read_text())

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
        assert db.db.execute("SELECT count(*) FROM measurements").fetchone()[0] == measurements
    assert rerun.trials == 12 and rerun.measured > 0
    assert rerun.device_runs == 0  # same seed: every measurement came from the cost DB
    assert f"search {rerun.id}: 12 candidates evaluated" in again.stdout
    # the supernet was reused, not trained again: the store is exactly as the first run left it
    assert [m.key for m in store.manifests()] == [manifest.key]
    assert (checkpoint.stat().st_mtime_ns, checkpoint.read_bytes(),
            (store.folder(manifest.key) / "manifest.json").read_text()) == trained
    assert f"supernet {manifest.key} (reused: 1 epochs on digits;" in " ".join(again.stdout.split())
    rerun_document = json.loads((workdir / "pareto.json").read_text())
    assert {r["candidate_id"]: r[SUPERNET] for r in rerun_document["trials"]} == scores

    # The old proxy: the NASWOT score, labelled as a score, and no supernet touched.
    proxy = invoke("demo", "--tiny", "--dir", str(workdir), "--quiet", "--accuracy", "naswot")
    assert proxy.exit_code == 0, proxy.output
    assert (workdir / "pareto.csv").read_text().startswith(
        "rank,candidate_id,arch,naswot score,latency[cpu-1t],latency[cpu-2t],feasible"
    )
    assert "naswot score ↑" in proxy.stdout and "supernet accuracy" not in proxy.stdout
    assert "maximise naswot score (a training-free proxy, not an accuracy)" in proxy.stdout
    with CostDB(db_path) as db:
        naswot_search = SearchStore(db).searches()[0]
        assert SearchConfig.from_dict(naswot_search.config).accuracy == "naswot"
    assert naswot_search.trials == 12
    assert [m.key for m in store.manifests()] == [manifest.key]
