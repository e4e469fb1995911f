"""Everything a search report shows, read from the cost DB in one place.

:func:`load_report` reads a stored search (its row, configuration and
rebuilt engine, ``driver.load_search``), the measurements its candidates
used, the devices they ran on, the LUTs it predicted with, measurements of
its predicted candidates made later (:mod:`._versus`) and replays its
history (:mod:`._history`). The result, :class:`SearchReport`, is plain
data: the HTML page (:mod:`._html_report`) only formats it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetnas.controller.costdb import CostDB, Device
from fleetnas.controller.driver import (
    CandidateRecord,
    SearchConfig,
    SearchRecord,
    SearchStore,
    load_search,
    target_devices,
)
from fleetnas.controller.lut import LutInfo, LutNotFound, LutStore
from fleetnas.controller.report._history import History, hypervolume_history, reference_point
from fleetnas.controller.report._rows import ResultRow, all_rows, front_rows, value_names
from fleetnas.controller.report._versus import Versus, compare_predictions
from fleetnas.controller.search import Constraint, Objective

#: what every candidate is deployed as until candidates carry a precision per target
DEFAULT_PRECISION = "fp32"

#: ``(step, done, total)``: how far loading got (``step`` names the phase)
LoadProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DeviceUse:
    """A device a search measured on (or could have: a device of a target's class).

    ``hardware`` is its one-line summary, ``measurements`` how many of the
    search's latency values were measured on it and ``device_s`` their
    benchmarks' wall time.
    """

    name: str
    device_class: str | None
    hardware: str
    description: Mapping[str, Any] | None
    measurements: int = 0
    device_s: float = 0.0


@dataclass(frozen=True)
class LutUse:
    """The LUT a target's latencies were predicted with (``lut`` is None when it is gone)."""

    target: str
    lut_id: int
    lut: LutInfo | None


@dataclass(frozen=True)
class SearchReport:
    """A stored search as the report shows it (see the module docstring).

    ``history`` is ``None`` before any candidate is complete.
    """

    record: SearchRecord
    config: SearchConfig
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    names: tuple[str, ...]
    rows: tuple[ResultRow, ...]
    front: tuple[ResultRow, ...]
    candidates: tuple[CandidateRecord, ...]
    devices: tuple[DeviceUse, ...]
    luts: tuple[LutUse, ...]
    history: History | None
    versus: Versus
    space_identity: str

    @property
    def failed(self) -> tuple[CandidateRecord, ...]:
        return tuple(c for c in self.candidates if c.state == "failed")

    @property
    def pending(self) -> int:
        return sum(1 for c in self.candidates if c.state == "pending")

    @property
    def device_s(self) -> float:
        """Wall time of the benchmarks behind the search's measured values."""
        return sum(d.device_s for d in self.devices)

    def precision(self, row: ResultRow, target_key: str) -> str:
        """The precision ``row`` is deployed at on a target: fp32 until candidates carry one."""
        return DEFAULT_PRECISION


def _measurement_use(db: CostDB, rows: Sequence[ResultRow],
                     progress: LoadProgress | None) -> dict[str, tuple[int, float]]:
    """Per device: how many of the rows' latency values it measured, and their wall time."""
    uses: dict[str, tuple[int, float]] = {}
    for done, row in enumerate(rows, start=1):
        for uid in row.measurements.values():
            m = db.get_measurement(uid)
            if m is not None:
                n, seconds = uses.get(m.device, (0, 0.0))
                uses[m.device] = (n + 1, seconds + m.wall_s)
        if progress is not None:
            progress("measurements", done, len(rows))
    return uses


def _devices(db: CostDB, config: SearchConfig, uses: Mapping[str, tuple[int, float]],
             luts: Sequence[LutUse], hardware_line: Callable[[Device], str]) -> list[DeviceUse]:
    names = list(uses)
    for target in config.targets:
        names += target_devices(db, target)
    names += [u.lut.device for u in luts if u.lut is not None]
    out = []
    for name in dict.fromkeys(names):
        device = db.get_device(name)
        n, seconds = uses.get(name, (0, 0.0))
        out.append(DeviceUse(
            name, device.device_class if device else None,
            hardware_line(device) if device else "not in the cost DB",
            device.description if device else None, n, seconds))
    return out


def _luts(db: CostDB, config: SearchConfig) -> list[LutUse]:
    store = LutStore(db)
    out = []
    for key, lut_id in sorted(config.luts.items()):
        try:
            info: LutInfo | None = store.get(int(lut_id))
        except LutNotFound:
            info = None
        out.append(LutUse(key, int(lut_id), info))
    return out


def load_report(
    db: CostDB,
    search_id: int,
    *,
    hardware_line: Callable[[Device], str],
    reference: Mapping[str, float] | None = None,
    progress: LoadProgress | None = None,
) -> SearchReport:
    """The report of stored search ``search_id``.

    ``hardware_line`` turns a device into its one-line hardware summary;
    ``reference`` sets the hypervolume reference of some objectives (the
    rest are stated from the trials, see :func:`~._history.reference_point`).
    Raises ``SearchNotFound``, and ValueError for a bad reference.
    """
    stored = load_search(SearchStore(db), search_id)
    engine, config = stored.engine, stored.config
    rows, front = all_rows(engine), front_rows(engine)
    objectives = tuple(engine.objectives)
    order = {c.candidate_id: c.updated_at for c in stored.candidates}
    history = hypervolume_history(rows, objectives, reference_point(rows, objectives, reference),
                                  order) if rows else None
    luts = _luts(db, config)
    uses = _measurement_use(db, rows, progress)
    on_row = None if progress is None else (lambda done, total: progress("predictions", done, total))
    versus = compare_predictions(db, config, engine.space.identity(), rows, on_row=on_row)
    return SearchReport(
        record=stored.record, config=config, objectives=objectives,
        constraints=tuple(engine.constraints), names=tuple(value_names(engine)),
        rows=tuple(rows), front=tuple(front), candidates=tuple(stored.candidates),
        devices=tuple(_devices(db, config, uses, luts, hardware_line)), luts=tuple(luts),
        history=history,
        versus=versus, space_identity=engine.space.identity(),
    )  # fmt: skip
