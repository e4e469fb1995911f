"""The Android device shell on a stand-in phone: Describe, a Status that never waits on the
phone, no phone polling during a benchmark, and cancellation that stops the run on the phone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetnas.agent.android import AndroidPhone, BenchmarkCancelled, phone_fingerprint
from fleetnas.agent.errors import WorkerCrashed
from fleetnas.agent.settings import resolve_for_description
from fleetnas.agent.shells import AndroidShell
from fleetnas.api.v1 import agent_pb2
from tests.agent.agent_process import wait_for
from tests.agent.android.conftest import install_logging_adb
from tests.agent.android.fake_phone import FakePhone

STATE_SAMPLE = "dumpsys thermalservice"  # in every state sample's script, in nothing else


@pytest.fixture
def logged_adb(adb_home: Path, tmp_path: Path) -> Path:
    return install_logging_adb(tmp_path / "logged-bin", adb_home)


@pytest.fixture
def shell(phone: FakePhone, tools: dict[str, Path], lock_dir: Path,
          logged_adb: Path) -> Iterator[AndroidShell]:
    android = AndroidPhone.from_specs(phone.serial, [str(tools["benchmark_model"])],
                                      lock_dir=lock_dir, adb_executable=str(logged_adb))
    shell = AndroidShell(android, status_max_age_s=0.001)
    yield shell
    shell.close()


def _state_samples(home: Path) -> int:
    log = home / "adb-calls.log"
    return sum(STATE_SAMPLE in line for line in log.read_text().splitlines()) if log.exists() else 0


def _resolved(shell: AndroidShell, **values: object) -> agent_pb2.BenchmarkSettings:
    description = shell.describe()
    description.limits.max_timeout_s, description.limits.memory_cap_bytes = 60.0, 1 << 30
    request = agent_pb2.BenchmarkSettings(warmup_runs=1, min_runs=3, max_duration_s=5.0,
                                          **values)  # type: ignore[arg-type]
    return resolve_for_description(request, description,
                                   model_format=agent_pb2.MODEL_FORMAT_TFLITE)


def test_describe_is_the_phones_with_the_runtimes_its_binaries_run(
    shell: AndroidShell, phone: FakePhone, tools: dict[str, Path], lock_dir: Path
) -> None:
    described = shell.describe()
    assert described.hostname == phone.serial and described.os.system == "Android"
    assert described.host_fingerprint == phone_fingerprint(phone.serial, phone.serial)
    assert described.agent_version
    assert described.cpu.logical_cores == 8 and described.cpu.usable_cores == 3  # big: cpu4-6
    runtimes = {r.name: r for r in described.runtimes}
    assert runtimes["litert"].available and list(runtimes["litert"].accelerators) == ["XNNPACK"]
    assert runtimes["litert"].version.startswith("benchmark_model sha256:")
    assert list(runtimes["litert"].formats) == [agent_pb2.MODEL_FORMAT_TFLITE]
    onnx = runtimes["onnxruntime"]
    assert not onnx.available and "--adb-benchmark-binary onnxruntime_perf_test=" in onnx.reason
    assert not described.runtime.available_providers  # v1 clients see no onnxruntime
    shell.close()

    overridden = AndroidShell(
        AndroidPhone.from_specs(phone.serial, [str(tools["onnxruntime_perf_test"])],
                                lock_dir=lock_dir, cluster="all"),
        fingerprint_override="lab-bench-1",
    )
    try:
        described = overridden.describe()
        assert described.host_fingerprint == "lab-bench-1"
        assert described.cpu.usable_cores == 8
        assert list(described.runtime.available_providers) == ["CPUExecutionProvider"]
        assert described.runtime.onnxruntime_version.startswith("onnxruntime_perf_test sha256:")
    finally:
        overridden.close()


def test_status_never_waits_on_a_slow_phone(shell: AndroidShell, adb_home: Path) -> None:
    first = shell.status_state()
    assert first.temperature_available and first.timestamp > 0
    (adb_home / "slow").write_text("3")  # every adb call now takes 3 s
    started = time.monotonic()
    states = [shell.status_state() for _ in range(20)]  # the first one starts a refresh
    assert time.monotonic() - started < 1.0
    assert all(s.timestamp == first.timestamp for s in states)  # the kept sample meanwhile
    (adb_home / "slow").unlink()
    fresh = wait_for(lambda: shell.status_state().timestamp > first.timestamp, 30,
                     "the background refresh")
    assert fresh


def test_no_state_polls_on_the_phone_while_a_benchmark_runs(
    shell: AndroidShell, phone: FakePhone, adb_home: Path, tflite_model: tuple[Path, str]
) -> None:
    path, sha = tflite_model
    phone.set_faults(hang_after_runs=0)
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            shell.benchmark(path, sha, _resolved(shell))
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    wait_for(lambda: any(n == "benchmark_model" for _, n in phone.live_processes()), 60,
             "the benchmark to run on the phone")
    polls_before = _state_samples(adb_home)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # Status callers, as often as they like
        shell.status_state()
    assert _state_samples(adb_home) == polls_before

    assert shell.cancel_current()
    runner.join(60)
    assert not runner.is_alive()
    error = outcome["error"]
    assert isinstance(error, BenchmarkCancelled) and isinstance(error, WorkerCrashed)
    assert "cancelled while benchmark_model ran; it was killed on the phone" in error.message
    assert phone.wait_gone() == []  # nothing left running on the phone
    assert not shell.cancel_current()  # nothing runs any more

    phone.set_faults()
    result = shell.benchmark(path, sha, _resolved(shell))  # the shell works on
    assert result.samples_source == agent_pb2.SAMPLES_SOURCE_TOOL_STATISTICS
    assert result.stats.median_ms == result.stats.mean_ms > 0 and not result.samples_ms
    assert shell.status_state().timestamp == result.state_after.timestamp
