"""``fleetnas search`` / ``search show`` / ``search list`` / ``export`` against a real loopback agent.

NAS-Bench-201 with 4 channels and one cell per stage (sub-millisecond
networks) and tiny benchmark settings keep each search to seconds. One agent
serves the module; the kill-and-resume test runs ``fleetnas search`` as a
real subprocess and SIGKILLs it mid-search.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner, Result

from fleetnas.controller.cli import main
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import SearchStore
from fleetnas.controller.export import export_arch
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.local_agents import LocalAgent, start_local_agents, stop_local_agents
from fleetnas.controller.spaces import get_space

SPACE_CONFIG = {"channels": 4, "cells_per_stage": 1}
SPACE = get_space("nb201", SPACE_CONFIG)
TINY = ["--warmup", "2", "--min-runs", "5", "--max-runs", "20", "--min-duration", "0",
        "--max-duration", "0.2"]


@dataclass
class Setup:
    agent: LocalAgent
    root: Path
    fleet_path: Path

    def search_args(self, db: Path, *more: str) -> list[str]:
        return ["--db", str(db), "search", "--space", "nb201", "--space-config",
                json.dumps(SPACE_CONFIG), "--class", "cpu", "--fleet", str(self.fleet_path),
                "--cache-dir", str(self.root / "onnx"), *TINY, "--quiet", *more]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "240"}, catch_exceptions=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("search-cli")
    (agent,) = start_local_agents(1, root / "agents", name_prefix="s")
    try:
        fleet_path = root / "fleet.toml"
        save_fleet(Fleet.of([Device("s0", "cpu", agent.address)]), fleet_path)
        yield Setup(agent, root, fleet_path)
    finally:
        stop_local_agents([agent])


def _measurement_counts(db_path: Path) -> list[tuple[str, str, str, int]]:
    with CostDB(db_path) as db:
        return db.db.execute(
            "SELECT model_sha256, device, settings_hash, count(*) FROM measurements "
            "GROUP BY 1, 2, 3"
        ).fetchall()


def test_search_prints_the_front_and_writes_json_csv_and_plot(setup: Setup, tmp_path: Path) -> None:
    db_path = tmp_path / "cost.db"
    result = invoke(*setup.search_args(
        db_path, "--mode", "measured", "--budget", "8", "--population", "4",
        "--json", str(tmp_path / "s.json"), "--csv", str(tmp_path / "s.csv"),
        "--plot", str(tmp_path / "s.png"),
    ))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "search 1: Pareto front" in result.stdout
    assert "search 1: 8 candidates evaluated; 8 latency measurements (8 run on devices" in result.stdout
    document = json.loads((tmp_path / "s.json").read_text())
    assert document["search"]["status"] == "complete" and len(document["trials"]) == 8
    front = document["front"]
    assert [row["rank"] for row in front] == list(range(1, len(front) + 1))
    with CostDB(db_path) as db:
        for row in document["trials"]:
            assert row["source"] == "measured"
            stored = db.get_measurement(row["measurements"]["latency[cpu]"])
            assert stored is not None and stored.model_sha256 == row["model_sha256"]
            assert row["latency[cpu]"] == stored.latency_ms
            model = db.get_model(row["model_sha256"])
            assert model is not None and model.arch == row["arch"] and model.space == SPACE.identity()
    csv_lines = (tmp_path / "s.csv").read_text().splitlines()
    assert csv_lines[0] == ("rank,candidate_id,arch,naswot score,latency[cpu],feasible,violation,"
                            "source,model_sha256")
    assert len(csv_lines) == 1 + len(front)
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    listed = json.loads(invoke("--db", str(db_path), "search", "list", "--json").stdout)
    assert [(s["id"], s["status"], s["trials"], s["measured"]) for s in listed] == [(1, "complete", 8, 8)]
    shown = invoke("--db", str(db_path), "search", "show", "1", "--all")
    assert shown.exit_code == 0 and "all candidates" in shown.stdout
    assert front[0]["arch"] in shown.stdout


def test_a_proxy_is_shown_as_a_score_and_training_as_accuracy(setup: Setup, tmp_path: Path) -> None:
    """naswot values read "naswot score" on the table, JSON, CSV, plot, report and search show;
    short training on held-out digits reads "accuracy"."""
    db_path = tmp_path / "cost.db"
    proxy = invoke(*setup.search_args(
        db_path, "--mode", "measured", "--budget", "3", "--population", "3", "--accuracy",
        "naswot", "--json", str(tmp_path / "p.json"), "--csv", str(tmp_path / "p.csv"),
        "--plot", str(tmp_path / "p.png"),
    ))  # fmt: skip
    assert proxy.exit_code == 0, proxy.output
    assert "naswot score ↑" in proxy.stdout and "accuracy ↑" not in proxy.stdout
    document = json.loads((tmp_path / "p.json").read_text())
    assert {"name": "accuracy", "direction": "maximize", "label": "naswot score"} in document["objectives"]
    assert all("naswot score" in row and "accuracy" not in row for row in document["trials"])
    assert (tmp_path / "p.csv").read_text().splitlines()[0].split(",")[3] == "naswot score"
    shown = invoke("--db", str(db_path), "search", "show", "1")
    assert "naswot score ↑" in shown.stdout and "accuracy ↑" not in shown.stdout
    html = invoke("--db", str(db_path), "report", "1", "-o", str(tmp_path / "r.html"), "--quiet")
    assert html.exit_code == 0, html.output
    page = (tmp_path / "r.html").read_text()
    assert "naswot score ↑" in page and "accuracy ↑" not in page

    trained = invoke(*setup.search_args(
        db_path, "--mode", "measured", "--budget", "2", "--population", "2", "--accuracy",
        "train:digits,epochs=1,max_train_samples=64,max_val_samples=64", "--json",
        str(tmp_path / "t.json"), "--no-plot",
    ))  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "accuracy ↑" in trained.stdout and "score" not in trained.stdout
    rows = json.loads((tmp_path / "t.json").read_text())["trials"]
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows)


def test_constraints_are_respected_end_to_end(setup: Setup, tmp_path: Path) -> None:
    db_path = tmp_path / "cost.db"
    first = invoke(*setup.search_args(db_path, "--mode", "measured", "--budget", "8",
                                      "--population", "4", "--json", str(tmp_path / "a.json")))
    assert first.exit_code == 0, first.output
    latencies = sorted(r["latency[cpu]"] for r in json.loads((tmp_path / "a.json").read_text())["trials"])
    bound = latencies[len(latencies) // 2]
    # The same seed proposes the same first candidates: those come from the cost DB.
    second = invoke(*setup.search_args(
        db_path, "--mode", "measured", "--budget", "12", "--population", "4",
        "--constraint", f"latency[cpu] <= {bound!r} ms", "--json", str(tmp_path / "b.json"),
    ))  # fmt: skip
    assert second.exit_code == 0, second.output
    document = json.loads((tmp_path / "b.json").read_text())
    assert document["constraints"] == [f"latency[cpu] <= {bound!r} ms"]
    assert any(not row["feasible"] for row in document["trials"])
    assert document["front"]
    for row in document["front"]:
        assert row["feasible"] and row["latency[cpu]"] <= bound
    summary = document["search"]
    assert summary["measured"] == 12 and summary["device_runs"] <= 12 - 4
    assert all(n == 1 for *_, n in _measurement_counts(db_path))


def test_export_writes_a_valid_onnx_that_matches_its_arch_string(setup: Setup, tmp_path: Path) -> None:
    db_path = tmp_path / "cost.db"
    assert invoke(*setup.search_args(db_path, "--mode", "measured", "--budget", "6",
                                     "--population", "3", "--no-plot")).exit_code == 0
    out = tmp_path / "out" / "net.onnx"
    result = invoke("--db", str(db_path), "export", "1", "--rank", "2", "-o", str(out),
                    "--cache-dir", str(setup.root / "onnx"))
    assert result.exit_code == 0, result.output
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    arch_text = out.with_suffix(".txt").read_text().strip()
    with CostDB(db_path) as db:
        ranked = [r for r in SearchStore(db).candidates(1) if r.state == "complete"]
    by_id = {r.candidate_id: r for r in ranked}
    row = by_id[sidecar["candidate_id"]]
    assert sidecar["rank"] == 2 and sidecar["arch"] == arch_text == row.encoding
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digest == sidecar["sha256"] == row.model_sha256  # the very model that was measured
    rebuilt = export_arch(SPACE, SPACE.decode(arch_text), use_cache=False)
    assert rebuilt.onnx_bytes == out.read_bytes()
    assert sidecar["input_shape"] == [1, 3, 32, 32]
    too_far = invoke("--db", str(db_path), "export", "1", "--rank", "99", "-o", str(out))
    assert too_far.exit_code == 1 and "pick --rank 1.." in too_far.output

    # --format torch: the same network, trainable; its outputs are the ONNX model's.
    import numpy as np
    import onnxruntime as ort
    import torch

    pt = tmp_path / "out" / "net.pt"
    torch_export = invoke("--db", str(db_path), "export", "1", "--rank", "2", "--format", "torch",
                          "-o", str(pt), "--cache-dir", str(setup.root / "onnx"))
    assert torch_export.exit_code == 0, torch_export.output
    builder = json.loads(pt.with_suffix(".json").read_text())["builder"]
    space = get_space(builder["space"], builder["space_config"])
    net = space.build(space.decode(arch_text))
    net.load_state_dict(torch.load(pt))
    assert f"{type(net).__module__}.{type(net).__qualname__}" == builder["module_class"]
    x = np.random.default_rng(0).standard_normal(sidecar["input_shape"]).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    expected = session.run(None, {sidecar["input_name"]: x})[0]
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert any(p.requires_grad for p in net.parameters())  # trainable, not a frozen graph


def test_friendly_errors(setup: Setup, tmp_path: Path) -> None:
    db_path = tmp_path / "cost.db"
    unknown = invoke("--db", str(db_path), "search", "--space", "nb201", "--class", "gpu",
                     "--fleet", str(setup.fleet_path), "--quiet")
    assert unknown.exit_code == 1 and "gpu" in unknown.output
    missing = invoke("--db", str(db_path), "search", "show", "7")
    assert missing.exit_code == 1 and "no search 7" in missing.output
    bad = invoke("--db", str(db_path), "search", "--space", "nb201", "--local",
                 "--constraint", "latency[pi] <= 3 ms")
    assert bad.exit_code == 2 and "no target 'pi'" in bad.output
    no_space = invoke("--db", str(db_path), "search", "--space", "bogus", "--local")
    assert no_space.exit_code == 2
    assert "unknown search space 'bogus'" in no_space.output and "nb201" in no_space.output
    table = tmp_path / "acc.csv"
    table.write_text("arch,accuracy\n|conv~0|,0.9\n")
    untabled = invoke(*setup.search_args(db_path, "--accuracy", f"table:{table}", "--budget", "2"))
    assert untabled.exit_code == 1 and len(untabled.output.strip().splitlines()) == 1
    assert f"accuracy table {table} line 2: arch '|conv~0|'" in untabled.output
    nowhere = tmp_path / "missing-folder" / "cost.db"
    unopenable = invoke("--db", str(nowhere), "search", "--space", "nb201", "--local", "--quiet")
    assert unopenable.exit_code == 1 and len(unopenable.output.strip().splitlines()) == 1
    assert str(nowhere) in unopenable.output and "pass another --db" in unopenable.output


def test_a_timeout_stops_cleanly_and_a_measurement_budget_ends_the_resumed_search(
    setup: Setup, tmp_path: Path
) -> None:
    db_path = tmp_path / "cost.db"
    # 1 ms: over after the first step (4 candidates, 4 measurements), before the second
    first = invoke(*setup.search_args(db_path, "--mode", "measured", "--population", "4",
                                      "--max-measurements", "12", "--timeout", "0.001s",
                                      "--no-plot"))
    assert first.exit_code == 0, first.output
    with CostDB(db_path) as db:
        (record,) = SearchStore(db).searches()
    assert (record.status, record.trials, record.measured, record.budget) == (
        "interrupted", 4, 4, None)
    assert (f"stopped after --timeout 0.001s at 4 candidates, 4/12 measurements: resume with "
            f"`fleetnas search --resume {record.id}`") in first.output
    again = invoke("--db", str(db_path), "search", "--resume", str(record.id), "--fleet",
                   str(setup.fleet_path), "--cache-dir", str(setup.root / "onnx"), "--quiet",
                   "--no-plot", "--timeout", "1h")
    assert again.exit_code == 0, again.output
    assert f"resuming search {record.id} at 4 candidates, 4/12 measurements" in again.output
    assert "stopped: the measurement budget is spent" in again.output
    with CostDB(db_path) as db:
        done = SearchStore(db).get(record.id)
    assert (done.status, done.trials, done.measured) == ("complete", 12, 12)


def test_budget_flags_are_checked_before_anything_runs(tmp_path: Path) -> None:
    db_path = tmp_path / "cost.db"
    base = ["--db", str(db_path), "search", "--space", "nb201", "--local", "--quiet"]
    bad_time = invoke(*base, "--timeout", "5x")
    assert bad_time.exit_code == 2
    assert "'5x': expected a duration such as 90s, 30m, 2h or 1h30m" in bad_time.output
    zero = invoke(*base, "--timeout", "0")
    assert zero.exit_code == 2 and "expected a positive duration" in zero.output
    nothing_measured = invoke(*base, "--mode", "lut", "--max-measurements", "5")
    assert nothing_measured.exit_code == 2
    assert "max_measurements: mode lut measures nothing" in nothing_measured.output
    assert not db_path.exists()


@pytest.mark.parametrize("command", [["search", "list"], ["search", "show", "1"],
                                     ["search", "--resume", "1", "--local"], ["export", "1"]])
def test_read_only_commands_never_create_a_database(tmp_path: Path, command: list[str]) -> None:
    db_path = tmp_path / "absent.db"
    result = invoke("--db", str(db_path), *command)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert f"no cost database at {db_path}" in result.output
    assert list(tmp_path.iterdir()) == []  # not the file, nor its -wal/-shm


def _complete(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    with CostDB(db_path) as db:
        return int(db.db.execute("SELECT count(*) FROM measurements").fetchone()[0])


def test_a_killed_search_resumes_without_measuring_anything_twice(setup: Setup, tmp_path: Path) -> None:
    db_path = tmp_path / "cost.db"
    fleetnas = [sys.executable, "-c", "from fleetnas.controller.cli import main; main()"]
    budget = 12
    # Slower benchmarks (0.3 s of timed runs each) so the kill lands mid-search.
    argv = [*fleetnas, "--db", str(db_path), "search", "--space", "nb201", "--space-config",
            json.dumps(SPACE_CONFIG), "--class", "cpu", "--fleet", str(setup.fleet_path),
            "--cache-dir", str(setup.root / "onnx"), "--warmup", "2", "--min-runs", "5",
            "--min-duration", "0.3", "--max-duration", "0.4", "--mode", "measured",
            "--budget", str(budget), "--population", "4", "--seed", "7", "--quiet", "--no-plot"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 180
        # 6 measurements: the second batch of 4 is half measured, none of it told yet.
        while _complete(db_path) < 6 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    before = _complete(db_path)
    assert 6 <= before < budget
    with CostDB(db_path) as db:
        (record,) = SearchStore(db).searches()
        assert record.status == "running" and record.trials < before

    rerun = subprocess.run([*fleetnas, "--db", str(db_path), "search", "--resume", str(record.id),
                            "--fleet", str(setup.fleet_path), "--cache-dir",
                            str(setup.root / "onnx"), "--quiet", "--no-plot"],
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "COLUMNS": "200"})
    assert rerun.returncode == 0, rerun.stderr
    counts = _measurement_counts(db_path)
    assert len(counts) == budget and all(n == 1 for *_, n in counts)  # one row per model/device/settings
    with CostDB(db_path) as db:
        done = SearchStore(db).get(record.id)
        assert (done.status, done.trials, done.measured, done.owner) == ("complete", budget, budget, None)
        # runs made after the last commit before the kill count as cache hits on resume
        assert done.device_runs == budget - (before - record.trials)
        rows = SearchStore(db).candidates(record.id)
        assert len(rows) == budget and all(r.state == "complete" for r in rows)
        for row in rows:  # what the engine was told is what was measured
            stored = db.get_measurement(row.measurements["latency[cpu]"])
            assert stored is not None and stored.latency_ms == row.metrics["latency[cpu]"]
            assert stored.model_sha256 == row.model_sha256
        assert len({r.model_sha256 for r in rows}) == budget
    assert f"search {record.id}: {budget} candidates evaluated" in rerun.stdout
