"""Named errors of the fleet: the fleet file, device look-ups and secrets.

Every message says what to do next; the CLI prints it as a one-line error.
"""

from __future__ import annotations

from pathlib import Path


class FleetError(Exception):
    """Base class: the fleet could not do what was asked."""


class FleetFileError(FleetError, ValueError):
    """The fleet file is malformed (bad TOML, unknown key, bad value)."""

    def __init__(self, path: str | Path, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = str(path)
        self.detail = detail


class InvalidDevice(FleetError, ValueError):
    """A device entry has a bad name, class, address or secret reference."""


class UnknownDevice(FleetError, KeyError):
    """No device with that name is in the fleet."""

    def __init__(self, name: str, fleet_path: str | Path | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.fleet_path = str(fleet_path) if fleet_path is not None else None

    def __str__(self) -> str:
        where = self.fleet_path or "the fleet"
        return (
            f"device {self.name!r} is not in {where}: add it with "
            f"`fleetnas fleet add {self.name} --address HOST:PORT --class CLASS`"
        )


class UnknownClass(FleetError, KeyError):
    """No device of that class is in the fleet."""

    def __init__(self, device_class: str, known: list[str]) -> None:
        super().__init__(device_class)
        self.device_class = device_class
        self.known = known

    def __str__(self) -> str:
        known = ", ".join(self.known) if self.known else "none"
        return (
            f"no device of class {self.device_class!r} in the fleet (classes: {known}); add one "
            f"with `fleetnas fleet add NAME --address HOST:PORT --class {self.device_class}`"
        )


class DuplicateDevice(FleetError, ValueError):
    """A device with that name is already in the fleet."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"device {name!r} is already in the fleet: pass --replace to "
            f"`fleetnas fleet add` to replace it, remove it first with "
            f"`fleetnas fleet remove {name}`, or pick another name"
        )
        self.name = name


class MissingSecret(FleetError):
    """A device's secret reference cannot be resolved (env var unset, file missing)."""
