"""Faults on a stand-in phone: hang, crash, unplug, unauthorized, missing or broken binaries.

The stand-in benchmark binaries obey ``faults.txt``; ``..._after_runs=0`` strikes before
the runtime is loaded, which keeps these tests fast without changing what is tested (the
agent only sees a process on the phone that hangs, dies or vanishes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetnas.agent.android import (
    AndroidPhone,
    BenchmarkCrashed,
    BenchmarkHung,
    BinaryMissing,
    BinaryNotExecutable,
    DeviceLost,
    DeviceNotFound,
    DeviceUnauthorized,
    PhoneBench,
    PushFailed,
    ToolOutputUnreadable,
)
from fleetnas.agent.errors import BenchmarkTimeout, WorkerCrashed
from tests.agent.android.conftest import fast_settings
from tests.agent.android.fake_phone import FakePhone

TOOL = "/data/local/tmp/fleetnas/bin/benchmark_model"


def test_a_hung_benchmark_is_killed_on_the_host_and_on_the_phone(
    phone: FakePhone, bench: PhoneBench, tflite_model: tuple[Path, str]
) -> None:
    path, sha = tflite_model
    phone.set_faults(hang_after_runs=0)
    with pytest.raises(BenchmarkHung) as caught:
        bench.run(path, sha, "tflite", fast_settings(timeout_s=2.0))
    assert isinstance(caught.value, BenchmarkTimeout)  # the v1 TIMEOUT reason
    assert "ran past its 2 s timeout" in caught.value.message
    assert "killed on the host and on the phone (pid" in caught.value.message
    # the benchmark is gone at once; the shells that waited for it end on their own
    assert [name for _, name in phone.live_processes() if name != "shell"] == []
    assert phone.wait_gone() == []  # nothing left behind on the phone
    assert not phone.remote("/data/local/tmp/fleetnas/run/bench.pid").exists()


def test_a_crash_names_the_signal_and_ends_with_the_last_lines(
    phone: FakePhone, bench: PhoneBench, tflite_model: tuple[Path, str]
) -> None:
    path, sha = tflite_model
    phone.set_faults(crash_after_runs=0)
    with pytest.raises(BenchmarkCrashed) as caught:
        bench.run(path, sha, "tflite", fast_settings())
    error = caught.value
    assert isinstance(error, WorkerCrashed) and error.transient
    assert "killed by SIGSEGV on the phone (exit 139)" in error.message
    last_lines = error.message.split("Last lines:\n", 1)[1]
    assert "crashing now, as faults.txt says" in last_lines
    assert phone.live_processes() == []


def test_unplugged_mid_benchmark_then_replugged(
    phone: FakePhone, bench: PhoneBench, tflite_model: tuple[Path, str]
) -> None:
    path, sha = tflite_model
    phone.set_faults(unplug_after_runs=0)  # the phone leaves adb while the tool runs
    with pytest.raises(DeviceLost) as caught:
        bench.run(path, sha, "tflite", fast_settings())
    assert caught.value.transient
    assert f"phone {phone.serial} went away" in caught.value.message
    assert "the next benchmark stops it first" in caught.value.message
    assert phone.state == "absent"
    left = phone.live_processes()
    assert any(name == "benchmark_model" for _, name in left)  # still running "on the phone"

    phone.set_state("device")  # plugged back in
    phone.set_faults()
    bench.prepare(bench.tool("tflite"), path, sha)  # the first step of the next run
    assert [name for _, name in phone.live_processes() if name != "shell"] == []
    assert phone.wait_gone() == []


def test_unauthorized_phone(
    phone: FakePhone, bench: PhoneBench, tflite_model: tuple[Path, str], tools: dict[str, Path],
    lock_dir: Path,
) -> None:
    path, sha = tflite_model
    phone.set_state("unauthorized")
    with pytest.raises(DeviceUnauthorized, match="Allow USB debugging"):
        bench.run(path, sha, "tflite", fast_settings())
    with pytest.raises(DeviceUnauthorized):
        AndroidPhone.from_specs(phone.serial, [str(tools["benchmark_model"])], lock_dir=lock_dir)
    phone.set_state("absent")
    with pytest.raises(DeviceNotFound):
        AndroidPhone.from_specs(phone.serial, [str(tools["benchmark_model"])], lock_dir=lock_dir)
    phone.set_state("device")  # the failed starts released their lock
    AndroidPhone.from_specs(phone.serial, [str(tools["benchmark_model"])],
                            lock_dir=lock_dir).close()


EXIT_CASES = [
    (127, 'CANNOT LINK EXECUTABLE "benchmark_model": library "libtensorflowlite_gpu.so" '
          "not found", BinaryMissing, "could not find the binary or a library it needs"),
    (126, "/system/bin/sh: benchmark_model: can't execute: Permission denied",
     BinaryNotExecutable, "cannot execute the binary"),
    (0, "STARTING!\nGraph: [m.tflite]", ToolOutputUnreadable, "no statistics"),
    (1, "ERROR: Failed to allocate tensors!", BenchmarkCrashed, "failed on the phone (exit 1)"),
]


def test_tool_exit_statuses_become_named_errors(
    phone: FakePhone, bench: PhoneBench, tflite_model: tuple[Path, str]
) -> None:
    path, sha = tflite_model
    for status, message, error, expected in EXIT_CASES:  # one phone: pushed once, faster
        phone.set_faults(exit_status=status, exit_message=message)
        with pytest.raises(error) as caught:
            bench.run(path, sha, "tflite", fast_settings(cluster="little", threads=2))
        assert expected in str(caught.value), status
        assert message.splitlines()[-1] in str(caught.value), status  # the tool's last line
    # every run was pinned to the little cores with 2 threads; the files were pushed once
    assert len(phone.taskset_log()) == len(EXIT_CASES)
    assert all(line.startswith("f ") and "--num_threads=2" in line
               for line in phone.taskset_log())
    assert len(phone.pushes()) == 2


def test_binary_removed_from_the_phone_is_pushed_again(
    phone: FakePhone, bench: PhoneBench, tflite_model: tuple[Path, str]
) -> None:
    path, sha = tflite_model
    tool = bench.tool("tflite")
    bench.prepare(tool, path, sha)
    phone.remote(TOOL).unlink()
    bench.prepare(tool, path, sha)
    assert phone.pushes().count(TOOL) == 2
    assert phone.remote(TOOL).stat().st_mode & 0o111  # and made executable again


def test_push_failure_and_missing_taskset(
    phone: FakePhone, bench: PhoneBench, tflite_model: tuple[Path, str]
) -> None:
    path, sha = tflite_model
    phone.set_faults(push_error="No space left on device")
    with pytest.raises(PushFailed, match="No space left on device"):
        bench.run(path, sha, "tflite", fast_settings())
    phone.set_faults()
    (phone.dir / "bin" / "taskset").unlink()
    with pytest.raises(BinaryMissing, match="taskset is not on the phone"):
        bench.run(path, sha, "tflite", fast_settings())


def test_binary_that_cannot_be_made_executable(
    phone: FakePhone, bench: PhoneBench, tflite_model: tuple[Path, str]
) -> None:
    path, sha = tflite_model
    (phone.dir / "toybox" / "chmod").unlink()  # a phone whose shell cannot chmod
    with pytest.raises(BinaryNotExecutable, match="cannot be made executable on the phone"):
        bench.prepare(bench.tool("tflite"), path, sha)
