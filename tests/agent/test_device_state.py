"""Device state sampling (real machine and fake sysfs trees) and measurement warnings."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from fleetnas.agent.device_state import (
    HOT_TEMPERATURE_C,
    CpuFrequency,
    StateSampler,
    read_cpu_frequency,
    read_temperature_c,
    sample_state,
    state_warnings,
)
from fleetnas.api.v1 import agent_pb2
from tests.agent.fake_root import write_tree

PI_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"
THERMAL = "sys/class/thermal"
POLICY0 = "sys/devices/system/cpu/cpufreq/policy0"
WINDOW = 0.01  # the CPU window only matters for real readings; keep tests quick



def policy(
    cur: int,
    hw_max: int,
    *,
    governor: str = "ondemand",
    driver: str = "cpufreq-dt",
    policy_max: int | None = None,
    hw_min: int = 600000,
    base: str = POLICY0,
) -> dict[str, str]:
    """Files of one cpufreq domain (kHz, as the kernel writes them)."""
    return {
        f"{base}/scaling_cur_freq": f"{cur}\n",
        f"{base}/cpuinfo_max_freq": f"{hw_max}\n",
        f"{base}/cpuinfo_min_freq": f"{hw_min}\n",
        f"{base}/scaling_max_freq": f"{policy_max if policy_max is not None else hw_max}\n",
        f"{base}/scaling_governor": f"{governor}\n",
        f"{base}/scaling_driver": f"{driver}\n",
    }


def test_sample_this_machine_is_sane() -> None:
    start = time.time()
    state = sample_state()
    end = time.time()
    assert start <= state.timestamp <= end
    assert state.freq_current_mhz >= 0 and state.freq_max_mhz >= 0
    assert state.load_1m >= 0
    assert 0 <= state.cpu_percent <= 100
    assert 0 < state.memory_available_bytes <= psutil.virtual_memory().total
    if state.temperature_available:
        assert -40 < state.temperature_c < 150
    else:
        assert state.temperature_c == 0


def test_raspberry_pi_tree(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "proc/device-tree/model": b"Raspberry Pi 4 Model B Rev 1.4\x00",
            PI_THROTTLED: "0x50005\n",
            f"{THERMAL}/thermal_zone0/temp": "71234\n",
            **policy(1500000, 1500000),
        },
    )
    state = sample_state(root=root, cpu_window_s=WINDOW)
    assert state.temperature_available
    assert state.temperature_c == pytest.approx(71.234)
    assert state.throttled
    assert (state.freq_current_mhz, state.freq_max_mhz) == (1500, 1500)


def test_pi_not_throttled_now_is_calm(tmp_path: Path) -> None:
    # Sticky bits alone (throttled earlier since boot) do not mark a fresh sample.
    root = write_tree(tmp_path, {PI_THROTTLED: "50000\n", **policy(600000, 1500000)})
    assert not sample_state(root=root, cpu_window_s=WINDOW).throttled


def test_pi5_firmware_path(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {"sys/devices/platform/soc@107c000000/soc@107c000000:firmware/get_throttled": "4\n"},
    )
    assert sample_state(root=root, cpu_window_s=WINDOW).throttled


def test_empty_tree(tmp_path: Path) -> None:
    state = sample_state(root=tmp_path, cpu_window_s=WINDOW)
    assert not state.temperature_available
    assert state.temperature_c == 0
    assert not state.throttled
    assert (state.freq_current_mhz, state.freq_max_mhz) == (0, 0)
    assert state.memory_available_bytes > 0


def test_hottest_sane_zone_wins(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            f"{THERMAL}/thermal_zone0/temp": "45000\n",
            f"{THERMAL}/thermal_zone1/temp": "62500\n",
            f"{THERMAL}/thermal_zone2/temp": "-273000\n",  # broken sensor
            f"{THERMAL}/thermal_zone3/temp": "2147483647\n",  # unused sensor
            f"{THERMAL}/thermal_zone4/temp": "not a number\n",
            f"{THERMAL}/cooling_device0/cur_state": "3\n",
        },
    )
    assert read_temperature_c(root) == pytest.approx(62.5)
    (tmp_path / THERMAL / "thermal_zone5").mkdir()  # zone without a readable temp
    assert read_temperature_c(root) == pytest.approx(62.5)


def test_only_broken_zones_mean_no_temperature(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {f"{THERMAL}/thermal_zone0/temp": "-273000\n"})
    assert read_temperature_c(root) is None


def test_idle_cpu_at_min_frequency_is_not_throttled(tmp_path: Path) -> None:
    root = write_tree(tmp_path, policy(600000, 1800000, governor="schedutil"))
    assert read_cpu_frequency(root) == CpuFrequency(
        current_mhz=600.0, min_mhz=600.0, max_mhz=1800.0, capped=False
    )


def test_performance_governor_below_max_is_throttled(tmp_path: Path) -> None:
    root = write_tree(tmp_path, policy(1200000, 1800000, governor="performance"))
    assert read_cpu_frequency(root).capped
    assert sample_state(root=root, cpu_window_s=WINDOW).throttled


def test_self_scaling_driver_below_max_is_not_throttled(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path, policy(2100000, 3900000, governor="performance", driver="intel_pstate")
    )
    assert not read_cpu_frequency(root).capped


def test_policy_cap_below_hardware_max_is_throttled(tmp_path: Path) -> None:
    root = write_tree(tmp_path, policy(1000000, 1800000, policy_max=1000000))
    assert read_cpu_frequency(root).capped


def test_big_little_reports_fastest_domain(tmp_path: Path) -> None:
    little = policy(1200000, 1800000, hw_min=408000)
    big = policy(2200000, 2400000, base="sys/devices/system/cpu/cpufreq/policy4")
    root = write_tree(tmp_path, {**little, **big})
    freq = read_cpu_frequency(root)
    assert (freq.current_mhz, freq.min_mhz, freq.max_mhz) == (2200.0, 408.0, 2400.0)


def test_per_cpu_cpufreq_dirs_without_policies(tmp_path: Path) -> None:
    root = write_tree(tmp_path, policy(800000, 1000000, base="sys/devices/system/cpu/cpu0/cpufreq"))
    assert read_cpu_frequency(root).current_mhz == 800.0


def test_cpuinfo_mhz_when_no_cpufreq(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "proc/cpuinfo": "processor\t: 0\ncpu MHz\t\t: 2596.120\n\nprocessor\t: 1\ncpu MHz\t\t: 2400\n"
        },
    )
    freq = read_cpu_frequency(root)
    assert freq.current_mhz == pytest.approx(2596.12)
    assert freq.max_mhz == 0


def test_thermal_throttle_counters_need_two_samples(tmp_path: Path) -> None:
    counter = tmp_path / "sys/devices/system/cpu/cpu1/thermal_throttle/package_throttle_count"
    root = write_tree(
        tmp_path,
        {
            "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count": "5\n",
            "sys/devices/system/cpu/cpu1/thermal_throttle/package_throttle_count": "2\n",
        },
    )
    sampler = StateSampler(root=root, cpu_window_s=WINDOW)
    assert not sampler.sample().throttled  # no history yet
    assert not sampler.sample().throttled  # unchanged
    counter.write_text("3\n")
    assert sampler.sample().throttled
    assert not sampler.sample().throttled  # nothing new since the last sample


def test_pi_sticky_bits_set_between_samples(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {PI_THROTTLED: "0\n"})
    sampler = StateSampler(root=root, cpu_window_s=WINDOW)
    assert not sampler.sample().throttled
    (tmp_path / PI_THROTTLED).write_text("50000\n")  # throttled and recovered in between
    assert sampler.sample().throttled
    assert not sampler.sample().throttled


@pytest.mark.parametrize("window", [0, -1, 11, float("nan")])
def test_bad_cpu_window(window: float) -> None:
    with pytest.raises(ValueError, match="cpu_window_s"):
        sample_state(cpu_window_s=window)


def calm(**changes: object) -> agent_pb2.DeviceState:
    """A quiet host: 1.5 GHz, 55 °C, no load; ``changes`` override fields."""
    fields: dict[str, object] = {
        "timestamp": 1_700_000_000.0,
        "freq_current_mhz": 1500.0,
        "freq_max_mhz": 1500.0,
        "temperature_available": True,
        "temperature_c": 55.0,
        "load_1m": 0.1,
        "cpu_percent": 2.0,
        "others_cpu_percent": 2.0,
        "memory_available_bytes": 2 << 30,
        "throttled": False,
    }
    fields.update(changes)
    return agent_pb2.DeviceState(**fields)  # type: ignore[arg-type]


def warn(
    before: agent_pb2.DeviceState, after: agent_pb2.DeviceState, threads: int = 2, cores: int = 2
) -> list[str]:
    return state_warnings(before, after, threads_used=threads, logical_cores=cores)


def test_calm_pair_gives_no_warning() -> None:
    assert warn(calm(), calm(load_1m=1.9, others_cpu_percent=1.0, temperature_c=70.0)) == []
    # A frequency rise (governor ramping up) is not a warning either.
    assert warn(calm(freq_current_mhz=600.0), calm(freq_current_mhz=1500.0)) == []


def test_throttled_flag_warns() -> None:
    (only,) = warn(calm(), calm(throttled=True))
    assert only.startswith("throttling") and "after" in only and "before" not in only
    (both,) = warn(calm(throttled=True), calm(throttled=True))
    assert "before and after" in both


def test_frequency_drop_warns() -> None:
    (only,) = warn(calm(freq_current_mhz=2000.0), calm(freq_current_mhz=1500.0))
    assert "2000" in only and "1500" in only
    assert warn(calm(freq_current_mhz=2000.0), calm(freq_current_mhz=1850.0)) == []
    assert warn(calm(freq_current_mhz=2000.0), calm(freq_current_mhz=0.0)) == []  # unknown


def test_heat_warns() -> None:
    (only,) = warn(calm(temperature_c=70.0), calm(temperature_c=82.4))
    assert only.startswith("hot") and "82.4" in only and "70.0" in only
    assert warn(calm(), calm(temperature_c=HOT_TEMPERATURE_C - 0.1)) == []
    # A garbage value with no sensor behind it is ignored.
    assert warn(calm(), calm(temperature_available=False, temperature_c=99.0)) == []


def test_busy_host_warns() -> None:
    (only,) = warn(calm(others_cpu_percent=63.0, load_1m=2.4), calm())
    assert only.startswith("noisy host") and "63%" in only and "load 2.4 on 2 cores" in only


def test_the_agents_own_cpu_use_is_not_noise() -> None:
    # the whole host was busy, but with the agent's own work (e.g. a warm spare starting)
    assert warn(calm(cpu_percent=90.0, others_cpu_percent=3.0, load_1m=1.5), calm()) == []


def test_high_load_with_current_activity_warns() -> None:
    (only,) = warn(calm(load_1m=2.4, others_cpu_percent=30.0), calm(), threads=2, cores=2)
    assert "noisy host: load 2.4 on 2 cores before the run" in only
    # One thread on four cores leaves three free: load 2.4 fits beside the benchmark.
    assert warn(calm(load_1m=2.4, others_cpu_percent=30.0), calm(), threads=1, cores=4) == []
    # threads_used=0 means all cores.
    assert warn(calm(load_1m=1.2, others_cpu_percent=30.0), calm(), threads=0, cores=4)


def test_stale_load_from_a_previous_run_is_not_noise() -> None:
    # load_1m still carries the agent's own previous benchmark; the host is idle now.
    assert warn(calm(load_1m=2.4, others_cpu_percent=3.0), calm()) == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="logical_cores"):
        state_warnings(calm(), calm(), threads_used=1, logical_cores=0)
    with pytest.raises(ValueError, match="threads_used"):
        state_warnings(calm(), calm(), threads_used=-1, logical_cores=2)


def test_cpu_utilisation_covers_the_time_since_the_previous_sample():
    """A busy stretch between two samples shows in the second one's cpu_percent."""
    import os
    import time

    from fleetnas.agent.device_state import StateSampler

    sampler = StateSampler(cpu_window_s=0.05)
    sampler.sample()
    end = time.process_time() + 0.4
    while time.process_time() < end:  # one core busy for 0.4 s of CPU time
        pass
    busy = sampler.sample().cpu_percent
    one_core = 100.0 / (os.cpu_count() or 1)
    assert busy >= 0.6 * one_core, (busy, one_core)


def test_the_agents_own_children_do_not_count_as_other_programs():
    """A busy child of this process (like a benchmark worker) is excluded from others_cpu_percent."""
    import os
    import subprocess
    import sys

    from fleetnas.agent.device_state import StateSampler

    sampler = StateSampler(cpu_window_s=0.05)
    sampler.sample()
    started = time.monotonic()
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"
    subprocess.run([sys.executable, "-c", burn], check=True, timeout=60)
    state = sampler.sample()
    # the child's 0.4 s of CPU as a share of the host's CPU time over the window: on a loaded
    # host the window is longer (and the host busier), so the share is judged against it
    child_share = 100.0 * 0.4 / ((time.monotonic() - started) * (os.cpu_count() or 1))
    own = state.cpu_percent - state.others_cpu_percent
    assert own >= 0.6 * child_share, (own, child_share, state)


def test_latest_never_waits_for_the_cpu_window(tmp_path):
    """Within one window ``latest`` hands out copies of one snapshot; after it, a fresh one."""
    window = 0.5
    sampler = StateSampler(root=tmp_path, cpu_window_s=window)
    first = sampler.latest()  # the only call that may wait (the window since creation)
    start = time.monotonic()
    copies = [sampler.latest() for _ in range(20)]
    assert time.monotonic() - start < window  # 20 samples would have slept 20 windows
    assert {c.timestamp for c in copies} == {first.timestamp}
    copies[0].load_1m = -1.0  # a copy: changing it changes nothing of the sampler's
    assert sampler.latest().load_1m != -1.0
    deadline = time.monotonic() + 10
    while sampler.latest().timestamp == first.timestamp:
        assert time.monotonic() < deadline, "latest never took a fresh sample"
        time.sleep(0.05)


@pytest.mark.parametrize("threads,usable,physical,expected", [
    (2, 1, 2, "oversubscribed: 2 intra-op threads on 1 usable cores"),
    (0, 2, 4, "oversubscribed: onnxruntime's default of one thread per physical core (4)"),
    (2, 2, 4, None),
    (0, 4, 4, None),
    (8, 0, 4, None),  # an old description without usable_cores: nothing to compare with
])
def test_oversubscribed_warning(threads, usable, physical, expected):
    from fleetnas.agent.device_state import oversubscribed_warning

    warning = oversubscribed_warning(threads, usable_cores=usable, physical_cores=physical)
    if expected is None:
        assert warning is None
    else:
        assert warning is not None and warning.startswith(expected)


def test_back_to_back_samples_do_not_wait_for_the_cpu_window(tmp_path):
    """Once the sampler is a window old, samples close together never sleep, and each still
    measures at least a window: a busy stretch shows in the samples right after it."""
    window = 0.3
    sampler = StateSampler(root=tmp_path, cpu_window_s=window)
    time.sleep(window)
    end = time.process_time() + 0.25
    while time.process_time() < end:  # one core busy just before the samples
        pass
    start = time.monotonic()
    states = [sampler.sample() for _ in range(10)]
    assert time.monotonic() - start < window  # waiting would have taken 10 windows
    one_core = 100.0 / (os.cpu_count() or 1)
    # each window reaches back over the busy stretch (a 10 ms window would read ~0 or 100 %)
    assert all(s.cpu_percent >= 0.3 * one_core for s in states), [s.cpu_percent for s in states]
