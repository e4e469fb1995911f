"""A parser for one line of Jetson's ``tegrastats`` output.

Formats handled (see tests/agent/data/telemetry/tegrastats_lines.txt for the
recorded lines and their sources):

* ``RAM used/totalMB``; ``CPU [load%@MHz,...]`` with ``off`` for parked
  cores (older L4T: ``CPU [a%,b%]@MHz``);
* ``EMC_FREQ load%@MHz`` and ``GR3D_FREQ load%@MHz``; Orin writes the GPU
  clock per GPC, ``GR3D_FREQ 0%@[305,305]``; JetPack 6 may drop the clock;
* temperatures ``name@valueC``; ``-256C`` marks an absent sensor and is
  dropped (Nano's ``PMIC@100C`` is a fixed placeholder, kept as printed);
* rails ``NAME current/average`` in mW, with ``mW`` units since L4T 34
  (``VDD_IN 5299mW/5299mW``) and bare before (``POM_5V_IN 1022/1022``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_CPU_CORE = re.compile(r"(\d+)%(?:@(\d+))?$")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_TEMPERATURE = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_ABSENT_SENSOR_C = -256.0


@dataclass(frozen=True)
class CpuCore:
    load_percent: int
    freq_mhz: int | None


@dataclass(frozen=True)
class TegrastatsLine:
    """One parsed line; fields the line does not carry are ``None`` or empty."""

    ram_used_mb: int | None
    ram_total_mb: int | None
    cpu: tuple[CpuCore | None, ...]  # None: the core is off
    emc_load_percent: int | None
    emc_freq_mhz: int | None
    gpu_load_percent: int | None
    gpu_freq_mhz: tuple[int, ...]  # one clock, or one per GPC on Orin
    temperatures_c: tuple[tuple[str, float], ...]
    rails_mw: tuple[tuple[str, int, int], ...]  # (rail, now, average since tegrastats started)

    def rail_mw(self, name: str) -> int | None:
        """The rail's current power in mW, or ``None`` when the line does not have it."""
        for rail, now, _ in self.rails_mw:
            if rail == name:
                return now
        return None


def parse_tegrastats_line(line: str) -> TegrastatsLine:
    """Parse one ``tegrastats`` line; ``ValueError`` when it has neither RAM, CPU nor GR3D."""
    ram = _RAM.search(line)
    cpu = _CPU.search(line)
    gr3d = _GR3D.search(line)
    if ram is None and cpu is None and gr3d is None:
        raise ValueError(f"not a tegrastats line: {line[:80]!r}")
    emc = _EMC.search(line)
    return TegrastatsLine(
        ram_used_mb=int(ram.group(1)) if ram else None,
        ram_total_mb=int(ram.group(2)) if ram else None,
        cpu=_cores(cpu) if cpu else (),
        emc_load_percent=int(emc.group(1)) if emc else None,
        emc_freq_mhz=int(emc.group(2)) if emc and emc.group(2) else None,
        gpu_load_percent=int(gr3d.group(1)) if gr3d else None,
        gpu_freq_mhz=(
            tuple(int(f) for f in gr3d.group(2).split(",") if f) if gr3d and gr3d.group(2) else ()
        ),
        temperatures_c=tuple(
            (name, float(value))
            for name, value in _TEMPERATURE.findall(line)
            if float(value) != _ABSENT_SENSOR_C
        ),
        rails_mw=tuple(
            (name, int(now), int(average))
            for name, now, average in _RAIL.findall(line)
            if name not in ("RAM", "SWAP")
        ),
    )


def _cores(match: re.Match[str]) -> tuple[CpuCore | None, ...]:
    shared_mhz = int(match.group(2)) if match.group(2) else None
    cores: list[CpuCore | None] = []
    for item in match.group(1).split(","):
        item = item.strip()
        core = _CPU_CORE.match(item)
        if core is None:
            cores.append(None)  # "off"
            continue
        freq = int(core.group(2)) if core.group(2) else shared_mhz
        cores.append(CpuCore(int(core.group(1)), freq))
    return tuple(cores)
