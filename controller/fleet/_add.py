"""Adding a device: probe the agent first and take what its Describe says it is.

An agent may be started with device-side defaults (``fleetnas-agent serve
--class pi4 --default-threads 4 --default-provider ...``); Describe reports
them in ``DeviceDescription.defaults``. :func:`add_device` probes the new
device before it goes into the fleet, so that

* the device's **class** is the agent's own when the caller gives none
  (a caller's class wins; a different one from the agent is kept with a note);
* the **threads and providers** the agent fills into requests that leave them
  unset are shown to the user (:func:`defaults_summary`). They need no copy in
  the fleet file: the description is recorded in the cost DB
  (:func:`~fleetnas.controller.fleet.record_probes`), and the cache resolves
  requests with it (``settings.resolve_for_description``), so measurements
  taken with the defaults are found again.

The fleet is not saved here (the caller saves it); nothing is raised for a
device that is down, unless its class can then not be known.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.fleet._connect import ClientFactory
from fleetnas.controller.fleet._errors import InvalidDevice
from fleetnas.controller.fleet._model import Device, Fleet, check_name
from fleetnas.controller.fleet._probe import ProbeResult, probe_device

#: the class a device is probed under before its own class is known (never saved)
_PROBING_CLASS = "unclassified"
DEFAULT_ADD_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class AddedDevice:
    """What :func:`add_device` did: the new ``fleet`` (not saved), the ``device`` as added,
    the ``probe`` of it, and one-line ``notes`` for the user (where the class came from,
    the agent's defaults)."""

    fleet: Fleet
    device: Device
    probe: ProbeResult
    notes: tuple[str, ...] = ()


def described_class(description: agent_pb2.DeviceDescription | None) -> str | None:
    """The device class the agent says it belongs to (``serve --class``), or ``None``."""
    if description is None or not description.defaults.device_class:
        return None
    return description.defaults.device_class


def defaults_summary(description: agent_pb2.DeviceDescription | None) -> str | None:
    """The agent's device-side defaults in one line (``2 threads, providers A, B``), or
    ``None`` when it has none besides its class."""
    if description is None:
        return None
    defaults = description.defaults
    parts = []
    if defaults.HasField("intra_op_threads"):
        threads = defaults.intra_op_threads
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    if defaults.providers:
        parts.append("providers " + ", ".join(defaults.providers))
    return ", ".join(parts) or None


def add_device(
    fleet: Fleet,
    name: str,
    address: str,
    *,
    device_class: str | None = None,
    replace: bool = False,
    factory: ClientFactory | None = None,
    timeout_s: float = DEFAULT_ADD_TIMEOUT_S,
    token_env: str | None = None,
    tls: bool = False,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_server_name: str | None = None,
) -> AddedDevice:
    """``fleet`` with the device added, its class from the caller or else from the agent.

    Probes the device once (health, status, Describe) through ``factory``
    (default: :meth:`ClientFactory.for_fleet` of the new fleet, so relative
    TLS paths resolve against the fleet file). Raises InvalidDevice for a
    bad name, address, class or secret reference, or when no class is given
    and the agent does not say one (or does not answer); DuplicateDevice
    when the name is taken and not ``replace``. Both before any probe, where
    they can be known then.
    """
    if device_class is not None:
        check_name("device class", device_class)
    probing = Device(name, device_class or _PROBING_CLASS, address, token_env=token_env,
                     tls=tls, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
                     tls_server_name=tls_server_name)  # fmt: skip
    candidate = fleet.with_device(probing, replace=replace)  # DuplicateDevice before the probe
    factory = factory or ClientFactory.for_fleet(candidate)
    probe = probe_device(probing, factory, timeout_s=timeout_s, describe=True)
    told = described_class(probe.description)
    notes: list[str] = []
    if device_class is None:
        if told is None:
            why = (f"it is not answering ({probe.reason})" if not probe.up
                   else "its agent was started without --class")  # fmt: skip
            raise InvalidDevice(
                f"device {name!r}: give its class with --class CLASS; {why}, so the agent "
                "cannot say it"
            )
        device_class = check_name("device class", told)
        notes.append(f"class {told} (from the agent's --class)")
    elif told is not None and told != device_class:
        notes.append(f"the agent says its class is {told}; kept {device_class} as asked")
    summary = defaults_summary(probe.description)
    if summary is not None:
        notes.append(f"the agent's defaults for unset settings: {summary}")
    device = Device(name, device_class, address, token_env=token_env, tls=tls, tls_ca=tls_ca,
                    tls_cert=tls_cert, tls_key=tls_key, tls_server_name=tls_server_name)
    return AddedDevice(fleet.with_device(device, replace=replace), device, probe, tuple(notes))
