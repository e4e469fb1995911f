"""``lut build --statistic`` and ``lut build --remeasure`` against a real loopback agent.

One agent and one LUT of the tiny NAS-Bench-201 space (16 blocks, tiny
settings) are shared by the module's tests, which run in file order: the
statistic tests recompute entries from the stored samples (no measuring), the
remeasure tests then measure some or all blocks again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut import (
    LutEntry,
    LutInfo,
    LutStore,
    entry_noise,
    export_lut,
    import_lut,
    robust_latency,
)
from tests.controller.lut_cli import SPACE, SPACE_ARGS, TINY, LutCli, invoke, lut_cli


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LutCli]:
    with lut_cli(tmp_path_factory.mktemp("lut-refresh")) as b:
        b.build("--calibration-n", "0")
        yield b


def _state(built: LutCli) -> tuple[LutInfo, dict[str, LutEntry], int]:
    with CostDB(built.db_path) as db:
        (info,) = LutStore(db).find(space=SPACE.identity(), device="a0")
        return info, LutStore(db).entries(info.id), db.count_measurements()


def _build(built: LutCli, *more: str) -> str:
    result = invoke(*built.args("lut", "build", *SPACE_ARGS, *built.device_args(), *TINY,
                                "--calibration-n", "0", "--quiet", *more))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_new_lut_is_median_and_a_changed_statistic_recomputes_without_measuring(
    built: LutCli,
) -> None:
    info, entries, count = _state(built)
    assert info.statistic == "median"
    out = _build(built, "--statistic", "p10")
    assert "statistic median -> p10: 16 entries recomputed" in out
    after, p10_entries, count_after = _state(built)
    assert count_after == count  # nothing measured
    assert after.statistic == "p10" and after.calibration is None
    with CostDB(built.db_path) as db:
        for key, entry in p10_entries.items():
            assert entry.measurement_uid == entries[key].measurement_uid
            m = db.get_measurement(entry.measurement_uid or "")
            assert m is not None
            assert entry.latency_ms == pytest.approx(robust_latency(m.samples_ms, "p10"))
    # The 10th percentile of a block's runs is never above their median.
    assert all(p10_entries[k].latency_ms <= entries[k].latency_ms + 1e-12 for k in entries)
    assert any(p10_entries[k].latency_ms < entries[k].latency_ms for k in entries)

    # Without --statistic a rebuild keeps the LUT's own; `lut show` says which.
    assert "statistic median" not in _build(built)
    assert _state(built)[0].statistic == "p10"
    show = invoke(*built.args("lut", "show", "--json"))
    assert json.loads(show.stdout)[0]["statistic"] == "p10"
    assert "trimmed-mean" in _build(built, "--statistic", "trimmed-mean")
    table = invoke(*built.args("lut", "show"))
    assert "statistic" in table.stdout and "trimmed-mean" in table.stdout
    # And back: median entries are their measurement's own latency_ms again.
    _build(built, "--statistic", "median")
    _, back, _ = _state(built)
    assert {k: e.latency_ms for k, e in back.items()} == {
        k: e.latency_ms for k, e in entries.items()}


def test_the_statistic_travels_with_an_exported_lut(built: LutCli, tmp_path: Path) -> None:
    _build(built, "--statistic", "min")
    with CostDB(built.db_path) as db:
        (info,) = LutStore(db).find(space=SPACE.identity(), device="a0")
        (path,) = export_lut(db, info, out_dir=tmp_path, formats=("json",))
    doc = json.loads(path.read_text())
    assert doc["statistic"] == "min"
    with CostDB(tmp_path / "other.db") as other:
        imported = import_lut(other, path)
    assert imported.lut.statistic == "min"
    doc["statistic"] = "mode"
    path.write_text(json.dumps(doc))
    with CostDB(tmp_path / "third.db") as third, pytest.raises(ValueError, match="statistic"):
        import_lut(third, path)
    _build(built, "--statistic", "median")


def test_remeasure_over_max_cv_is_bounded_and_takes_the_noisiest_first(built: LutCli) -> None:
    _, before, count = _state(built)
    with CostDB(built.db_path) as db:
        noise = {}
        for key, entry in before.items():
            m = db.get_measurement(entry.measurement_uid or "")
            assert m is not None
            noise[key] = entry_noise(m)
    shown = invoke(*built.args("lut", "show", *SPACE_ARGS, "--device", "a0", "--blocks"))
    assert shown.exit_code == 0 and "noise" in shown.stdout
    noisiest = max(noise, key=lambda k: noise[k])
    assert f"{100 * noise[noisiest]:.1f}%" in shown.stdout
    out = _build(built, "--remeasure", "--max-cv", "0", "--max-remeasure", "3")
    _, after, count_after = _state(built)
    assert count_after == count + 3
    changed = {k for k in after if after[k].measurement_uid != before[k].measurement_uid}
    assert changed == set(sorted(noise, key=lambda k: -noise[k])[:3])
    assert "re-measured 3 of 16 selected blocks (13 left by --max-remeasure" in out
    assert "entries over --max-cv 0: 16 before, 16 after" in out
    for key in changed:
        assert key in out  # the per-entry before/after table


def test_remeasure_without_max_cv_refreshes_every_entry_with_the_statistic_asked_for(built: LutCli) -> None:
    _, before, count = _state(built)
    out = _build(built, "--remeasure", "--statistic", "p10")
    info, after, count_after = _state(built)
    assert count_after == count + 16 and info.status == "complete"
    assert all(after[k].measurement_uid != before[k].measurement_uid for k in before)
    # With --statistic, the fresh entries are of the new statistic.
    assert info.statistic == "p10"
    with CostDB(built.db_path) as db:
        for entry in after.values():
            m = db.get_measurement(entry.measurement_uid or "")
            assert m is not None
            assert entry.latency_ms == pytest.approx(robust_latency(m.samples_ms, "p10"))
    assert "re-measured 16 of 16 selected blocks" in out
    # A huge threshold selects nothing: nothing is measured.
    assert "nothing to re-measure" in _build(built, "--remeasure", "--max-cv", "100")
    assert _state(built)[2] == count_after


def test_bad_refresh_flags_are_one_line_errors(built: LutCli) -> None:
    bound = invoke(*built.args("lut", "build", *SPACE_ARGS, *built.device_args(),
                               "--max-remeasure", "2"))
    assert bound.exit_code == 2 and "add --remeasure" in bound.output
    other = invoke(*built.args("lut", "build", "--space", "nb201", "--space-config",
                               json.dumps({"channels": 8, "cells_per_stage": 1}),
                               *built.device_args(), "--remeasure"))
    assert other.exit_code == 1 and "build one with" in other.output
    assert "Traceback" not in other.output
    unknown = invoke(*built.args("lut", "build", *SPACE_ARGS, *built.device_args(),
                                 "--statistic", "mode"))
    assert unknown.exit_code == 2 and "--statistic" in unknown.output
