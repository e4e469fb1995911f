"""``fleetnas measure`` and ``fleetnas agent local`` with real agents, through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import load_fleet, save_fleet
from tests import onnx_models
from tests.controller.conftest import AgentPool, fleet_of, fleetnas_cli

TINY = ["--warmup", "2", "--min-runs", "5", "--max-runs", "30", "--min-duration", "0",
        "--max-duration", "0.5"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no fleet.toml here: the embedded default applies
    monkeypatch.delenv("FLEETNAS_FLEET", raising=False)
    monkeypatch.delenv("FLEETNAS_DB", raising=False)
    return CliRunner()


def _model(tmp_path: Path, name: str = "mlp.onnx", seed: int = 0) -> Path:
    path = tmp_path / name
    path.write_bytes(onnx_models.mlp(32, 2, seed=seed))
    return path


def test_measure_with_no_setup_prints_a_table_then_answers_from_the_cache(
    runner: CliRunner, tmp_path: Path
) -> None:
    model = _model(tmp_path)
    cli = fleetnas_cli()
    first = runner.invoke(cli, ["measure", str(model), *TINY], env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert "starting a local agent" in first.stderr
    assert "mlp.onnx on local (measured)" in first.stdout
    assert "median (ms)" in first.stdout and "p90 / p99 (ms)" in first.stdout

    second = runner.invoke(cli, ["measure", str(model), *TINY, "--json"])
    assert second.exit_code == 0, second.output
    assert "starting a local agent" not in second.stderr  # a cache hit starts no agent
    (entry,) = json.loads(second.stdout)
    assert entry["status"] == "cached" and entry["device"] == "local"
    assert entry["measurement"]["latency_ms"] > 0
    assert len(entry["measurement"]["samples_ms"]) >= 5
    with CostDB(tmp_path / "fleetnas.db") as db:
        assert db.count_measurements() == 1
        assert db.get_device("local") is not None


def test_measure_on_a_class_of_the_fleet_with_json(
    runner: CliRunner, tmp_path: Path, agents: AgentPool
) -> None:
    started = agents.start(2)
    save_fleet(fleet_of(started, "cpu"), tmp_path / "fleet.toml")
    models = [_model(tmp_path, f"m{i}.onnx", seed=i) for i in range(3)]
    cli = fleetnas_cli()
    result = runner.invoke(cli, ["measure", *map(str, models), "--class", "cpu", "--device",
                                 "a1", *TINY, "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert len(entries) == 6
    assert {e["status"] for e in entries} == {"measured"}
    assert {e["device"] for e in entries} <= {"a0", "a1"}
    assert all(e["device"] == "a1" for e in entries if e["target"] == {"device": "a1"})

    table = runner.invoke(cli, ["measure", str(models[0]), "--class", "cpu", *TINY])
    assert table.exit_code == 0 and "(cached)" in table.stdout


def test_measure_errors_are_one_line_and_say_what_to_do(
    runner: CliRunner, tmp_path: Path, agents: AgentPool
) -> None:
    (agent,) = agents.start(1)
    save_fleet(fleet_of([agent], "cpu"), tmp_path / "fleet.toml")
    model = _model(tmp_path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(onnx_models.random_bytes(256))
    cli = fleetnas_cli()
    cases = [
        (["measure", str(model), "--device", "pi4"],
         "device 'pi4' is not in fleet.toml: add it with `fleetnas fleet add pi4"),
        (["measure", str(model)], "--device NAME or --class CLASS (fleet.toml has classes: cpu)"),
        (["measure", str(model), "--class", "cpu", "--shape", "x=1xA"], "bad shape"),
        (["measure", str(bad), "--class", "cpu", *TINY], "error: bad.onnx on class 'cpu': "),
    ]
    for args, message in cases:
        result = runner.invoke(cli, args)
        assert result.exit_code in (1, 2), (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_agent_local_serves_writes_the_fleet_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.toml"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-c", "from fleetnas.controller.cli.agent import agent; agent()",
         "local", "--count", "2", "--fleet", str(fleet_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not fleet_file.exists():
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        fleet = load_fleet(fleet_file)
        assert [(d.name, d.device_class) for d in fleet] == [("local-0", "local"),
                                                             ("local-1", "local")]
        model = _model(tmp_path)
        result = CliRunner().invoke(
            fleetnas_cli(),
            ["--db", str(tmp_path / "c.db"), "measure", str(model), "--class", "local",
             "--fleet", str(fleet_file), *TINY, "--json"],
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)[0]["device"] in {"local-0", "local-1"}
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "127.0.0.1:" in out and "stopping agents" in err
    # the project's own folder beside its fleet file, not the user's global cache
    logs = sorted((tmp_path / ".fleetnas" / "local-agents").glob("*/agent.log"))
    assert len(logs) == 2 and not (tmp_path / "cache" / "fleetnas-local-agents").exists()
    for log in logs:
        assert "stopped" in log.read_text()  # drained and stopped, not killed


def test_a_batch_over_one_reports_throughput_next_to_latency(
    runner: CliRunner, tmp_path: Path
) -> None:
    model = tmp_path / "dyn.onnx"
    model.write_bytes(onnx_models.dynamic_batch_mlp(64))
    cli = fleetnas_cli()
    result = runner.invoke(cli, ["measure", str(model), *TINY, "--shape", "x=8x64", "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    latency = entry["measurement"]["latency_ms"]
    assert entry["batch"] == 8
    assert entry["throughput_items_per_s"] == pytest.approx(8 * 1000 / latency)
    table = runner.invoke(cli, ["measure", str(model), *TINY, "--shape", "x=8x64"],
                          env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert f"{8 * 1000 / latency:.4g} items/s (batch 8)" in table.stdout  # the cached figure
    single = runner.invoke(cli, ["measure", str(_model(tmp_path)), *TINY, "--json"])
    (one,) = json.loads(single.stdout)
    assert one["batch"] == 1 and one["throughput_items_per_s"] == pytest.approx(
        1000 / one["measurement"]["latency_ms"])
