"""Energy per inference end to end: a real agent on loopback reads a fake RAPL powercap tree.

No machine here exposes RAPL (this VM hides it), so the agent is given a
fake ``/sys/class/powercap`` root, through the same probe it runs on a real
host (``DeviceTelemetry.probe(root=...)``), whose package counter a thread
advances at a constant power while the benchmark runs, wrapping like the
hardware's. The agent, its worker, its RAPL meter (polling the counter file),
the wire, the scheduler, the cost DB and the CLI are all real.
"""

from __future__ import annotations

import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetnas.agent.config import AgentConfig
from fleetnas.agent.device_telemetry import DeviceTelemetry
from fleetnas.agent.server import AgentServer, create_server
from fleetnas.agent.telemetry import RaplSource
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB, Measurement
from fleetnas.controller.driver import (
    CallableMeasurer,
    SearchConfig,
    SearchConfigError,
    SearchDriver,
    SearchStore,
    Target,
)
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.search import parse_constraint
from fleetnas.controller.spaces import get_space
from tests import onnx_models
from tests.agent.fake_root import write_tree
from tests.controller.conftest import fleetnas_cli

PC = "sys/class/powercap"
POWER_W = 12.0
# A small wrap range makes the meter poll every 50 ms (it sizes polling to never miss a
# wrap at 1 kW), so the counter is read during even a short timed loop.
RANGE_UJ = 200_000_000
TINY = ["--warmup", "2", "--min-runs", "5", "--max-runs", "200", "--min-duration", "0.1",
        "--max-duration", "0.3"]
SPACE_CONFIG = {"channels": 4, "cells_per_stage": 1}


class AdvancingCounter:
    """Advance ``energy_uj`` at POWER_W every millisecond, modulo the wrap range, until closed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tmp = self._path.with_name("energy_uj.tmp")
        while not self._stop.wait(0.001):
            uj = int(1_000_000 + POWER_W * 1e6 * (time.monotonic() - self._start)) % RANGE_UJ
            tmp.write_text(f"{uj}\n")
            os.replace(tmp, self._path)  # atomic: the meter may read at any moment

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def rapl_tree(root: Path, *, readable: bool = True) -> Path:
    """One package domain; ``readable=False`` leaves out its energy file (a meter that
    cannot read, on a CPU whose domains are still described)."""
    files = {f"{PC}/intel-rapl:0/name": "package-0\n",
             f"{PC}/intel-rapl:0/max_energy_range_uj": f"{RANGE_UJ}\n"}
    if readable:
        files[f"{PC}/intel-rapl:0/energy_uj"] = "1000000\n"
    return write_tree(root, files)


Serve = Callable[[str, DeviceTelemetry], None]


@pytest.fixture
def fleet_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Serve]]:
    """A working dir whose fleet.toml lists the agents ``serve(name, telemetry)`` starts."""
    monkeypatch.chdir(tmp_path)
    for var in ("FLEETNAS_FLEET", "FLEETNAS_DB"):
        monkeypatch.delenv(var, raising=False)
    servers: list[AgentServer] = []
    devices: list[Device] = []

    def serve(name: str, telemetry: DeviceTelemetry) -> None:
        config = AgentConfig(host="127.0.0.1", port=0, cache_dir=tmp_path / f"cache-{name}")
        server = create_server(config, telemetry=telemetry)
        servers.append(server)
        devices.append(Device(name, "x86", f"127.0.0.1:{server.port}"))
        save_fleet(Fleet.of(devices), tmp_path / "fleet.toml")

    yield tmp_path, serve
    for server in servers:
        server.stop(drain_timeout_s=5)


@pytest.fixture
def counter(tmp_path: Path) -> Iterator[Path]:
    """A readable fake RAPL root whose counter advances for the whole test."""
    root = rapl_tree(tmp_path / "rapl")
    advancing = AdvancingCounter(root / PC / "intel-rapl:0" / "energy_uj")
    yield root
    advancing.close()


def _search(*more: str) -> list[str]:
    return ["search", "--space", "nb201", "--space-config", json.dumps(SPACE_CONFIG),
            "--class", "x86", "--mode", "measured", "--cache-dir", "onnx", *TINY, "--quiet",
            *more]


def test_a_measurement_stores_rapl_energy_per_inference_and_measure_shows_it(
    fleet_dir: tuple[Path, Serve], counter: Path
) -> None:
    root, serve = fleet_dir
    serve("box", DeviceTelemetry.probe(root=counter))
    (root / "mlp.onnx").write_bytes(onnx_models.mlp(32, 2))
    cli, runner = fleetnas_cli(), CliRunner()
    result = runner.invoke(cli, ["measure", "mlp.onnx", "--device", "box", *TINY, "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    stored = entry["measurement"]
    assert stored["energy_method"] == "rapl-counter" and stored["energy_scope"] == "package-0"
    assert stored["energy_mj"] > 0 and stored["energy_reason"] is None
    assert entry["energy"]["mj_per_inference"] == stored["energy_mj"]
    assert entry["energy"]["uncertainty_mj"] == stored["energy_uncertainty_mj"] >= 0
    with CostDB(root / "fleetnas.db") as db:
        (m,) = db.measurements()
        assert (m.energy_mj, m.energy_method) == (stored["energy_mj"], "rapl-counter")
        # a plain SQL query reads the column: it is not buried in JSON
        (mj,) = db.db.execute("SELECT energy_mj FROM measurements").fetchone()
        assert mj == m.energy_mj
    # the counter runs at POWER_W, so energy per inference lies between POWER_W x the mean
    # sample (the loop holds at least the samples; halved: the writer thread may lag on a
    # loaded host) and POWER_W x the whole job's wall time per inference
    n, unc = len(m.samples_ms), m.energy_uncertainty_mj
    assert unc is not None
    assert 0.5 * POWER_W * sum(m.samples_ms) / n - unc <= m.energy_mj
    assert m.energy_mj <= POWER_W * m.wall_s * 1e3 / n + unc
    table = runner.invoke(cli, ["measure", "mlp.onnx", "--device", "box", *TINY],
                          env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "(cached)" in table.stdout and "energy / inference" in table.stdout
    assert "rapl-counter, package-0" in table.stdout
    # db export carries the columns; an import (JSON lines and CSV) reads them back
    for name in ("e.jsonl", "e.csv"):
        exported = runner.invoke(cli, ["db", "export", name])
        assert exported.exit_code == 0, exported.output
        imported = runner.invoke(cli, ["--db", f"{name}.db", "db", "import", name])
        assert imported.exit_code == 0, imported.output
        with CostDB(root / f"{name}.db") as other:
            (back,) = other.measurements()
            assert back.energy_mj == m.energy_mj and back.energy_scope == m.energy_scope
    # a JSON-lines export of version 3 (before energy) imports, without energy
    lines = [json.loads(line) for line in (root / "e.jsonl").read_text().splitlines()]
    lines[0]["version"] = 3
    for line in lines[1:]:
        for key in [k for k in line if k.startswith("energy_")]:
            del line[key]
    (root / "v3.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    imported = runner.invoke(cli, ["--db", "v3.db", "db", "import", "v3.jsonl"])
    assert imported.exit_code == 0, imported.output
    with CostDB(root / "v3.db") as other:
        (back,) = other.measurements()
        assert back.uid == m.uid and back.energy_mj is None and back.energy_reason is None


def test_an_idle_baseline_stores_the_net_figure_and_measure_prints_it(
    fleet_dir: tuple[Path, Serve], counter: Path
) -> None:
    root, serve = fleet_dir
    serve("box", DeviceTelemetry.probe(root=counter, idle_s=0.2))
    (root / "mlp.onnx").write_bytes(onnx_models.mlp(32, 2))
    result = CliRunner().invoke(fleetnas_cli(), ["measure", "mlp.onnx", "--device", "box",
                                                 *TINY], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "net of idle" in result.stdout
    with CostDB(root / "fleetnas.db") as db:
        (m,) = db.measurements()
    assert m.energy_mj is not None and m.energy_net_mj is not None
    assert m.energy_uncertainty_mj is not None and m.energy_net_uncertainty_mj is not None
    assert m.energy_net_uncertainty_mj >= m.energy_uncertainty_mj  # idle's error is added
    # constant power: the loop draws what idle draws, so the net figure is about 0
    assert abs(m.energy_net_mj) <= m.energy_net_uncertainty_mj + 0.5 * m.energy_mj


def test_a_measured_search_with_latency_and_energy_objectives_has_energy_on_its_front(
    fleet_dir: tuple[Path, Serve], counter: Path
) -> None:
    root, serve = fleet_dir
    serve("box", DeviceTelemetry.probe(root=counter))
    result = CliRunner().invoke(fleetnas_cli(), _search(
        "--objective", "energy[x86]", "--constraint", "energy[x86] <= 5 J",
        "--budget", "6", "--population", "3", "--json", "s.json"))  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads((root / "s.json").read_text())
    assert document["search"]["status"] == "complete" and len(document["trials"]) == 6
    assert document["front"]
    with CostDB(root / "fleetnas.db") as db:
        for row in document["front"]:
            stored = db.get_measurement(row["measurements"]["latency[x86]"])
            assert stored is not None and stored.energy_mj is not None
            assert row["energy[x86]"] == stored.energy_mj > 0
            assert row["latency[x86]"] == stored.latency_ms


def test_a_device_without_a_meter_is_refused_before_any_work(
    fleet_dir: tuple[Path, Serve], tmp_path: Path
) -> None:
    root, serve = fleet_dir
    reason = RaplSource(root=tmp_path / "no-rapl").status().reason  # this VM's own reason
    serve("plain", DeviceTelemetry([], statuses=[
        agent_pb2.TelemetrySourceInfo(name="rapl", available=False, reason=reason)]))
    result = CliRunner().invoke(fleetnas_cli(), _search("--objective", "energy[x86]",
                                                        "--budget", "6", "--population", "3"))
    assert result.exit_code != 0
    (line,) = result.output.strip().splitlines()
    assert f"energy[x86]: device plain has no readable energy meter (rapl: {reason})" in line
    assert "Traceback" not in result.output
    with CostDB(root / "fleetnas.db") as db:  # nothing stored, nothing measured
        assert SearchStore(db).searches() == [] and db.count_measurements() == 0


def test_a_meter_that_reads_nothing_stops_the_search_and_a_resume_measures_again(
    fleet_dir: tuple[Path, Serve], tmp_path: Path
) -> None:
    root, serve = fleet_dir
    # the domain is described (Describe says RAPL is available) but its counter is unreadable
    blind = rapl_tree(tmp_path / "blind", readable=False)
    serve("blind", DeviceTelemetry.probe(root=blind))
    result = CliRunner().invoke(fleetnas_cli(), _search("--objective", "energy[x86]",
                                                        "--budget", "6", "--population", "3"))
    assert result.exit_code != 0
    assert "energy[x86]: device blind measured candidate" in result.output
    assert "without energy: rapl: " in result.output and "Traceback" not in result.output
    with CostDB(root / "fleetnas.db") as db:
        measured = db.measurements()
        assert measured and all(m.energy_mj is None and m.energy_reason for m in measured)
        (record,) = SearchStore(db).searches()
        assert record.status == "interrupted" and "without energy" in (record.error or "")
    # the meter is fixed: the cached measurements without energy are misses, measured again
    energy_uj = blind / PC / "intel-rapl:0" / "energy_uj"
    energy_uj.write_text("1000000\n")
    advancing = AdvancingCounter(energy_uj)
    try:
        resumed = CliRunner().invoke(fleetnas_cli(), ["search", "--resume", "1", "--quiet"])
    finally:
        advancing.close()
    assert resumed.exit_code == 0, resumed.output
    with CostDB(root / "fleetnas.db") as db:
        assert SearchStore(db).get(1).status == "complete"
        rows = SearchStore(db).candidates(1, state="complete")
        assert len(rows) == 6
        for row in rows:
            stored = db.get_measurement(row.measurements["latency[x86]"])
            assert stored is not None and row.metrics["energy[x86]"] == stored.energy_mj > 0
        assert db.count_measurements() > len(measured)


def test_energy_is_measured_only_so_lut_and_hybrid_modes_refuse_it(
    fleet_dir: tuple[Path, Serve]
) -> None:
    result = CliRunner().invoke(fleetnas_cli(), [
        "search", "--space", "nb201", "--class", "x86", "--mode", "hybrid",
        "--objective", "energy[x86]", "--budget", "6"])  # fmt: skip
    assert result.exit_code != 0
    assert "energy[x86]: energy per inference is only known in --mode measured" in result.output


def test_a_result_s_first_readable_meter_is_the_headline_and_unreadable_is_null() -> None:
    settings = agent_pb2.BenchmarkSettings(warmup_runs=1, min_runs=1)
    result = agent_pb2.BenchmarkResult(model_sha256="0" * 64, settings=settings,
                                       samples_ms=[1.0, 1.2], agent_version="t")
    result.stats.median_ms = 1.1
    result.energy.add(source="nvml", method="nvml-energy-counter", scope="GPU 0",
                      readable=False, reason="not supported on this GPU")
    result.energy.add(source="rapl", method="rapl-counter", scope="package-0", readable=True,
                      mj_per_inference=3.5, uncertainty_mj=0.25, net_mj_per_inference=1.5,
                      net_uncertainty_mj=0.5)
    m = Measurement.from_result("d", result, recorded_at=0.0)
    assert (m.energy_mj, m.energy_uncertainty_mj) == (3.5, 0.25)
    assert (m.energy_net_mj, m.energy_net_uncertainty_mj) == (1.5, 0.5)
    assert (m.energy_method, m.energy_scope, m.energy_reason) == ("rapl-counter", "package-0",
                                                                  None)
    del result.energy[1]
    m = Measurement.from_result("d", result, recorded_at=0.0)
    assert m.energy_mj is None and m.energy_method is None
    assert m.energy_reason == "nvml: not supported on this GPU"
    del result.energy[:]
    assert Measurement.from_result("d", result, recorded_at=0.0).energy_reason is None


@pytest.mark.parametrize(("text", "bound"), [("energy[jetson] <= 20 mJ", 20.0),
                                             ("energy[jetson] <= 0.02 J", 20.0),
                                             ("energy[jetson] <= 500 µJ", 0.5),
                                             ("energy[jetson] <= 5", 5.0)])
def test_energy_constraints_are_in_millijoules(text: str, bound: float) -> None:
    assert parse_constraint(text).bound == pytest.approx(bound)


def test_an_energy_constraint_in_a_time_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="unit 'ms'"):
        parse_constraint("energy[jetson] <= 20 ms")


def test_an_energy_constraint_shapes_the_front_with_a_stand_in_meter(tmp_path: Path) -> None:
    """The driver alone: energy from a deterministic function of the arch, a real SQLite DB."""
    space = get_space("nb201", SPACE_CONFIG)

    def latency(arch: object, target: Target) -> float:
        return 0.1 + space.count_flops(arch) / 1e6

    def energy(arch: object, target: Target) -> float:  # a device drawing 3 W
        return 3.0 * latency(arch, target) + (zlib.crc32(space.encode(arch).encode()) % 7)

    config = SearchConfig.build(
        space="nb201", space_config=SPACE_CONFIG, targets=[Target.device_class("pi")],
        objectives=["params:max", "energy[pi]"], constraints=["energy[pi] <= 4 mJ"],
        accuracy=None, strategy={"kind": "nsga2", "population_size": 6}, mode="measured",
        budget=18, seed=3)  # fmt: skip
    with pytest.raises(SearchConfigError, match=r"energy\[pi\]: this CallableMeasurer has no"):
        SearchDriver.create(config, measurer=CallableMeasurer(latency))
    with CostDB(tmp_path / "cost.db") as db:
        driver = SearchDriver.create(config, db=db, measurer=CallableMeasurer(latency, energy))
        driver.run()
        trials = driver.engine.complete()
        assert len(trials) == 18
        for t in trials:
            assert t.values["energy[pi]"] == energy(t.candidate.arch, config.targets[0])
        front = driver.engine.pareto_front()
        feasible = [t for t in trials if t.values["energy[pi]"] <= 4.0]
        assert front and 0 < len(feasible) < len(trials)  # the bound bites, and is met
        assert all(t.values["energy[pi]"] <= 4.0 for t in front)
