"""Describe a phone: properties, CPU, clusters and masks, fingerprint."""

from __future__ import annotations

import shutil

import pytest

from fleetnas.agent.android import (
    Adb,
    CoreCluster,
    cluster_masks,
    cpu_mask,
    describe_phone,
    parse_cpu_list,
    parse_getprop,
    phone_fingerprint,
)
from fleetnas.agent.device_probe import host_fingerprint
from tests.agent.android.fake_phone import FakePhone


def test_describe_a_1_3_4_phone(phone: FakePhone) -> None:
    description = describe_phone(Adb(phone.serial))
    assert description.abi == "arm64-v8a"
    assert description.cpu_model == "Cortex-A55 + Cortex-A78 + Cortex-X1"
    assert [(c.cpus, c.core, c.max_khz, c.capacity) for c in description.clusters] == [
        ((0, 1, 2, 3), "Cortex-A55", 1803000, 325),
        ((4, 5, 6), "Cortex-A78", 2400000, 870),
        ((7,), "Cortex-X1", 2850000, 1024),
    ]
    assert description.masks() == {"little": "f", "big": "70", "prime": "80", "all": "ff"}
    assert description.logical_cores == 8
    assert description.kernel.startswith("5.10.157-android13")
    proto = description.to_proto()
    assert proto.hostname == phone.serial
    assert proto.host_fingerprint == phone_fingerprint(phone.serial, phone.serial)
    assert (proto.cpu.architecture, proto.cpu.logical_cores) == ("aarch64", 8)
    assert (proto.cpu.freq_min_mhz, proto.cpu.freq_max_mhz) == (300.0, 2850.0)
    assert proto.os.system == "Android" and proto.os.distribution == "Android 14 (API 34)"
    assert proto.board_model == "Google Pixel 7 (panther), SoC Google GS201"
    assert proto.memory.total_bytes == 7869432 * 1024


def test_phone_that_hides_cpufreq_and_has_no_soc_props(add_phone) -> None:
    phone = add_phone("emulator-5554", props={"ro.soc.manufacturer": "", "ro.soc.model": ""})
    shutil.rmtree(phone.fs / "sys/devices/system/cpu/cpufreq")
    description = describe_phone(Adb(phone.serial))
    assert [c.cpus for c in description.clusters] == [tuple(range(8))]
    assert description.masks() == {"little": "ff", "big": "ff", "all": "ff"}
    assert description.board_model == "Google Pixel 7 (panther), SoC gs201"
    assert description.frequency.max_mhz == 0.0


def test_fingerprint_names_the_phone_not_the_host() -> None:
    usb = phone_fingerprint("R5CT1234ABC", "R5CT1234ABC")
    over_tcp = phone_fingerprint("R5CT1234ABC", "192.168.1.5:5555")
    assert usb == over_tcp  # the same phone however it is reached
    assert phone_fingerprint("", "192.168.1.5:5555") != over_tcp  # no serialno: adb serial
    assert phone_fingerprint("OTHER", "OTHER") != usb
    assert len(usb) == 16 and usb != host_fingerprint(override=None)


@pytest.mark.parametrize(
    ("clusters", "masks"),
    [
        ([(0, 1, 2, 3), (4, 5, 6, 7)], {"little": "f", "big": "f0", "all": "ff"}),
        ([(0, 1, 2, 3, 4, 5), (6, 7)], {"little": "3f", "big": "c0", "all": "ff"}),
        ([(0, 1, 2, 3), (4, 5, 6), (7,)], {"little": "f", "big": "70", "prime": "80",
                                            "all": "ff"}),
        ([(0, 1, 2, 3), (4, 5), (6, 7)], {"little": "f", "big": "c0", "all": "ff"}),
        ([(0, 1, 2, 3, 4, 5, 6, 7)], {"little": "ff", "big": "ff", "all": "ff"}),
        ([(0,), (1,)], {"little": "1", "big": "2", "all": "3"}),
    ],
)
def test_cluster_roles(clusters: list[tuple[int, ...]], masks: dict[str, str]) -> None:
    cores = tuple(CoreCluster(cpus=cpus, max_khz=1000 * (i + 1)) for i, cpus in enumerate(clusters))
    assert cluster_masks(cores) == masks


def test_masks_and_cpu_lists() -> None:
    assert cpu_mask([4, 5, 6]) == "70" and cpu_mask((0, 9)) == "201"
    with pytest.raises(ValueError):
        cpu_mask(())
    assert parse_cpu_list("0-3,6") == (0, 1, 2, 3, 6)
    assert parse_cpu_list("4 5 6\n") == (4, 5, 6)
    assert parse_cpu_list("garbage") == ()


def test_getprop_listing() -> None:
    text = "[ro.product.model]: [Pixel 7]\n[ro.empty]: []\n[weird]: [a [b] c]\nnot a prop\n"
    assert parse_getprop(text) == {"ro.product.model": "Pixel 7", "ro.empty": "",
                                   "weird": "a [b] c"}
