"""Benchmark-settings flags and ``k=v`` target keys, generated from the agent's settings table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fleetnas.agent.settings import Setting, flag_settings
from fleetnas.agent.settings_args import build_settings
from fleetnas.controller.cli import _options
from fleetnas.controller.cli.lut import lut
from fleetnas.controller.cli.measure import measure
from fleetnas.controller.cli.search import search
from fleetnas.controller.driver import SETTING_KEYS, SearchConfigError, parse_target
from fleetnas.controller.fleet import save_fleet
from tests import onnx_models
from tests.controller.conftest import AgentPool, fleet_of, fleetnas_cli


def _help(command: click.Command, *args: str) -> str:
    result = CliRunner().invoke(command, [*args, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


# Flags a command spells otherwise because it has an option of its own by that name.
OWN_FLAGS = {"search": {"--seed", "--shape", "--timeout"}}


@pytest.mark.parametrize(("name", "command", "args"), [
    ("measure", measure, ()), ("search", search, ()), ("lut build", lut, ("build",)),
])  # fmt: skip
def test_every_settings_flag_comes_from_the_table_with_its_default(
    name: str, command: click.Command, args: tuple[str, ...]
) -> None:
    text = _help(command, *args)
    for s in flag_settings():
        if s.flag in OWN_FLAGS.get(name, ()):
            continue
        assert re.search(rf"{re.escape(s.flag)}\b", text), (name, s.flag)
        assert f"{s.help} (default: {s.default_shown()})" in text, (name, s.flag)
    for flag in ("--runtime", "--profile", "--profile-runs", "--fp16"):
        assert flag in text, (name, flag)


def test_search_spells_the_benchmark_timeout_apart_from_its_own() -> None:
    text = _help(search)
    assert "--benchmark-timeout FLOAT wall-clock limit of one benchmark" in text


def test_a_setting_added_to_the_table_appears_with_no_cli_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    added = Setting("warp_factor", int, 3, "how warped the benchmark is", "--warp", "warp")
    monkeypatch.setattr(_options, "flag_settings", lambda: (*flag_settings(), added))

    @click.command()
    @_options.settings_options()
    def command(**values: object) -> None:
        click.echo(json.dumps({k: v for k, v in values.items() if v not in (None, ())}))

    assert "--warp INTEGER how warped the benchmark is (default: 3)." in _help(command)
    result = CliRunner().invoke(command, ["--warp", "7", "--threads", "2"])
    assert json.loads(result.output) == {"warp": 7, "threads": 2}


def test_switches_are_unset_unless_given() -> None:
    @click.command()
    @_options.settings_request()
    def command(request: object) -> None:
        click.echo(str(request).replace("\n", " "))

    assert CliRunner().invoke(command, []).output.strip() == ""
    given = CliRunner().invoke(command, ["--fp16", "--profile", "--profile-runs", "3"]).output
    assert "profile: true" in given and "fp16: true" in given and "profile_runs: 3" in given


def test_target_keys_are_every_flag_of_the_table() -> None:
    assert set(SETTING_KEYS) == {s.flag.lstrip("-") for s in flag_settings()}


def test_a_target_overrides_the_shared_settings_lists_and_switches_included() -> None:
    base = build_settings(providers=["A", "B"], fp16=True, threads=1, shapes=["x=1x3x8x8"])
    target = parse_target("gpu:provider=C,fp16=false,runtime=litert,profile-runs=4,"
                          "shape=x=1x3x16x16,label=g", "device", base)
    request = target.request()
    assert list(request.providers) == ["C"]
    assert request.fp16 is False and request.runtime == "litert"
    assert request.profile_runs == 4 and request.intra_op_threads == 1
    assert [list(s.dims) for s in request.input_shapes] == [[1, 3, 16, 16]]
    assert target.objective == "latency[g]"
    untouched = parse_target("gpu", "device", base).request()
    assert list(untouched.providers) == ["A", "B"] and untouched.fp16 is True
    with pytest.raises(SearchConfigError, match=r"fp16='maybe'"):
        parse_target("gpu:fp16=maybe", "device")
    with pytest.raises(SearchConfigError, match="unknown setting 'warp'; known: label, precision, warmup"):
        parse_target("gpu:warp=2", "device")


def test_measure_takes_per_target_settings_as_search_does(
    tmp_path: Path, agents: AgentPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (agent,) = agents.start(1)
    save_fleet(fleet_of([agent], "cpu"), tmp_path / "fleet.toml")
    model = tmp_path / "mlp.onnx"
    model.write_bytes(onnx_models.mlp(32, 2, seed=0))
    tiny = ["--warmup", "2", "--min-runs", "5", "--max-runs", "30", "--min-duration", "0",
            "--max-duration", "0.5"]
    result = CliRunner().invoke(fleetnas_cli(), [
        "measure", str(model), *tiny, "--json", "--device", f"{agent.name}:threads=2",
        "--class", "cpu:threads=1,warmup=3,label=one",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout)
    assert first["target"] == {"device": agent.name}
    assert second["target"] == {"class": "cpu", "label": "one"}
    assert first["measurement"]["intra_op_threads"] == 2
    assert second["measurement"]["intra_op_threads"] == 1
    assert first["measurement"]["settings"]["warmup_runs"] == 2
    assert second["measurement"]["settings"]["warmup_runs"] == 3
    bad = CliRunner().invoke(fleetnas_cli(), ["measure", str(model), "--device", "x:thread=2"])
    assert bad.exit_code == 2 and "unknown setting 'thread'" in bad.output
