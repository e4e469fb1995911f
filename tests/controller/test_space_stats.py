"""``fleetnas space stats``, percentile constraints and ``search --dry-run`` on a real agent.

One loopback agent (device ``s0`` of class ``cpu``) and one cost DB serve the
module, in order: a measured search fills the DB with measured archs, the
statistics are read from them, then a LUT is built and the statistics (and a
``latency[cpu] <= p40`` constraint) come from it. Every expected figure is
computed here from the DB or the LUT itself, never written down.
"""

from __future__ import annotations

import json
import random
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from fleetnas.controller.cli import main
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import SearchConfig, SearchStore
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.local_agents import LocalAgent, start_local_agents, stop_local_agents
from fleetnas.controller.lut import LutStore
from fleetnas.controller.spaces import get_space

SPACE_CONFIG = {"channels": 4, "cells_per_stage": 1}
SPACE = get_space("nb201", SPACE_CONFIG)
SPACE_ARGS = ["--space", "nb201", "--space-config", json.dumps(SPACE_CONFIG)]
TINY = ["--warmup", "2", "--min-runs", "5", "--max-runs", "20", "--min-duration", "0",
        "--max-duration", "0.2"]


@dataclass
class Setup:
    agent: LocalAgent
    root: Path
    fleet_path: Path
    db_path: Path

    def run(self, *args: str, db: Path | None = None) -> Result:
        return CliRunner().invoke(main, ["--db", str(db or self.db_path), *args],
                                  env={"COLUMNS": "240"}, catch_exceptions=False)

    def search(self, *more: str, db: Path | None = None) -> Result:
        return self.run("search", *SPACE_ARGS, "--class", "cpu", "--fleet", str(self.fleet_path),
                        "--cache-dir", str(self.root / "onnx"), *TINY, "--quiet", *more, db=db)

    def stats(self, *more: str) -> Result:
        return self.run("space", "stats", *SPACE_ARGS, *more)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("space-stats")
    (agent,) = start_local_agents(1, root / "agents", name_prefix="s")
    try:
        fleet_path = root / "fleet.toml"
        save_fleet(Fleet.of([Device("s0", "cpu", agent.address)]), fleet_path)
        yield Setup(agent, root, fleet_path, root / "cost.db")
    finally:
        stop_local_agents([agent])


def _measured_latencies(db_path: Path) -> dict[str, float]:
    """arch encoding -> the median of its measured latencies on s0 (computed here)."""
    with CostDB(db_path) as db:
        rows = db.query("SELECT md.arch AS arch, m.latency_ms AS ms FROM measurements m JOIN "
                        "models md ON md.sha256 = m.model_sha256 WHERE md.space = ? AND "
                        "m.device = 's0'", [SPACE.network_identity()])
    by_arch: dict[str, list[float]] = {}
    for row in rows:
        by_arch.setdefault(row["arch"], []).append(row["ms"])
    return {arch: statistics.median(values) for arch, values in by_arch.items()}


def _searches(db_path: Path) -> int:
    with CostDB(db_path) as db:
        return len(SearchStore(db).searches())


def test_percentiles_from_data_then_from_a_lut(setup: Setup, tmp_path: Path) -> None:
    # Nothing yet: both sources are clear errors naming the command that fixes them.
    empty = setup.stats("--device", "s0")
    assert empty.exit_code == 1 and "no cost database" in empty.output
    no_data = setup.search("--constraint", "latency[cpu] <= p40", "--budget", "4")
    assert no_data.exit_code == 1 and "fleetnas lut build --space nb201 --device" in no_data.output
    assert not setup.db_path.exists()  # nothing was created

    first = setup.search("--mode", "measured", "--budget", "6", "--population", "3")
    assert first.exit_code == 0, first.output
    measured = _measured_latencies(setup.db_path)
    result = setup.stats("--device", "s0", "--source", "measured", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    values = sorted(measured.values())
    assert doc["source"] == "measured" and doc["n"] == len(measured) >= 4
    assert doc["latency_ms"]["percentiles"]["p50"] == pytest.approx(float(np.percentile(values, 50)))
    assert doc["latency_ms"]["min"] == pytest.approx(values[0])
    params = sorted(SPACE.count_params(SPACE.decode(a)) for a in measured)
    assert doc["params"]["percentiles"]["p25"] == pytest.approx(float(np.percentile(params, 25)))
    # The class name reaches the same archs; no LUT yet, so auto falls back to measurements.
    by_class = json.loads(setup.stats("--device", "cpu", "--json").stdout)
    assert by_class["source"] == "measured" and by_class["n"] == doc["n"]
    no_lut = setup.stats("--device", "s0", "--source", "lut")
    assert no_lut.exit_code == 1 and "fleetnas lut build --space nb201 --device s0" in no_lut.output

    built = setup.run("lut", "build", *SPACE_ARGS, "--device", "s0", "--fleet", str(setup.fleet_path),
                      "--cache-dir", str(setup.root / "onnx"), "--calibration-n", "0", *TINY,
                      "--quiet")  # fmt: skip
    assert built.exit_code == 0, built.output
    text = setup.stats("--device", "s0", "--n", "300")
    assert text.exit_code == 0, text.output
    assert "LUT, 300 sampled archs" in text.stdout and "p25: a tight budget" in text.stdout
    assert text.stdout.count("ms |") == 10  # the histogram's bins
    lut_doc = json.loads(setup.stats("--device", "s0", "--n", "300", "--json").stdout)
    sample = _lut_sample(setup, 300)
    assert lut_doc["source"] == "lut" and lut_doc["n"] == 300
    assert lut_doc["latency_ms"]["min"] == pytest.approx(min(sample))
    assert lut_doc["latency_ms"]["percentiles"]["p90"] == pytest.approx(float(np.percentile(sample, 90)))
    for bound in lut_doc["suggested_bounds"]:
        assert bound["latency_ms"] == pytest.approx(float(np.percentile(sample, bound["percentile"])))


def test_a_percentile_constraint_is_resolved_printed_and_stored(setup: Setup) -> None:
    lut_doc = json.loads(setup.stats("--device", "cpu", "--json").stdout)
    assert lut_doc["source"] == "lut", "runs after the LUT test"
    p40 = float(np.percentile(_lut_sample(setup, 1000), 40))
    before = _searches(setup.db_path)
    result = setup.search("--constraint", "latency[cpu] <= p40", "--budget", "4", "--population",
                          "4", "--mode", "lut")
    assert result.exit_code == 0, result.output
    assert f"p40 of latency[cpu] = {p40:.3f} ms (LUT, 1000 sampled archs)" in result.stdout
    with CostDB(setup.db_path) as db:
        stored = SearchStore(db).searches()
        assert len(stored) == before + 1
        config = SearchConfig.from_dict(SearchStore(db).get(stored[0].id).config)
    assert config.constraints == (f"latency[cpu] <= {p40:.6g} ms",)
    # A resume rebuilds the config from the DB: the number it started with, never resolved again.
    resumed = setup.run("search", "--resume", str(stored[0].id), "--budget", "8", "--quiet",
                        "--fleet", str(setup.fleet_path))
    assert resumed.exit_code == 0, resumed.output
    with CostDB(setup.db_path) as db:
        again = SearchConfig.from_dict(SearchStore(db).get(stored[0].id).config)
        assert again.constraints == config.constraints and again.budget == 8


def _lut_sample(setup: Setup, n: int) -> list[float]:
    """The ``n`` archs the statistics sample (seed 0), predicted here from the stored LUT."""
    with CostDB(setup.db_path) as db:
        (info,) = [i for i in LutStore(db).find(space_name="nb201", device="s0")
                   if i.status == "complete"]
        entries = {k: e.latency_ms for k, e in LutStore(db).entries(info.id).items()}
    rng = random.Random("fleetnas.lut.stats/0")
    return [sum(entries[b.key] for b in SPACE.blocks(SPACE.sample(rng))) for _ in range(n)]


def test_dry_run_prints_the_plan_and_creates_nothing(setup: Setup, tmp_path: Path) -> None:
    before = _searches(setup.db_path)
    result = setup.search("--mode", "measured", "--budget", "6", "--max-measurements", "5",
                          "--dry-run")
    assert result.exit_code == 0, result.output
    assert _searches(setup.db_path) == before
    with CostDB(setup.db_path) as db:
        walls = [r["wall_s"] for r in db.query(
            "SELECT m.wall_s AS wall_s FROM measurements m JOIN models md ON md.sha256 = "
            "m.model_sha256 WHERE md.space = ? AND m.device = 's0'", [SPACE.network_identity()])]
    each = statistics.median(walls)
    assert "latency measurements: at most 5" in result.stdout
    assert f"{each:.2f} s per measurement (median of {len(walls)} recorded" in result.stdout
    assert "estimated device time:" in result.stdout
    # No database: an estimate that says so, and still no file.
    fresh = tmp_path / "none.db"
    unknown = setup.search("--mode", "measured", "--budget", "3", "--dry-run", db=fresh)
    assert unknown.exit_code == 0, unknown.output
    assert "no measurement recorded" in unknown.stdout and "unknown" in unknown.stdout
    # The class's devices come from the fleet file when the cost DB knows none.
    assert re.search(r"class cpu \(.*\) on s0: 3 at most", unknown.stdout), unknown.stdout
    assert not fresh.exists()


def test_bad_input_is_one_line_and_names_the_fix(setup: Setup) -> None:
    unknown = setup.run("space", "stats", "--space", "nope", "--device", "s0")
    assert unknown.exit_code != 0 and "nope" in unknown.output and "Traceback" not in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1
    nobody = setup.stats("--device", "ghost")
    assert nobody.exit_code == 1 and "fleetnas lut build --space nb201 --device ghost" in nobody.output
    zero = setup.stats("--device", "s0", "--n", "0")
    assert zero.exit_code == 2 and "--n" in zero.output
    bad = setup.search("--constraint", "latency[cpu] <= p140", "--dry-run")
    assert bad.exit_code != 0 and "not within p0..p100" in bad.output
    other = setup.search("--constraint", "latency[gpu] <= p40", "--dry-run")
    assert other.exit_code != 0 and "no target 'gpu'" in other.output


def test_the_progress_lines_split_each_candidates_time(setup: Setup, tmp_path: Path) -> None:
    db = tmp_path / "split.db"
    args = ["--db", str(db), "search", *SPACE_ARGS, "--class", "cpu", "--fleet",
            str(setup.fleet_path), "--cache-dir", str(tmp_path / "onnx"), *TINY, "--mode",
            "measured", "--budget", "4", "--population", "4", "--no-plot"]
    result = CliRunner().invoke(main, args, env={"COLUMNS": "240"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    steps = [s for s in steps if "per_candidate_s" in s]
    assert steps, result.stderr
    last = steps[-1]
    split = last["per_candidate_s"]
    assert set(split) == {"export", "measure", "accuracy"}
    assert split["export"] > 0 and split["measure"] > 0 and split["accuracy"] > 0
    # The phases are parts of the run: together no longer than it took (rounding aside).
    assert sum(split.values()) * last["done"] <= last["elapsed_s"] + 0.1
