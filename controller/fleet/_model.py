"""The fleet: devices (name, class, address, secret references) and their classes.

A :class:`Device` says how to reach one agent. Secrets are held *by
reference* only: ``token_env`` names an environment variable and the TLS
fields name PEM files; the values are read when a client connects
(:mod:`._connect`) and are never stored in the fleet file or the cost DB.

A device class is a pool of interchangeable devices: a job sent to a class may
run on any of its devices. :class:`Fleet` is immutable (safe to share between
threads); ``with_device``/``without`` return new fleets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fleetnas.controller.fleet._errors import (
    DuplicateDevice,
    InvalidDevice,
    UnknownClass,
    UnknownDevice,
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: every token variable's name starts with this (see :class:`Device`)
TOKEN_ENV_PREFIX = "FLEETNAS_"
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")


def check_name(what: str, value: str) -> str:
    """Return ``value`` if it is a valid device or class name, else raise InvalidDevice."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidDevice(
            f"{what} {value!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return value


def check_address(address: str) -> str:
    """Return ``address`` if it is ``HOST:PORT`` (``[v6]:PORT`` for IPv6), else raise.

    Addresses never carry credentials: user-info (``user:pass@``) or a query
    string is refused with a hint to use ``token_env``.
    """
    if not isinstance(address, str):
        raise InvalidDevice(f"address {address!r}: expected HOST:PORT")
    if "@" in address or "?" in address:
        raise InvalidDevice(
            f"address {address!r} looks like it carries credentials: give HOST:PORT only "
            "and put the token in an environment variable named by --token-env"
        )
    host, sep, port = address.rpartition(":")
    if not sep or not (_HOST.fullmatch(host) or _IPV6.fullmatch(host)):
        raise InvalidDevice(f"address {address!r}: expected HOST:PORT, e.g. 192.168.1.20:50051")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidDevice(f"address {address!r}: the port must be 1..65535")
    return address


@dataclass(frozen=True)
class Device:
    """How to reach one agent. Paths may be relative to the fleet file's folder.

    ``token_env`` names the environment variable that holds the agent's
    token (``None``: no token); its name must start with ``FLEETNAS_``, so a
    fleet file someone shares cannot make the controller send another of
    your variables (``PATH``, a cloud key) to its address as a token. ``tls`` turns on TLS with the system's CAs;
    ``tls_ca`` (a CA bundle to verify the agent), ``tls_cert``/``tls_key``
    (a client certificate for mTLS) imply TLS. ``tls_server_name`` overrides
    the name checked against the agent's certificate (e.g. when connecting by
    IP address).
    """

    name: str
    device_class: str
    address: str
    token_env: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_server_name: str | None = None

    def __post_init__(self) -> None:
        check_name("device name", self.name)
        check_name("device class", self.device_class)
        check_address(self.address)
        if self.token_env is not None and not _ENV_VAR.fullmatch(self.token_env):
            raise InvalidDevice(
                f"token_env {self.token_env!r}: must be an environment variable name "
                "(letters, digits, '_'), e.g. FLEETNAS_PI4_TOKEN; the token itself never goes "
                "in the file"
            )
        if self.token_env is not None and not self.token_env.startswith(TOKEN_ENV_PREFIX):
            raise InvalidDevice(
                f"token_env {self.token_env!r}: token variables must be named "
                f"{TOKEN_ENV_PREFIX}..., e.g. {TOKEN_ENV_PREFIX}{self.token_env}; rename the "
                "variable: a fleet file may come from someone else, and this keeps it from "
                "sending any other environment variable (PATH, cloud keys) to an agent"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidDevice(
                f"device {self.name!r}: tls_cert and tls_key go together (mTLS client identity)"
            )
        for what in ("tls_ca", "tls_cert", "tls_key", "tls_server_name"):
            value = getattr(self, what)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidDevice(f"device {self.name!r}: {what} must be a non-empty string")

    @property
    def uses_tls(self) -> bool:
        """True when the connection is TLS (explicitly, or implied by a CA or client cert)."""
        return self.tls or self.tls_ca is not None or self.tls_cert is not None


@dataclass(frozen=True)
class Fleet:
    """An ordered set of devices with unique names.

    ``path`` is the fleet file it was read from (``None`` for a fleet built
    in code); relative TLS paths are resolved against its folder.
    """

    devices: tuple[Device, ...] = ()
    path: Path | None = None
    _by_name: dict[str, Device] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Device] = {}
        for device in self.devices:
            if device.name in by_name:
                raise DuplicateDevice(device.name)
            by_name[device.name] = device
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "_by_name", by_name)

    @classmethod
    def of(cls, devices: Iterable[Device], path: Path | None = None) -> Fleet:
        return cls(tuple(devices), path)

    def __iter__(self) -> Iterator[Device]:
        return iter(self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved against (the fleet file's, or the cwd)."""
        return self.path.parent if self.path is not None else Path.cwd()

    def get(self, name: str) -> Device:
        """The device called ``name``; raises :class:`UnknownDevice`."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownDevice(name, self.path) from None

    def classes(self) -> list[str]:
        """The device classes, in order of first appearance."""
        return list(dict.fromkeys(d.device_class for d in self.devices))

    def in_class(self, device_class: str) -> list[Device]:
        """The devices of ``device_class``; raises :class:`UnknownClass` when there are none."""
        members = [d for d in self.devices if d.device_class == device_class]
        if not members:
            raise UnknownClass(device_class, self.classes())
        return members

    def with_device(self, device: Device, *, replace: bool = False) -> Fleet:
        """A new fleet with ``device`` added (or replacing the one of that name if ``replace``)."""
        if device.name in self._by_name:
            if not replace:
                raise DuplicateDevice(device.name)
            devices = [device if d.name == device.name else d for d in self.devices]
        else:
            devices = [*self.devices, device]
        return Fleet(tuple(devices), self.path)

    def without(self, name: str) -> Fleet:
        """A new fleet without the device ``name``; raises :class:`UnknownDevice`."""
        self.get(name)
        return Fleet(tuple(d for d in self.devices if d.name != name), self.path)
