"""``fleetnas lut transfer`` against two real loopback agents: a source and a new device.

The source measures 10 archs of a tiny NAS-Bench-201 space (plain jobs, into
the cost DB); the new device (graph optimisation disabled, so it is not the
source) is then predicted from 5 of its own protocol measurements, and scored
with ``--eval`` on 4 fresh archs. One protocol round per arch keeps it fast.
"""

from __future__ import annotations

import json
from pathlib import Path

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.export import export_arch
from fleetnas.controller.fleet import save_fleet
from fleetnas.controller.predict import EVAL_PURPOSE, reference_archs
from fleetnas.controller.scheduler import Job, Scheduler
from tests.controller.conftest import AgentPool, fleet_of, tiny_settings
from tests.controller.lut_cli import SPACE, SPACE_ARGS, invoke

FAST = ["--rounds", "1", "--max-rounds", "1", "--opt-level", "disable", "--quiet"]


def test_transfer_measures_n_reference_archs_and_scores_fresh_ones(
    agents: AgentPool, tmp_path: Path
) -> None:
    source, target = agents.start(2)
    fleet_path = tmp_path / "fleet.toml"
    save_fleet(fleet_of([source, target]), fleet_path)
    db_path, cache = tmp_path / "cost.db", tmp_path / "onnx"
    with CostDB(db_path) as db, Scheduler(fleet_of([source, target]), db) as scheduler:
        jobs = []
        for arch in reference_archs(SPACE, 10, seed=0):
            exported = export_arch(SPACE, arch, cache_dir=cache)
            db.record_model(exported.sha256, len(exported.onnx_bytes), space=SPACE.identity(),
                            arch=SPACE.encode(arch))
            jobs.append(Job.on_device(exported.onnx_bytes, source.name, tiny_settings()))
        assert all(o.ok for o in scheduler.run(jobs))
    base = ["--db", str(db_path), "lut", "transfer", *SPACE_ARGS, "--device", target.name,
            "--fleet", str(fleet_path), "--cache-dir", str(cache), "--min-source-archs", "10"]

    result = invoke(*base, "--n", "5", "--eval", "4", "--from", source.name,
                    "--from", "nobody", "--json", *FAST)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["n"] == 5 and doc["device"] == target.name
    assert set(doc["reference_archs"]) == {SPACE.encode(a) for a in reference_archs(SPACE, 5)}
    assert [s["device"] for s in doc["sources"]] == [source.name]  # never the new device
    assert doc["sources"][0]["archs"] == 10
    assert "--from nobody: not a source" in result.stderr
    ev = doc["eval"]
    assert ev["n"] == 4 and len(ev["rows"]) == 4
    # Fresh archs: none of the reference archs the model was fitted on.
    assert not {r["arch"] for r in ev["rows"]} & set(doc["reference_archs"])
    assert -1.0 <= ev["kendall_tau"] <= 1.0 and 0.0 <= ev["within_10"] <= 1.0
    assert all(r["predicted_ms"] > 0 and r["measured_ms"] > 0 for r in ev["rows"])
    with CostDB(db_path) as db:
        measured_on_target = db.count_measurements(device=target.name)
    assert measured_on_target == 5 + 4  # one round per arch
    assert EVAL_PURPOSE == "transfer-eval"

    # Again, as tables: everything comes from the cost DB, nothing is measured.
    again = invoke(*base, "--n", "5", "--eval", "4", *FAST)
    assert again.exit_code == 0, again.output
    assert "measured 5 reference archs on " + target.name in again.stdout
    assert "eval on 4 fresh archs: Kendall tau" in again.stdout
    assert "within ±10%" in again.stdout
    with CostDB(db_path) as db:
        assert db.count_measurements(device=target.name) == measured_on_target

    # No source with enough archs: one line naming what to do, no traceback.
    refused = invoke(*base[:-2], "--min-source-archs", "1000", "--n", "5", *FAST)
    assert refused.exit_code != 0
    assert "measure archs on at least one other device first" in refused.output
    assert "Traceback" not in refused.output
    bad = invoke(*base, "--n", "5", "--rounds", "3", "--max-rounds", "2", *FAST[4:])
    assert bad.exit_code == 2 and "check --rounds / --max-rounds" in bad.output
