"""Device history in the cost DB: record what probes saw, and say when hardware changed.

A device name keeps its measurements across restarts, but the cache serves it
only measurements of its current hardware (``costdb.hardware_id``). When a
probe finds other hardware behind a known name (another host fingerprint,
CPU, board or providers), the device starts a new history: its old
measurements stay in the DB (and serve again if that hardware returns).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetnas.controller.costdb import CostDB, hardware_change, message_to_dict
from fleetnas.controller.fleet._model import Fleet
from fleetnas.controller.fleet._probe import ProbeResult


def record_probes(db: CostDB, fleet: Fleet, probes: Sequence[ProbeResult]) -> dict[str, str]:
    """Upsert every device that answered, with its description; return the hardware changes.

    The result maps a device name to one line saying how its hardware
    differs from what the DB last recorded (module docstring); devices seen
    for the first time or unchanged are not in it.
    """
    changes: dict[str, str] = {}
    for probe in probes:
        if not probe.up or probe.description is None:
            continue
        device = fleet.get(probe.name)
        known = db.get_device(device.name)
        new = message_to_dict(probe.description)
        change = hardware_change(known.description if known is not None else None, new)
        if change is not None:
            changes[device.name] = change
        db.upsert_device(
            device.name, device_class=device.device_class, address=device.address,
            host_fingerprint=probe.description.host_fingerprint,
            description=probe.description, seen_at=probe.at,
        )  # fmt: skip
    return changes
