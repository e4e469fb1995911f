"""``fleetnas compare`` and ``fleetnas quantize`` through the CLI, on real agents and files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from fleetnas.controller.compress import detect_precision
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from tests import onnx_models
from tests.controller.conftest import AgentPool, fleet_of, fleetnas_cli

TINY = ["--warmup", "2", "--min-runs", "5", "--max-runs", "30", "--min-duration", "0",
        "--max-duration", "0.5"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


def test_compare_two_models_on_two_devices(
    runner: CliRunner, tmp_path: Path, agents: AgentPool
) -> None:
    save_fleet(fleet_of(agents.start(2), "cpu"), tmp_path / "fleet.toml")
    small = _write(tmp_path / "small.onnx", onnx_models.mlp(16, 1))
    big = _write(tmp_path / "big.onnx", onnx_models.conv_net(8, 16, 3))
    cli = fleetnas_cli()
    named = runner.invoke(cli, ["measure", str(big), "--device", "a0", "--name", "big-conv",
                                *TINY])
    assert named.exit_code == 0, named.output
    targets = ["--device", "a0", "--device", "a1"]

    result = runner.invoke(cli, ["compare", str(big), str(small), *targets, *TINY, "--json",
                                 "--plot", "cmp.png"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["targets"] == ["a0", "a1"]
    assert [m["model"] for m in report["models"]] == ["big-conv", "small.onnx"]
    with CostDB(tmp_path / "fleetnas.db") as db:
        assert db.count_measurements() == 4  # big on a0 was reused, not measured again
        stored = {(m["file"], t): db.get_measurement(uid)
                  for m in report["models"] for t, uid in m["measurement_uids"].items()}
    for m in report["models"]:
        for t in report["targets"]:
            measurement = stored[(m["file"], t)]
            assert measurement is not None and measurement.device == t
            assert m["latency_ms"][t] == measurement.latency_ms
            base = stored[("big.onnx", t)]
            assert base is not None
            assert m["speedup"][t] == pytest.approx(base.latency_ms / measurement.latency_ms)
    assert (tmp_path / "cmp.png").read_bytes().startswith(PNG_MAGIC)

    table = runner.invoke(cli, ["compare", str(big), str(small), *targets, *TINY],
                          env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    header = next(line for line in table.stdout.splitlines() if "a0 ms" in line)
    columns = [c.strip() for c in header.strip("┃│ ").split("┃")]
    assert columns == ["model", "a0 ms", "a0 speed-up", "a1 ms", "a1 speed-up", "warnings"]
    rows = [line for line in table.stdout.splitlines() if "big-conv" in line]
    assert len(rows) == 1 and rows[0].count("1.00x") == 2


def test_quantize_writes_loadable_variants_of_the_right_precision(
    runner: CliRunner, tmp_path: Path
) -> None:
    model = _write(tmp_path / "net.onnx", onnx_models.conv_net(4, 8, 2))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", x=rng.standard_normal((8, 4, 8, 8)).astype(np.float32))
    result = runner.invoke(fleetnas_cli(), ["quantize", str(model), "--calibration", "cal.npz",
                                            "--out-dir", "variants", "--json"])
    assert result.exit_code == 0, result.output
    assert "random" not in result.stderr  # calibrated on the given data
    variants = json.loads(result.stdout)["variants"]
    assert [v["precision"] for v in variants] == ["int8", "int8-dynamic", "fp16"]
    feed = {"x": rng.standard_normal((1, 4, 8, 8)).astype(np.float32)}
    for v in variants:
        path = Path(v["file"])
        assert path == Path("variants") / f"net.{v['precision']}.onnx"
        data = path.read_bytes()
        assert detect_precision(data).precision.value == v["precision"] == v["detected"]
        assert v["size_bytes"] == len(data)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        (out,) = session.run(None, feed)
        assert np.isfinite(out).all()
    assert variants[0]["calibration"] == "cal.npz"


def test_quantize_without_calibration_warns_then_measures_and_compares(
    runner: CliRunner, tmp_path: Path
) -> None:
    model = _write(tmp_path / "net.onnx", onnx_models.conv_net(4, 8, 2))
    result = runner.invoke(fleetnas_cli(), ["quantize", str(model), "--precision", "int8",
                                            "--measure", *TINY], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "warning: int8 activations are calibrated on random normal data" in result.stderr
    assert "Variants of net.onnx" in result.stdout and "net.int8.onnx" in result.stdout
    assert "net.onnx and its variants" in result.stdout
    with CostDB(tmp_path / "fleetnas.db") as db:
        assert db.count_measurements() == 2  # the original and its int8 variant


@pytest.mark.parametrize(("make", "args", "expected"), [
    (lambda: b"not a model at all", [], "not an ONNX model"),
    (lambda: onnx_models.mlp(8, 1), ["--precision", "int9"], "unknown precision 'int9'"),
    (lambda: onnx_models.mlp(8, 1), ["--calibration", "nope.npz"], "nope.npz: no such file"),
])
def test_quantize_bad_inputs_are_one_line_errors(
    runner: CliRunner, tmp_path: Path, make: object, args: list[str], expected: str
) -> None:
    assert callable(make)
    model = _write(tmp_path / "m.onnx", make())
    result = runner.invoke(fleetnas_cli(), ["quantize", str(model), *args])
    assert result.exit_code != 0
    assert expected in _error_line(result.output)
    assert not list(tmp_path.glob("m.*.onnx"))


def test_quantize_refuses_an_already_quantized_model_and_a_missing_file(
    runner: CliRunner, tmp_path: Path
) -> None:
    model = _write(tmp_path / "m.onnx", onnx_models.conv_net(4, 8, 2))
    cli = fleetnas_cli()
    made = runner.invoke(cli, ["quantize", str(model), "--precision", "int8-dynamic"])
    assert made.exit_code == 0, made.output
    again = runner.invoke(cli, ["quantize", str(tmp_path / "m.int8-dynamic.onnx")])
    assert again.exit_code == 1 and "already int8-dynamic" in _error_line(again.output)
    missing = runner.invoke(cli, ["quantize", "nope.onnx"])
    assert missing.exit_code == 2 and "nope.onnx" in _error_line(missing.output)


def test_quantize_with_a_fleet_file_but_no_target_writes_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    # the file is only read (nothing is contacted before the error)
    save_fleet(Fleet.of([Device("pi4-a", "pi4", "127.0.0.1:9")]), tmp_path / "fleet.toml")
    model = _write(tmp_path / "m.onnx", onnx_models.mlp(8, 1))
    result = runner.invoke(fleetnas_cli(), ["quantize", str(model), "--measure"])
    assert result.exit_code == 2 and "say where to measure" in _error_line(result.output)
    assert not list(tmp_path.glob("m.*.onnx"))
