"""Device description: on this machine, and on fake filesystem trees of a Pi and a Jetson."""

from __future__ import annotations

import os
import platform
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest

import fleetnas.agent
from fleetnas.agent.device_probe import (
    board_model,
    cgroup_cpu_quota,
    cpu_model,
    describe_device,
    host_fingerprint,
    os_distribution,
    parse_nvidia_smi_csv,
    query_nvidia_gpus,
    usable_cores,
)
from tests.agent.fake_root import write_tree

PI_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

processor\t: 1
CPU implementer\t: 0x41
CPU part\t: 0xd08

Hardware\t: BCM2835
Revision\t: c03114
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""



def test_describe_this_machine_is_sane() -> None:
    d = describe_device()
    assert d.agent_version == fleetnas.agent.__version__
    assert d.hostname == socket.gethostname()
    assert re.fullmatch(r"[0-9a-f]{16}", d.host_fingerprint)
    assert d.cpu.architecture == platform.machine()
    assert d.cpu.logical_cores >= d.cpu.physical_cores >= 1
    assert d.cpu.logical_cores == os.cpu_count()
    for mhz in (d.cpu.freq_min_mhz, d.cpu.freq_max_mhz, d.cpu.freq_current_mhz):
        assert mhz >= 0
    if d.cpu.freq_min_mhz and d.cpu.freq_max_mhz:
        assert d.cpu.freq_min_mhz <= d.cpu.freq_max_mhz
    assert d.memory.total_bytes > 0
    assert 0 < d.memory.available_bytes <= d.memory.total_bytes
    assert d.os.system == platform.system()
    assert d.os.kernel == platform.release()
    assert d.os.python_version == platform.python_version()
    assert d.runtime.onnxruntime_version == onnxruntime.__version__
    assert "CPUExecutionProvider" in d.runtime.available_providers
    assert not d.HasField("limits")
    if sys.platform == "linux" and Path("/proc/cpuinfo").exists():
        assert d.cpu.model


def test_fingerprint_is_stable_within_and_across_processes() -> None:
    first = host_fingerprint()
    assert host_fingerprint() == first
    assert describe_device().host_fingerprint == first
    code = "from fleetnas.agent.device_probe import host_fingerprint; print(host_fingerprint())"
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        for _ in range(2)
    ]
    assert outputs == [first, first]


def test_fingerprint_differs_with_boot_id_and_machine_id(tmp_path: Path) -> None:
    boot = "proc/sys/kernel/random/boot_id"
    a = write_tree(tmp_path / "a", {boot: "e770870b-5f92-477b-bc98-88c14ee933c1\n"})
    b = write_tree(tmp_path / "b", {boot: "0b1c2d3e-0000-4000-8000-123456789abc\n"})
    # Same kernel (boot_id) seen from a container with its own machine-id.
    a2 = write_tree(
        tmp_path / "a2",
        {boot: "e770870b-5f92-477b-bc98-88c14ee933c1\n", "etc/machine-id": "1" * 32 + "\n"},
    )
    m1 = write_tree(tmp_path / "m1", {"etc/machine-id": "3d1219c7c4c5404aaa1f6d2a48adfda4\n"})
    m2 = write_tree(tmp_path / "m2", {"etc/machine-id": "aa1219c7c4c5404aaa1f6d2a48adfda4\n"})
    fingerprints = {
        name: host_fingerprint(root)
        for name, root in {"a": a, "b": b, "a2": a2, "m1": m1, "m2": m2}.items()
    }
    assert fingerprints["a"] != fingerprints["b"]
    assert fingerprints["a"] == fingerprints["a2"]
    assert fingerprints["m1"] != fingerprints["m2"]
    assert fingerprints["m1"] not in (fingerprints["a"], fingerprints["b"])
    for value in fingerprints.values():
        assert re.fullmatch(r"[0-9a-f]{16}", value)


def test_fingerprint_without_any_id_file_falls_back_to_host_identity(tmp_path: Path) -> None:
    first = host_fingerprint(tmp_path / "empty1")
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert host_fingerprint(tmp_path / "empty2") == first


def test_fingerprint_override_wins(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"proc/sys/kernel/random/boot_id": "abc\n"})
    assert host_fingerprint(root, override="rack3-node7") == "rack3-node7"
    assert host_fingerprint(override="rack3-node7") == "rack3-node7"
    assert describe_device(root=root, fingerprint_override="vmhost:01").host_fingerprint == (
        "vmhost:01"
    )


@pytest.mark.parametrize("bad", ["", " ", "has space", "x" * 129, "semi;colon", "new\nline"])
def test_fingerprint_override_is_validated(bad: str) -> None:
    with pytest.raises(ValueError, match="host fingerprint override"):
        host_fingerprint(override=bad)


def test_raspberry_pi_tree(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "proc/device-tree/model": b"Raspberry Pi 4 Model B Rev 1.4\x00",
            "proc/cpuinfo": PI_CPUINFO,
            "etc/os-release": 'NAME="Debian GNU/Linux"\n'
            'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n',
        },
    )
    d = describe_device(root=root)
    assert d.board_model == "Raspberry Pi 4 Model B Rev 1.4"
    assert d.cpu.model == "Cortex-A72"
    assert d.os.distribution == "Debian GNU/Linux 12 (bookworm)"


def test_device_tree_model_from_sys_firmware(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path, {"sys/firmware/devicetree/base/model": b"Raspberry Pi 5 Model B Rev 1.0\x00"}
    )
    assert board_model(root) == "Raspberry Pi 5 Model B Rev 1.0"


def test_jetson_tree(tmp_path: Path) -> None:
    release = (
        "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
        "DATE: Tue Aug  1 19:57:35 UTC 2023\n# KERNEL_VARIANT: oot\n"
    )
    only_release = write_tree(tmp_path / "a", {"etc/nv_tegra_release": release})
    assert describe_device(root=only_release).board_model == "NVIDIA Jetson (L4T R35.4.1)"
    with_model = write_tree(
        tmp_path / "b",
        {
            "etc/nv_tegra_release": release,
            "proc/device-tree/model": b"NVIDIA Jetson AGX Orin Developer Kit\x00",
            "proc/cpuinfo": "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd42\n",
        },
    )
    d = describe_device(root=with_model)
    assert d.board_model == "NVIDIA Jetson AGX Orin Developer Kit (L4T R35.4.1)"
    assert d.cpu.model == "Cortex-A78AE"


def test_unparseable_tegra_release_is_kept_verbatim(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"etc/nv_tegra_release": "# R99 something new\n"})
    assert board_model(root) == "NVIDIA Jetson (R99 something new)"


def test_empty_tree_gives_empty_strings_and_zeros(tmp_path: Path) -> None:
    d = describe_device(root=tmp_path)
    assert d.board_model == ""
    assert d.os.distribution == ""
    assert d.cpu.model == ""
    assert (d.cpu.freq_min_mhz, d.cpu.freq_max_mhz, d.cpu.freq_current_mhz) == (0, 0, 0)
    assert d.cpu.logical_cores >= 1  # psutil still describes the real machine
    assert re.fullmatch(r"[0-9a-f]{16}", d.host_fingerprint)


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        (
            "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\n"
            "model name\t: AMD EPYC 7B13\n",
            "AMD EPYC 7B13",
        ),
        # big.LITTLE: both clusters, in order of appearance
        (
            "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd05\n\n"
            "processor\t: 4\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n",
            "Cortex-A55 + Cortex-A76",
        ),
        # 32-bit Pi OS: a generic model name, the part says more
        (
            "processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nCPU implementer\t: 0x41\n"
            "CPU part\t: 0xd08\n\nHardware\t: BCM2711\n",
            "Cortex-A72",
        ),
        ("processor\t: 0\nCPU implementer\t: 0x4e\nCPU part\t: 0x004\n", "Carmel"),
        ("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xfff\n", "ARM part 0xfff"),
        (
            "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\n",
            "ARMv7 Processor rev 4 (v7l)",
        ),
        ("processor\t: 0\nBogoMIPS\t: 38.40\n\nHardware\t: BCM2835\n", "BCM2835"),
    ],
)
def test_cpu_model_from_cpuinfo(tmp_path: Path, cpuinfo: str, expected: str) -> None:
    assert cpu_model(write_tree(tmp_path, {"proc/cpuinfo": cpuinfo})) == expected


def test_os_release_fallback_and_quoting(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path, {"usr/lib/os-release": "PRETTY_NAME='Ubuntu 22.04.4 LTS'\nNAME=Ubuntu\n"}
    )
    assert os_distribution(root) == "Ubuntu 22.04.4 LTS"


def test_parse_nvidia_smi_csv() -> None:
    text = (
        "NVIDIA H200, 143771, 570.86.15, GPU-6f2c1a4e-0000-1111-2222-333344445555\n"
        "Orin (nvgpu), [N/A], 540.4.0, GPU-ab\n"
        "garbage line\n"
    )
    gpus = parse_nvidia_smi_csv(text)
    assert [g.name for g in gpus] == ["NVIDIA H200", "Orin (nvgpu)"]
    assert gpus[0].memory_bytes == 143771 * 1024 * 1024
    assert gpus[0].driver_version == "570.86.15"
    assert gpus[0].uuid == "GPU-6f2c1a4e-0000-1111-2222-333344445555"
    assert gpus[1].memory_bytes == 0


def _fake_nvidia_smi(directory: Path, body: str) -> None:
    """A stand-in ``nvidia-smi`` (this machine has no NVIDIA driver to run the real one)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(sys.platform == "win32", reason="shell script stand-in")
def test_gpus_from_nvidia_smi_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    _fake_nvidia_smi(
        bin_dir,
        'case "$*" in *--query-gpu=name,memory.total,driver_version,uuid*) '
        "echo 'NVIDIA H200, 143771, 570.86.15, GPU-1';; *) exit 2;; esac",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    gpus = describe_device(root=tmp_path).gpus
    assert [(g.name, g.memory_bytes, g.uuid) for g in gpus] == [
        ("NVIDIA H200", 143771 * 1024 * 1024, "GPU-1")
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="shell script stand-in")
def test_failing_or_hanging_nvidia_smi_gives_no_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = tmp_path / "failing"
    _fake_nvidia_smi(failing, "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    monkeypatch.setenv("PATH", str(failing))
    assert query_nvidia_gpus() == []

    hanging = tmp_path / "hanging"
    _fake_nvidia_smi(hanging, "exec sleep 30")
    monkeypatch.setenv("PATH", f"{hanging}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert query_nvidia_gpus(timeout_s=0.3) == []

    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert query_nvidia_gpus() == []


@pytest.mark.parametrize("files,quota", [
    ({"proc/self/cgroup": "0::/a/b\n", "sys/fs/cgroup/a/b/cpu.max": "max 100000\n",
      "sys/fs/cgroup/a/cpu.max": "150000 100000\n"}, 1.5),  # v2: an ancestor's quota counts
    ({"proc/self/cgroup": "0::/a\n", "sys/fs/cgroup/a/cpu.max": "400000 100000\n",
      "sys/fs/cgroup/cpu.max": "200000 100000\n"}, 2.0),  # the smallest wins
    ({"proc/self/cgroup": "4:cpu,cpuacct:/docker/x\n",
      "sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us": "200000\n",
      "sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n"}, 2.0),  # v1
    ({"proc/self/cgroup": "2:cpuacct:/\n1:cpu:/docker/x\n",  # a container: only the mount root
      "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "50000\n",
      "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
    ({"proc/self/cgroup": "1:cpu:/\n", "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
      "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1 unlimited
    ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "lots 100000\n"}, None),  # garbled
    ({}, None),  # no cgroups at all
], ids=["v2-ancestor", "v2-smallest", "v1", "v1-container-root", "v1-unlimited", "garbled",
        "none"])
def test_cgroup_cpu_quota_from_fake_trees(tmp_path, files, quota):
    assert cgroup_cpu_quota(write_tree(tmp_path, files)) == quota


@pytest.mark.parametrize("affinity,quota_files,expected", [
    (4, {"sys/fs/cgroup/cpu.max": "150000 100000\n"}, (1, 1.5)),  # 1.5 cores: 1 flat out
    (4, {"sys/fs/cgroup/cpu.max": "50000 100000\n"}, (1, 0.5)),  # never below one
    (1, {"sys/fs/cgroup/cpu.max": "300000 100000\n"}, (1, 3.0)),  # pinned: affinity wins
    (3, {}, (3, 0.0)),
])
def test_usable_cores_is_affinity_lowered_to_the_quota(tmp_path, affinity, quota_files, expected):
    root = write_tree(tmp_path, {"proc/self/cgroup": "0::/\n", **quota_files})
    found = usable_cores(root, logical_cores=8, affinity=affinity)
    assert (found.cores, found.quota_cores) == expected


def test_this_process_usable_cores_match_its_affinity():
    d = describe_device()
    if hasattr(os, "sched_getaffinity"):
        assert 1 <= d.cpu.usable_cores <= len(os.sched_getaffinity(0))
    else:
        assert 1 <= d.cpu.usable_cores <= d.cpu.logical_cores
