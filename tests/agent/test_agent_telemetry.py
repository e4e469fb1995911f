"""Telemetry wired into a real agent on loopback: Describe, Status, results, energy.

Hardware that cannot exist here is stood in for below the sources only: a
pynvml-shaped module over a GPU recorded from a real A10, a fake Jetson Nano
sysfs tree, and a constant-power energy counter. The sources, the agent,
its workers and the wire are real; they reach the agent through
``create_server(telemetry=...)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fleetnas.agent.device_telemetry import PAIRED_NO_ENERGY, DeviceTelemetry
from fleetnas.agent.telemetry import (
    Counter,
    CounterMeter,
    EnergyMeter,
    JetsonSource,
    NvmlSource,
    RaplSource,
    SourceStatus,
    TelemetrySource,
)
from fleetnas.api.v1 import agent_pb2
from tests.agent.conftest import fast_settings
from tests.agent.test_telemetry_jetson import nano_tree
from tests.agent.test_telemetry_support import FakeNvml, a10_from_nvidia_smi

POWER_W = 40.0


class ConstantPower(TelemetrySource[None, None]):
    """An energy source drawing exactly POWER_W: its counter is POWER_W x CLOCK_MONOTONIC (mJ)."""

    name = "constant"

    def status(self) -> SourceStatus:
        return SourceStatus(True)

    def describe(self) -> None:
        return None

    def sample(self) -> None:
        return None

    def energy_meter(self) -> EnergyMeter:
        def read() -> int:
            return int(time.monotonic() * POWER_W * 1000)

        return CounterMeter([Counter("board", read, 1e-3)], method="test-counter",
                            scope="board", update_period_s=0.0, poll_s=0.02)


def gpu_and_jetson(tmp_path: Path, **gpu: Any) -> tuple[DeviceTelemetry, Any]:
    fake, _ = a10_from_nvidia_smi()
    for key, value in gpu.items():
        setattr(fake, key, value)
    sources = [NvmlSource(nvml=FakeNvml([fake], cuda=12040)),
               JetsonSource(root=nano_tree(tmp_path / "jetson"), nvpmodel_query=lambda: None)]
    return DeviceTelemetry(sources, watch_period_s=0.05), fake


def test_describe_and_status_carry_gpu_and_jetson_telemetry(start_agent, tmp_path) -> None:
    telemetry, _ = gpu_and_jetson(tmp_path, temperature_c=None)  # a sensor NVML cannot read
    server, client = start_agent(telemetry=telemetry)
    desc = client.describe()
    (gpu,) = desc.gpus
    assert (gpu.name, gpu.compute_capability, gpu.cuda_driver_version) == ("NVIDIA A10", "8.6",
                                                                             "12.4")
    assert gpu.driver_version == "550.127.05" and gpu.memory_bytes == 23028 * 2**20
    assert gpu.power_limit_w == 150.0 and gpu.energy_method == "nvml-energy-counter"
    assert gpu.mig_mode == "" and "MIG mode: not supported on this GPU" in gpu.unreadable
    assert desc.jetson.board and desc.jetson.rails and desc.jetson.energy_scope
    assert [(t.name, t.available) for t in desc.telemetry] == [("nvml", True), ("jetson", True)]
    state = client.status().state
    (gpu_state,) = state.gpus
    assert gpu_state.HasField("sm_clock_mhz") and gpu_state.HasField("power_w")
    assert gpu_state.clock_event_reasons_known and gpu_state.HasField("throttled")
    assert not gpu_state.HasField("temperature_c")  # unreadable is unset, never 0
    assert "temperature: not supported on this GPU" in gpu_state.unreadable
    direct = JetsonSource(root=tmp_path / "jetson", nvpmodel_query=lambda: None).sample()
    assert direct is not None and direct.power_mode is not None
    assert state.jetson.power_mode_id == direct.power_mode.id
    assert state.jetson.gpu_max_freq_mhz == direct.gpu_max_freq_mhz
    assert [r.label for r in state.jetson.rails] == [r.label for r in direct.rails]


def test_a_result_carries_gpu_states_warnings_peak_memory_and_loop_energy(
    start_agent, tmp_path, good_model
) -> None:
    telemetry, fake = gpu_and_jetson(tmp_path, reasons=0x004, utilization=(90, 40))  # power cap
    server, client = start_agent(telemetry=telemetry)
    sha = client.ensure_model(good_model)
    worker = server.runner.spare_worker_pid
    assert worker is not None
    fake.processes = [(worker, 300 * 2**20)]
    # long enough for the 20 ms GPU-memory polls and the 50 ms watch to see the job
    result = client.benchmark(sha, fast_settings(min_duration_s=0.3, max_runs=100_000))
    assert result.state_before.gpus and result.state_after.gpus
    assert result.state_before.HasField("jetson") and result.state_before.freq_current_mhz >= 0
    assert "throttling: GPU 0 reported sw_power_cap during the run" in result.warnings
    assert result.gpu_memory.peak_bytes == 300 * 2**20 and result.gpu_memory.polls >= 2
    by_source = {e.source: e for e in result.energy}
    assert set(by_source) == {"nvml", "jetson"}
    for energy in by_source.values():  # attributed to the worker's own timed loop
        assert energy.readable and energy.reason == ""
        assert energy.interval_s == pytest.approx((result.loop_end_ns - result.loop_start_ns) / 1e9)
        assert energy.inferences == result.timed_inferences > 0
    assert (by_source["nvml"].method, by_source["nvml"].scope) == ("nvml-energy-counter", "GPU 0")
    assert by_source["jetson"].method == "ina3221-integration"


def test_energy_is_attributed_to_the_timed_loop_end_to_end(start_agent, good_model) -> None:
    server, client = start_agent(telemetry=DeviceTelemetry([ConstantPower()]))
    sha = client.ensure_model(good_model)
    result = client.benchmark(sha, fast_settings(min_duration_s=0.3, max_runs=100_000))
    (energy,) = result.energy
    assert energy.readable and energy.reason == ""
    assert (energy.source, energy.method, energy.scope) == ("constant", "test-counter", "board")
    interval = (result.loop_end_ns - result.loop_start_ns) / 1e9
    assert energy.interval_s == pytest.approx(interval)
    assert energy.inferences == result.timed_inferences == len(result.samples_ms)
    assert abs(energy.joules - POWER_W * interval) <= energy.resolution_j
    assert energy.mean_power_w == pytest.approx(POWER_W, rel=0.05)
    assert energy.mj_per_inference == pytest.approx(energy.joules * 1000 / energy.inferences)
    assert energy.uncertainty_mj == pytest.approx(energy.resolution_j * 1000 / energy.inferences)
    assert energy.samples >= 2 and not energy.HasField("idle_power_w")
    paired = client.benchmark(sha, fast_settings(method=agent_pb2.METHOD_PAIRED))
    assert not paired.energy[0].readable and paired.energy[0].reason == PAIRED_NO_ENERGY


def test_an_idle_baseline_gives_net_figures(start_agent, good_model) -> None:
    server, client = start_agent(telemetry=DeviceTelemetry([ConstantPower()], idle_s=0.3))
    result = client.benchmark(client.ensure_model(good_model), fast_settings())
    (energy,) = result.energy
    assert energy.idle_power_w == pytest.approx(POWER_W, rel=0.05)
    # constant power: the loop draws what idle draws, so the net energy is ~0
    assert abs(energy.net_mj_per_inference) <= energy.net_uncertainty_mj


def test_this_machine_s_rapl_is_described_as_it_reads(start_agent, good_model) -> None:
    """The real probe: each source's Describe entry says what the source itself says here
    (on this VM: no powercap, so RAPL is unavailable with its reason)."""
    server, client = start_agent()
    entries = {t.name: t for t in client.describe().telemetry}
    assert set(entries) == {"nvml", "jetson", "rapl"}
    status = RaplSource().status()
    assert (entries["rapl"].available, entries["rapl"].reason) == (status.available, status.reason)
    if not Path("/sys/class/powercap").exists():
        assert not status.available and "no RAPL" in status.reason
    if not any(e.available for e in entries.values()):
        result = client.benchmark(client.ensure_model(good_model), fast_settings())
        assert not result.energy and not result.HasField("gpu_memory")
