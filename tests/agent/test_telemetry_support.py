"""Stand-ins for hardware that cannot exist here, and the checks that they are shaped right.

* :class:`FakeNvml` is a ``pynvml``-shaped object for :class:`NvmlSource`'s
  ``nvml`` parameter. Its constants and error classes come from
  ``data/telemetry/pynvml_api.json``, recorded from the real nvidia-ml-py
  (see the README there), and its functions have the real parameter names;
  the tests at the bottom check both against the recording.
* :func:`a10_from_nvidia_smi` builds a fake GPU from a recorded
  ``nvidia-smi -q`` of an NVIDIA A10, so the NVML tests compare against what
  a real GPU printed rather than against numbers invented for the test.
* :func:`run_unprivileged` runs a function in a forked child that dropped
  root, so "permission denied" is real even when the tests run as root.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest

from fleetnas.agent.telemetry._nvml import PYNVML_NAMES

DATA = Path(__file__).parent / "data" / "telemetry"
API = json.loads((DATA / "pynvml_api.json").read_text())
T = TypeVar("T")


def _error_classes() -> tuple[type[Exception], dict[str, type[Exception]]]:
    """NVMLError and one subclass per NVML_ERROR_* code, as pynvml builds them."""

    class NVMLError(Exception):
        _by_value: dict[int, type[NVMLError]] = {}

        def __new__(cls, value: int = 0) -> NVMLError:
            if cls is NVMLError:
                cls = NVMLError._by_value.get(value, cls)
            obj = Exception.__new__(cls)
            obj.value = value
            return obj

        def __init__(self, value: int = 0) -> None:
            super().__init__()

        def __str__(self) -> str:
            return API["error_strings"].get(str(self.value), f"NVML Error with code {self.value}")

    classes: dict[str, type[Exception]] = {}
    for name, value in API["errors"].items():

        def new(cls: type, *args: Any, _value: int = value) -> Exception:
            obj = Exception.__new__(cls)
            obj.value = _value
            return obj

        sub = type(name, (NVMLError,), {"__new__": new, "__init__": lambda self, *a: None})
        NVMLError._by_value[value] = sub
        classes[name] = sub
    return NVMLError, classes


@dataclass
class FakeGpu:
    """One GPU's state; ``None`` for a query the GPU does not support (NVMLError_NotSupported)."""

    name: str = "NVIDIA Fake"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    memory_total: int = 16 * 2**30
    memory_used: int = 2**20
    capability: tuple[int, int] = (8, 0)
    mig: list[int] | None = None
    power_limit_mw: int | None = 300_000
    slowdown_c: int | None = 90
    sm_mhz: int | None = 1410
    mem_mhz: int | None = 1215
    temperature_c: int | None = 40
    power_mw: int | None = 60_000
    reasons: int | None = 0
    utilization: tuple[int, int] | None = (0, 0)
    energy_mj: int | None = 1_000_000
    energy_step_mj: int = 0  # added to the counter after each read
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    fail: dict[str, Exception] = field(default_factory=dict)  # function name -> error to raise


class FakeNvml:
    """A pynvml-shaped stand-in over a list of :class:`FakeGpu` (handles are the GPUs)."""

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        driver: str = "550.127.05",
        cuda: int = 12040,
        init_error: str | None = None,
        has_event_reasons: bool = True,
    ) -> None:
        self.NVMLError, errors = _error_classes()
        for name, cls in errors.items():
            setattr(self, name, cls)
        for name, value in API["constants"].items():
            setattr(self, name, value)
        self.gpus = gpus
        self.driver = driver
        self.cuda = cuda
        self.init_error = init_error
        self.inits = 0
        self.shutdowns = 0
        self.calls: list[str] = []
        # pynvml older than the R535 rename has only nvmlDeviceGetCurrentClocksThrottleReasons
        self.has_event_reasons = has_event_reasons

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("nvml") or name.startswith("NVML"):
            object.__getattribute__(self, "calls").append(name)
        if name == "nvmlDeviceGetCurrentClocksEventReasons" and not object.__getattribute__(
            self, "has_event_reasons"
        ):
            raise AttributeError(name)
        return object.__getattribute__(self, name)

    def _check(self, gpu: FakeGpu, fn: str, value: T | None) -> T:
        if fn in gpu.fail:
            raise gpu.fail[fn]
        if value is None:
            raise self.NVMLError_NotSupported()
        return value

    def nvmlInit(self) -> None:
        if self.init_error:
            raise getattr(self, self.init_error)()
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        return self.gpus[index]

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.cuda

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        return self._check(handle, "nvmlDeviceGetName", handle.name)

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str:
        return self._check(handle, "nvmlDeviceGetUUID", handle.uuid)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu, version: Any = None) -> SimpleNamespace:
        total, used = handle.memory_total, handle.memory_used
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeGpu) -> tuple[int, int]:
        return self._check(handle, "nvmlDeviceGetCudaComputeCapability", handle.capability)

    def nvmlDeviceGetMigMode(self, device: FakeGpu) -> list[int]:
        return self._check(device, "nvmlDeviceGetMigMode", device.mig)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeGpu) -> int:
        return self._check(handle, "nvmlDeviceGetEnforcedPowerLimit", handle.power_limit_mw)

    def nvmlDeviceGetTemperatureThreshold(self, handle: FakeGpu, threshold: int) -> int:
        assert threshold == self.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
        return self._check(handle, "nvmlDeviceGetTemperatureThreshold", handle.slowdown_c)

    def nvmlDeviceGetClockInfo(self, handle: FakeGpu, type: int) -> int:
        value = handle.sm_mhz if type == self.NVML_CLOCK_SM else handle.mem_mhz
        return self._check(handle, "nvmlDeviceGetClockInfo", value)

    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._check(handle, "nvmlDeviceGetTemperature", handle.temperature_c)

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        return self._check(handle, "nvmlDeviceGetPowerUsage", handle.power_mw)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeGpu) -> int:
        return self._check(handle, "nvmlDeviceGetCurrentClocksEventReasons", handle.reasons)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeGpu) -> int:
        return self._check(handle, "nvmlDeviceGetCurrentClocksThrottleReasons", handle.reasons)

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> SimpleNamespace:
        rates = self._check(handle, "nvmlDeviceGetUtilizationRates", handle.utilization)
        return SimpleNamespace(gpu=rates[0], memory=rates[1])

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        value = self._check(handle, "nvmlDeviceGetTotalEnergyConsumption", handle.energy_mj)
        handle.energy_mj = value + handle.energy_step_mj
        return value

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu) -> list[SimpleNamespace]:
        if "nvmlDeviceGetComputeRunningProcesses" in handle.fail:
            raise handle.fail["nvmlDeviceGetComputeRunningProcesses"]
        return [
            SimpleNamespace(
                pid=p, usedGpuMemory=m, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF
            )
            for p, m in handle.processes
        ]


# -- a recorded GPU ----------------------------------------------------------------------------


def parse_nvidia_smi_q(text: str) -> dict[str, str]:
    """``nvidia-smi -q`` as "Section/Key" -> value (first GPU; nesting by indentation)."""
    values: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("="):
            continue
        indent = len(line) - len(line.lstrip())
        pair = re.match(r"(.*?)\s+: ?(.*)$", line.strip())  # "Key   : value"; "GPU 0:06:00.0"
        key, value = (pair.group(1), pair.group(2).strip()) if pair else (line.strip(), "")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "/".join([name for _, name in stack] + [key])
        if value:
            values[path] = value
        else:
            stack.append((indent, key))
    return values


# nvidia-smi's "Clocks Event Reasons" lines -> pynvml's constant names.
SMI_REASONS = {
    "Idle": "nvmlClocksEventReasonGpuIdle",
    "Applications Clocks Setting": "nvmlClocksEventReasonApplicationsClocksSetting",
    "SW Power Cap": "nvmlClocksEventReasonSwPowerCap",
    "HW Slowdown": "nvmlClocksEventReasonHwSlowdown",
    "HW Thermal Slowdown": "nvmlClocksEventReasonHwThermalSlowdown",
    "HW Power Brake Slowdown": "nvmlClocksEventReasonHwPowerBrakeSlowdown",
    "Sync Boost": "nvmlClocksEventReasonSyncBoost",
    "SW Thermal Slowdown": "nvmlClocksEventReasonSwThermalSlowdown",
    "Display Clock Setting": "nvmlClocksEventReasonDisplayClockSetting",
}


def _number(text: str) -> float:
    return float(re.match(r"-?[\d.]+", text).group(0))


def a10_from_nvidia_smi() -> tuple[FakeGpu, dict[str, str]]:
    """A FakeGpu holding what the recorded A10 printed, and the parsed recording."""
    smi = parse_nvidia_smi_q((DATA / "nvidia_smi_q_a10.txt").read_text())
    gpu = "GPU 00000000:06:00.0"
    mask = 0
    for label, constant in SMI_REASONS.items():
        if smi[f"{gpu}/Clocks Event Reasons/{label}"] == "Active":
            mask |= API["constants"][constant]
    mib = 2**20
    fake = FakeGpu(
        name=smi[f"{gpu}/Product Name"],
        uuid=smi[f"{gpu}/GPU UUID"],
        memory_total=int(_number(smi[f"{gpu}/FB Memory Usage/Total"])) * mib,
        memory_used=int(_number(smi[f"{gpu}/FB Memory Usage/Used"])) * mib,
        capability=(8, 6),  # not printed by nvidia-smi -q; the A10 (GA102) is sm_86
        mig=None,  # "MIG Mode: N/A": NVML answers NotSupported
        power_limit_mw=round(_number(smi[f"{gpu}/GPU Power Readings/Current Power Limit"]) * 1000),
        slowdown_c=int(_number(smi[f"{gpu}/Temperature/GPU Slowdown Temp"])),
        sm_mhz=int(_number(smi[f"{gpu}/Clocks/SM"])),
        mem_mhz=int(_number(smi[f"{gpu}/Clocks/Memory"])),
        temperature_c=int(_number(smi[f"{gpu}/Temperature/GPU Current Temp"])),
        power_mw=round(_number(smi[f"{gpu}/GPU Power Readings/Power Draw"]) * 1000),
        reasons=mask,
        utilization=(
            int(_number(smi[f"{gpu}/Utilization/Gpu"])),
            int(_number(smi[f"{gpu}/Utilization/Memory"])),
        ),
    )
    return fake, smi


# -- real permission errors as root ------------------------------------------------------------

NOBODY = 65534


def run_unprivileged(fn: Callable[[], T]) -> T:
    """``fn()``'s result, computed in a forked child running as uid/gid 65534.

    As a non-root user the call runs in this process: the file modes the test
    set already deny it. The result must be picklable.
    """
    if os.geteuid() != 0:
        return fn()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root, compute, report, exit without running pytest's teardown
        os.close(read_fd)
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            payload = pickle.dumps(("ok", fn()))
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            payload = pickle.dumps(("error", repr(err)))
        with os.fdopen(write_fd, "wb") as out:
            out.write(payload)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    status, value = pickle.loads(data)
    if status != "ok":
        raise AssertionError(f"the unprivileged child failed: {value}")
    return value


@contextlib.contextmanager
def shared_tmp() -> Iterator[Path]:
    """A temporary folder every user can traverse (pytest's tmp_path sits in a 0700 folder)."""
    path = Path(tempfile.mkdtemp(prefix="fleetnas-telemetry-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def deny(path: Path) -> None:
    """Make ``path`` unreadable for anyone but root (and for its owner when not root)."""
    path.chmod(0)
    for folder in path.parents:
        if folder == Path(tempfile.gettempdir()):
            break
        folder.chmod(0o755)


# -- the stand-in matches the recording --------------------------------------------------------


def test_the_recording_covers_every_name_the_source_uses() -> None:
    recorded = set(API["functions"]) | set(API["constants"]) | set(API["errors"]) | {"NVMLError"}
    assert set(PYNVML_NAMES) <= recorded


@pytest.mark.parametrize("name", [n for n in PYNVML_NAMES if n in API["functions"]])
def test_fake_functions_have_pynvml_parameter_names(name: str) -> None:
    fake = getattr(FakeNvml([]), name)
    params = list(inspect.signature(fake).parameters)
    assert params == API["functions"][name], (
        f"{name}: fake {params} vs real {API['functions'][name]}"
    )


def test_fake_constants_and_errors_are_pynvml_values() -> None:
    fake = FakeNvml([])
    for name, value in API["constants"].items():
        assert getattr(fake, name) == value
    not_supported = fake.NVMLError(API["errors"]["NVMLError_NotSupported"])
    assert isinstance(not_supported, fake.NVMLError_NotSupported)
    assert str(not_supported) == "Not Supported"
    assert fake.NVMLError_NotSupported().value == API["errors"]["NVMLError_NotSupported"]
