"""The DeviceShell contract, run against every shell: this host's and a (stand-in) phone's."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetnas.agent.android import AndroidPhone
from fleetnas.agent.config import AgentConfig
from fleetnas.agent.errors import AgentError
from fleetnas.agent.settings import resolve_for_description
from fleetnas.agent.shells import AndroidShell, DeviceShell, LocalShell
from fleetnas.api.v1 import agent_pb2
from tests.agent.android.fake_phone import FakePhone


@dataclass
class Subject:
    shell: DeviceShell
    model: Path
    sha: str
    model_format: int


def _model(tmp_path: Path, source: Path) -> tuple[Path, str]:
    path = tmp_path / "model.bin"
    path.write_bytes(source.read_bytes())
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=["local", "android"])
def subject(request: pytest.FixtureRequest, tmp_path: Path,
            onnx_model: tuple[Path, str]) -> Iterator[Subject]:
    model, sha = _model(tmp_path, onnx_model[0])
    if request.param == "local":
        shell: DeviceShell = LocalShell.open(AgentConfig(cache_dir=tmp_path / "cache"))
    else:
        phone: FakePhone = request.getfixturevalue("phone")
        tools = request.getfixturevalue("tools")
        shell = AndroidShell(AndroidPhone.from_specs(
            phone.serial, [str(tools["onnxruntime_perf_test"])],
            lock_dir=request.getfixturevalue("lock_dir")))
    yield Subject(shell, model, sha, agent_pb2.MODEL_FORMAT_ONNX)
    shell.close()


def _settings(subject: Subject) -> agent_pb2.BenchmarkSettings:
    description = subject.shell.describe()
    description.limits.max_timeout_s, description.limits.memory_cap_bytes = 60.0, 1 << 30
    return resolve_for_description(
        agent_pb2.BenchmarkSettings(warmup_runs=1, min_runs=4, max_runs=4, max_duration_s=5.0),
        description, model_format=subject.model_format)


class TestDeviceShell:
    def test_describe_names_the_device_and_what_it_runs(self, subject: Subject) -> None:
        described = subject.shell.describe()
        assert described.agent_version and described.host_fingerprint and described.hostname
        assert described.cpu.logical_cores >= described.cpu.usable_cores >= 1
        runnable = [r for r in described.runtimes if r.available]
        assert runnable and all(r.accelerators and r.formats for r in runnable)
        assert not described.HasField("limits")  # the server's to add
        described.hostname = "changed"
        assert subject.shell.describe().hostname != "changed"  # a copy each time

    def test_status_state_is_a_snapshot_without_waiting(self, subject: Subject) -> None:
        first = subject.shell.status_state()
        started = time.monotonic()
        for _ in range(10):
            state = subject.shell.status_state()
        assert time.monotonic() - started < 2.0
        assert state.timestamp >= first.timestamp > 0

    def test_benchmark_returns_a_complete_result(self, subject: Subject) -> None:
        settings = _settings(subject)
        result = subject.shell.benchmark(subject.model, subject.sha, settings)
        assert result.model_sha256 == subject.sha
        assert result.samples_source == agent_pb2.SAMPLES_SOURCE_RAW and len(result.samples_ms) == 4
        assert result.stats.median_ms > 0 and result.provider == "CPUExecutionProvider"
        assert result.settings == settings
        assert result.state_before.timestamp <= result.state_after.timestamp
        assert result.runtime_version
        assert not subject.shell.cancel_current()  # nothing runs between benchmarks

    def test_a_failed_benchmark_is_a_named_error_and_the_shell_works_on(
        self, subject: Subject, tmp_path: Path
    ) -> None:
        broken = tmp_path / "broken.onnx"
        broken.write_bytes(b"\x08\x07" + bytes(40))  # ONNX by its first byte, nothing more
        with pytest.raises(AgentError):
            subject.shell.benchmark(broken, hashlib.sha256(broken.read_bytes()).hexdigest(),
                                    _settings(subject))
        result = subject.shell.benchmark(subject.model, subject.sha, _settings(subject))
        assert result.stats.median_ms > 0

    def test_close_is_idempotent(self, subject: Subject) -> None:
        subject.shell.close()
        subject.shell.close()
