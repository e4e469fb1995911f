"""RAPL and amd_energy on fake powercap/hwmon trees, an unreadable counter, and this machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetnas.agent.telemetry import RaplSource, available_sources
from tests.agent.fake_root import write_tree
from tests.agent.test_telemetry_support import FakeNvml, deny, run_unprivileged, shared_tmp

PC = "sys/class/powercap"
PACKAGE_RANGE = 262143328850  # a real package max_energy_range_uj (Skylake client)
DRAM_RANGE = 65712999613


def zone(
    name: str, label: str, energy: int, wrap: int, limit_uw: int | None = None
) -> dict[str, str]:
    files = {
        f"{PC}/{name}/name": f"{label}\n",
        f"{PC}/{name}/energy_uj": f"{energy}\n",
        f"{PC}/{name}/max_energy_range_uj": f"{wrap}\n",
    }
    if limit_uw is not None:
        files[f"{PC}/{name}/constraint_0_power_limit_uw"] = f"{limit_uw}\n"
    return files


def intel_client_tree(root: Path) -> Path:
    """A laptop: package-0 with core/uncore/dram, psys, and the MMIO duplicate of the package."""
    return write_tree(
        root,
        {
            f"{PC}/intel-rapl/enabled": "1\n",
            **zone("intel-rapl:0", "package-0", 1_000_000, PACKAGE_RANGE, 15_000_000),
            **zone("intel-rapl:0:0", "core", 400_000, PACKAGE_RANGE),
            **zone("intel-rapl:0:1", "uncore", 100_000, PACKAGE_RANGE),
            **zone("intel-rapl:0:2", "dram", 50_000, DRAM_RANGE),
            **zone("intel-rapl:1", "psys", 9_000_000, PACKAGE_RANGE),
            **zone("intel-rapl-mmio:0", "package-0", 1_000_000, PACKAGE_RANGE),
        },
    )


def set_counter(root: Path, zone_name: str, value: int) -> None:
    """Replace the counter atomically: the meter's polling thread may read at any moment."""
    path = root / PC / zone_name / "energy_uj"
    tmp = path.with_name("energy_uj.tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


def test_domains_kinds_and_the_default_scope(tmp_path: Path) -> None:
    source = RaplSource(root=intel_client_tree(tmp_path))
    assert source.status().available
    described = source.describe()
    assert described is not None and described.interface == "powercap"
    assert [(d.part, d.kind) for d in described.domains] == [
        ("package-0", "package"),
        ("package-0/core", "core"),
        ("package-0/uncore", "uncore"),
        ("package-0/dram", "dram"),
        ("psys", "psys"),
    ]  # the intel-rapl-mmio duplicate is not counted twice
    assert described.energy_scope == "package-0 + package-0/dram"
    sample = source.sample()
    assert sample is not None
    assert dict(sample.counters_uj)["package-0"] == 1_000_000
    assert dict(sample.power_limits_w)["package-0"] == 15.0


def test_energy_over_packages_and_dram_with_a_wrap(tmp_path: Path) -> None:
    root = intel_client_tree(tmp_path)
    set_counter(root, "intel-rapl:0", PACKAGE_RANGE - 2_000_000)
    meter = RaplSource(root=root).energy_meter()
    meter.start()
    set_counter(root, "intel-rapl:0", 3_000_000)  # wrapped: 2 J before the top, 3 J after
    set_counter(root, "intel-rapl:0:2", 50_000 + 1_500_000)
    reading = meter.stop()
    assert not meter.polling
    assert (reading.method, reading.scope) == ("rapl-counter", "package-0 + package-0/dram")
    assert dict(reading.parts) == {
        "package-0": pytest.approx(5.0),
        "package-0/dram": pytest.approx(1.5),
    }
    assert reading.joules == pytest.approx(6.5)
    assert reading.resolution_j is not None and reading.resolution_j > 2e-6


def test_psys_alone_and_refused_combinations(tmp_path: Path) -> None:
    source = RaplSource(root=intel_client_tree(tmp_path))
    with source.energy_meter(kinds=("psys",)) as meter:
        pass
    assert meter.reading is not None and meter.reading.scope == "psys"
    with pytest.raises(ValueError, match="psys contains the packages"):
        source.energy_meter(kinds=("psys", "dram"))
    with pytest.raises(ValueError, match="parts of package"):
        source.energy_meter(kinds=("package", "core"))
    with pytest.raises(ValueError, match="must be some of"):
        source.energy_meter(kinds=("gpu",))


def test_a_root_only_counter_reads_none_with_permission_denied() -> None:
    with shared_tmp() as tmp:
        root = intel_client_tree(tmp)
        deny(root / PC / "intel-rapl:0" / "energy_uj")  # Linux 5.10+ makes it 0400 root
        available, scope, joules, reason = run_unprivileged(lambda: _measure(root))
    assert available  # the domains are visible...
    assert scope is None and joules is None  # ...but the energy is not
    assert reason.startswith("permission denied: /sys/class/powercap/intel-rapl:0/energy_uj")
    assert "CVE-2020-8694" in reason and "run the agent as root" in reason


def _measure(root: Path) -> tuple[bool, str | None, float | None, str]:
    source = RaplSource(root=root)
    described = source.describe()
    assert described is not None
    with source.energy_meter() as meter:
        pass
    assert meter.reading is not None
    return (
        source.status().available,
        described.energy_scope,
        meter.reading.joules,
        meter.reading.reason,
    )


def test_amd_energy_hwmon_sockets(tmp_path: Path) -> None:
    hw = "sys/class/hwmon/hwmon2"
    root = write_tree(
        tmp_path,
        {
            "sys/class/hwmon/hwmon0/name": "k10temp\n",
            f"{hw}/name": "amd_energy\n",
            f"{hw}/energy1_label": "Ecore000\n",
            f"{hw}/energy1_input": "10\n",
            f"{hw}/energy17_label": "Esocket0\n",
            f"{hw}/energy17_input": "7000000\n",
        },
    )
    source = RaplSource(root=root)
    described = source.describe()
    assert described is not None and described.interface == "amd_energy"
    assert described.energy_scope == "Esocket0"
    meter = source.energy_meter()
    meter.start()
    (root / hw / "energy17_input").write_text("9500000\n")
    reading = meter.stop()
    assert reading.method == "amd-energy-counter" and reading.joules == pytest.approx(2.5)


def test_this_machine_answers_without_guessing() -> None:
    source = RaplSource()
    status = source.status()
    zones = Path("/sys/class/powercap")
    has_zones = zones.is_dir() and any(p.name.startswith("intel-rapl:") for p in zones.iterdir())
    if not has_zones:
        assert not status.available and "no RAPL" in status.reason
    with source.energy_meter() as meter:
        pass
    reading = meter.reading
    assert reading is not None
    assert (reading.joules is None) == bool(reading.reason)
    if reading.joules is not None:
        assert reading.joules >= 0


def test_available_sources_on_a_fake_intel_tree(tmp_path: Path) -> None:
    found = available_sources(root=intel_client_tree(tmp_path), nvml=FakeNvml([]))
    assert [s.name for s in found] == ["rapl"]
