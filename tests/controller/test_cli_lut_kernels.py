"""``fleetnas lut kernels`` against a real loopback agent on the tiny NAS-Bench-201 space.

The kernels of 3 random archs plus 5 calibration and 4 eval archs are
extracted by the controller's onnxruntime (level ``extended``: Conv+Relu fused
into FusedConv), each measured alone in one protocol round, and the LUT is
calibrated and scored; the file it writes is checked against what it says,
and a rerun must measure nothing and store the same LUT. The stored LUT then
predicts a ``lut``-mode search of the device, and the search's resume keeps
predicting with it after a newer LUT is stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import (
    FixedFitValuePredictor,
    SearchConfig,
    SearchConfigError,
    SearchDriver,
    SearchStore,
    Target,
    find_kernel_luts,
)
from fleetnas.controller.lut import sample_archs
from fleetnas.controller.predict import (
    KERNEL_CALIBRATION_PURPOSE,
    KERNEL_EVAL_PURPOSE,
    NULL_KEY,
    KernelLut,
    KernelLutStore,
    KernelPredictor,
    arch_kernels,
)
from tests.controller.lut_cli import SPACE, SPACE_ARGS, SPACE_CONFIG, LutCli, invoke, lut_cli

FAST = ["--rounds", "1", "--max-rounds", "1", "--opt-level", "extended", "--warmup", "2",
        "--arch-seed", "3"]
EXTENDED = agent_pb2.GRAPH_OPTIMIZATION_EXTENDED


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LutCli]:
    with lut_cli(tmp_path_factory.mktemp("lut-kernels")) as b:
        yield b


def _run(cli: LutCli, out: Path, *more: str) -> Result:
    return invoke(*cli.args("lut", "kernels", *SPACE_ARGS, *cli.device_args(), *FAST,
                            "--archs", "3", "--calibration-n", "5", "--out", str(out), *more))


def _archs() -> tuple[list[str], list[str]]:
    calibration = sample_archs(SPACE, 5, KERNEL_CALIBRATION_PURPOSE, 3)
    evaluation = sample_archs(SPACE, 4, KERNEL_EVAL_PURPOSE, 3,
                              exclude=[SPACE.encode(a) for a in calibration])
    return [SPACE.encode(a) for a in calibration], [SPACE.encode(a) for a in evaluation]


def test_the_lut_holds_every_kernel_its_nets_run_and_predicts_what_it_reports(
    cli: LutCli, tmp_path: Path
) -> None:
    out = tmp_path / "k.json"
    result = _run(cli, out, "--eval", "4", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    lut = KernelLut.from_dict(json.loads(out.read_text()))
    assert lut.device == "a0" and lut.level == "extended" and doc["level"] == "extended"
    calibration, evaluation = _archs()
    nets = arch_kernels(SPACE, [SPACE.decode(e) for e in calibration + evaluation], EXTENDED,
                        cache_dir=cli.cache_dir)
    executed = set().union(*(set(net.counts()) for net in nets.values()))
    assert executed <= set(lut.entries)  # every kernel the calibration and eval nets run
    assert NULL_KEY in lut.entries and doc["kernels"] == len(lut.entries) - 1
    assert any("FusedConv" in key for key in lut.entries), sorted(lut.entries)[:5]
    assert lut.calibration is not None and sorted(lut.calibration.archs) == sorted(calibration)
    assert doc["calibration"]["n"] == 5
    rows = {row["arch"]: row for row in doc["eval"]["rows"]}
    assert sorted(rows) == sorted(evaluation)  # scored on the eval nets, none fitted on
    for encoding, row in rows.items():
        assert row["predicted_ms"] == pytest.approx(lut.predict(nets[encoding]), rel=1e-9)
        assert row["measured_ms"] > 0
    assert doc["eval"]["n"] == 4 and 0 <= doc["eval"]["within_10"] <= 1


def test_a_rerun_measures_nothing_and_writes_the_same_lut(cli: LutCli, tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert _run(cli, first, "--quiet").exit_code == 0
    with CostDB(cli.db_path) as db:
        before = db.count_measurements()
    result = _run(cli, second, "--quiet")
    assert result.exit_code == 0, result.output
    with CostDB(cli.db_path) as db:
        assert db.count_measurements() == before
    assert json.loads(first.read_text())["entries"] == json.loads(second.read_text())["entries"]
    assert "calibrated on 5 archs: predicted = " in result.stdout
    assert f"wrote {second}" in result.stdout
    with CostDB(cli.db_path) as db:
        (stored,) = [r for r in KernelLutStore(db).find(device="a0")
                     if r.lut.to_dict() == KernelLut.from_dict(
                         json.loads(second.read_text())).to_dict()]
    assert f"stored kernel LUT {stored.id[:12]}" in result.stdout
    listed = invoke(*cli.args("lut", "show", "--kernels", "--json"))
    assert listed.exit_code == 0, listed.output
    assert stored.id in [row["id"] for row in json.loads(listed.stdout)]


def _lut_search_config(budget: int) -> SearchConfig:
    return SearchConfig.build(
        space="nb201", space_config=SPACE_CONFIG, targets=[Target.device(
            "a0", {"graph_optimization": "GRAPH_OPTIMIZATION_EXTENDED"})],
        objectives=["accuracy"], accuracy=None, computed=["accuracy"], mode="lut",
        budget=budget, strategy={"kind": "nsga2", "population_size": 4}, seed=3,
    )  # fmt: skip


def _search_latencies(db: CostDB, search_id: int) -> dict[str, tuple[float, str]]:
    return {c.encoding: (c.metrics["latency[a0]"], c.sources["latency[a0]"])
            for c in SearchStore(db).candidates(search_id, state="complete")}


def test_a_lut_search_predicts_with_the_stored_kernel_lut_and_its_resume_keeps_it(
    cli: LutCli, tmp_path: Path
) -> None:
    assert _run(cli, tmp_path / "k.json", "--quiet").exit_code == 0
    config = _lut_search_config(10)
    with CostDB(cli.db_path) as db:
        found = find_kernel_luts(db, SPACE, config)
        assert set(found) == {"a0"}
        first = found["a0"]
        driver = SearchDriver.create(config, db=db, space=SPACE, kernel_luts=found,
                                     export_cache=cli.cache_dir,
                                     callables={"accuracy": SPACE.count_params})
        predictor = driver.source.predictors()["latency[a0]"]
        assert isinstance(predictor, FixedFitValuePredictor)
        assert driver.config.kernel_luts == {"a0": first.id}
        driver.run(max_steps=1)
        search_id = driver.search_id
        assert search_id is not None
        # A newer LUT of the same device and settings (another calibration): a new search
        # would take it, the resume must not.
        newer = KernelLutStore(db).save(SPACE, KernelLut.from_dict(
            {**first.lut.to_dict(), "calibration": {**first.lut.calibration.to_dict(),
                                                    "a": 2 * first.lut.calibration.a}}))
        assert find_kernel_luts(db, SPACE, config)["a0"].id == newer.id != first.id
        resumed = SearchDriver.resume(search_id, db=db, export_cache=cli.cache_dir,
                                      callables={"accuracy": SPACE.count_params})
        assert resumed.config.kernel_luts == {"a0": first.id}
        assert resumed.run().status == "complete"
        latencies = _search_latencies(db, search_id)
    assert len(latencies) == 10 and {s for _, s in latencies.values()} == {"kernel-lut"}
    expected = KernelPredictor(SPACE, first.lut, cache_dir=cli.cache_dir)
    for encoding, (value, _) in latencies.items():
        assert value == pytest.approx(expected.predict_many([SPACE.decode(encoding)])[0],
                                      rel=1e-12)
    with CostDB(cli.db_path) as db:  # the LUT deleted behind the search's back: a named error
        with db.write_transaction() as conn:
            conn.execute("DELETE FROM kernel_luts WHERE id = ?", (first.id,))
        with pytest.raises(SearchConfigError, match=r"kernel LUT \w{12}, which is gone"):
            SearchDriver.resume(search_id, db=db, callables={"accuracy": SPACE.count_params})


def test_a_kernel_without_an_entry_gets_a_stand_in_and_a_wider_interval(
    cli: LutCli, tmp_path: Path
) -> None:
    assert _run(cli, tmp_path / "k.json", "--quiet").exit_code == 0
    with CostDB(cli.db_path) as db:
        stored = find_kernel_luts(db, SPACE, _lut_search_config(4))["a0"]
    arch = sample_archs(SPACE, 1, KERNEL_CALIBRATION_PURPOSE, 3)[0]
    net = arch_kernels(SPACE, [arch], EXTENDED, cache_dir=cli.cache_dir)[SPACE.encode(arch)]
    dropped = max(net.counts(), key=lambda k: stored.lut.entries[k].latency_ms)
    lut = KernelLut.from_dict({**stored.lut.to_dict(), "entries": {
        k: e.to_dict() for k, e in stored.lut.entries.items() if k != dropped}})
    full = KernelPredictor(SPACE, stored.lut, cache_dir=cli.cache_dir)
    partial = KernelPredictor(SPACE, lut, cache_dir=cli.cache_dir)
    assert full.estimated_shares([arch]) == [0.0]
    (share,) = partial.estimated_shares([arch])
    assert 0 < share < 1
    (value,) = partial.predict_many([arch])
    assert value > 0 and value != full.predict_many([arch])[0]
    by = {name: FixedFitValuePredictor(p, z=2.0, min_margin=0.0, source="kernel-lut",
                                       label=name).predict([arch])[0]
          for name, p in (("full", full), ("partial", partial))}
    assert by["partial"].sigma == pytest.approx(math.hypot(by["full"].sigma, share))
    assert by["partial"].high / by["partial"].value > by["full"].high / by["full"].value


def test_too_few_calibration_nets_is_a_usage_error_naming_the_flag(cli: LutCli,
                                                                  tmp_path: Path) -> None:
    result = invoke(*cli.args("lut", "kernels", *SPACE_ARGS, *cli.device_args(), *FAST,
                              "--calibration-n", "3", "--out", str(tmp_path / "k.json")))
    assert result.exit_code == 2
    assert "--calibration-n" in result.output
    assert not (tmp_path / "k.json").exists()


def test_search_on_the_cli_names_the_kernel_lut_it_predicts_with(cli: LutCli,
                                                                  tmp_path: Path) -> None:
    result = _run(cli, tmp_path / "k.json", "--json")
    assert result.exit_code == 0, result.output
    lut_id = json.loads(result.stdout)["id"]
    with CostDB(cli.db_path) as db:
        before = db.count_measurements()
    searched = invoke(*cli.args("search", *SPACE_ARGS, "--mode", "lut", "--device", "a0",
                                "--fleet", str(cli.fleet_path), "--cache-dir",
                                str(cli.cache_dir), "--opt-level", "extended",
                                "--budget", "6", "--population", "4", "--no-plot", "--quiet"))
    assert searched.exit_code == 0, searched.output
    with CostDB(cli.db_path) as db:
        assert db.count_measurements() == before  # lut mode measured nothing
        record = max(SearchStore(db).searches(), key=lambda r: r.id)  # the module's others
        stored_id = record.config["kernel_luts"]["a0"]
        assert {s for _, s in _search_latencies(db, record.id).values()} == {"kernel-lut"}
    assert f"a0: predicted by kernel LUT {stored_id[:12]}" in searched.stdout
    # the newest LUT of this device and settings (the module's tests store others)
    assert stored_id == _stored_ids(cli)[0] and lut_id in _stored_ids(cli)
    shown = invoke(*cli.args("search", "show", str(record.id)))
    assert shown.exit_code == 0, shown.output
    assert f"kernel LUTs: a0: {stored_id[:12]}" in shown.stdout


def _stored_ids(cli: LutCli) -> list[str]:
    with CostDB(cli.db_path) as db:
        return [r.id for r in KernelLutStore(db).find(device="a0")]
