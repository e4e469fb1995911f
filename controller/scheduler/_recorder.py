"""Recording: each result goes to the cost DB as soon as it arrives.

:class:`Recorder` writes the device row when it is new or changed (class,
address, host fingerprint or hardware; with the description the heartbeats
last saw, or a fresh one when that is of another host than the result's)
and then the measurement, whose transaction also creates the model row if it
is missing and stamps it with the device's hardware identity. So a crash of
the controller loses nothing that finished, and a measurement names the
hardware it ran on.
"""

from __future__ import annotations

from collections.abc import Callable

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import (
    LOCAL_SOURCE,
    CostDB,
    Measurement,
    hardware_id,
    message_to_dict,
)
from fleetnas.controller.fleet import Fleet
from fleetnas.controller.scheduler._jobs import Job


class Recorder:
    """Writes results of one scheduler to its cost DB. Thread-safe as ``CostDB`` is."""

    def __init__(self, db: CostDB, fleet: Fleet, *, source: str = LOCAL_SOURCE) -> None:
        self.db = db
        self.fleet = fleet
        self.source = source
        self._devices: dict[str, str] = {}

    def record(
        self,
        name: str,
        job: Job,
        result: agent_pb2.BenchmarkResult,
        description: agent_pb2.DeviceDescription | None,
        describe: Callable[[], agent_pb2.DeviceDescription | None],
    ) -> Measurement:
        """Store ``result`` of ``job`` on device ``name``; raises CostDBError.

        ``description`` is the device's last known description; ``describe``
        asks the device again (``None`` if it cannot), used when the known one
        is of another host than the result (the agent was replaced since).
        """
        device = self.fleet.get(name)
        if result.host_fingerprint and (
            description is None or description.host_fingerprint != result.host_fingerprint
        ):
            description = describe() or description
        fingerprint = result.host_fingerprint or (
            description.host_fingerprint if description is not None else ""
        )
        hardware = None if description is None else hardware_id(message_to_dict(description))
        key = f"{device.device_class}|{device.address}|{fingerprint}|{hardware}"
        if self._devices.get(name) != key:
            self.db.upsert_device(
                name,
                device_class=device.device_class,
                address=device.address,
                host_fingerprint=fingerprint,
                description=description,
            )
            self._devices[name] = key
        return self.db.record_measurement(
            name, result, source=self.source, size_bytes=job.model.size_bytes
        )
