"""NVIDIA Jetson boards: power mode, GPU and memory clocks, power rails and energy.

Everything is read from files under ``root`` (tests use fake trees):

* board: the device-tree model plus the L4T release
  (:func:`fleetnas.agent.device_probe.board_model`);
* power mode: ``/var/lib/nvpmodel/status`` (``pmode:0002 fmode:quiet``)
  named through ``/etc/nvpmodel.conf`` (``< POWER_MODEL ID=2 NAME=15W >``);
  where the status file cannot be read, ``nvpmodel -q`` (``NV Power Mode:
  15W`` then the id). The status file records the mode *requested*; a mode
  whose application failed at boot still shows there, so the clocks below
  are the ground truth of what the board runs at;
* GPU clock: the devfreq device whose ``device/of_node/name`` is the GPU
  (``gpu`` on Nano/Orin, ``gv11b`` Xavier, ``gp10b`` TX2, ``ga10b`` Orin
  on JetPack 5): ``/sys/class/devfreq/<dev>/{cur,min,max}_freq`` in Hz, load
  in per mille at ``<dev>/device/load``;
* EMC (memory) clock: ``/sys/kernel/debug/bpmp/debug/clk/emc/rate``
  (Xavier, Orin) or ``/sys/kernel/debug/clk/emc/clk_rate`` (Nano, TX1/TX2),
  both debugfs and readable by root only, or ``/sys/class/devfreq/bwmgr``
  (Thor);
* rails and energy: :mod:`._ina3221`, integrated by a sampling thread.

Cost: ``sample`` lists the devfreq and INA3221 folders and reads ~20-30 small
files (5-10 ms measured on fake trees on a loaded 2-core VM; sysfs on a
board is not measured here); it runs
``nvpmodel -q`` (up to ``NVPMODEL_TIMEOUT_S``) only where the status file is
unreadable.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetnas.agent import _sysfs
from fleetnas.agent.device_probe import board_model
from fleetnas.agent.telemetry import _files, _ina3221
from fleetnas.agent.telemetry._base import (
    EnergyMeter,
    SensorError,
    SourceStatus,
    TelemetrySource,
    Unreadable,
    UnreadableLog,
)
from fleetnas.agent.telemetry._ina3221 import RailReading
from fleetnas.agent.telemetry._meters import PowerIntegratingMeter, UnreadableMeter

NVPMODEL_TIMEOUT_S = 5.0
NVPMODEL_CONF = "/etc/nvpmodel.conf"
NVPMODEL_STATUS = "/var/lib/nvpmodel/status"
DEVFREQ_DIR = "/sys/class/devfreq"
GPU_NODE_NAMES = frozenset({"gpu", "gv11b", "gp10b", "ga10b", "gb10b"})
EMC_RATE_FILES = (
    "/sys/kernel/debug/bpmp/debug/clk/emc/rate",
    "/sys/kernel/debug/clk/emc/clk_rate",
    "/sys/class/devfreq/bwmgr/cur_freq",
)
METHOD = "ina3221-integration"

_POWER_MODEL = re.compile(r"^\s*<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+)\s*>", re.MULTILINE)
_PM_DEFAULT = re.compile(r"^\s*<\s*PM_CONFIG\s+DEFAULT=(\d+)\s*>", re.MULTILINE)
_STATUS_PMODE = re.compile(r"pmode:(\d+)")
_QUERY_MODE = re.compile(r"NV Power Mode:\s*(\S+)\s*\n\s*(\d+)")

NvpmodelQuery = Callable[[], "str | None"]


@dataclass(frozen=True)
class PowerMode:
    id: int
    name: str | None  # None when nvpmodel.conf does not name the id


@dataclass(frozen=True)
class JetsonDescription:
    board: str
    power_modes: tuple[PowerMode, ...]
    default_power_mode: int | None
    gpu_devfreq: str | None  # the devfreq device of the GPU, e.g. "17000000.ga10b"
    rails: tuple[str, ...]
    energy_scope: str | None  # what energy_meter() measures; None: no rails
    unreadable: tuple[Unreadable, ...] = ()


@dataclass(frozen=True)
class JetsonSample:
    """The board's state at ``timestamp``; ``None`` where the board does not tell."""

    timestamp: float
    power_mode: PowerMode | None
    gpu_freq_mhz: float | None
    gpu_min_freq_mhz: float | None
    gpu_max_freq_mhz: float | None
    gpu_load_percent: float | None
    emc_freq_mhz: float | None
    rails: tuple[RailReading, ...]
    unreadable: tuple[Unreadable, ...] = ()


def parse_nvpmodel_conf(text: str) -> tuple[tuple[PowerMode, ...], int | None]:
    """The power modes ``< POWER_MODEL ID=n NAME=x >`` and ``PM_CONFIG DEFAULT`` of a conf file."""
    modes = tuple(PowerMode(int(i), name) for i, name in _POWER_MODEL.findall(text))
    default = _PM_DEFAULT.search(text)
    return modes, int(default.group(1)) if default else None


def parse_nvpmodel_status(text: str) -> int | None:
    """The mode id in ``/var/lib/nvpmodel/status`` ("pmode:0002 fmode:quiet" -> 2)."""
    match = _STATUS_PMODE.search(text)
    return int(match.group(1)) if match else None


def parse_nvpmodel_query(text: str) -> PowerMode | None:
    """The mode in ``nvpmodel -q`` output ("NV Fan Mode:quiet\\nNV Power Mode: MAXN\\n0")."""
    match = _QUERY_MODE.search(text)
    return PowerMode(int(match.group(2)), match.group(1)) if match else None


def run_nvpmodel_query() -> str | None:
    """``nvpmodel -q``'s output, or ``None`` when it is absent, fails or hangs."""
    executable = shutil.which("nvpmodel")
    if executable is None:
        return None
    try:
        done = subprocess.run(
            [executable, "-q"],
            capture_output=True,
            text=True,
            timeout=NVPMODEL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


class JetsonSource(TelemetrySource[JetsonDescription, JetsonSample]):
    """Jetson telemetry from sysfs under ``root``.

    ``nvpmodel_query`` returns ``nvpmodel -q`` output (or ``None``); tests
    pass a stand-in. ``power_period_s`` is the rail sampling period of the
    energy meter.
    """

    name = "jetson"

    def __init__(
        self,
        *,
        root: Path = Path("/"),
        nvpmodel_query: NvpmodelQuery = run_nvpmodel_query,
        power_period_s: float = 0.05,
    ) -> None:
        self._root = root
        self._nvpmodel_query = nvpmodel_query
        self._power_period_s = power_period_s

    def status(self) -> SourceStatus:
        if _sysfs.read_line(self._root, "/etc/nv_tegra_release") is not None:
            return SourceStatus(True)
        compatible = _sysfs.read_text(self._root, "/proc/device-tree/compatible") or ""
        if "nvidia,tegra" in compatible:
            return SourceStatus(True)
        return SourceStatus(False, "not a Jetson (no /etc/nv_tegra_release, no Tegra device tree)")

    def describe(self) -> JetsonDescription | None:
        if not self.status().available:
            return None
        log = UnreadableLog()
        text = _sysfs.read_text(self._root, NVPMODEL_CONF)
        if text is None:
            log.add("power modes", _files.read(self._root, NVPMODEL_CONF).reason)
        modes, default = parse_nvpmodel_conf(text or "")
        gpu = self._gpu_devfreq()
        if gpu is None:
            log.add("GPU clock", f"no GPU devfreq device under {DEVFREQ_DIR}")
        rails = _ina3221.find_rails(self._root)
        if not rails:
            log.add("power rails", "no INA3221 rails (the Nano 2GB and Thor have none)")
        return JetsonDescription(
            board=board_model(self._root),
            power_modes=modes,
            default_power_mode=default,
            gpu_devfreq=gpu.name if gpu is not None else None,
            rails=tuple(rail.label for rail in rails),
            energy_scope=_energy_scope(rails),
            unreadable=log.freeze(),
        )

    def sample(self) -> JetsonSample | None:
        if not self.status().available:
            return None
        log = UnreadableLog()
        timestamp = time.time()
        gpu = self._gpu_devfreq()
        freqs: dict[str, float | None] = {"cur": None, "min": None, "max": None}
        load = None
        if gpu is not None:
            for key in freqs:
                hz = _files.read_int(self._root, gpu / f"{key}_freq")
                freqs[key] = hz.value / 1e6 if hz.value is not None else None
                if hz.value is None:
                    log.add(f"GPU {key} clock", hz.reason)
            permille = _files.read_int(self._root, gpu / "device" / "load")
            load = permille.value / 10.0 if permille.value is not None else None
        else:
            log.add("GPU clock", f"no GPU devfreq device under {DEVFREQ_DIR}")
        return JetsonSample(
            timestamp=timestamp,
            power_mode=self._power_mode(log),
            gpu_freq_mhz=freqs["cur"],
            gpu_min_freq_mhz=freqs["min"],
            gpu_max_freq_mhz=freqs["max"],
            gpu_load_percent=load,
            emc_freq_mhz=self._emc_mhz(log),
            rails=self._rails(log),
            unreadable=log.freeze(),
        )

    def _gpu_devfreq(self) -> Path | None:
        base = _sysfs.under(self._root, DEVFREQ_DIR)
        try:
            entries = sorted(base.iterdir())
        except OSError:
            return None
        for entry in entries:
            node = _sysfs.read_line(entry, "device/of_node/name")
            suffix = entry.name.rsplit(".", 1)[-1]
            if (node or suffix) in GPU_NODE_NAMES:
                return entry
        return None

    def _power_mode(self, log: UnreadableLog) -> PowerMode | None:
        modes, _ = parse_nvpmodel_conf(_sysfs.read_text(self._root, NVPMODEL_CONF) or "")
        names = {mode.id: mode.name for mode in modes}
        status = _files.read(self._root, NVPMODEL_STATUS)
        mode_id = parse_nvpmodel_status(status.text) if status.text else None
        if mode_id is not None:
            return PowerMode(mode_id, names.get(mode_id))
        output = self._nvpmodel_query()
        queried = parse_nvpmodel_query(output) if output else None
        if queried is None:
            log.add(
                "power mode",
                f"{status.reason or 'no pmode in ' + NVPMODEL_STATUS}; nvpmodel -q gave nothing",
            )
        return queried

    def _emc_mhz(self, log: UnreadableLog) -> float | None:
        reasons = []
        for path in EMC_RATE_FILES:
            hz = _files.read_int(self._root, path)
            if hz.value is not None:
                return hz.value / 1e6
            reasons.append(hz.reason)
        denied = [r for r in reasons if r.startswith("permission denied")]
        if denied:
            log.add("EMC clock", f"{denied[0]} (debugfs): {_files.PERMISSION_HINT}")
        else:
            log.add("EMC clock", "; ".join(reasons))
        return None

    def _rails(self, log: UnreadableLog) -> tuple[RailReading, ...]:
        readings = []
        for rail in _ina3221.find_rails(self._root):
            try:
                readings.append(_ina3221.read_rail(self._root, rail))
            except SensorError as err:  # one bad rail must not hide the others
                log.add(f"rail {rail.label}", str(err))
        return tuple(readings)

    def energy_meter(self) -> EnergyMeter:
        """Integrates the input rail (VDD_IN / POM_5V_IN), else the sum of all rails."""
        rails = _ina3221.find_rails(self._root)
        scope = _energy_scope(rails)
        if scope is None:
            reason = self.status().reason or "this Jetson has no INA3221 power rails"
            return UnreadableMeter(method=METHOD, scope="board", reason=reason)
        total = _ina3221.input_rail(rails)
        chosen = (total,) if total is not None else rails
        root = self._root

        def read_power() -> dict[str, float]:
            return {r.label: _ina3221.read_rail(root, r).power_w for r in chosen}

        return PowerIntegratingMeter(
            read_power,
            method=METHOD,
            scope=scope,
            period_s=self._power_period_s,
            power_resolution_w=_power_quantum_w(root, chosen),
        )


def _energy_scope(rails: tuple[_ina3221.Rail, ...]) -> str | None:
    if not rails:
        return None
    total = _ina3221.input_rail(rails)
    if total is not None:
        return total.label
    return " + ".join(rail.label for rail in rails)


def _power_quantum_w(root: Path, rails: tuple[_ina3221.Rail, ...]) -> float:
    """The smallest power step one rail's files can show: 1 mW, or 1 mV x I + V x 1 mA."""
    quantum = 0.001
    for rail in rails:
        if rail.power_path is not None:
            continue
        try:
            reading = _ina3221.read_rail(root, rail)
        except SensorError:  # an unreadable rail fails the meter at start instead
            continue
        volts, amps = reading.voltage_v or 0.0, reading.current_a or 0.0
        quantum = max(quantum, 0.001 * amps + volts * 0.001)
    return quantum
