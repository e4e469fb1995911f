"""Files meant for sharing follow the umask (they were always 0600), and keep an existing mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleetnas.controller.atomic_files import write_bytes_atomic, write_text_atomic
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.lut import LutEntry, LutStore, export_lut
from tests.controller.test_costdb_helpers import make_result


def _shared_files(tmp_path: Path) -> list[Path]:
    """Write one file of each kind that people share; return their paths."""
    files = [write_text_atomic(tmp_path / "report.txt", "x\n"),
             write_bytes_atomic(tmp_path / "cache" / "model.onnx", b"\0")]
    with CostDB(tmp_path / "cost.db") as db:
        stored = db.record_measurement("pi-1", make_result("m1"))
        store = LutStore(db)
        lut = store.ensure(space="nb201", space_name="nb201", space_config={}, space_version=1,
                           device="pi-1", settings_hash=stored.settings_hash,
                           settings=stored.settings, blocks_total=1)
        store.put_entries(lut.id, [LutEntry("conv|3", stored.model_sha256, 1.5, stored.uid)])
        files += export_lut(db, store.get(lut.id), out_dir=tmp_path / "luts")
        db.export(tmp_path / "team.jsonl")
        db.export(tmp_path / "team.csv")
    files += [tmp_path / "team.jsonl", tmp_path / "team.csv"]
    files.append(save_fleet(Fleet.of([Device("a", "c", "h:1")]), tmp_path / "fleet.toml"))
    return files


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_shared_files_get_the_umask_permissions(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        files = _shared_files(tmp_path)
    finally:
        os.umask(old)
    assert len(files) == 7
    assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {
        f.name: oct(mode) for f in files}
    assert not list(tmp_path.rglob(".*.tmp"))


def test_rewriting_a_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text("old\n")
    path.chmod(0o640)
    write_text_atomic(path, "new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
