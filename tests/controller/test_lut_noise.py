"""Noisy LUT entries measured again (bounded, recorded), and a stale LUT re-measured.

A real local agent measures a space of four tiny conv blocks. A CV threshold
of 0 makes every block "noisy" (real timings are never all equal), so every
block is re-measured exactly the allowed number of times; a huge threshold
re-measures none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetnas.controller.costdb import CostDB
from fleetnas.controller.lut import (
    BuildReport,
    LutMismatch,
    LutStore,
    build_lut,
    remeasure_lut,
    sample_cv,
)
from fleetnas.controller.scheduler import Scheduler
from fleetnas.controller.spaces import NB201Space
from tests.controller.conftest import AgentPool, fleet_of, tiny_settings
from tests.controller.test_litert_devices import TwoConvSpace

SPACE = TwoConvSpace()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[CostDB]:
    with CostDB(tmp_path / "cost.db") as database:
        yield database


def _build(agents: AgentPool, db: CostDB, cache: Path, **noise: float) -> BuildReport:
    with Scheduler(fleet_of(agents.start(1)), db) as scheduler:
        return build_lut(SPACE, "a0", tiny_settings(), db=db, scheduler=scheduler,
                         cache_dir=cache, **noise)  # type: ignore[arg-type]


def test_noisy_blocks_are_measured_again_and_keep_their_least_noisy_measurement(
    agents: AgentPool, db: CostDB, tmp_path: Path
) -> None:
    report = _build(agents, db, tmp_path / "models", max_cv=0.0, remeasure_attempts=2)
    assert report.lut is not None and report.complete and not report.failed
    assert report.measured == 4 and report.cached == 0  # first measurements only
    assert sorted(r.block_key for r in report.remeasured) == sorted(
        b.key for b in SPACE.all_blocks())
    entries = LutStore(db).entries(report.lut.id)
    for history in report.remeasured:
        assert len(history.cvs) == 3  # the build's, then two re-measures
        assert history.cvs[history.kept] == min(history.cvs)
        entry = entries[history.block_key]
        kept = db.get_measurement(entry.measurement_uid)
        assert entry.measurement_uid is not None
        assert kept is not None and sample_cv(kept.samples_ms) == pytest.approx(min(history.cvs))
        assert entry.latency_ms == kept.latency_ms
        assert db.count_measurements(model_sha256=entry.model_sha256) == 3


def test_quiet_blocks_are_not_measured_again(
    agents: AgentPool, db: CostDB, tmp_path: Path
) -> None:
    report = _build(agents, db, tmp_path / "models", max_cv=1e9)
    assert report.complete and report.remeasured == ()
    assert db.count_measurements() == 4


def test_a_stale_lut_is_remeasured_afresh_with_its_own_settings(
    agents: AgentPool, db: CostDB, tmp_path: Path
) -> None:
    fleet = fleet_of(agents.start(1))
    cache = tmp_path / "models"
    with Scheduler(fleet, db) as scheduler:
        first = build_lut(SPACE, "a0", tiny_settings(), db=db, scheduler=scheduler,
                          cache_dir=cache)
        assert first.lut is not None
        before = LutStore(db).entries(first.lut.id)
        with pytest.raises(LutMismatch, match="pass its own space"):
            remeasure_lut(NB201Space(channels=4, cells_per_stage=1), first.lut, db=db,
                          scheduler=scheduler)
        again = remeasure_lut(SPACE, first.lut, db=db, scheduler=scheduler, cache_dir=cache)
    assert again.lut is not None and again.lut.id == first.lut.id and again.complete
    assert again.measured == 4 and again.cached == 0
    after = LutStore(db).entries(first.lut.id)
    assert after.keys() == before.keys()
    for key, entry in after.items():
        assert entry.measurement_uid != before[key].measurement_uid
        assert entry.model_sha256 == before[key].model_sha256
    assert db.count_measurements() == 8  # the old measurements stay
