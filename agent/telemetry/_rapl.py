"""x86 CPU energy: Intel RAPL (also AMD Zen) through powercap, or AMD's ``amd_energy`` hwmon.

* powercap (``intel_rapl_msr``; Intel, and AMD family 17h/19h since Linux
  5.11): ``/sys/class/powercap/intel-rapl:<p>[:<s>]/`` with ``name``
  (``package-0``, ``core``, ``uncore``, ``dram``, ``psys``), ``energy_uj``
  (a counter in microjoules that wraps at ``max_energy_range_uj``) and
  ``constraint_0_power_limit_uw``. The ``intel-rapl-mmio`` zones repeat the
  package counter through another interface and are skipped.
* ``amd_energy`` (AMD Zen, Linux 5.8-5.12 and out of tree):
  ``/sys/class/hwmon/hwmon<N>/energy<K>_{label,input}``, labels
  ``Esocket<n>``/``Ecore<nnn>``, 64-bit microjoule counters accumulated by
  the driver (no wrap).

Since Linux 5.10 the energy files are readable by root only (CVE-2020-8694,
"PLATYPUS"), so an unprivileged agent sees the domains but no energy: the
meter's reading then says "permission denied: <path>" and how to fix it.

Scopes do not add up freely: ``core`` and ``uncore`` are parts of their
``package``, and ``psys`` (the whole SoC platform) contains the packages. The
default meter sums packages and DRAM, the widest additive CPU scope.

Cost: ``describe``/``sample`` list the zones and read 3-4 small files per
domain (about 4 ms for 5 domains on a fake tree on a loaded 2-core VM).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from fleetnas.agent import _sysfs
from fleetnas.agent.telemetry import _files
from fleetnas.agent.telemetry._base import (
    EnergyMeter,
    SensorError,
    SourceStatus,
    TelemetrySource,
)
from fleetnas.agent.telemetry._meters import Counter, CounterMeter, UnreadableMeter

POWERCAP_DIR = "/sys/class/powercap"
HWMON_DIR = "/sys/class/hwmon"
METHOD_RAPL = "rapl-counter"
METHOD_AMD = "amd-energy-counter"
COUNTER_UPDATE_S = 0.001  # RAPL's energy status registers refresh about every millisecond
MAX_PLAUSIBLE_POWER_W = 1000.0  # sizes the wrap-safe polling period
KINDS = ("package", "dram", "core", "uncore", "psys")
DEFAULT_KINDS = ("package", "dram")
PERMISSION_CONTEXT = "root-only since Linux 5.10 (CVE-2020-8694)"
_ZONE = re.compile(r"intel-rapl:(\d+)(?::(\d+))?$")
_HWMON = re.compile(r"hwmon(\d+)$")
_ENERGY_LABEL = re.compile(r"energy(\d+)_label$")


@dataclass(frozen=True)
class RaplDomain:
    """One energy domain: ``part`` is its unique name ("package-0", "package-0/dram")."""

    part: str
    kind: str
    energy_path: Path
    max_energy_range_uj: int | None  # None: the counter does not wrap (amd_energy)
    readable: bool
    reason: str = ""  # why the energy file cannot be read
    power_limit_path: Path | None = None


@dataclass(frozen=True)
class RaplDescription:
    interface: str  # "powercap" or "amd_energy"
    domains: tuple[RaplDomain, ...]
    energy_scope: str | None  # what energy_meter() measures by default; None: unreadable


@dataclass(frozen=True)
class RaplSample:
    timestamp: float
    counters_uj: tuple[tuple[str, int | None], ...]
    power_limits_w: tuple[tuple[str, float | None], ...]


def _kind(name: str) -> str:
    base = name.split("-", 1)[0] if name.startswith("package") else name
    return base if base in KINDS else name


class RaplSource(TelemetrySource[RaplDescription, RaplSample]):
    """RAPL / amd_energy telemetry from sysfs under ``root``."""

    name = "rapl"

    def __init__(self, *, root: Path = Path("/")) -> None:
        self._root = root

    def _domains(self) -> tuple[str, tuple[RaplDomain, ...]]:
        powercap = self._powercap_domains()
        if powercap and (any(d.readable for d in powercap) or not self._amd_domains()):
            return "powercap", powercap
        amd = self._amd_domains()
        if amd:
            return "amd_energy", amd
        return "powercap", powercap

    def _powercap_domains(self) -> tuple[RaplDomain, ...]:
        base = _sysfs.under(self._root, POWERCAP_DIR)
        try:
            entries = list(base.iterdir())
        except OSError:
            return ()
        zones: list[tuple[tuple[int, int], Path]] = []
        for entry in entries:
            match = _ZONE.match(entry.name)
            if match:
                zones.append(((int(match.group(1)), int(match.group(2) or -1)), entry))
        names: dict[int, str] = {}
        domains = []
        for (package, sub), zone in sorted(zones):
            name = _files.read(self._root, zone / "name").text or zone.name
            if sub < 0:
                names[package] = name
                part = name
            else:
                part = f"{names.get(package, f'intel-rapl:{package}')}/{name}"
            wrap = _files.read_int(self._root, zone / "max_energy_range_uj").value
            domains.append(
                self._domain(
                    part,
                    _kind(name),
                    zone / "energy_uj",
                    wrap,
                    zone / "constraint_0_power_limit_uw",
                )
            )
        return tuple(domains)

    def _amd_domains(self) -> tuple[RaplDomain, ...]:
        domains = []
        for hwmon in _sysfs.numbered_dirs(self._root, HWMON_DIR, _HWMON):
            if _files.read(self._root, hwmon / "name").text != "amd_energy":
                continue
            labels = []
            for entry in hwmon.iterdir():
                match = _ENERGY_LABEL.match(entry.name)
                label = _files.read(self._root, entry).text if match else None
                if match and label:
                    labels.append((int(match.group(1)), label))
            for number, label in sorted(labels):
                kind = "package" if label.startswith("Esocket") else "core"
                domains.append(
                    self._domain(label, kind, hwmon / f"energy{number}_input", None, None)
                )
        return tuple(domains)

    def _domain(
        self, part: str, kind: str, energy: Path, wrap: int | None, limit: Path | None
    ) -> RaplDomain:
        got = _files.read_int(self._root, energy)
        reason = got.reason
        if reason.startswith("permission denied"):
            reason = f"{reason} ({PERMISSION_CONTEXT}): {_files.PERMISSION_HINT}"
        return RaplDomain(part, kind, energy, wrap, got.value is not None, reason, limit)

    def status(self) -> SourceStatus:
        if self._domains()[1]:
            return SourceStatus(True)
        return SourceStatus(
            False,
            f"no RAPL: no intel-rapl zone in {POWERCAP_DIR} and no amd_energy hwmon (not x86, "
            "a VM that hides RAPL, or the intel_rapl_msr module is not loaded)",
        )

    def describe(self) -> RaplDescription | None:
        interface, domains = self._domains()
        if not domains:
            return None
        chosen = _select(domains, DEFAULT_KINDS)
        readable = chosen and all(d.readable for d in chosen)
        return RaplDescription(
            interface=interface,
            domains=domains,
            energy_scope=" + ".join(d.part for d in chosen) if readable else None,
        )

    def sample(self) -> RaplSample | None:
        _, domains = self._domains()
        if not domains:
            return None
        counters = tuple(
            (d.part, _files.read_int(self._root, d.energy_path).value) for d in domains
        )
        limits = []
        for d in domains:
            if d.power_limit_path is not None:
                uw = _files.read_int(self._root, d.power_limit_path).value
                limits.append((d.part, uw / 1e6 if uw is not None else None))
        return RaplSample(time.time(), counters, tuple(limits))

    def energy_meter(self, kinds: Iterable[str] = DEFAULT_KINDS) -> EnergyMeter:
        """A counter meter over the domains of ``kinds`` (default: packages + DRAM).

        Raises ``ValueError`` for an unknown kind or a combination that
        counts energy twice (core/uncore with package, psys with anything).
        """
        wanted = _check_kinds(kinds)
        interface, domains = self._domains()
        method = METHOD_AMD if interface == "amd_energy" else METHOD_RAPL
        chosen = _select(domains, wanted)
        scope = " + ".join(d.part for d in chosen) or " + ".join(wanted)
        if not domains:
            return UnreadableMeter(method=method, scope=scope, reason=self.status().reason)
        if not chosen:
            return UnreadableMeter(
                method=method,
                scope=scope,
                reason=f"no RAPL domain of kind {', '.join(wanted)} on this CPU",
            )
        blocked = [d for d in chosen if not d.readable]
        if blocked:
            return UnreadableMeter(method=method, scope=scope, reason=blocked[0].reason)
        counters = [Counter(d.part, self._reader(d), 1e-6, d.max_energy_range_uj) for d in chosen]
        wraps = [d.max_energy_range_uj for d in chosen if d.max_energy_range_uj]
        poll_s = None
        if wraps:
            wrap_time_s = min(wraps) * 1e-6 / MAX_PLAUSIBLE_POWER_W
            poll_s = min(60.0, max(0.05, wrap_time_s / 4))
        return CounterMeter(
            counters, method=method, scope=scope, update_period_s=COUNTER_UPDATE_S, poll_s=poll_s
        )

    def _reader(self, domain: RaplDomain) -> Callable[[], int]:
        root = self._root

        def read() -> int:
            got = _files.read_int(root, domain.energy_path)
            if got.value is None:
                raise SensorError(f"{domain.part}: {got.reason}")
            return got.value

        return read


def _check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(kinds))
    unknown = [k for k in wanted if k not in KINDS]
    if unknown or not wanted:
        raise ValueError(f"RAPL kinds must be some of {', '.join(KINDS)}, got {list(wanted)}")
    if "psys" in wanted and len(wanted) > 1:
        raise ValueError("psys contains the packages: measure it alone")
    if "package" in wanted and ({"core", "uncore"} & set(wanted)):
        raise ValueError("core and uncore are parts of package: do not add them to it")
    return wanted


def _select(domains: tuple[RaplDomain, ...], kinds: tuple[str, ...]) -> tuple[RaplDomain, ...]:
    return tuple(d for d in domains if d.kind in kinds)
