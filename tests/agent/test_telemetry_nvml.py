"""NVML telemetry against a pynvml-shaped stand-in (no GPU here) and a recorded A10."""

from __future__ import annotations

import sys
import threading

import pytest

from fleetnas.agent.telemetry import (
    GpuMemoryPeak,
    NvmlSource,
    decode_clock_event_reasons,
    gpu_warnings,
)
from fleetnas.agent.telemetry._nvml import PYNVML_NAMES
from tests.agent.test_telemetry_support import API, FakeGpu, FakeNvml, a10_from_nvidia_smi

WAIT_S = 10.0
C = API["constants"]


def test_without_nvidia_ml_py_the_source_is_unavailable_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    source = NvmlSource()
    status = source.status()
    assert not status.available
    assert "nvidia-ml-py is not installed" in status.reason and "agent-gpu" in status.reason
    assert source.describe() is None and source.sample() is None
    reading = source.energy_meter().__enter__().stop()
    assert reading.joules is None and "not installed" in reading.reason


@pytest.mark.parametrize(
    ("error", "text"),
    [
        ("NVMLError_LibraryNotFound", "NVML Shared Library Not Found"),
        ("NVMLError_DriverNotLoaded", "Driver Not Loaded"),
    ],
)
def test_no_driver_means_unavailable_with_nvml_s_reason(error: str, text: str) -> None:
    status = NvmlSource(nvml=FakeNvml([FakeGpu()], init_error=error)).status()
    assert not status.available
    assert text in status.reason and "driver" in status.reason


def test_no_gpu_means_unavailable_and_nvml_is_shut_down() -> None:
    nvml = FakeNvml([])
    status = NvmlSource(nvml=nvml).status()
    assert not status.available and "no NVIDIA GPU" in status.reason
    assert nvml.shutdowns == 1


def test_describe_matches_the_recorded_a10() -> None:
    fake, smi = a10_from_nvidia_smi()
    source = NvmlSource(nvml=FakeNvml([fake], driver=smi["Driver Version"], cuda=12040))
    description = source.describe()
    assert description is not None
    assert description.driver_version == "550.127.05"
    assert description.cuda_driver_version == smi["CUDA Version"] == "12.4"
    (gpu,) = description.gpus
    assert gpu.name == "NVIDIA A10"
    assert gpu.uuid == "GPU-51ae0086-e1ac-4a20-f062-9caa44e4df6d"
    assert gpu.memory_total_bytes == 23028 * 2**20
    assert gpu.compute_capability == "8.6"
    assert gpu.mig_mode is None  # nvidia-smi: "MIG Mode: N/A"
    assert [str(u) for u in gpu.unreadable] == [
        "MIG mode: not supported on this GPU",
    ]
    assert gpu.power_limit_w == 150.0
    assert gpu.slowdown_temperature_c == 98.0
    assert gpu.energy_method == "nvml-energy-counter"


def test_sample_matches_the_recorded_a10() -> None:
    fake, _ = a10_from_nvidia_smi()
    sample = NvmlSource(nvml=FakeNvml([fake])).sample()
    assert sample is not None
    (gpu,) = sample.gpus
    assert (gpu.sm_clock_mhz, gpu.memory_clock_mhz) == (210, 405)
    assert gpu.temperature_c == 33.0
    assert gpu.power_w == pytest.approx(21.30)
    assert gpu.clock_event_reasons == ("gpu_idle",)  # "Idle: Active", all others "Not Active"
    assert gpu.throttled is False
    assert (gpu.gpu_utilization_percent, gpu.memory_utilization_percent) == (0, 0)
    assert gpu.memory_used_bytes == 2**20
    assert gpu.unreadable == ()


def test_clock_event_masks_decode_with_pynvml_s_bit_values() -> None:
    mask = C["nvmlClocksEventReasonSwPowerCap"] | C["nvmlClocksEventReasonHwThermalSlowdown"]
    assert decode_clock_event_reasons(mask) == ("sw_power_cap", "hw_thermal_slowdown")
    assert decode_clock_event_reasons(C["nvmlClocksThrottleReasonHwPowerBrakeSlowdown"]) == (
        "hw_power_brake_slowdown",
    )
    assert decode_clock_event_reasons(0x200 | C["nvmlClocksEventReasonGpuIdle"]) == (
        "gpu_idle",
        "unknown_0x200",
    )
    assert decode_clock_event_reasons(C["nvmlClocksEventReasonNone"]) == ()
    every = [
        value
        for name, value in C.items()
        if name.startswith("nvmlClocksEventReason")
        and name
        not in (
            "nvmlClocksEventReasonAll",
            "nvmlClocksEventReasonNone",
            "nvmlClocksEventReasonUserDefinedClocks",
        )
    ]
    assert all(
        not name.startswith("unknown") for v in every for name in decode_clock_event_reasons(v)
    )


def test_throttling_sample_and_unsupported_fields_are_none_not_zero() -> None:
    gpu = FakeGpu(
        reasons=C["nvmlClocksEventReasonSwThermalSlowdown"], temperature_c=None, utilization=None
    )
    (sample,) = NvmlSource(nvml=FakeNvml([gpu])).sample().gpus
    assert sample.throttled is True
    assert sample.temperature_c is None and sample.gpu_utilization_percent is None
    assert {u.what for u in sample.unreadable} == {"temperature", "utilisation"}


def test_mig_enabled_and_old_pynvml_without_the_event_reasons_name() -> None:
    gpu = FakeGpu(
        mig=[C["NVML_DEVICE_MIG_ENABLE"], 0], reasons=C["nvmlClocksEventReasonSwPowerCap"]
    )
    nvml = FakeNvml([gpu], has_event_reasons=False)
    source = NvmlSource(nvml=nvml)
    assert source.describe().gpus[0].mig_mode == "enabled"
    assert source.sample().gpus[0].clock_event_reasons == ("sw_power_cap",)
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" in nvml.calls


def test_a_driver_without_the_new_function_falls_back_to_the_old_name() -> None:
    nvml = FakeNvml([])
    gpu = FakeGpu(
        reasons=C["nvmlClocksEventReasonHwSlowdown"],
        fail={"nvmlDeviceGetCurrentClocksEventReasons": nvml.NVMLError_FunctionNotFound()},
    )
    nvml.gpus = [gpu]
    assert NvmlSource(nvml=nvml).sample().gpus[0].clock_event_reasons == ("hw_slowdown",)


def test_energy_counter_meter_reads_millijoules() -> None:
    gpu = FakeGpu(energy_mj=5_000_000, energy_step_mj=12_345)
    meter = NvmlSource(nvml=FakeNvml([gpu])).energy_meter(0)
    with meter:
        pass
    reading = meter.reading
    assert reading is not None
    assert reading.method == "nvml-energy-counter" and reading.scope == "GPU 0"
    assert reading.joules == pytest.approx(12.345)  # one step between the start and stop reads
    assert reading.resolution_j >= 1e-3


def test_no_energy_counter_on_old_gpus_falls_back_to_integrated_power() -> None:
    gpu = FakeGpu(energy_mj=None, power_mw=75_500)  # pre-Volta: NVMLError_NotSupported
    source = NvmlSource(nvml=FakeNvml([gpu]), power_period_s=0.001)
    assert source.describe().gpus[0].energy_method == "nvml-power-integration"
    meter = source.energy_meter()
    meter.start()
    assert meter.sampling
    reading = meter.stop()
    assert not meter.sampling
    assert reading.method == "nvml-power-integration"
    assert reading.joules == pytest.approx(75.5 * reading.interval_s)
    assert reading.samples >= 2


def test_no_energy_and_no_power_gives_an_unreadable_meter_with_both_reasons() -> None:
    source = NvmlSource(nvml=FakeNvml([FakeGpu(energy_mj=None, power_mw=None)]))
    with source.energy_meter() as meter:
        pass
    assert meter.reading is not None and meter.reading.joules is None
    assert "energy counter: not supported" in meter.reading.reason
    assert "power draw: not supported" in meter.reading.reason


def test_an_unknown_gpu_index_is_refused() -> None:
    with pytest.raises(ValueError, match="no GPU 3: NVML shows GPUs 0..0"):
        NvmlSource(nvml=FakeNvml([FakeGpu()])).energy_meter(3)


def test_process_gpu_memory_sums_gpus_and_says_why_when_missing() -> None:
    nvml = FakeNvml(
        [
            FakeGpu(processes=[(4242, 300 * 2**20), (7, 10)]),
            FakeGpu(processes=[(4242, 100 * 2**20)]),
        ]
    )
    source = NvmlSource(nvml=nvml)
    assert source.process_gpu_memory(4242) == (400 * 2**20, "")
    used, reason = source.process_gpu_memory(9999)
    assert used is None and "not among NVML's compute processes" in reason
    nvml.gpus[1].processes = [(4242, None)]  # WDDM: usage not available
    used, reason = source.process_gpu_memory(4242)
    assert used is None and "cannot tell" in reason


def test_peak_gpu_memory_keeps_the_largest_poll_and_stops_its_thread() -> None:
    gpu = FakeGpu(processes=[(31, 100)])
    source = NvmlSource(nvml=FakeNvml([gpu]))
    seen = threading.Event()
    usage = iter([100, 900, 500] + [200] * 1000)

    class Growing:
        def process_gpu_memory(self, pid: int) -> tuple[int | None, str]:
            gpu.processes = [(31, next(usage))]
            got = source.process_gpu_memory(pid)
            if got[0] == 200:
                seen.set()
            return got

    peak = GpuMemoryPeak(Growing(), 31, period_s=0.001)
    peak.start()
    assert seen.wait(WAIT_S)
    result = peak.stop()
    assert not peak.polling
    assert result.peak_bytes == 900 and result.polls >= 4 and result.reason == ""


def test_peak_of_a_process_nvml_never_lists_is_none_with_the_reason() -> None:
    peak = GpuMemoryPeak(NvmlSource(nvml=FakeNvml([FakeGpu()])), 123, period_s=0.001)
    peak.start()
    result = peak.stop()
    assert result.peak_bytes is None and "pid 123" in result.reason


def test_close_shuts_nvml_down_and_the_source_reports_it() -> None:
    nvml = FakeNvml([FakeGpu()])
    with NvmlSource(nvml=nvml) as source:
        assert source.status().available
    assert nvml.inits == 1 and nvml.shutdowns == 1
    assert not source.status().available and "closed" in source.status().reason


def test_the_source_touches_only_the_declared_pynvml_names() -> None:
    fake, _ = a10_from_nvidia_smi()
    nvml = FakeNvml([fake, FakeGpu(energy_mj=None, processes=[(1, 5)])])
    source = NvmlSource(nvml=nvml, power_period_s=0.001)
    source.describe()
    source.sample()
    for index in (0, 1):
        with source.energy_meter(index):
            pass
    source.process_gpu_memory(1)
    source.close()
    assert set(nvml.calls) <= set(PYNVML_NAMES)
    assert "nvmlDeviceGetTotalEnergyConsumption" in nvml.calls


def test_gpu_warnings_name_the_throttle_reason_heat_and_clock_spread() -> None:
    nvml = FakeNvml([FakeGpu(slowdown_c=90)])
    source = NvmlSource(nvml=nvml)
    description = source.describe()
    before = source.sample()
    nvml.gpus[0].reasons = C["nvmlClocksEventReasonSwPowerCap"]
    nvml.gpus[0].temperature_c = 87
    nvml.gpus[0].utilization = (99, 40)
    during = source.sample()
    nvml.gpus[0].sm_mhz = 1100
    during2 = source.sample()
    warnings = gpu_warnings([before, during, during2], description)
    assert warnings == [
        "throttling: GPU 0 reported sw_power_cap during the run",
        "hot: GPU 0 reached 87 °C (slowdown at 90 °C)",
        "throttling: GPU 0 SM clock ranged 1100-1410 MHz while busy",
    ]
    nvml.gpus[0].reasons, nvml.gpus[0].temperature_c, nvml.gpus[0].sm_mhz = 0, 40, 1410
    assert gpu_warnings([source.sample(), source.sample()], description) == []
