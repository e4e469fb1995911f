"""Phone state: dumpsys/thermal parsing (recorded transcripts), the sampler on a stand-in
phone, and the warnings."""

from __future__ import annotations

import dataclasses

from fleetnas.agent.android import (
    Adb,
    Battery,
    PhoneState,
    PhoneStateSampler,
    ThermalService,
    ThermalZone,
    parse_battery,
    parse_thermal_zones,
    parse_thermalservice,
    phone_warnings,
)
from fleetnas.agent.android._state import soc_temperature
from fleetnas.agent.device_state import CpuFrequency
from tests.agent.android.conftest import DATA
from tests.agent.android.fake_phone import FakePhone


def test_thermalservice_prefers_the_hal_current_block_over_the_cache() -> None:
    service = parse_thermalservice((DATA / "dumpsys_thermalservice_bort.txt").read_text())
    assert service.status == 0
    assert len(service.temperatures) == 13
    # Cached: 54.6 °C; current from the HAL: 31.7 °C (the phone has cooled since)
    assert service.temperatures[0].name == "cpu0-gold-usr"
    assert service.temperatures[0].temperature_c == 31.7
    assert soc_temperature((), service) == 32.300003  # the hottest CPU-type HAL reading


def test_thermalservice_tab_indented_with_a_moderate_status() -> None:
    service = parse_thermalservice((DATA / "dumpsys_thermalservice_xiaomi13tpro.txt").read_text())
    assert service.status == 2
    assert [(t.name, t.type, t.temperature_c) for t in service.temperatures] == [
        ("CPU", 0, 57.9), ("SKIN", 3, 34.351)]


def test_thermalservice_without_status_line() -> None:
    assert parse_thermalservice("Can't find service: thermalservice\n") == ThermalService(None)


def test_battery_temperature_is_tenths_of_a_degree() -> None:
    battery = parse_battery((DATA / "dumpsys_battery_cn_notes.txt").read_text())
    assert battery == Battery(temperature_c=27.4, level=100, powered=("USB",))


def test_battery_first_value_wins_over_event_log_lines() -> None:
    text = ("Current Battery Service state:\n  level: 75\n  temperature: 357\n[EventLogBuffer]\n"
            "08-11 18:34:14.721  Sending ACTION_BATTERY_CHANGED: level:72, temperature:345\n")
    assert parse_battery(text) == Battery(temperature_c=35.7, level=75)


def test_zones_soc_selection_ignores_skin_battery_and_broken_sensors() -> None:
    files = {
        "sys/class/thermal/thermal_zone0/type": "cpu-1-0-usr\n",
        "sys/class/thermal/thermal_zone0/temp": "51200\n",
        "sys/class/thermal/thermal_zone1/type": "skin-therm\n",
        "sys/class/thermal/thermal_zone1/temp": "58000\n",
        "sys/class/thermal/thermal_zone2/type": "battery\n",
        "sys/class/thermal/thermal_zone2/temp": "60000\n",
        "sys/class/thermal/thermal_zone10/type": "BIG\n",
        "sys/class/thermal/thermal_zone10/temp": "2147483647\n",  # broken: out of range
        "sys/class/thermal/thermal_zone11/type": "gpuss-0-usr\n",  # no temp: unreadable
    }
    zones = parse_thermal_zones(files)
    assert [z.name for z in zones] == ["thermal_zone0", "thermal_zone1", "thermal_zone2"]
    assert soc_temperature(zones, ThermalService(0)) == 51.2


def test_sampler_on_a_stand_in_phone(phone: FakePhone) -> None:
    phone.set_thermal(excess_c=20.0, tau_s=0.0, busy_percent=80.0)  # 53 °C: status LIGHT
    sampler = PhoneStateSampler(Adb(phone.serial))
    first = sampler.sample()
    second = sampler.sample()
    # the SoC zones are cpu-0 (53.0), cpu-1 (54.5), gpuss (52.0); skin/battery lag behind
    assert second.soc_temperature_c == 54.5
    assert second.thermal_status == 1
    assert second.battery.temperature_c == 32.0  # 33 - 5 + 0.2 * 20, tenths in dumpsys
    assert second.frequency.max_mhz == 2850.0 and not second.frequency.capped
    assert second.throttled  # Android says LIGHT
    assert first.cpu_percent is None  # a first sample has nothing to compare with
    assert second.cpu_percent == 80.0  # the stand-in's /proc/stat moves 80 busy, 20 idle
    assert second.load_1m == 1.25 and second.memory_available_bytes == 3145728 * 1024
    proto = second.to_proto()
    assert proto.temperature_available and proto.temperature_c == 54.5
    assert proto.throttled and proto.others_cpu_percent == 80.0


def test_sampler_sees_capped_clocks_at_moderate_status(phone: FakePhone) -> None:
    phone.set_thermal(excess_c=24.0, tau_s=0.0)  # 57 °C: MODERATE; the stand-in caps clocks
    state = PhoneStateSampler(Adb(phone.serial)).sample()
    assert state.thermal_status == 2
    assert state.frequency.capped


def _state(**changes: object) -> PhoneState:
    base = PhoneState(
        timestamp=0.0, zones=(ThermalZone("thermal_zone0", "cpu-0-0-usr", 35.0),),
        soc_temperature_c=35.0, thermal=ThermalService(0), battery=Battery(30.0, 80),
        frequency=CpuFrequency(2000.0, 300.0, 2850.0, False), load_1m=0.5, cpu_percent=3.0,
        memory_available_bytes=1 << 30,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_quiet_phone_gives_no_warning() -> None:
    assert phone_warnings(_state(), _state(), threads_used=1, logical_cores=8) == []


def test_warnings_name_android_status_hot_soc_warm_battery_and_busy_phone() -> None:
    after = _state(thermal=ThermalService(3), soc_temperature_c=82.0,
                   battery=Battery(41.5, 80), frequency=CpuFrequency(1000.0, 300.0, 2850.0, True))
    before = _state(cpu_percent=75.0)
    warnings = phone_warnings(before, after, threads_used=1, logical_cores=8)
    text = "\n".join(warnings)
    assert "throttling: the device reported CPU throttling after the run" in text
    assert "CPU frequency fell from 2000 to 1000 MHz" in text
    assert "hot: 35.0 °C before, 82.0 °C after" in text
    assert "noisy host: other programs kept the CPU 75% busy" in text
    assert "Android thermal status NONE (0) before, SEVERE (3) after the run" in text
    assert "severe throttling: Android thermal status SEVERE" in text
    assert "warm battery: 41.5 °C" in text
