"""Android phones over ADB: Describe, device state and benchmarks run on the phone.

The agent host (a laptop, a Pi, a CI box) drives one phone attached over
``adb``; models are pushed to it and timed there by the user's own
benchmark binaries: LiteRT ``benchmark_model`` for ``.tflite`` (tool
statistics, no per-run samples) and ``onnxruntime_perf_test`` for
``.onnx`` (raw per-run samples). :class:`AndroidPhone` is the one object
the agent's service needs (lock, describe, state, benchmark); the parts
are public for tests and tools. See docs/android.md.

Importing this package starts nothing and needs no phone.
"""

from __future__ import annotations

from fleetnas.agent.android._adb import Adb, AdbDevice, AdbTimeout, ShellResult, parse_devices
from fleetnas.agent.android._bench import DEFAULT_WORK_DIR, PhoneBench
from fleetnas.agent.android._cooldown import (
    CoolDownPolicy,
    CoolDownReading,
    CoolDownRecord,
    wait_for_cool_down,
)
from fleetnas.agent.android._device import (
    CLUSTER_ROLES,
    CoreCluster,
    PhoneDescription,
    cluster_masks,
    cpu_mask,
    describe_phone,
    parse_cpu_list,
    parse_getprop,
    phone_fingerprint,
    read_clusters,
)
from fleetnas.agent.android._errors import (
    ANDROID_ERRORS,
    AdbFailed,
    AdbNotFound,
    AndroidError,
    BenchmarkCancelled,
    BenchmarkCrashed,
    BenchmarkHung,
    BinaryMissing,
    BinaryNotExecutable,
    DeviceLost,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
    PhoneBusy,
    PushFailed,
    ToolOutputUnreadable,
)
from fleetnas.agent.android._lock import PhoneLock, default_lock_dir
from fleetnas.agent.android._parse import (
    BenchmarkModelReport,
    PerfTestReport,
    RunStats,
    parse_benchmark_model,
    parse_perf_test,
    parse_perf_test_csv,
    parse_run_stats,
)
from fleetnas.agent.android._phone import AndroidPhone
from fleetnas.agent.android._result import PhoneBenchResult, PhoneBenchSettings, SustainedResult
from fleetnas.agent.android._state import (
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
from fleetnas.agent.android._tools import (
    FORMAT_ONNX,
    FORMAT_TFLITE,
    SOURCE_RAW,
    SOURCE_TOOL_STATISTICS,
    BenchmarkTool,
    LiteRtBenchmarkModel,
    OrtPerfTest,
    Statistics,
    detect_format,
    tool_from_spec,
)

__all__ = [
    "ANDROID_ERRORS",
    "CLUSTER_ROLES",
    "DEFAULT_WORK_DIR",
    "FORMAT_ONNX",
    "FORMAT_TFLITE",
    "SOURCE_RAW",
    "SOURCE_TOOL_STATISTICS",
    "Adb",
    "AdbDevice",
    "AdbFailed",
    "AdbNotFound",
    "AdbTimeout",
    "AndroidError",
    "AndroidPhone",
    "Battery",
    "BenchmarkCancelled",
    "BenchmarkCrashed",
    "BenchmarkHung",
    "BenchmarkModelReport",
    "BenchmarkTool",
    "BinaryMissing",
    "BinaryNotExecutable",
    "CoolDownPolicy",
    "CoolDownReading",
    "CoolDownRecord",
    "CoreCluster",
    "DeviceLost",
    "DeviceNotFound",
    "DeviceOffline",
    "DeviceUnauthorized",
    "LiteRtBenchmarkModel",
    "OrtPerfTest",
    "PerfTestReport",
    "PhoneBench",
    "PhoneBenchResult",
    "PhoneBenchSettings",
    "PhoneBusy",
    "PhoneDescription",
    "PhoneLock",
    "PhoneState",
    "PhoneStateSampler",
    "PushFailed",
    "RunStats",
    "ShellResult",
    "Statistics",
    "SustainedResult",
    "ThermalService",
    "ThermalZone",
    "ToolOutputUnreadable",
    "cluster_masks",
    "cpu_mask",
    "default_lock_dir",
    "describe_phone",
    "detect_format",
    "parse_battery",
    "parse_benchmark_model",
    "parse_cpu_list",
    "parse_devices",
    "parse_getprop",
    "parse_perf_test",
    "parse_perf_test_csv",
    "parse_run_stats",
    "parse_thermal_zones",
    "parse_thermalservice",
    "phone_fingerprint",
    "phone_warnings",
    "read_clusters",
    "tool_from_spec",
    "wait_for_cool_down",
]
