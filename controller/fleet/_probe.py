"""One-shot probes of devices: health, live status and (optionally) description.

A probe never raises for a device that is down, unreachable, draining,
refusing the token or missing a secret: it returns a :class:`ProbeResult`
with ``up=False`` and a one-line reason. Used by ``fleetnas fleet status``
and by the :class:`~fleetnas.controller.fleet.HeartbeatMonitor`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fleetnas.agent.client import AgentClient
from fleetnas.agent.errors import AgentError, AgentUnavailable
from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.fleet._connect import ClientFactory
from fleetnas.controller.fleet._errors import FleetError
from fleetnas.controller.fleet._model import Device

DEFAULT_PROBE_TIMEOUT_S = 2.0
_MAX_REASON_CHARS = 200


def error_reason(exc: BaseException) -> str:
    """A one-line, bounded description of why a call failed."""
    if isinstance(exc, AgentUnavailable):
        text = "unreachable: " + exc.message.removeprefix("agent unavailable: ")
    elif isinstance(exc, AgentError):
        text = f"{exc.reason_name.removeprefix('ERROR_REASON_').lower()}: {exc.message}"
        if text.startswith("unspecified: "):
            text = text.removeprefix("unspecified: ")
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


@dataclass(frozen=True)
class ProbeResult:
    """What one probe of one device found. ``at`` is unix seconds."""

    name: str
    up: bool
    at: float
    reason: str | None = None
    status: agent_pb2.AgentStatus | None = None
    description: agent_pb2.DeviceDescription | None = None


def probe_client(
    name: str,
    client: AgentClient,
    *,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    describe: bool = False,
) -> ProbeResult:
    """Probe through an existing client (health, status, then describe if asked).

    ``client`` should have been built with ``call_timeout_s`` ≈ ``timeout_s``:
    Status and Describe use the client's own deadline.
    """
    at = time.time()
    try:
        if not client.health(timeout=timeout_s):
            return ProbeResult(name, False, at, reason="not serving (draining for shutdown)")
        status = client.status()
        if not status.serving:
            return ProbeResult(name, False, at, reason="not serving (draining for shutdown)",
                               status=status)
        description = client.describe() if describe else None
    except AgentError as exc:
        return ProbeResult(name, False, at, reason=error_reason(exc))
    return ProbeResult(name, True, at, status=status, description=description)


def probe_device(
    device: Device,
    factory: ClientFactory,
    *,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    describe: bool = True,
) -> ProbeResult:
    """Connect to ``device``, probe it, close the connection. Never raises for a down device."""
    try:
        client = factory.connect(device, call_timeout_s=timeout_s)
    except FleetError as exc:
        return ProbeResult(device.name, False, time.time(), reason=error_reason(exc))
    with client:
        return probe_client(device.name, client, timeout_s=timeout_s, describe=describe)


def probe_devices(
    devices: Sequence[Device],
    factory: ClientFactory,
    *,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    describe: bool = True,
    max_workers: int = 32,
) -> list[ProbeResult]:
    """Probe every device concurrently; results in the order of ``devices``."""
    if not devices:
        return []
    workers = max(1, min(max_workers, len(devices)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fleet-probe") as pool:
        return list(
            pool.map(
                lambda d: probe_device(d, factory, timeout_s=timeout_s, describe=describe),
                devices,
            )
        )
