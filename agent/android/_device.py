"""Describe a phone: ``getprop``, ``/proc/cpuinfo``, cpufreq, core clusters, fingerprint.

Everything comes from one ``adb shell`` call (``_remote.fetch``); the files
are parsed by the host agent's own sysfs readers on a local copy, so a
phone's cpufreq policies and Arm core codes read exactly as a Pi's do.

Core clusters come from the cpufreq policies (``policyN/related_cpus``:
the CPUs that share one clock), named by their cores' ``CPU part`` codes,
and ordered by maximum frequency (then ``cpu_capacity``). The roles a
benchmark can be pinned to (``taskset`` masks, hex without ``0x`` as
toybox wants them):

* ``little``: the slowest cluster;
* ``big``: the fastest cluster with at least two cores (on a 1+3+4 SoC the
  three "mid/big" cores, ``70``; nn-Meter pins there);
* ``prime``: the fastest cluster when it is a single core apart from
  ``big`` (the ``80`` of a 1+3+4 SoC); absent otherwise;
* ``all``: every possible CPU.

A homogeneous phone (or an emulator) has one cluster: little = big = all.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleetnas.agent import _sysfs
from fleetnas.agent.android import _remote
from fleetnas.agent.android._adb import Adb
from fleetnas.agent.device_probe import FINGERPRINT_HEX_CHARS, arm_core, cpu_model
from fleetnas.agent.device_state import CpuFrequency, read_cpu_frequency
from fleetnas.api.v1 import agent_pb2

POLICY_FILES = (
    "related_cpus",
    "affected_cpus",
    "cpuinfo_min_freq",
    "cpuinfo_max_freq",
    "scaling_cur_freq",
    "scaling_min_freq",
    "scaling_max_freq",
    "scaling_governor",
    "scaling_driver",
)
DESCRIBE_PATTERNS = (
    "proc/cpuinfo",
    "proc/meminfo",
    "sys/devices/system/cpu/possible",
    "sys/devices/system/cpu/online",
    *(f"sys/devices/system/cpu/cpufreq/policy*/{name}" for name in POLICY_FILES),
    "sys/devices/system/cpu/cpu[0-9]*/cpu_capacity",
)
DESCRIBE_COMMANDS = {"getprop": "getprop", "kernel": "uname -r"}

CLUSTER_ROLES = ("little", "big", "prime", "all")

# Android ABI -> (uname -m style architecture, ELF e_machine of its binaries).
ABIS: Mapping[str, tuple[str, int]] = {
    "arm64-v8a": ("aarch64", 183),
    "armeabi-v7a": ("armv7l", 40),
    "armeabi": ("armv5tel", 40),
    "x86_64": ("x86_64", 62),
    "x86": ("i686", 3),
}

_PROP_LINE = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")
_MEMINFO_LINE = re.compile(r"^(\w+):\s+(\d+)\s*kB")


@dataclass(frozen=True)
class CoreCluster:
    """CPUs that share one clock (a cpufreq policy), slowest cluster first."""

    cpus: tuple[int, ...]
    core: str = ""
    min_khz: int | None = None
    max_khz: int | None = None
    capacity: int | None = None

    @property
    def mask(self) -> str:
        """The ``taskset`` mask of these CPUs (hex, no ``0x``)."""
        return cpu_mask(self.cpus)


@dataclass(frozen=True)
class PhoneDescription:
    """What ``Describe`` says about a phone; strings are empty when the phone did not say."""

    serial: str
    fingerprint: str
    properties: Mapping[str, str]
    kernel: str
    cpu_model: str
    clusters: tuple[CoreCluster, ...]
    logical_cores: int
    frequency: CpuFrequency
    memory_total_bytes: int
    memory_available_bytes: int

    def prop(self, key: str) -> str:
        return self.properties.get(key, "")

    @property
    def abi(self) -> str:
        return self.prop("ro.product.cpu.abi")

    @property
    def board_model(self) -> str:
        """E.g. "Google Pixel 7 (panther), SoC Google GS201"."""
        name = " ".join(p for p in (self.prop("ro.product.manufacturer"),
                                    self.prop("ro.product.model")) if p)
        device = self.prop("ro.product.device")
        soc = " ".join(p for p in (self.prop("ro.soc.manufacturer"),
                                   self.prop("ro.soc.model")) if p)
        soc = soc or self.prop("ro.board.platform") or self.prop("ro.hardware")
        text = name + (f" ({device})" if device else "")
        return text + (f", SoC {soc}" if soc else "")

    def masks(self) -> dict[str, str]:
        """``taskset`` mask per cluster role available on this phone (see the module docstring)."""
        return cluster_masks(self.clusters)

    def to_proto(self) -> agent_pb2.DeviceDescription:
        """The v1 ``DeviceDescription`` fields a phone can fill (no ``limits``, no ``runtime``).

        ``hostname`` is the adb serial; ``os.python_version`` stays empty
        (nothing of fleetnas runs on the phone).
        """
        release = self.prop("ro.build.version.release")
        sdk = self.prop("ro.build.version.sdk")
        return agent_pb2.DeviceDescription(
            hostname=self.serial,
            host_fingerprint=self.fingerprint,
            cpu=agent_pb2.CpuInfo(
                architecture=ABIS.get(self.abi, (self.abi, 0))[0],
                model=self.cpu_model,
                physical_cores=self.logical_cores,
                logical_cores=self.logical_cores,
                freq_min_mhz=self.frequency.min_mhz,
                freq_max_mhz=self.frequency.max_mhz,
                freq_current_mhz=self.frequency.current_mhz,
            ),
            memory=agent_pb2.MemoryInfo(
                total_bytes=self.memory_total_bytes,
                available_bytes=self.memory_available_bytes,
            ),
            os=agent_pb2.OsInfo(
                system="Android",
                kernel=self.kernel,
                distribution=f"Android {release} (API {sdk})" if release else "",
            ),
            board_model=self.board_model,
        )


def phone_fingerprint(serialno: str, adb_serial: str) -> str:
    """The fleet's "physical host" id of a phone: the same for every agent driving it.

    Benchmarks compete for the phone's CPUs, not for the host's, so the
    fingerprint names the phone: its ``ro.serialno`` (the same whether it is
    reached over USB or ``adb connect``), else its adb serial. Two phones on
    one host get different fingerprints and may run at the same time; the
    ``android:`` namespace keeps them apart from host fingerprints.
    """
    source = f"android:{serialno or adb_serial}"
    return hashlib.sha256(source.encode()).hexdigest()[:FINGERPRINT_HEX_CHARS]


def cpu_mask(cpus: tuple[int, ...] | list[int]) -> str:
    """Hex affinity mask of ``cpus`` without ``0x`` (toybox taskset's syntax)."""
    if not cpus or min(cpus) < 0:
        raise ValueError(f"a CPU mask needs CPU numbers >= 0, got {cpus!r}")
    return format(sum(1 << c for c in set(cpus)), "x")


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """``"0-3,6"`` or ``"4 5 6"`` -> (0, 1, 2, 3, 6) / (4, 5, 6); () if unparseable."""
    cpus: set[int] = set()
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                cpus.update(range(int(lo), int(hi) + 1))
            else:
                cpus.add(int(lo))
        except ValueError:
            return ()
    return tuple(sorted(cpus))


def parse_getprop(text: str) -> dict[str, str]:
    """``getprop`` (no argument) output, ``[key]: [value]`` per line, as a dict."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _PROP_LINE.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def read_clusters(root: Path) -> tuple[CoreCluster, ...]:
    """Core clusters from cpufreq policies under ``root``, slowest first; one cluster of
    every CPU when the kernel has no cpufreq."""
    core_names = {
        int(block["processor"]): arm_core(block) or ""
        for block in _sysfs.cpuinfo_fields(root)
        if block.get("processor", "").isdigit()
    }
    clusters: list[CoreCluster] = []
    for policy in _sysfs.cpufreq_dirs(root):
        cpus = parse_cpu_list(_sysfs.read_line(policy, "related_cpus") or "")
        if not cpus:
            cpus = parse_cpu_list(_sysfs.read_line(policy, "affected_cpus") or "")
        if not cpus:
            continue
        capacities = [
            _sysfs.read_int(root, f"/sys/devices/system/cpu/cpu{c}/cpu_capacity") for c in cpus
        ]
        known = [c for c in capacities if c is not None]
        names = list(dict.fromkeys(core_names.get(c, "") for c in cpus if core_names.get(c)))
        clusters.append(
            CoreCluster(
                cpus=cpus,
                core=" + ".join(names),
                min_khz=_sysfs.read_int(policy, "cpuinfo_min_freq"),
                max_khz=_sysfs.read_int(policy, "cpuinfo_max_freq"),
                capacity=max(known) if known else None,
            )
        )
    if not clusters:
        cpus = parse_cpu_list(_sysfs.read_line(root, "/sys/devices/system/cpu/possible") or "")
        cpus = cpus or tuple(sorted(core_names))
        if cpus:
            names = list(dict.fromkeys(n for n in core_names.values() if n))
            clusters.append(CoreCluster(cpus=cpus, core=" + ".join(names)))
    return tuple(sorted(clusters, key=lambda c: (c.max_khz or 0, c.capacity or 0, c.cpus)))


def cluster_masks(clusters: tuple[CoreCluster, ...]) -> dict[str, str]:
    """Mask per role (``little``, ``big``, ``prime`` where there is one, ``all``)."""
    if not clusters:
        return {}
    every = sorted({c for cluster in clusters for c in cluster.cpus})
    multi = [c for c in clusters if len(c.cpus) >= 2]
    big = multi[-1] if multi else clusters[-1]
    masks = {"little": clusters[0].mask, "big": big.mask, "all": cpu_mask(every)}
    fastest = clusters[-1]
    if fastest is not big and len(fastest.cpus) == 1:
        masks["prime"] = fastest.mask
    return masks


def _meminfo_bytes(text: str | None) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in (text or "").splitlines():
        match = _MEMINFO_LINE.match(line)
        if match:
            found[match.group(1)] = int(match.group(2)) * 1024
    return found


def describe_phone(adb: Adb) -> PhoneDescription:
    """Describe the phone behind ``adb`` (one ``adb shell`` call).

    Raises the adb errors of :meth:`Adb.shell` (not attached, unauthorized,
    offline); never fails because the phone hides a file.
    """
    snap = _remote.fetch(adb, DESCRIBE_PATTERNS, DESCRIBE_COMMANDS)
    props = parse_getprop(snap.outputs.get("getprop", ""))
    meminfo = _meminfo_bytes(snap.file("proc/meminfo"))
    with snap.materialize() as root:
        clusters = read_clusters(root)
        model = cpu_model(root)
        frequency = read_cpu_frequency(root)
        possible = parse_cpu_list(_sysfs.read_line(root, "/sys/devices/system/cpu/possible") or "")
    logical = len(possible) or sum(len(c.cpus) for c in clusters) or 1
    return PhoneDescription(
        serial=adb.serial,
        fingerprint=phone_fingerprint(props.get("ro.serialno", ""), adb.serial),
        properties=props,
        kernel=snap.outputs.get("kernel", "").strip(),
        cpu_model=model,
        clusters=clusters,
        logical_cores=logical,
        frequency=frequency,
        memory_total_bytes=meminfo.get("MemTotal", 0),
        memory_available_bytes=meminfo.get("MemAvailable", 0),
    )
