"""``fleetnas measure --profile`` with a real local agent: stored, printed, plotted, in JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetnas.controller.costdb import CostDB
from tests import onnx_models
from tests.controller import test_cli_measure
from tests.controller.conftest import fleetnas_cli

TINY = [*test_cli_measure.TINY, "--threads", "1"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REFERENCE_TFLITE = Path(__file__).parents[2] / "agent" / "assets" / "reference.tflite"
runner = test_cli_measure.runner  # the fixture: a CliRunner in tmp_path, no fleet file


def _model(tmp_path: Path) -> Path:
    path = tmp_path / "net.onnx"
    path.write_bytes(onnx_models.conv_net(8, 16, 3, named=True))
    return path


def test_measure_profile_stores_prints_and_plots_the_profile(
    runner: CliRunner, tmp_path: Path
) -> None:
    model, plot = _model(tmp_path), tmp_path / "out" / "ops.png"
    cli = fleetnas_cli()
    done = runner.invoke(cli, ["measure", str(model), "--local", *TINY, "--profile",
                               "--profile-runs", "3", "--profile-top", "2",
                               "--profile-plot", str(plot)], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    with CostDB(tmp_path / "fleetnas.db") as db:
        (measurement,) = db.measurements()
        stored = db.get_profile(measurement.uid)
    assert stored is not None
    profile = stored.proto()
    assert profile.profiled_runs == 3 and len(profile.operators) >= 3
    assert all(op.median_ms > 0 and op.provider == "CPUExecutionProvider"
               for op in profile.operators)
    assert sum(op.median_ms for op in profile.operators) == pytest.approx(profile.total_ms)
    slowest = sorted(profile.operators, key=lambda op: -op.median_ms)
    title = f"top 2 of {len(profile.operators)} nodes"
    assert title in done.stdout
    nodes_part, types_part = done.stdout.split(title)[1].split("time by op type")
    rows = [line for line in nodes_part.splitlines() if line.startswith("│")]
    assert len(rows) == 2  # only the top 2, slowest first
    for row, op in zip(rows, slowest, strict=False):
        assert op.node_name in row and op.op_type in row and f"{op.median_ms:.4g}" in row
    type_rows = [line for line in types_part.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in type_rows] == [
        t.op_type for t in sorted(profile.op_types, key=lambda t: -t.total_ms)]
    assert plot.read_bytes().startswith(PNG_MAGIC)
    assert f"wrote {plot}" in done.stderr


def test_measure_profile_measures_afresh_and_puts_the_profile_in_json(
    runner: CliRunner, tmp_path: Path
) -> None:
    model = _model(tmp_path)
    cli = fleetnas_cli()
    plain = runner.invoke(cli, ["measure", str(model), "--local", *TINY, "--json"])
    assert plain.exit_code == 0, plain.output
    (entry,) = json.loads(plain.stdout)
    assert entry["profile"] is None
    profiled = runner.invoke(cli, ["measure", str(model), "--local", *TINY, "--json",
                                   "--profile", "--profile-runs", "2"])
    assert profiled.exit_code == 0, profiled.output
    (entry,) = json.loads(profiled.stdout)
    # the plain measurement has the same cache key, but no profile: this one was run
    assert entry["status"] == "measured"
    assert entry["profile"]["profiled_runs"] == 2
    with CostDB(tmp_path / "fleetnas.db") as db:
        assert db.count_measurements() == 2
        stored = db.get_profile(entry["measurement"]["uid"])
        assert stored is not None
        names = [op["node_name"] for op in entry["profile"]["operators"]]
        assert names == [op.node_name for op in stored.proto().operators]


def test_profile_plot_without_profile_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    done = runner.invoke(fleetnas_cli(), ["measure", str(_model(tmp_path)), "--local",
                                          "--profile-plot", str(tmp_path / "x.png")])
    assert done.exit_code == 2
    assert "--profile-plot needs --profile" in done.output
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "fleetnas.db").exists()


def test_a_litert_model_has_no_profile_in_process_and_says_why(
    runner: CliRunner, tmp_path: Path
) -> None:
    model = tmp_path / "ref.tflite"
    model.write_bytes(REFERENCE_TFLITE.read_bytes())
    plot = tmp_path / "ops.png"
    done = runner.invoke(fleetnas_cli(), ["measure", str(model), "--local", *TINY, "--profile",
                                          "--profile-plot", str(plot)])
    assert done.exit_code == 1, done.output
    with CostDB(tmp_path / "fleetnas.db") as db:
        (measurement,) = db.measurements()
        assert measurement.settings["runtime"] == "litert"
        assert db.get_profile(measurement.uid) is None
    # the agent's warning is the reason given
    (warning,) = [w for w in measurement.warnings if "profile" in w]
    (note,) = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    assert note.startswith("note: ref.tflite on local: no operator profile (") and warning in note
    assert f"no operator profile came back: {plot} not written" in done.stderr
    assert not plot.exists()


def test_a_profile_of_means_is_labelled_mean_not_median() -> None:
    from rich.console import Console

    from fleetnas.api.v1 import agent_pb2
    from fleetnas.controller.cli._profile import node_table

    def shown(profile: agent_pb2.OperatorProfile) -> str:
        console = Console(width=200, record=True)
        console.print(node_table(profile, "net", top=5))
        return console.export_text()

    op = agent_pb2.OperatorTiming(node_name="conv", op_type="CONV_2D", median_ms=1.0, share=1.0)
    means = agent_pb2.OperatorProfile(operators=[op], times_are_means=True, total_ms=1.0)
    medians = agent_pb2.OperatorProfile(operators=[op], total_ms=1.0)
    assert "mean ms" in shown(means) and "median" not in shown(means)
    assert "median ms" in shown(medians)
