"""``fleetnas lut kernels`` against a real loopback agent on the tiny NAS-Bench-201 space.

The kernels of 3 random archs plus 5 calibration and 4 eval archs are
extracted by the controller's onnxruntime (level ``extended``: Conv+Relu fused
into FusedConv), each measured alone in one protocol round, and the LUT is
calibrated and scored; the file it writes is checked against what it says,
and a rerun must measure nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut import sample_archs
from fleetnas.controller.predict import (
    KERNEL_CALIBRATION_PURPOSE,
    KERNEL_EVAL_PURPOSE,
    NULL_KEY,
    KernelLut,
    arch_kernels,
)
from tests.controller.lut_cli import SPACE, SPACE_ARGS, LutCli, invoke, lut_cli

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


def test_too_few_calibration_nets_is_a_usage_error_naming_the_flag(cli: LutCli,
                                                                  tmp_path: Path) -> None:
    result = invoke(*cli.args("lut", "kernels", *SPACE_ARGS, *cli.device_args(), *FAST,
                              "--calibration-n", "3", "--out", str(tmp_path / "k.json")))
    assert result.exit_code == 2
    assert "--calibration-n" in result.output
    assert not (tmp_path / "k.json").exists()
