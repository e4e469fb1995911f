"""Killed searches, for real: SIGTERM stops ``fleetnas search`` / ``lut build`` cleanly, and a
SIGKILL mid-step never costs a finished accuracy estimate.

Every command runs as a real subprocess against a real loopback agent (or
its own ``--local`` one) and is sent a real signal. The accuracy estimator
is a plugin (``plugin:MODULE:FUNCTION``) that logs ``start``/``done`` lines
to a file, so the test counts what was estimated in which run. It logs
``start`` before it works, and the driver stores each estimate before it
asks for the next one: once the log shows a ``start``, every earlier
``done`` is stored, so the kill lands at a known point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import SearchStore
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.local_agents import LocalAgent, start_local_agents, stop_local_agents

SPACE_CONFIG = {"channels": 4, "cells_per_stage": 1}
FLEETNAS = [sys.executable, "-c", "from fleetnas.controller.cli import main; main()"]
PLUGIN = '''
import os, time, zlib

def score(space, arch):
    encoding = space.encode(arch)
    with open(os.environ["ESTIMATES_LOG"], "a") as log:
        log.write(f"start {encoding}\\n")
    time.sleep(float(os.environ.get("ESTIMATE_S", "0.2")))
    with open(os.environ["ESTIMATES_LOG"], "a") as log:
        log.write(f"done {encoding}\\n")
    return (zlib.crc32(encoding.encode()) % 1000) / 1000
'''


@dataclass
class Setup:
    agent: LocalAgent
    root: Path
    fleet_path: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("signals")
    (agent,) = start_local_agents(1, root / "agents", name_prefix="g")
    try:
        fleet_path = root / "fleet.toml"
        save_fleet(Fleet.of([Device("g0", "cpu", agent.address)]), fleet_path)
        (root / "estimates_plugin.py").write_text(PLUGIN)
        yield Setup(agent, root, fleet_path)
    finally:
        stop_local_agents([agent])


def _env(setup: Setup, log: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(setup.root), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "ESTIMATES_LOG": str(log), "COLUMNS": "200"}


def _search_argv(setup: Setup, db: Path, *more: str) -> list[str]:
    return [*FLEETNAS, "--db", str(db), "search", "--space", "nb201", "--space-config",
            json.dumps(SPACE_CONFIG), "--class", "cpu", "--fleet", str(setup.fleet_path),
            "--cache-dir", str(setup.root / "onnx"), "--warmup", "2", "--min-runs", "5",
            "--max-runs", "20", "--min-duration", "0", "--max-duration", "0.2",
            "--accuracy", "plugin:estimates_plugin:score", "--population", "4", "--budget", "12",
            "--seed", "3", "--no-plot", *more]


def _lines(log: Path, kind: str) -> list[str]:
    if not log.exists():
        return []
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()
            if line.startswith(kind + " ")]


def _wait_for(process: subprocess.Popen[str], log: Path, starts: int) -> None:
    """Until the plugin has started ``starts`` estimates (the process still running)."""
    deadline = time.monotonic() + 240
    while len(_lines(log, "start")) < starts:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the search never got that far"
        time.sleep(0.02)


def _resume(setup: Setup, db: Path, log: Path, search_id: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLEETNAS, "--db", str(db), "search", "--resume", str(search_id),
                           "--fleet", str(setup.fleet_path), "--cache-dir", str(setup.root / "onnx"),
                           "--quiet", "--no-plot"],
                          env=_env(setup, log), capture_output=True, text=True, timeout=300)


def test_sigterm_stops_a_search_cleanly_and_it_resumes(setup: Setup, tmp_path: Path) -> None:
    db, log = tmp_path / "cost.db", tmp_path / "estimates.log"
    # Not --quiet, stderr a pipe: progress comes as one JSON line per event.
    process = subprocess.Popen(_search_argv(setup, db, "--mode", "measured"), env=_env(setup, log),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(process, log, 6)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "interrupted (stopped by SIGTERM): resume with `fleetnas search --resume 1`" in err
    assert "Traceback" not in err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert events and {e["task"] for e in events} == {"search"}
    assert any(e["counts"]["measured"] > 0 for e in events)
    with CostDB(db) as database:
        record = SearchStore(database).get(1)
    assert (record.status, record.owner, record.error) == ("interrupted", None, "stopped by SIGTERM")
    rerun = _resume(setup, db, log, 1)
    assert rerun.returncode == 0, rerun.stderr
    assert "search 1: 12 candidates evaluated" in rerun.stdout


def test_sigterm_stops_lut_build_and_leaves_no_agent_behind(setup: Setup, tmp_path: Path) -> None:
    db = tmp_path / "cost.db"
    argv = [*FLEETNAS, "--db", str(db), "lut", "build", "--space", "nb201", "--space-config",
            json.dumps(SPACE_CONFIG), "--local", "--cache-dir", str(setup.root / "onnx"),
            "--warmup", "2", "--min-runs", "5", "--min-duration", "0.3", "--max-duration", "0.4",
            "--calibration-n", "0"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 180
        while not _lut_entries(db) and time.monotonic() < deadline:  # a block measured
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.05)
        children = psutil.Process(process.pid).children(recursive=True)
        assert children, "the local agent should be running"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "interrupted (stopped by SIGTERM):" in err and "blocks are stored" in err
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {alive}"


def _lut_entries(db: Path) -> int:
    if not db.exists():
        return 0
    with CostDB(db) as database:
        tables = {name for (name,) in database.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "lut_entries" not in tables:
            return 0
        return int(database.db.execute("SELECT count(*) FROM lut_entries").fetchone()[0])


@pytest.mark.parametrize("mode", ["measured", "hybrid"])
def test_a_sigkill_mid_step_repeats_no_finished_estimate(setup: Setup, tmp_path: Path,
                                                         mode: str) -> None:
    db, log = tmp_path / "cost.db", tmp_path / "estimates.log"
    # hybrid + expensive: accuracy is estimated after each candidate's measurement
    extra = ["--accuracy-cost", "expensive"] if mode == "hybrid" else []
    process = subprocess.Popen(_search_argv(setup, db, "--mode", mode, "--quiet", *extra),
                               env=_env(setup, log), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(process, log, 7)  # the 3rd estimate of the 2nd step has started
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    finished_before = _lines(log, "done")
    assert len(finished_before) == 6
    with CostDB(db) as database:
        record = SearchStore(database).get(1)
        pending = SearchStore(database).candidates(1, state="pending")
    assert record.status == "running" and record.trials == 4  # killed mid-step 2
    assert sum("accuracy" in r.metrics for r in pending) == 2  # stored as each finished
    rerun = _resume(setup, db, log, 1)
    assert rerun.returncode == 0, rerun.stderr
    done = Counter(_lines(log, "done"))
    assert done and max(done.values()) == 1, [e for e, n in done.items() if n > 1]
    assert len(done) == 12
