"""``fleetnas db ...`` through click's CliRunner, on real database files; and the
rule that every registered command's help carries an example."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fleetnas.controller.cli import SUBCOMMANDS, main
from fleetnas.controller.costdb import CostDB
from tests.controller.test_costdb_helpers import make_result, sha_of


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _filled(path: Path, device: str = "pi-1", labels: tuple[str, ...] = ("a", "b")) -> Path:
    with CostDB(path) as db:
        db.upsert_device(device, device_class="pi4", address="10.0.0.5:1", host_fingerprint="h")
        for i, label in enumerate(labels):
            db.record_measurement(device, make_result(label, started_at=1000.0 + i))
    return path


def test_db_path_prints_the_resolved_path_from_flag_or_env(runner: CliRunner, tmp_path: Path):
    result = runner.invoke(main, ["--db", str(tmp_path / "x.db"), "db", "path"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str((tmp_path / "x.db").resolve())
    result = runner.invoke(main, ["db", "path"], env={"FLEETNAS_DB": str(tmp_path / "env.db")})
    assert result.output.strip() == str((tmp_path / "env.db").resolve())
    assert not (tmp_path / "x.db").exists()  # `path` creates nothing


def test_db_stats_shows_counts_per_device(runner: CliRunner, tmp_path: Path) -> None:
    db_path = _filled(tmp_path / "cost.db")
    with CostDB(db_path) as db:
        db.record_measurement("loose", make_result("c"))
    result = runner.invoke(main, ["--db", str(db_path), "db", "stats"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1 devices, 3 models, 3 measurements" in result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "pi4" in lines["pi-1"] and " 2 " in lines["pi-1"]
    assert "not in fleet" in lines["loose"]


def test_stats_and_export_need_an_existing_database(runner: CliRunner, tmp_path: Path) -> None:
    for args in (["db", "stats"], ["db", "export", str(tmp_path / "out.jsonl")]):
        result = runner.invoke(main, ["--db", str(tmp_path / "none.db"), *args])
        assert result.exit_code == 1
        assert "no cost database at" in result.output and "FLEETNAS_DB" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix, fmt", [(".jsonl", None), (".csv", None), (".txt", "csv")])
def test_export_then_import_through_the_cli(
    runner: CliRunner, tmp_path: Path, suffix: str, fmt: str | None
) -> None:
    src = _filled(tmp_path / "src.db")
    out = tmp_path / f"out{suffix}"
    args = ["--db", str(src), "db", "export", str(out)] + (["--format", fmt] if fmt else [])
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "exported 2 measurements, 1 devices, 2 models" in result.output
    dst = tmp_path / "dst.db"
    args = ["--db", str(dst), "db", "import", str(out), "--source", "team"]
    result = runner.invoke(main, args + (["--format", fmt] if fmt else []))
    assert result.exit_code == 0, result.output
    assert "added 2 measurements, skipped 0 duplicates" in result.output
    with CostDB(dst) as db:
        assert {m.source for m in db.measurements()} == {"team"}
        assert db.get_device("pi-1") is not None


def test_import_of_a_malformed_file_is_a_one_line_error(runner: CliRunner, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "fleetnas-costdb", "version": 1}\n{"type": "model"\n')
    result = runner.invoke(main, ["--db", str(tmp_path / "dst.db"), "db", "import", str(bad)])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: ") and "bad.jsonl:2:" in line and "export the file again" in line


def test_merge_through_the_cli(runner: CliRunner, tmp_path: Path) -> None:
    mine = _filled(tmp_path / "mine.db", "pi-1", ("a", "b"))
    theirs = _filled(tmp_path / "theirs.db", "jetson", ("b", "c", "d"))
    result = runner.invoke(main, ["--db", str(mine), "db", "merge", str(theirs)])
    assert result.exit_code == 0, result.output
    assert "added 3 measurements, skipped 0 duplicates; new devices 1, new models 2" in (
        result.output
    )
    result = runner.invoke(main, ["--db", str(mine), "db", "merge", str(theirs)])
    assert "added 0 measurements, skipped 3 duplicates" in result.output
    with CostDB(mine) as db:
        assert db.count_measurements(device="jetson") == 3
        assert db.get_model(sha_of("d")) is not None


def test_merge_of_a_non_database_says_what_to_do(runner: CliRunner, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00" * 2048)
    result = runner.invoke(main, ["--db", str(tmp_path / "mine.db"), "db", "merge", str(junk)])
    assert result.exit_code == 1
    assert "is not a fleetnas cost database" in result.output and "--db" in result.output


def test_a_db_file_that_is_not_sqlite_is_a_one_line_error(runner: CliRunner, tmp_path: Path):
    text = tmp_path / "notes.db"
    text.write_text("not a database " * 200)
    result = runner.invoke(main, ["--db", str(text), "db", "stats"])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "not a fleetnas cost database" in result.output


def _all_commands(
    group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{' '.join((*prefix, name))} failed to load"
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _all_commands(command, click.Context(command, parent=ctx), (*prefix, name))
    return found


def test_every_command_has_help_with_an_example(runner: CliRunner) -> None:
    commands = _all_commands(main, click.Context(main, info_name="fleetnas"))
    assert set(SUBCOMMANDS) <= {path[0] for path in commands}
    assert {"db", "db export", "db import", "db merge", "db stats", "db path"} <= {
        " ".join(path) for path in commands
    }
    for path in [(), *commands]:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        label = " ".join(("fleetnas", *path))
        assert "Example:" in result.output, f"`{label} --help` has no example"
        example = result.output.split("Example:", 1)[1]
        assert "fleetnas " in example, f"`{label} --help` example does not run fleetnas"
