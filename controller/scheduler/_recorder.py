"""Recording: each result goes to the cost DB as soon as it arrives.

:class:`Recorder` writes the device row when it is new or changed (class,
address or host fingerprint; with the description the heartbeats last saw)
and then the measurement, whose transaction also creates the model row if
it is missing. So a crash of the controller loses nothing that finished.
"""

from __future__ import annotations

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import LOCAL_SOURCE, CostDB, Measurement
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
    ) -> Measurement:
        """Store ``result`` of ``job`` on device ``name``; raises CostDBError."""
        device = self.fleet.get(name)
        fingerprint = result.host_fingerprint or (
            description.host_fingerprint if description is not None else ""
        )
        key = f"{device.device_class}|{device.address}|{fingerprint}"
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
