"""Static description of the device the agent runs on (the ``Describe`` RPC).

:func:`describe_device` fills every field of ``DeviceDescription`` except
``limits`` and ``defaults`` (the agent's configuration) and the telemetry
fields (``jetson``, ``rapl``, ``telemetry``, and NVML's richer ``gpus``:
``device_telemetry.py``). Nothing here raises because a file,
sensor or tool is missing: unknown numbers are 0 and unknown strings empty.
File reads go through ``root`` so tests can use a fake filesystem tree;
psutil, platform and onnxruntime always describe the real machine.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import psutil

from fleetnas.agent import __version__, _sysfs
from fleetnas.agent.device_state import read_cpu_frequency
from fleetnas.agent.runtimes import describe_runtimes
from fleetnas.api.v1 import agent_pb2

FINGERPRINT_HEX_CHARS = 16
NVIDIA_SMI_TIMEOUT_S = 5.0
_NVIDIA_SMI_QUERY = "--query-gpu=name,memory.total,driver_version,uuid"
_OVERRIDE_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TEGRA_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)")

# (CPU implementer, CPU part) from /proc/cpuinfo -> core name, for the cores
# found on boards we expect (Pi, Jetson, Arm SBCs and servers). Values from
# the Arm and NVIDIA technical reference manuals (as decoded by lscpu).
_CPU_IMPLEMENTERS = {0x41: "ARM", 0x4E: "NVIDIA"}
_CPU_PARTS = {
    (0x41, 0xC07): "Cortex-A7",
    (0x41, 0xC08): "Cortex-A8",
    (0x41, 0xC09): "Cortex-A9",
    (0x41, 0xC0F): "Cortex-A15",
    (0x41, 0xD03): "Cortex-A53",
    (0x41, 0xD04): "Cortex-A35",
    (0x41, 0xD05): "Cortex-A55",
    (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD09): "Cortex-A73",
    (0x41, 0xD0A): "Cortex-A75",
    (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD0D): "Cortex-A77",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD41): "Cortex-A78",
    (0x41, 0xD42): "Cortex-A78AE",
    (0x41, 0xD44): "Cortex-X1",
    (0x41, 0xD46): "Cortex-A510",
    (0x41, 0xD47): "Cortex-A710",
    (0x41, 0xD48): "Cortex-X2",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4F): "Neoverse-V2",
    (0x41, 0xD80): "Cortex-A520",
    (0x41, 0xD81): "Cortex-A720",
    (0x41, 0xD82): "Cortex-X4",
    (0x4E, 0x003): "Denver 2",
    (0x4E, 0x004): "Carmel",
}


def describe_device(
    *, root: Path = Path("/"), fingerprint_override: str | None = None
) -> agent_pb2.DeviceDescription:
    """Describe this device: everything in ``DeviceDescription`` but ``limits``.

    Takes up to ``NVIDIA_SMI_TIMEOUT_S`` when ``nvidia-smi`` exists but hangs;
    otherwise a few milliseconds. Raises ``ValueError`` only for a malformed
    ``fingerprint_override`` (see :func:`host_fingerprint`).
    """
    freq = read_cpu_frequency(root)
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    usable = usable_cores(root, logical_cores=logical)
    memory = psutil.virtual_memory()
    runtimes = describe_runtimes()
    onnxruntime = runtimes[0]
    return agent_pb2.DeviceDescription(
        agent_version=__version__,
        hostname=socket.gethostname(),
        host_fingerprint=host_fingerprint(root, fingerprint_override),
        cpu=agent_pb2.CpuInfo(
            architecture=platform.machine(),
            model=cpu_model(root),
            physical_cores=physical,
            logical_cores=logical,
            freq_min_mhz=freq.min_mhz,
            freq_max_mhz=freq.max_mhz,
            freq_current_mhz=freq.current_mhz,
            usable_cores=usable.cores,
            cpu_quota_cores=usable.quota_cores,
        ),
        memory=agent_pb2.MemoryInfo(total_bytes=memory.total, available_bytes=memory.available),
        os=agent_pb2.OsInfo(
            system=platform.system(),
            kernel=platform.release(),
            distribution=os_distribution(root),
            python_version=platform.python_version(),
        ),
        board_model=board_model(root),
        runtime=agent_pb2.RuntimeInfo(
            onnxruntime_version=onnxruntime.onnxruntime_version,
            available_providers=list(onnxruntime.available_providers),
        ),
        runtimes=runtimes,
        gpus=query_nvidia_gpus(),
    )


@dataclass(frozen=True)
class UsableCores:
    """What this process may use of the CPU: ``cores`` (>= 1) and the cgroup quota (0 = none)."""

    cores: int
    quota_cores: float


def usable_cores(
    root: Path = Path("/"), *, logical_cores: int, affinity: int | None = None
) -> UsableCores:
    """The cores this process may keep busy at once.

    The CPU affinity mask (``affinity``, default ``os.sched_getaffinity``;
    ``logical_cores`` where the OS has none), lowered to the whole cores of
    the cgroup CPU quota (:func:`cgroup_cpu_quota`; a 1.5-core quota lets
    one thread run flat out, two only 75% of the time), never below 1.
    Read once at the agent's start: a later ``taskset -p`` is not seen.
    """
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not Linux
            affinity = logical_cores
    quota = cgroup_cpu_quota(root)
    cores = affinity if quota is None else min(affinity, math.floor(quota + 1e-9))
    return UsableCores(max(1, cores), quota or 0.0)


def cgroup_cpu_quota(root: Path = Path("/")) -> float | None:
    """This process's cgroup CPU quota in cores (e.g. 1.5), or ``None`` when unlimited.

    cgroup v2: ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD"); v1:
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 = none). Read in the
    process's own cgroup (``/proc/self/cgroup``) and every ancestor up to the
    mount (a container sees its own cgroup at the mount root); the smallest
    quota wins. Missing or malformed files count as no quota.
    """
    quotas = [q for q in (_quota_in(root, d) for d in _cgroup_cpu_dirs(root)) if q is not None]
    return min(quotas) if quotas else None


def _cgroup_cpu_dirs(root: Path) -> Iterator[str]:
    """Folders (as absolute-looking paths) that may hold this process's CPU quota."""
    for line in (_sysfs.read_text(root, "/proc/self/cgroup") or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            mounts = ["/sys/fs/cgroup"]
        elif "cpu" in controllers.split(","):
            mounts = list(dict.fromkeys([f"/sys/fs/cgroup/{controllers}", "/sys/fs/cgroup/cpu"]))
        else:
            continue
        for mount in mounts:
            here = PurePosixPath(path or "/")
            for folder in (here, *here.parents):
                yield f"{mount}{folder}".rstrip("/")


def _quota_in(root: Path, folder: str) -> float | None:
    text = _sysfs.read_line(root, f"{folder}/cpu.max")
    if text is not None:
        quota, _, period = text.partition(" ")
        if quota == "max":
            return None
        return _ratio(quota, period)
    quota_us = _sysfs.read_line(root, f"{folder}/cpu.cfs_quota_us")
    if quota_us is None or quota_us.startswith("-"):
        return None
    return _ratio(quota_us, _sysfs.read_line(root, f"{folder}/cpu.cfs_period_us") or "")


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def host_fingerprint(root: Path = Path("/"), override: str | None = None) -> str:
    """A short id shared by every agent on one physical host, different across hosts.

    The fleet scheduler runs at most one benchmark per fingerprint at a time,
    so two agents must get the same value exactly when their benchmarks would
    compete for the same CPUs. Sources, first found wins:

    1. ``override`` (the agent's ``--host-fingerprint``), returned as given:
       VMs on one physical machine each have their own kernel, so nothing
       inside them can tell they share hardware; the operator says so.
       Must match ``[A-Za-z0-9._:-]{1,128}``, else ``ValueError``.
    2. ``/proc/sys/kernel/random/boot_id``: one value per running kernel, seen
       identically by every process and every container on it (it is not
       namespaced), and new on every boot. So the fingerprint changes when
       the host reboots: it identifies "who shares a host now", not a device
       for the cost DB.
    3. ``/etc/machine-id`` (or ``/var/lib/dbus/machine-id``): stable per OS
       install; used where there is no boot_id (non-Linux, restricted /proc).
       Containers may not share it, hence only a fallback.
    4. The hostname and the sorted MAC addresses.

    Returns the first ``FINGERPRINT_HEX_CHARS`` hex digits of the sha256 of the
    chosen source (64 bits: collisions across a fleet are not a concern).
    """
    if override is not None:
        if not _OVERRIDE_PATTERN.fullmatch(override):
            raise ValueError(
                f"host fingerprint override {override!r} must be 1-128 characters of "
                "letters, digits and . _ : -"
            )
        return override
    boot_id = _sysfs.read_line(root, "/proc/sys/kernel/random/boot_id")
    if boot_id:
        source = f"boot_id:{boot_id.lower()}"
    else:
        machine_id = _sysfs.read_line(root, "/etc/machine-id") or _sysfs.read_line(
            root, "/var/lib/dbus/machine-id"
        )
        if machine_id:
            source = f"machine-id:{machine_id.lower()}"
        else:
            source = f"host:{socket.gethostname()}:{','.join(_mac_addresses())}"
    return hashlib.sha256(source.encode()).hexdigest()[:FINGERPRINT_HEX_CHARS]


def _mac_addresses() -> list[str]:
    macs: set[str] = set()
    try:
        interfaces = psutil.net_if_addrs()
    except OSError:
        return []
    for addresses in interfaces.values():
        for address in addresses:
            if address.family == psutil.AF_LINK and address.address:
                mac = address.address.lower().replace("-", ":")
                if mac.strip("0:"):
                    macs.add(mac)
    return sorted(macs)


def cpu_model(root: Path = Path("/")) -> str:
    """The CPU's marketing or core name; empty when nothing names it.

    x86: /proc/cpuinfo "model name". Arm: the cores decoded from "CPU
    implementer"/"CPU part" (big.LITTLE gives e.g. "Cortex-A55 + Cortex-A76"),
    since Arm kernels either omit "model name" or write a generic
    "ARMv7 Processor rev 3 (v7l)". Then "Hardware", "Processor", "cpu model"
    and "cpu" (older Arm, MIPS, POWER kernels).
    """
    blocks = _sysfs.cpuinfo_fields(root)
    names = _unique(b["model name"] for b in blocks if b.get("model name"))
    specific = [n for n in names if not n.startswith("ARMv")]
    if specific:
        return " + ".join(specific)
    cores = _unique(name for name in (arm_core(b) for b in blocks) if name)
    if cores:
        return " + ".join(cores)
    if names:
        return names[0]
    for key in ("Hardware", "Processor", "cpu model", "cpu"):
        for block in blocks:
            if block.get(key):
                return block[key]
    return ""


def arm_core(block: dict[str, str]) -> str | None:
    """The core name of one ``/proc/cpuinfo`` processor block from its "CPU implementer"
    and "CPU part" (``Cortex-A76``; ``ARM part 0xd99`` for a part not in the table); None
    when the block has neither (not an Arm core)."""
    try:
        implementer = int(block["CPU implementer"], 16)
        part = int(block["CPU part"], 16)
    except (KeyError, ValueError):
        return None
    name = _CPU_PARTS.get((implementer, part))
    if name is not None:
        return name
    vendor = _CPU_IMPLEMENTERS.get(implementer, f"implementer 0x{implementer:02x}")
    return f"{vendor} part 0x{part:03x}"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def os_distribution(root: Path = Path("/")) -> str:
    """``PRETTY_NAME`` from /etc/os-release (or /usr/lib/os-release); empty if none."""
    text = _sysfs.read_text(root, "/etc/os-release") or _sysfs.read_text(
        root, "/usr/lib/os-release"
    )
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "PRETTY_NAME":
            try:
                parts = shlex.split(value)
            except ValueError:
                return value.strip().strip("\"'")
            return " ".join(parts)
    return ""


def board_model(root: Path = Path("/")) -> str:
    """The board's name on single-board computers; empty elsewhere.

    Raspberry Pi and most Arm boards: the device-tree model
    ("Raspberry Pi 4 Model B Rev 1.4"). Jetson: the L4T release from
    /etc/nv_tegra_release, appended to the device-tree model when both exist
    ("NVIDIA Jetson AGX Orin Developer Kit (L4T R35.4.1)").
    """
    model = _sysfs.read_line(root, "/proc/device-tree/model") or _sysfs.read_line(
        root, "/sys/firmware/devicetree/base/model"
    )
    tegra = _sysfs.read_line(root, "/etc/nv_tegra_release")
    if tegra is None:
        return model or ""
    match = _TEGRA_RELEASE.search(tegra)
    release = f"L4T R{match.group(1)}.{match.group(2)}" if match else tegra.lstrip("# ").strip()
    return f"{model or 'NVIDIA Jetson'} ({release})"


def query_nvidia_gpus(*, timeout_s: float = NVIDIA_SMI_TIMEOUT_S) -> list[agent_pb2.GpuInfo]:
    """NVIDIA GPUs as reported by ``nvidia-smi`` on PATH; empty list if absent, failing or hung."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return []
    try:
        completed = subprocess.run(
            [executable, _NVIDIA_SMI_QUERY, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if completed.returncode != 0:
        return []
    return parse_nvidia_smi_csv(completed.stdout)


def parse_nvidia_smi_csv(text: str) -> list[agent_pb2.GpuInfo]:
    """Parse ``name, memory.total [MiB], driver_version, uuid`` lines; malformed lines are skipped.

    A memory figure nvidia-smi cannot give ("[N/A]", e.g. on Jetson) reads as 0.
    """
    gpus: list[agent_pb2.GpuInfo] = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            continue
        name = ", ".join(fields[:-3])
        memory_mib, driver, uuid = fields[-3:]
        try:
            memory_bytes = int(float(memory_mib) * 1024 * 1024)
        except (ValueError, OverflowError):
            memory_bytes = 0
        if not name:
            continue
        gpus.append(
            agent_pb2.GpuInfo(
                name=name, memory_bytes=max(memory_bytes, 0), driver_version=driver, uuid=uuid
            )
        )
    return gpus
