"""Find the LUT that predicts a target's latency.

A LUT is one (space, device, settings). It serves a target when it was built
for the target's device (or any device of the target's class: they are
interchangeable), for this space (or another configuration of it whose
entries cover every block, see ``LatencyPredictor.from_db``), and with the
settings that change *what* runs: intra/inter-op threads, providers, graph
optimisation, method. Run counts and durations change how precisely a
latency is known, not what it is, so a LUT measured with other ones still
serves; hybrid mode recalibrates it on the search's own measurements anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetnas.agent.settings import default as default_setting
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver._config import SearchConfig, Target
from fleetnas.controller.driver._source import latency_source_class
from fleetnas.controller.fleet import Fleet
from fleetnas.controller.lut import (
    DEFAULT_LUT_PRECISION,
    LatencyPredictor,
    LutNotFound,
    LutStore,
    settings_mismatches,
)
from fleetnas.controller.spaces import SearchSpace

#: the settings fields a LUT must share with a target to predict it
IDENTITY_FIELDS = ("intra_op_threads", "inter_op_threads", "providers", "graph_optimization",
                   "method")


def identity_request(target: Target) -> agent_pb2.BenchmarkSettings:
    """The target's request reduced to :data:`IDENTITY_FIELDS`, unset ones at the agent's defaults."""
    full = target.request()
    reduced = agent_pb2.BenchmarkSettings()
    for name in IDENTITY_FIELDS:
        if name == "providers":
            reduced.providers.extend(full.providers or default_setting(name))  # type: ignore[arg-type]
        elif name in ("graph_optimization", "method"):  # enums: 0 is UNSPECIFIED
            setattr(reduced, name, getattr(full, name) or default_setting(name))
        elif full.HasField(name):
            setattr(reduced, name, getattr(full, name))
        else:
            setattr(reduced, name, default_setting(name))
    return reduced


def find_lut_predictor(
    db: CostDB, space: SearchSpace, target: Target, devices: Sequence[str], *,
    precision: str = DEFAULT_LUT_PRECISION,
) -> LatencyPredictor | None:
    """The newest complete ``precision`` LUT on one of ``devices`` that serves ``target``;
    ``None`` if none.

    ``devices`` are the target's device, or its class's devices.
    """
    store = LutStore(db)
    request = identity_request(target)
    for device in devices:
        for info in store.find(space_name=space.name, device=device,
                               precision=precision):  # newest first
            if info.status != "complete" or info.space_version != space.version:
                continue
            if settings_mismatches(request, info.settings):
                continue
            try:
                return LatencyPredictor.from_db(db, space, device, info.settings_hash,
                                                precision=precision)
            except LutNotFound:
                continue
    return None


def target_devices(db: CostDB, target: Target, fleet: Fleet | None = None) -> list[str]:
    """The devices that may have measured for ``target``: its device, or its class's devices
    (in the fleet first, then the ones the cost DB knows: devices of a class are
    interchangeable, and a LUT built on one the fleet no longer lists still serves)."""
    if not target.is_class:
        return [target.name]
    names = []
    if fleet is not None and target.name in fleet.classes():
        names = [d.name for d in fleet.in_class(target.name)]
    names += [d.name for d in db.list_devices(device_class=target.name)]
    return list(dict.fromkeys(names))


def find_luts(
    db: CostDB, space: SearchSpace, config: SearchConfig, fleet: Fleet | None = None
) -> dict[str, LatencyPredictor]:
    """A LUT predictor for every target that has one, when the search's source uses LUTs."""
    if not latency_source_class(config.mode).uses_luts:
        return {}
    found = {}
    for target in config.targets:
        predictor = find_lut_predictor(db, space, target, target_devices(db, target, fleet))
        if predictor is not None:
            found[target.key] = predictor
    return found
