"""The hardware identity of a device: what a measurement was taken on.

A measurement is only as good as the hardware behind it, and a device *name*
(an address in the fleet file) can come back as other hardware: another board
behind the same host name, an agent restarted with another host fingerprint,
onnxruntime built with other providers. :func:`hardware_id` condenses what the
agent's ``Describe`` says of that into 16 hex characters: the sha256 of the
canonical JSON of

* ``host_fingerprint``;
* ``cpu``: ``architecture``, ``model``, ``physical_cores``, ``logical_cores``;
* ``board_model``;
* ``providers``: ``runtime.available_providers``, in order;
* ``gpus``: ``name`` and ``uuid`` of each.

Frequencies, memory, OS and versions are left out: they vary without the
hardware changing (the measurement records its own versions). Each
measurement stores the identity of the device it ran on; the cache serves a
device only measurements with its current identity, so a changed device
starts a new history (and the old history serves again if the old hardware
returns).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from fleetnas.controller.costdb._codec import canonical_json

HARDWARE_ID_CHARS = 16


def hardware_identity(description: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a ``DeviceDescription`` dict that the identity covers (module docstring)."""
    cpu = description.get("cpu") or {}
    runtime = description.get("runtime") or {}
    return {
        "host_fingerprint": description.get("host_fingerprint", ""),
        "cpu": {key: cpu.get(key, default) for key, default in (
            ("architecture", ""), ("model", ""), ("physical_cores", 0), ("logical_cores", 0))},
        "board_model": description.get("board_model", ""),
        "providers": list(runtime.get("available_providers") or ()),
        "gpus": [
            {"name": gpu.get("name", ""), "uuid": gpu.get("uuid", "")}
            for gpu in description.get("gpus") or ()
        ],
    }  # fmt: skip


def hardware_id(description: Mapping[str, Any]) -> str:
    """The 16-hex-character identity of the hardware a description describes."""
    text = canonical_json(hardware_identity(description))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HARDWARE_ID_CHARS]


def hardware_change(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str | None:
    """One line saying how the hardware changed between two descriptions; ``None`` if it did not
    (or if either is unknown)."""
    if old is None or new is None or hardware_id(old) == hardware_id(new):
        return None
    before, after = hardware_identity(old), hardware_identity(new)
    parts = []
    for key in ("host_fingerprint", "board_model", "cpu", "providers", "gpus"):
        if before[key] != after[key]:
            parts.append(f"{key.replace('_', ' ')} {_show(before[key])} -> {_show(after[key])}")
    return "; ".join(parts)


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else canonical_json(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")
