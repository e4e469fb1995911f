"""Jetson telemetry on fake sysfs trees of a Nano (JetPack 4), a Xavier NX and an AGX Orin (5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetnas.agent.telemetry import (
    JetsonSource,
    PowerMode,
    jetson_warnings,
    parse_nvpmodel_conf,
    parse_nvpmodel_query,
    parse_nvpmodel_status,
    parse_tegrastats_line,
)
from tests.agent.fake_root import write_tree
from tests.agent.test_telemetry_support import DATA, deny, run_unprivileged, shared_tmp

NANO_IIO = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
NX_HWMON = "sys/bus/i2c/drivers/ina3221/7-0040/hwmon/hwmon6"
ORIN_40 = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
ORIN_41 = "sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon4"
ORIN_EMC = "sys/kernel/debug/bpmp/debug/clk/emc/rate"
# Not a recording: an AGX Orin conf written in the recorded Nano conf's format.
ORIN_CONF = """< POWER_MODEL ID=0 NAME=MAXN >
GPU MAX_FREQ -1
< POWER_MODEL ID=1 NAME=MODE_15W >
GPU MAX_FREQ 420750000
< POWER_MODEL ID=2 NAME=MODE_30W >
< POWER_MODEL ID=3 NAME=MODE_50W >
< PM_CONFIG DEFAULT=2 >
"""


def devfreq(name: str, node: str, cur: int, lo: int, hi: int, load: int) -> dict[str, str]:
    base = f"sys/class/devfreq/{name}"
    return {
        f"{base}/cur_freq": f"{cur}\n",
        f"{base}/min_freq": f"{lo}\n",
        f"{base}/max_freq": f"{hi}\n",
        f"{base}/device/of_node/name": f"{node}\x00",
        f"{base}/device/load": f"{load}\n",
    }


def hwmon_channel(base: str, channel: int, label: str, mv: int, ma: int) -> dict[str, str]:
    return {
        f"{base}/in{channel}_label": f"{label}\n",
        f"{base}/in{channel}_input": f"{mv}\n",
        f"{base}/curr{channel}_input": f"{ma}\n",
    }


def nano_tree(root: Path) -> Path:
    files = {
        "etc/nv_tegra_release": "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64\n",
        "proc/device-tree/model": b"NVIDIA Jetson Nano Developer Kit\x00",
        "etc/nvpmodel.conf": (DATA / "nvpmodel_nano.conf").read_text(),
        "var/lib/nvpmodel/status": "pmode:0001",
        "sys/kernel/debug/clk/emc/clk_rate": "1600000000\n",
        "sys/class/devfreq/6000000.host1x/cur_freq": "408000000\n",  # not the GPU
        **devfreq("57000000.gpu", "gpu", 76800000, 76800000, 640000000, 0),
    }
    for channel, (label, mw, mv, ma) in enumerate(
        [("POM_5V_IN", 1022, 5064, 201), ("POM_5V_GPU", 0, 5064, 0), ("POM_5V_CPU", 204, 5064, 40)]
    ):
        files[f"{NANO_IIO}/rail_name_{channel}"] = f"{label}\n"
        files[f"{NANO_IIO}/in_power{channel}_input"] = f"{mw}\n"
        files[f"{NANO_IIO}/in_voltage{channel}_input"] = f"{mv}\n"
        files[f"{NANO_IIO}/in_current{channel}_input"] = f"{ma}\n"
    return write_tree(root, files)


def xavier_nx_tree(root: Path) -> Path:
    return write_tree(
        root,
        {
            "etc/nv_tegra_release": "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\n",
            "proc/device-tree/model": b"NVIDIA Jetson Xavier NX Developer Kit\x00",
            **hwmon_channel(NX_HWMON, 1, "VDD_IN", 5000, 813),
            **hwmon_channel(NX_HWMON, 2, "VDD_CPU_GPU_CV", 5000, 148),
            **hwmon_channel(NX_HWMON, 3, "VDD_SOC", 5000, 271),
            f"{NX_HWMON}/in7_label": "sum of shunt voltages\n",
            f"{NX_HWMON}/in7_input": "8\n",
            **devfreq("17000000.gv11b", "gv11b", 306000000, 114750000, 1109250000, 620),
        },
    )


def agx_orin_tree(root: Path) -> Path:
    return write_tree(
        root,
        {
            "proc/device-tree/model": b"NVIDIA Jetson AGX Orin Developer Kit\x00",
            "proc/device-tree/compatible": b"nvidia,p3737-0000+p3701-0005\x00nvidia,p3701-0005\x00nvidia,tegra234\x00",
            "etc/nvpmodel.conf": ORIN_CONF,
            "var/lib/nvpmodel/status": "pmode:0000 fmode:quiet",
            ORIN_EMC: "2133000000\n",
            **hwmon_channel(ORIN_40, 1, "VDD_GPU_SOC", 5048, 978),
            **hwmon_channel(ORIN_40, 2, "VDD_CPU_CV", 5048, 196),
            **hwmon_channel(ORIN_40, 3, "VIN_SYS_5V0", 5032, 882),
            **hwmon_channel(ORIN_41, 1, "NC", 0, 0),
            **hwmon_channel(ORIN_41, 2, "VDDQ_VDD2_1V8AO", 5040, 120),
            **hwmon_channel(ORIN_41, 3, "NC", 0, 0),
            **devfreq("17000000.ga10b", "ga10b", 305000000, 305000000, 1300500000, 0),
        },
    )


# -- describe and sample ----------------------------------------------------------------------


def test_nano_jetpack4_iio_rails_nvpmodel_and_clocks(tmp_path: Path) -> None:
    source = JetsonSource(root=nano_tree(tmp_path), nvpmodel_query=lambda: None)
    assert source.status().available
    described = source.describe()
    assert described is not None
    assert described.board == "NVIDIA Jetson Nano Developer Kit (L4T R32.7.1)"
    assert described.power_modes == (PowerMode(0, "MAXN"), PowerMode(1, "5W"))
    assert described.gpu_devfreq == "57000000.gpu"
    assert described.rails == ("POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU")
    assert described.energy_scope == "POM_5V_IN"
    sample = source.sample()
    assert sample is not None
    assert sample.power_mode == PowerMode(1, "5W")
    assert (sample.gpu_freq_mhz, sample.gpu_min_freq_mhz, sample.gpu_max_freq_mhz) == (
        76.8,
        76.8,
        640.0,
    )
    assert sample.gpu_load_percent == 0.0
    assert sample.emc_freq_mhz == 1600.0
    assert [(r.label, r.power_w) for r in sample.rails] == [
        ("POM_5V_IN", 1.022),
        ("POM_5V_GPU", 0.0),
        ("POM_5V_CPU", 0.204),
    ]
    assert sample.rails[0].voltage_v == 5.064 and sample.rails[0].current_a == 0.201
    assert sample.unreadable == ()


def test_xavier_nx_jetpack5_hwmon_rails_skip_the_shunt_sum(tmp_path: Path) -> None:
    source = JetsonSource(root=xavier_nx_tree(tmp_path), nvpmodel_query=lambda: None)
    sample = source.sample()
    assert sample is not None
    assert [r.label for r in sample.rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert sample.rails[0].power_w == pytest.approx(5.0 * 0.813)
    assert sample.gpu_freq_mhz == 306.0 and sample.gpu_load_percent == 62.0
    reasons = {u.what: u.reason for u in sample.unreadable}
    assert sample.power_mode is None and "nvpmodel -q gave nothing" in reasons["power mode"]
    assert sample.emc_freq_mhz is None and "missing: /sys/kernel/debug/" in reasons["EMC clock"]


def test_agx_orin_drops_nc_channels_and_sums_rails_without_an_input_rail(tmp_path: Path) -> None:
    source = JetsonSource(root=agx_orin_tree(tmp_path))
    described = source.describe()
    assert described is not None
    assert described.board == "NVIDIA Jetson AGX Orin Developer Kit"
    assert described.default_power_mode == 2
    assert described.rails == ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO")
    assert described.energy_scope == "VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0 + VDDQ_VDD2_1V8AO"
    sample = source.sample()
    assert sample is not None
    assert sample.power_mode == PowerMode(0, "MAXN")
    assert sample.emc_freq_mhz == 2133.0
    assert sample.gpu_max_freq_mhz == 1300.5


def test_power_mode_from_nvpmodel_q_when_the_status_file_is_missing(tmp_path: Path) -> None:
    root = xavier_nx_tree(tmp_path)
    recorded = (DATA / "nvpmodel_q_xavier_30w.txt").read_text()
    sample = JetsonSource(root=root, nvpmodel_query=lambda: recorded).sample()
    assert sample is not None and sample.power_mode == PowerMode(5, "MODE_30W_4CORE")


def test_root_only_emc_clock_is_none_with_permission_denied() -> None:
    with shared_tmp() as tmp:
        root = agx_orin_tree(tmp)
        deny(root / ORIN_EMC)  # debugfs is root-only
        sample = run_unprivileged(
            lambda: JetsonSource(root=root, nvpmodel_query=lambda: None).sample()
        )
    assert sample is not None
    assert sample.emc_freq_mhz is None
    (note,) = [u for u in sample.unreadable if u.what == "EMC clock"]
    assert note.reason.startswith("permission denied: /sys/kernel/debug/bpmp/debug/clk/emc/rate")
    assert "run the agent as root" in note.reason
    assert sample.power_mode == PowerMode(0, "MAXN")  # the rest still reads


# -- energy ------------------------------------------------------------------------------------


def test_nano_energy_integrates_the_input_rail(tmp_path: Path) -> None:
    source = JetsonSource(root=nano_tree(tmp_path), power_period_s=0.001)
    meter = source.energy_meter()
    meter.start()
    assert meter.sampling
    reading = meter.stop()
    assert not meter.sampling
    assert (reading.method, reading.scope) == ("ina3221-integration", "POM_5V_IN")
    assert reading.joules == pytest.approx(1.022 * reading.interval_s)
    assert reading.parts == (("POM_5V_IN", reading.joules),)


def test_orin_energy_sums_the_parallel_rails(tmp_path: Path) -> None:
    meter = JetsonSource(root=agx_orin_tree(tmp_path), power_period_s=0.001).energy_meter()
    with meter:
        pass
    reading = meter.reading
    assert reading is not None
    watts = 5.048 * 0.978 + 5.048 * 0.196 + 5.032 * 0.882 + 5.040 * 0.120
    assert reading.joules == pytest.approx(watts * reading.interval_s)
    assert len(reading.parts) == 4


def test_a_rail_that_vanishes_mid_run_makes_energy_unreadable(tmp_path: Path) -> None:
    root = nano_tree(tmp_path)
    meter = JetsonSource(root=root, power_period_s=0.001).energy_meter()
    meter.start()
    for name in ("in_power0_input", "in_voltage0_input"):
        (root / NANO_IIO / name).unlink()
    reading = meter.stop()
    assert reading.joules is None and "rail POM_5V_IN: missing" in reading.reason


# -- nvpmodel and tegrastats formats ----------------------------------------------------------


def test_nvpmodel_formats() -> None:
    modes, default = parse_nvpmodel_conf((DATA / "nvpmodel_nano.conf").read_text())
    assert modes == (PowerMode(0, "MAXN"), PowerMode(1, "5W")) and default is None
    assert parse_nvpmodel_conf(ORIN_CONF)[1] == 2
    assert parse_nvpmodel_status("pmode:0008 fmode:quiet") == 8
    assert parse_nvpmodel_status("garbage") is None
    assert parse_nvpmodel_query((DATA / "nvpmodel_q.txt").read_text()) == PowerMode(0, "MAXN")
    assert parse_nvpmodel_query("NVPM ERROR: failed to read\n") is None


def recorded_lines() -> dict[str, str]:
    lines = {}
    for raw in (DATA / "tegrastats_lines.txt").read_text().splitlines():
        if raw and not raw.startswith("#"):
            label, line = raw.split("\t", 1)
            lines[label] = line
    return lines


def test_every_recorded_tegrastats_line_parses() -> None:
    for label, line in recorded_lines().items():
        parsed = parse_tegrastats_line(line)
        assert parsed.ram_total_mb, label
        assert parsed.rails_mw, label
        assert parsed.gpu_load_percent is not None, label


def test_tegrastats_fields_per_generation() -> None:
    lines = recorded_lines()
    nano = parse_tegrastats_line(lines["nano"])
    assert (nano.ram_used_mb, nano.ram_total_mb) == (534, 3964)
    assert (nano.emc_load_percent, nano.emc_freq_mhz) == (0, 204)
    assert nano.gpu_freq_mhz == (76,)
    assert nano.rails_mw == (
        ("POM_5V_IN", 1022, 1022),
        ("POM_5V_GPU", 0, 0),
        ("POM_5V_CPU", 204, 204),
    )
    assert dict(nano.temperatures_c)["GPU"] == 36.0
    tx2 = parse_tegrastats_line(lines["tx2"])
    assert tx2.cpu[1] is None and tx2.cpu[2] is None and tx2.cpu[0].freq_mhz == 345
    assert tx2.rail_mw("VDD_IN") == 3056
    xavier = parse_tegrastats_line(lines["agx-xavier"])
    assert [name for name, _, _ in xavier.rails_mw] == ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"]
    orin = parse_tegrastats_line(lines["agx-orin-r36"])
    assert orin.gpu_freq_mhz == (305, 305)
    assert orin.rail_mw("VDD_GPU_SOC") == 3205 and orin.rail_mw("VDD_IN") is None
    assert len(orin.cpu) == 12
    bare = parse_tegrastats_line(lines["agx-orin"])
    assert (
        bare.gpu_freq_mhz == ()
        and bare.emc_freq_mhz is None
        and bare.rail_mw("VIN_SYS_5V0") == 4442
    )


def test_absent_sensors_are_dropped_and_junk_is_refused() -> None:
    line = recorded_lines()["orin-nx-l4t35"].replace("CV0@45.812C", "CV0@-256C")
    names = dict(parse_tegrastats_line(line).temperatures_c)
    assert "CV0" not in names and names["tj"] == 48.875
    with pytest.raises(ValueError, match="not a tegrastats line"):
        parse_tegrastats_line("hello world")


def test_jetson_warnings_report_mode_changes_and_a_moving_clock_cap(tmp_path: Path) -> None:
    root = agx_orin_tree(tmp_path)
    source = JetsonSource(root=root)
    before = source.sample()
    (root / "var/lib/nvpmodel/status").write_text("pmode:0001 fmode:quiet")
    (root / "sys/class/devfreq/17000000.ga10b/max_freq").write_text("420750000\n")
    after = source.sample()
    assert jetson_warnings([before, after]) == [
        "power mode changed during the run: MAXN -> MODE_15W (nvpmodel)",
        "throttling: the Jetson GPU's clock cap moved between 421 and 1300 MHz during the run "
        "(thermal or power capping, or nvpmodel)",
    ]
    assert jetson_warnings([after, after]) == []
