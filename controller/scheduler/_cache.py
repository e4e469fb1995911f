"""Cache look-up before measuring: which settings hash would a device record?

The cost DB keys a measurement by (model sha256, device, settings hash), and
the hash is of the *resolved* settings the agent echoes back, not of the
request. So before measuring, a request is resolved exactly as the agent
will resolve it: :func:`fleetnas.agent.settings.resolve_for_description`
with the device's ``DeviceDescription`` (its limits, runtimes and execution
providers, and its device-side defaults: an agent started with
``--default-threads 2`` fills an unset ``intra_op_threads`` with 2) and the
model's format (ONNX resolves to onnxruntime, TFLite to LiteRT), taken from
the description recorded in the DB the last time the device answered. No
agent is contacted.

Why this is safe: a hit is a stored measurement whose *echoed* settings hash
equals the hash of our resolution, so it was taken with exactly those
settings. If our resolution differs from the agent's (a newer agent with
other defaults, a device whose limits changed), the worst case is a miss and
one extra measurement, never a wrong hit. A device never described has no
measurements to hit, so it is simply a miss. Requests the resolution rejects
(bad settings) are misses too: the agent gives the authoritative error.

Stale hardware is not served: a hit must also have been measured on the
device's current hardware (:attr:`Measurement.hardware_id` equal to the
identity of the device's description, see :mod:`fleetnas.controller.costdb`).
The description is the live one when the caller passes ``live`` (the
heartbeats' latest, once a monitor runs), else the one stored in the DB, so
an agent restarted as other hardware behind the same name misses as soon as
anything has described it (a heartbeat, ``fleet status``, a measurement).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fleetnas.agent.errors import InvalidSettings
from fleetnas.agent.settings import resolve_for_description
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import (
    CostDB,
    Measurement,
    hardware_id,
    message_to_dict,
    settings_hash,
)

#: ``live(device)``: the device's current description, or ``None`` to use the DB's
LiveDescription = Callable[[str], "agent_pb2.DeviceDescription | None"]


def resolve_for(
    request: agent_pb2.BenchmarkSettings,
    description: agent_pb2.DeviceDescription,
    model_format: int = agent_pb2.MODEL_FORMAT_ONNX,
) -> agent_pb2.BenchmarkSettings | None:
    """``request`` for a ``model_format`` model, resolved the way the described agent
    will resolve it; ``None`` if it rejects it."""
    try:
        return resolve_for_description(request, description, model_format=model_format)
    except (InvalidSettings, ValueError):
        return None


class CacheLookup:
    """Cache look-ups against one cost DB, with device descriptions read once.

    Not thread-safe; one per batch.
    """

    def __init__(self, db: CostDB, live: LiveDescription | None = None) -> None:
        self._db = db
        self._live = live
        self._descriptions: dict[str, agent_pb2.DeviceDescription | None] = {}
        self._hardware: dict[str, str | None] = {}
        self._hashes: dict[tuple[str, bytes, int], str | None] = {}

    def _description(self, device: str) -> agent_pb2.DeviceDescription | None:
        if device not in self._descriptions:
            description = self._live(device) if self._live is not None else None
            if description is None:
                record = self._db.get_device(device)
                description = None if record is None else record.description_proto()
            self._descriptions[device] = description
            self._hardware[device] = (
                None if description is None else hardware_id(message_to_dict(description))
            )
        return self._descriptions[device]

    def description(self, device: str) -> agent_pb2.DeviceDescription | None:
        """The device's description (live, else the DB's), ``None`` if never described."""
        return self._description(device)

    def settings_hash_for(
        self,
        device: str,
        request: agent_pb2.BenchmarkSettings,
        model_format: int = agent_pb2.MODEL_FORMAT_ONNX,
    ) -> str | None:
        """The hash ``device`` would record for ``request`` on a ``model_format`` model;
        ``None`` if it cannot be known."""
        key = (device, request.SerializeToString(deterministic=True), model_format)
        if key not in self._hashes:
            description = self._description(device)
            resolved = (
                None if description is None else resolve_for(request, description, model_format)
            )
            self._hashes[key] = None if resolved is None else settings_hash(resolved)
        return self._hashes[key]

    def find(
        self,
        model_sha256: str,
        devices: Iterable[str],
        request: agent_pb2.BenchmarkSettings,
        model_format: int = agent_pb2.MODEL_FORMAT_ONNX,
        *,
        needs_energy: bool = False,
    ) -> Measurement | None:
        """The cached measurement on the first of ``devices`` that has one, else ``None``.

        With ``needs_energy``, a newest measurement without energy per inference
        (taken before energy was stored, or by a meter that read nothing) is a miss.
        """
        for device in devices:
            s_hash = self.settings_hash_for(device, request, model_format)
            if s_hash is None:
                continue
            hit = self._db.lookup(
                model_sha256, device, s_hash, hardware_id=self._hardware[device]
            )
            if hit is not None and not (needs_energy and hit.energy_mj is None):
                return hit
        return None
