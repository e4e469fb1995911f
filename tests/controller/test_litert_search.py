"""A short ``fleetnas search --mode measured`` on a LiteRT local agent (issue 10's Tests).

The target's runtime is LiteRT, so every candidate goes to the device as its
``.tflite`` export (real litert-torch conversion, real ``ai-edge-litert`` in the
agent's worker): the measurements behind the trials must be of those files, with
``runtime = litert``; with LiteRT its only target, a trial's model is that file too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.cli import main
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.export import export_arch
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.local_agents import start_local_agents, stop_local_agents
from fleetnas.controller.spaces import get_space
from tests.controller.test_search_cli import SPACE_CONFIG, TINY

pytestmark = pytest.mark.timeout(900)

SPACE = get_space("nb201", SPACE_CONFIG)
TFLITE = agent_pb2.MODEL_FORMAT_TFLITE


def test_a_measured_search_on_a_litert_agent_measures_tflite_candidates(tmp_path: Path) -> None:
    (agent,) = start_local_agents(1, tmp_path / "agents", name_prefix="l")
    try:
        fleet_path = tmp_path / "fleet.toml"
        save_fleet(Fleet.of([Device("l0", "cpu", agent.address)]), fleet_path)
        cache, db_path = tmp_path / "models", tmp_path / "cost.db"
        result = CliRunner().invoke(main, [
            "--db", str(db_path), "search", "--space", "nb201", "--space-config",
            json.dumps(SPACE_CONFIG), "--device", "l0", "--runtime", "litert",
            "--fleet", str(fleet_path), "--cache-dir", str(cache), *TINY, "--quiet",
            "--mode", "measured", "--budget", "4", "--population", "2",
            "--json", str(tmp_path / "s.json"),
        ], env={"COLUMNS": "240"}, catch_exceptions=False)  # fmt: skip
    finally:
        stop_local_agents([agent])
    assert result.exit_code == 0, result.output
    trials = json.loads((tmp_path / "s.json").read_text())["trials"]
    assert len(trials) == 4
    with CostDB(db_path) as db:
        for row in trials:
            assert row["source"] == "measured", row
            arch = SPACE.decode(row["arch"])
            tflite = export_arch(SPACE, arch, cache_dir=cache, model_format=TFLITE)
            assert tflite.cached  # exported (and sent) by the search, not by this check
            assert tflite.data[4:8] == b"TFL3"  # a TFLite flatbuffer's identifier
            stored = db.get_measurement(row["measurements"]["latency[l0]"])
            assert stored is not None
            assert stored.model_sha256 == tflite.sha256 == row["model_sha256"]
            assert stored.settings["runtime"] == "litert"
            assert row["latency[l0]"] == stored.latency_ms > 0
            model = db.get_model(stored.model_sha256)
            assert model is not None and model.size_bytes == len(tflite.data)
