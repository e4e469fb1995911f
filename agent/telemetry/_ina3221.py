"""Jetson power rails: the TI INA3221 monitors, as the two L4T kernel drivers show them.

* Jetson Linux 34+ (JetPack 5/6; Orin, and Xavier on JetPack 5): mainline
  ``ina3221`` hwmon driver,
  ``/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/``
  with ``in<C>_label`` (rail name), ``in<C>_input`` (bus voltage, mV) and
  ``curr<C>_input`` (mA) for channels 1-3; power is V x I. Channel 7 is the
  "sum of shunt voltages"; labels starting with "NC" are unconnected.
* Jetson Linux 32 (JetPack 4; Nano, TX1/TX2, Xavier): NVIDIA's ``ina3221x``
  IIO driver, ``/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/``
  with ``rail_name_<C>``, ``in_power<C>_input`` (mW),
  ``in_voltage<C>_input`` (mV) and ``in_current<C>_input`` (mA), C = 0-2.

Rail names differ per module (Nano: POM_5V_IN/GPU/CPU; Xavier NX and Orin
NX/Nano: VDD_IN, VDD_CPU_GPU_CV, VDD_SOC; AGX Xavier: GPU, CPU, SOC, CV,
VDDRQ, SYS5V; AGX Orin: VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0,
VDDQ_VDD2_1V8AO). ``VDD_IN``/``POM_5V_IN`` is the module's input, which
contains the others; boards without one (the AGX modules) have parallel
rails whose sum is the module's consumption. Carrier-board power is
measured by none of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetnas.agent import _sysfs
from fleetnas.agent.telemetry import _files
from fleetnas.agent.telemetry._base import SensorError

HWMON_DRIVER_DIR = "/sys/bus/i2c/drivers/ina3221"
IIO_DRIVER_DIR = "/sys/bus/i2c/drivers/ina3221x"
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_HWMON_LABEL = re.compile(r"in([1-3])_label$")
_IIO_LABEL = re.compile(r"rail_name_(\d+)$")
_HWMON_DIR = re.compile(r"hwmon(\d+)$")
_IIO_DIR = re.compile(r"iio:device(\d+)$")


@dataclass(frozen=True)
class Rail:
    """One monitored rail and the files that measure it (paths inside the root)."""

    label: str
    voltage_path: Path
    current_path: Path
    power_path: Path | None = None  # ina3221x only: the driver's own V x I in mW


@dataclass(frozen=True)
class RailReading:
    label: str
    power_w: float
    voltage_v: float | None
    current_a: float | None


def find_rails(root: Path) -> tuple[Rail, ...]:
    """Every connected rail under ``root``, hwmon driver first, in device then channel order."""
    return (*_hwmon_rails(root), *_iio_rails(root))


def _devices(root: Path, driver_dir: str) -> list[Path]:
    base = _sysfs.under(root, driver_dir)
    try:
        return sorted(p for p in base.iterdir() if p.is_dir() and "-" in p.name)
    except OSError:
        return []


def _hwmon_rails(root: Path) -> list[Rail]:
    return _rails(
        root,
        HWMON_DRIVER_DIR,
        "hwmon",
        _HWMON_DIR,
        _HWMON_LABEL,
        lambda folder, channel, label: Rail(
            label, folder / f"in{channel}_input", folder / f"curr{channel}_input"
        ),
    )


def _iio_rails(root: Path) -> list[Rail]:
    return _rails(
        root,
        IIO_DRIVER_DIR,
        "",
        _IIO_DIR,
        _IIO_LABEL,
        lambda folder, channel, label: Rail(
            label,
            folder / f"in_voltage{channel}_input",
            folder / f"in_current{channel}_input",
            folder / f"in_power{channel}_input",
        ),
    )


def _rails(
    root: Path,
    driver_dir: str,
    subfolder: str,
    folder_pattern: re.Pattern[str],
    label_pattern: re.Pattern[str],
    make: Callable[[Path, int, str], Rail],
) -> list[Rail]:
    """Rails of one driver: each device's numbered folders, each labelled channel in them."""
    rails: list[Rail] = []
    for device in _devices(root, driver_dir):
        for folder in _sysfs.numbered_dirs(device, subfolder, folder_pattern):
            for channel, label in _labels(root, folder, label_pattern):
                rails.append(make(folder, channel, label))
    return rails


def _labels(root: Path, folder: Path, pattern: re.Pattern[str]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None:
            continue
        label = _files.read(root, entry).text
        if label and not label.upper().startswith("NC"):
            found.append((int(match.group(1)), label))
    return sorted(found)


def read_rail(root: Path, rail: Rail) -> RailReading:
    """The rail's power now; raises :class:`SensorError` when neither power nor V and I read."""
    volts = _files.read_int(root, rail.voltage_path)
    amps = _files.read_int(root, rail.current_path)
    voltage_v = volts.value / 1000.0 if volts.value is not None else None
    current_a = amps.value / 1000.0 if amps.value is not None else None
    if rail.power_path is not None:
        power = _files.read_int(root, rail.power_path)
        if power.value is not None:
            return RailReading(rail.label, power.value / 1000.0, voltage_v, current_a)
    if voltage_v is None or current_a is None:
        raise SensorError(f"rail {rail.label}: {volts.reason or amps.reason}")
    return RailReading(rail.label, voltage_v * current_a, voltage_v, current_a)


def input_rail(rails: tuple[Rail, ...]) -> Rail | None:
    """The module-input rail (VDD_IN / POM_5V_IN) if the board has one."""
    for name in INPUT_RAILS:
        for rail in rails:
            if rail.label == name:
                return rail
    return None
