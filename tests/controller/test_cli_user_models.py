"""``fleetnas measure --name/--tag/--rename`` and ``fleetnas db models``, through the CLI,
with a real local agent and real model files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetnas.controller.compress import describe_model
from fleetnas.controller.costdb import CostDB
from tests import onnx_models, tflite_models
from tests.controller.conftest import fleetnas_cli

TINY = ["--warmup", "2", "--min-runs", "5", "--max-runs", "30", "--min-duration", "0",
        "--max-duration", "0.5"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEETNAS_FLEET", raising=False)
    monkeypatch.delenv("FLEETNAS_DB", raising=False)
    return CliRunner()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    return lines[0]


def _models(runner: CliRunner) -> list[dict[str, object]]:
    listed = runner.invoke(fleetnas_cli(), ["db", "models", "--json"])
    assert listed.exit_code == 0, listed.output
    entries: list[dict[str, object]] = json.loads(listed.stdout)
    return entries


def test_a_named_model_is_stored_listed_and_its_name_is_guarded(
    runner: CliRunner, tmp_path: Path
) -> None:
    data = onnx_models.conv_net(4, 8, 2)
    model = _write(tmp_path / "conv.onnx", data)
    cli = fleetnas_cli()
    first = runner.invoke(cli, ["measure", str(model), "--name", "conv-a", "--tag", "team=vision",
                                "--tag", "owner=ana", *TINY])
    assert first.exit_code == 0, first.output
    assert "named 'conv-a'" in first.stderr

    info = describe_model(data)
    (entry,) = _models(runner)
    assert entry["name"] == "conv-a" and entry["sha256"] == info.sha256
    assert entry["tags"] == {"team": "vision", "owner": "ana"}
    assert entry["precision"] == "fp32" and entry["format"] == "onnx"
    assert entry["params"] == info.params and entry["flops"] == info.flops
    assert entry["inputs"] == {s.name: {"dims": list(s.dims), "dtype": s.dtype}
                               for s in info.inputs}
    assert entry["measurements"] == 1 and entry["devices"] == ["local"]

    table = runner.invoke(cli, ["db", "models"], env={"COLUMNS": "250"})
    assert table.exit_code == 0
    assert "conv-a" in table.stdout and info.sha256[:12] in table.stdout
    assert "team=vision" in table.stdout and f"{info.params:,}" in table.stdout

    other = _write(tmp_path / "other.onnx", onnx_models.conv_net(4, 8, 2, seed=1))
    taken = runner.invoke(cli, ["measure", str(other), "--name", "conv-a", *TINY])
    assert taken.exit_code == 1
    assert "already model " + info.sha256[:12] in _error_line(taken.output)
    second = runner.invoke(cli, ["measure", str(model), "--name", "conv-b", *TINY])
    assert second.exit_code == 1 and "--rename" in _error_line(second.output)
    assert [e["name"] for e in _models(runner)] == ["conv-a"]  # nothing changed

    renamed = runner.invoke(cli, ["measure", str(model), "--name", "conv-b", "--rename",
                                  "--tag", "stage=prod", *TINY])
    assert renamed.exit_code == 0, renamed.output
    (entry,) = _models(runner)
    assert entry["name"] == "conv-b" and entry["measurements"] == 1  # a cache hit, not rerun
    assert entry["tags"] == {"team": "vision", "owner": "ana", "stage": "prod"}


def test_a_tflite_model_is_named_with_precision_unknown(runner: CliRunner, tmp_path: Path) -> None:
    model = _write(tmp_path / "add.tflite", tflite_models.add())
    result = runner.invoke(fleetnas_cli(), ["measure", str(model), "--tag", "kind=tflite", *TINY])
    assert result.exit_code == 0, result.output
    (entry,) = _models(runner)
    assert entry["name"] == "add"  # --tag alone names an unnamed model after its file
    assert entry["format"] == "tflite" and entry["precision"] == "unknown"
    assert entry["params"] is None and entry["inputs"] == {}
    assert entry["measurements"] == 1


@pytest.mark.parametrize(("args", "expected"), [
    (["--tag", "team"], "write KEY=VALUE"),
    (["--tag", "bad key=v"], "tag key"),
    (["--name", " padded"], "--name"),
])
def test_bad_names_and_tags_are_one_line_errors_before_any_work(
    runner: CliRunner, tmp_path: Path, args: list[str], expected: str
) -> None:
    model = _write(tmp_path / "m.onnx", onnx_models.mlp(8, 1))
    result = runner.invoke(fleetnas_cli(), ["measure", str(model), *args, *TINY])
    assert result.exit_code == 1
    assert expected in _error_line(result.output)
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "fleetnas.db").exists()  # refused before opening the database


def test_not_a_model_missing_files_and_two_files_for_one_name(
    runner: CliRunner, tmp_path: Path
) -> None:
    cli = fleetnas_cli()
    junk = _write(tmp_path / "junk.onnx", b"\x00" * 64)
    result = runner.invoke(cli, ["measure", str(junk), "--name", "junk", *TINY])
    assert result.exit_code == 1
    assert "not an ONNX or TFLite model" in _error_line(result.output)
    with CostDB(tmp_path / "fleetnas.db") as db:
        assert db.user_models() == [] and db.count_measurements() == 0

    missing = runner.invoke(cli, ["measure", str(tmp_path / "nope.onnx"), "--name", "x"])
    assert missing.exit_code == 2 and "nope.onnx" in _error_line(missing.output)

    a = _write(tmp_path / "a.onnx", onnx_models.mlp(8, 1))
    two = runner.invoke(cli, ["measure", str(a), str(junk), "--name", "x"])
    assert two.exit_code == 2 and "--name names one model" in _error_line(two.output)
