"""Searching a device without a LUT with a stored transfer fit, against real loopback agents.

A source agent measures 10 archs of a tiny NAS-Bench-201 space (plain jobs,
into the cost DB); ``fleetnas lut transfer`` fits the new agent from 5 of its
own protocol measurements (one round each) and stores the fit. A search in
mode ``lut`` on the new device then measures nothing and predicts exactly
what the stored fit's ``predict_many`` says; a resume after the DB grew (the
source measured more, a newer fit was stored) still predicts with the first
fit; mode ``hybrid`` measures some candidates and predicts the rest with the fit
rescaled by the median ratio measured / fitted of the measured ones.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (
    FixedFitValuePredictor,
    HybridOptions,
    SchedulerMeasurer,
    SearchConfig,
    SearchConfigError,
    SearchDriver,
    SearchStore,
    Target,
    find_transfers,
)
from fleetnas.controller.export import export_arch
from fleetnas.controller.fleet import save_fleet
from fleetnas.controller.local_agents import LocalAgent
from fleetnas.controller.predict import TransferStore, reference_archs
from fleetnas.controller.scheduler import Job, Scheduler
from tests.controller.conftest import AgentPool, fleet_of, tiny_settings
from tests.controller.lut_cli import SPACE, SPACE_ARGS, SPACE_CONFIG, TINY, invoke

FAST = ["--rounds", "1", "--max-rounds", "1", "--quiet"]
TINY_REQUEST = {"warmup_runs": 2, "min_runs": 5, "max_runs": 20, "min_duration_s": 0.0,
                "max_duration_s": 0.2}


@dataclass
class Setup:
    source: LocalAgent
    target: LocalAgent
    root: Path
    fleet_path: Path
    db_path: Path
    fit_id: str

    def transfer_args(self, db_path: Path, n: int) -> list[str]:
        return ["--db", str(db_path), "lut", "transfer", *SPACE_ARGS, "--device",
                self.target.name, "--fleet", str(self.fleet_path), "--cache-dir",
                str(self.root / "onnx"), "--min-source-archs", "10", "--n", str(n), *FAST]

    def search_args(self, db_path: Path, *more: str) -> list[str]:
        return ["--db", str(db_path), "search", *SPACE_ARGS, "--fleet", str(self.fleet_path),
                "--cache-dir", str(self.root / "onnx"), *TINY, "--no-plot", "--quiet", *more]

    def copy_db(self, to: Path) -> Path:
        """A private copy of the shared cost DB (sqlite's backup: WAL content included)."""
        with sqlite3.connect(self.db_path) as src, sqlite3.connect(to) as dst:
            src.backup(dst)
        return to


def _measure_on_source(db: CostDB, scheduler: Scheduler, device: str, archs: list, cache: Path,
                       ) -> None:
    jobs = []
    for arch in archs:
        exported = export_arch(SPACE, arch, cache_dir=cache)
        db.record_model(exported.sha256, len(exported.onnx_bytes), space=SPACE.identity(),
                        arch=SPACE.encode(arch))
        jobs.append(Job.on_device(exported.onnx_bytes, device, tiny_settings()))
    assert all(o.ok for o in scheduler.run(jobs))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("search-transfer")
    pool = AgentPool(root / "agents")
    try:
        source, target = pool.start(2)
        fleet_path = root / "fleet.toml"
        save_fleet(fleet_of([source, target]), fleet_path)
        db_path = root / "cost.db"
        with CostDB(db_path) as db, Scheduler(fleet_of([source, target]), db) as scheduler:
            _measure_on_source(db, scheduler, source.name, reference_archs(SPACE, 10, seed=0),
                               root / "onnx")
        setup = Setup(source, target, root, fleet_path, db_path, "")
        result = invoke(*setup.transfer_args(db_path, 5), "--json")
        assert result.exit_code == 0, result.output
        setup.fit_id = json.loads(result.stdout)["fit_id"]
        yield setup
    finally:
        pool.stop_all()


def _latencies(db_path: Path, search_id: int, key: str) -> dict[str, tuple[float, str]]:
    with CostDB(db_path) as db:
        return {c.encoding: (c.metrics[f"latency[{key}]"], c.sources[f"latency[{key}]"])
                for c in SearchStore(db).candidates(search_id, state="complete")}


def _fit_predictions(db_path: Path, fit_id: str, encodings: list[str]) -> dict[str, float]:
    with CostDB(db_path) as db:
        predictor = TransferStore(db).predictor(fit_id, SPACE)
    values = predictor.predict_many([SPACE.decode(e) for e in encodings])
    return dict(zip(encodings, values, strict=True))


def test_lut_transfer_stores_its_fit_once_and_lut_show_lists_it(setup: Setup,
                                                                 tmp_path: Path) -> None:
    db_path = setup.copy_db(tmp_path / "cost.db")
    again = invoke(*setup.transfer_args(db_path, 5))  # everything from the DB: the same fit
    assert again.exit_code == 0, again.output
    assert f"stored as transfer fit {setup.fit_id[:12]}" in again.stdout
    listed = invoke("--db", str(db_path), "lut", "show", "--transfers", "--json")
    assert listed.exit_code == 0, listed.output
    (fit,) = json.loads(listed.stdout)
    assert fit["id"] == setup.fit_id and fit["device"] == setup.target.name and fit["n"] == 5
    assert set(fit["reference_archs"]) == {SPACE.encode(a) for a in reference_archs(SPACE, 5)}
    assert fit["sources"] == [f"{setup.source.name}/{fit['sources'][0].split('/')[1]}"]
    table = invoke("--db", str(db_path), "lut", "show", "--transfers", "--device", "nobody")
    assert table.exit_code == 0 and "No transfer fits yet" in table.stdout
    both = invoke("--db", str(db_path), "lut", "show", "--transfers", "--blocks")
    assert both.exit_code == 2 and "use one of them" in both.output


def test_a_lut_search_on_a_device_without_a_lut_predicts_with_the_stored_fit(
    setup: Setup, tmp_path: Path
) -> None:
    db_path = setup.copy_db(tmp_path / "cost.db")
    with CostDB(db_path) as db:
        before = db.count_measurements()
    result = invoke(*setup.search_args(db_path, "--mode", "lut", "--device", setup.target.name,
                                       "--budget", "8", "--population", "4"))
    assert result.exit_code == 0, result.output
    assert f"predicted by transfer fit {setup.fit_id[:12]}" in result.stdout
    with CostDB(db_path) as db:
        assert db.count_measurements() == before  # no device measured anything
        (record,) = SearchStore(db).searches()
        assert record.config["transfers"] == {setup.target.name: setup.fit_id}
    latencies = _latencies(db_path, record.id, setup.target.name)
    assert len(latencies) == 8 and {s for _, s in latencies.values()} == {"transfer"}
    expected = _fit_predictions(db_path, setup.fit_id, sorted(latencies))
    assert {e: v for e, (v, _) in latencies.items()} == expected  # exactly, not approximately
    shown = invoke("--db", str(db_path), "search", "show", str(record.id))
    assert shown.exit_code == 0, shown.output
    assert f"transfer fits: {setup.target.name}: {setup.fit_id[:12]}" in shown.stdout


def test_mode_lut_on_a_device_with_neither_lut_nor_fit_names_the_fix(setup: Setup,
                                                                      tmp_path: Path) -> None:
    db_path = setup.copy_db(tmp_path / "cost.db")
    result = invoke(*setup.search_args(db_path, "--mode", "lut", "--device", setup.source.name,
                                       "--budget", "4"))
    assert result.exit_code != 0
    assert "fleetnas lut transfer" in result.output and "Traceback" not in result.output
    with CostDB(db_path) as db:
        assert SearchStore(db).searches() == []


def test_a_resume_after_the_db_grew_predicts_with_the_first_fit(setup: Setup,
                                                                tmp_path: Path) -> None:
    db_path = setup.copy_db(tmp_path / "cost.db")
    key = setup.target.name
    config = SearchConfig.build(
        space="nb201", space_config=SPACE_CONFIG, targets=[Target.device(key)],
        objectives=["accuracy"], accuracy=None, computed=["accuracy"], mode="lut", budget=12,
        strategy={"kind": "nsga2", "population_size": 4}, seed=3,
    )  # fmt: skip
    with CostDB(db_path) as db:
        fits = find_transfers(db, SPACE, config)
        assert {k: f.id for k, f in fits.items()} == {key: setup.fit_id}
        driver = SearchDriver.create(config, db=db, space=SPACE, transfers=fits,
                                     callables={"accuracy": SPACE.count_params})
        driver.run(max_steps=1)
        search_id = driver.search_id
        assert search_id is not None
    # The DB grows: the source measures 6 more archs, and a fit on 7 archs is stored.
    with CostDB(db_path) as db, Scheduler(fleet_of([setup.source, setup.target]), db) as sch:
        _measure_on_source(db, sch, setup.source.name, reference_archs(SPACE, 16, seed=0)[10:],
                           setup.root / "onnx")
    grown = invoke(*setup.transfer_args(db_path, 7), "--json")
    assert grown.exit_code == 0, grown.output
    newer = json.loads(grown.stdout)["fit_id"]
    assert newer != setup.fit_id
    with CostDB(db_path) as db:
        assert find_transfers(db, SPACE, config)[key].id == newer  # a new search would use it
        resumed = SearchDriver.resume(search_id, db=db, callables={"accuracy": SPACE.count_params})
        assert resumed.config.transfers == {key: setup.fit_id}
        assert resumed.run().status == "complete"
    latencies = _latencies(db_path, search_id, key)
    assert len(latencies) == 12
    values = {e: v for e, (v, _) in latencies.items()}
    assert values == _fit_predictions(db_path, setup.fit_id, sorted(values))
    assert values != _fit_predictions(db_path, newer, sorted(values))  # the test can tell
    with CostDB(db_path) as db:  # the fit deleted behind the search's back: a named error
        with db.write_transaction() as conn:
            conn.execute("DELETE FROM transfer_fits WHERE id = ?", (setup.fit_id,))
        with pytest.raises(SearchConfigError, match=r"transfer fit \w{12}, which is gone"):
            SearchDriver.resume(search_id, db=db, callables={"accuracy": SPACE.count_params})


def _smaller(arch: object) -> float:
    """An accuracy that, like latency, favours small archs: the front stays small."""
    return -float(SPACE.count_params(arch))  # type: ignore[arg-type]


def test_a_hybrid_search_measures_some_and_predicts_the_rest_with_the_fit(
    setup: Setup, tmp_path: Path
) -> None:
    db_path = setup.copy_db(tmp_path / "cost.db")
    key = setup.target.name
    config = SearchConfig.build(
        space="nb201", space_config=SPACE_CONFIG, targets=[Target.device(key, dict(TINY_REQUEST))],
        objectives=["accuracy"], accuracy=None, computed=["accuracy"], mode="hybrid", budget=16,
        strategy={"kind": "nsga2", "population_size": 4}, seed=3,
        hybrid=HybridOptions(z=0.0),  # points, not intervals: a noisy host cannot widen
    )  # fmt: skip
    with CostDB(db_path) as db, Scheduler(fleet_of([setup.source, setup.target]), db) as sch:
        before = db.count_measurements(device=key)
        driver = SearchDriver.create(
            config, db=db, space=SPACE, transfers=find_transfers(db, SPACE, config),
            measurer=SchedulerMeasurer(sch, db, cache_dir=setup.root / "onnx"),
            callables={"accuracy": _smaller},
        )  # fmt: skip
        assert isinstance(driver.source.predictors()[f"latency[{key}]"], FixedFitValuePredictor)
        result = driver.run()
        predictor = driver.source.predictors()[f"latency[{key}]"]
        assert isinstance(predictor, FixedFitValuePredictor)
        assert result.status == "complete"
        ran = db.count_measurements(device=key) - before
        assert driver.search_id is not None
        search_id = driver.search_id
    latencies = _latencies(db_path, search_id, key)
    fitted = _fit_predictions(db_path, setup.fit_id, sorted(latencies))
    predicted = {e: v for e, (v, s) in latencies.items() if s == "transfer"}
    measured = [e for e, (_, s) in latencies.items() if s == "measured"]
    assert measured and predicted and len(measured) + len(predicted) == len(latencies) == 16
    # The predictions are the fit's, times one scale: the median measured / fitted ratio.
    ratios = sorted(latencies[e][0] / fitted[e] for e in measured)
    mid = len(ratios) // 2
    median = ratios[mid] if len(ratios) % 2 else math.sqrt(ratios[mid - 1] * ratios[mid])
    assert predictor.scale == pytest.approx(median, rel=1e-9)
    for encoding, value in predicted.items():
        assert value == pytest.approx(predictor.scale * fitted[encoding], rel=1e-12)
    assert 0 < ran <= len(measured)  # only what hybrid chose ran on the device
