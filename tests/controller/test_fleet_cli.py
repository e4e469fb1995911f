"""``fleetnas fleet ...`` with real agents, and secrets that never reach the DB or fleet file."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import ClientFactory, load_fleet
from fleetnas.controller.scheduler import Job, NoDeviceAvailable, OutcomeStatus, Scheduler
from tests import onnx_models
from tests.controller.conftest import AgentPool, fleet_of, fleetnas_cli, tiny_settings

TOKEN = "s3cret-token-7f1e9a"  # distinctive, so a grep of the files cannot miss it


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEETNAS_FLEET", raising=False)
    monkeypatch.delenv("FLEETNAS_DB", raising=False)
    return CliRunner()


def _dead_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_fleet_add_list_status_remove(runner: CliRunner, tmp_path: Path, agents: AgentPool):
    (agent,) = agents.start(1, token=TOKEN)
    cli = fleetnas_cli()
    env = {"COLUMNS": "250", "FLEETNAS_LIVE_TOKEN": TOKEN}

    added = runner.invoke(cli, ["fleet", "add", "live", "--address", agent.address, "--class",
                                "cpu", "--token-env", "FLEETNAS_LIVE_TOKEN"], env=env)
    assert added.exit_code == 0, added.output
    assert "up" in added.output
    dead = runner.invoke(cli, ["fleet", "add", "dead", "--address", _dead_address(),
                               "--class", "cpu"], env=env)
    assert dead.exit_code == 0 and "not answering now: unreachable" in dead.output
    again = runner.invoke(cli, ["fleet", "add", "live", "--address", "h:1", "--class", "x"])
    assert again.exit_code == 1 and "fleetnas fleet remove live" in again.output

    listed = runner.invoke(cli, ["fleet", "list"], env=env)
    assert listed.exit_code == 0
    assert "$FLEETNAS_LIVE_TOKEN" in listed.output and "dead" in listed.output

    status = runner.invoke(cli, ["fleet", "status", "--timeout", "1"], env=env)
    assert status.exit_code == 0, status.output
    assert "Traceback" not in status.output
    rows = {line.split("│")[1].strip(): line for line in status.output.splitlines() if "│" in line}
    assert "up" in rows["live"] and "idle" in rows["live"] and "cores" in rows["live"]
    assert "down" in rows["dead"] and "unreachable" in rows["dead"]
    assert "(1/2 up)" in status.output

    # --json keeps an idle agent's zero/false fields, and 64-bit sizes as numbers.
    shown = runner.invoke(cli, ["fleet", "status", "--json", "--timeout", "1"], env=env)
    live = {e["name"]: e for e in json.loads(shown.stdout)}
    assert live["live"]["status"]["busy"] is False and live["live"]["status"]["queue_length"] == 0
    assert isinstance(live["live"]["description"]["memory"]["total_bytes"], int)

    # Without the token in the environment, the device is down and says which variable to set.
    no_token = runner.invoke(cli, ["fleet", "status", "--json"], env={"FLEETNAS_LIVE_TOKEN": ""})
    entries = {e["name"]: e for e in json.loads(no_token.stdout)}
    assert not entries["live"]["up"] and "export FLEETNAS_LIVE_TOKEN=" in entries["live"]["reason"]

    with CostDB(tmp_path / "fleetnas.db") as db:
        record = db.get_device("live")
        assert record is not None and record.device_class == "cpu"
        assert record.description and record.host_fingerprint
        assert db.get_device("dead") is None

    removed = runner.invoke(cli, ["fleet", "remove", "dead"])
    assert removed.exit_code == 0
    assert [d.name for d in load_fleet(tmp_path / "fleet.toml")] == ["live"]
    missing = runner.invoke(cli, ["fleet", "remove", "dead"])
    assert missing.exit_code == 1
    assert "device 'dead' is not in" in missing.output and "Traceback" not in missing.output

    files = [tmp_path / "fleet.toml", *tmp_path.glob("fleetnas.db*")]
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_tokens_reach_the_agent_but_never_the_db(agents: AgentPool, tmp_path: Path) -> None:
    (agent,) = agents.start(1, token=TOKEN)
    fleet = fleet_of([agent], token_env="FLEETNAS_AGENT_TOKEN_FOR_TEST", path=tmp_path / "fleet.toml")
    model = onnx_models.mlp(16, 1, seed=11)
    db_path = tmp_path / "cost.db"
    with CostDB(db_path) as db:
        with Scheduler(fleet, db, device_wait_s=1.0,
                       factory=ClientFactory.for_fleet(fleet, env={})) as scheduler:
            (refused,) = scheduler.run([Job.on_device(model, "a0", tiny_settings())])
        assert refused.status is OutcomeStatus.FAILED
        assert isinstance(refused.error, NoDeviceAvailable)
        assert "export FLEETNAS_AGENT_TOKEN_FOR_TEST=" in refused.error.message

        factory = ClientFactory.for_fleet(fleet, env={"FLEETNAS_AGENT_TOKEN_FOR_TEST": TOKEN})
        with Scheduler(fleet, db, factory=factory) as scheduler:
            (ok,) = scheduler.run([Job.on_device(model, "a0", tiny_settings())])
        assert ok.status is OutcomeStatus.MEASURED
        db.export_jsonl(tmp_path / "export.jsonl")
    for path in [*tmp_path.glob("cost.db*"), tmp_path / "export.jsonl"]:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_fleet_status_says_when_a_device_became_other_hardware(
    runner: CliRunner, agents: AgentPool
) -> None:
    (agent,) = agents.start(1, host_fingerprints=["board-A"])
    cli = fleetnas_cli()
    added = runner.invoke(cli, ["fleet", "add", "pi", "--address", agent.address,
                                "--class", "cpu"])
    assert added.exit_code == 0, added.output
    same = runner.invoke(cli, ["fleet", "status", "--json"])
    assert [e["hardware_changed"] for e in json.loads(same.stdout)] == [None]

    agent.stop()
    agent.host_fingerprint = "board-B"
    agent = agents.restart(agent)
    table = runner.invoke(cli, ["fleet", "status"], env={"COLUMNS": "250"})
    assert "hardware changed" in table.output and "new device history" in table.output

    agent.stop()
    agent.host_fingerprint = "board-C"
    agent = agents.restart(agent)
    changed = runner.invoke(cli, ["fleet", "status", "--json"])
    (entry,) = json.loads(changed.stdout)
    assert entry["up"] and "host fingerprint 'board-B' -> 'board-C'" in entry["hardware_changed"]
    # recorded: the next status compares with board-C
    again = runner.invoke(cli, ["fleet", "status", "--json"])
    assert [e["hardware_changed"] for e in json.loads(again.stdout)] == [None]


def test_fleet_add_takes_the_class_and_defaults_the_agent_describes(
    runner: CliRunner, tmp_path: Path, agents: AgentPool
) -> None:
    (agent,) = agents.start(1, extra_args=["--class", "pi4", "--default-threads", "2"])
    cli = fleetnas_cli()
    added = runner.invoke(cli, ["fleet", "add", "pi-a", "--address", agent.address])
    assert added.exit_code == 0, added.output
    assert "class pi4 (from the agent's --class)" in added.output
    assert "defaults for unset settings: 2 threads" in added.output
    (device,) = load_fleet(tmp_path / "fleet.toml")
    assert device.device_class == "pi4"
    with CostDB(tmp_path / "fleetnas.db") as db:  # the description the cache resolves with
        record = db.get_device("pi-a")
        assert record is not None and record.device_class == "pi4"
        assert record.description_proto().defaults.intra_op_threads == 2

    mine = runner.invoke(cli, ["fleet", "add", "pi-b", "--address", agent.address,
                               "--class", "bench"])
    assert mine.exit_code == 0 and "the agent says its class is pi4; kept bench" in mine.output
    unknown = runner.invoke(cli, ["fleet", "add", "gone", "--address", _dead_address()])
    assert unknown.exit_code == 1 and "give its class with --class CLASS" in unknown.output
    assert "Traceback" not in unknown.output
    assert [d.name for d in load_fleet(tmp_path / "fleet.toml")] == ["pi-a", "pi-b"]
    taken = runner.invoke(cli, ["fleet", "add", "pi-a", "--address", agent.address])
    assert taken.exit_code == 1 and "--replace" in taken.output
    # A device added while down names the fix; adding it again needs --replace.
    down = runner.invoke(cli, ["fleet", "add", "pi-c", "--address", _dead_address(),
                               "--class", "pi4"])
    assert down.exit_code == 0 and "not answering now" in down.output
    assert "fleetnas fleet add pi-c --address HOST:PORT --replace" in down.output
    again = runner.invoke(cli, ["fleet", "add", "pi-c", "--address", agent.address])
    assert again.exit_code == 1 and "pass --replace" in again.output
    fixed = runner.invoke(cli, ["fleet", "add", "pi-c", "--address", agent.address, "--replace"])
    assert fixed.exit_code == 0 and "up," in fixed.output
    assert {d.name: d.address for d in load_fleet(tmp_path / "fleet.toml")}["pi-c"] == agent.address
