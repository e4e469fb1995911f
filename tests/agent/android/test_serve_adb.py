"""``fleetnas-agent serve --adb SERIAL`` as a real process, and its one-line start errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fleetnas.agent.android import AndroidPhone
from fleetnas.agent.cli import main
from fleetnas.agent.client import AgentClient
from fleetnas.api.v1 import agent_pb2
from tests.agent.agent_process import wait_for
from tests.agent.android import tflite_models
from tests.agent.android.conftest import binary_specs
from tests.agent.android.fake_phone import FakePhone

AGENT = [sys.executable, "-m", "fleetnas.agent.cli", "--log-format", "json"]


def _serve_args(phone: FakePhone, tools: dict[str, Path], lock_dir: Path,
                cache: Path, port_file: Path) -> list[str]:
    args = ["serve", "--port", "0", "--port-file", str(port_file), "--cache-dir", str(cache),
            "--adb", phone.serial, "--adb-lock-dir", str(lock_dir),
            "--adb-cooldown-timeout", "5"]
    for spec in binary_specs(tools):
        args += ["--adb-benchmark-binary", spec]
    return args


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _start(args: list[str], port_file: Path,
           procs: list[subprocess.Popen[str]]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([*AGENT, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    procs.append(proc)

    def port() -> int:
        assert proc.poll() is None, f"the agent exited early: {proc.stderr.read() if proc.stderr else ''}"
        text = port_file.read_text().strip() if port_file.exists() else ""
        return int(text) if text.isdigit() else 0

    return proc, wait_for(port, 120, "the agent's port file")


def _adb_clients(adb_home: Path) -> list[psutil.Process]:
    """Host-side stand-in adb processes still running for this test's phones."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            env = proc.info["environ"] or {}
            cmd = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if env.get("FAKE_ADB_HOME") == str(adb_home) and "adb" in cmd and " shell " in f" {cmd} ":
            found.append(proc)
    return found


def test_serve_a_phone_one_agent_per_phone_then_sigterm(
    phone: FakePhone, tools: dict[str, Path], lock_dir: Path, tmp_path: Path,
    procs: list[subprocess.Popen[str]],
) -> None:
    args = _serve_args(phone, tools, lock_dir, tmp_path / "cache", tmp_path / "port")
    proc, port = _start(args, tmp_path / "port", procs)
    with AgentClient(f"127.0.0.1:{port}") as client:
        assert client.describe().hostname == phone.serial
        sha = client.ensure_model(tflite_models.fc_chain(width=64, depth=2))
        result = client.benchmark(sha, agent_pb2.BenchmarkSettings(
            warmup_runs=1, min_runs=4, max_duration_s=5.0, timeout_s=60.0))
        assert result.samples_source == agent_pb2.SAMPLES_SOURCE_TOOL_STATISTICS

    second = subprocess.run(
        [*AGENT, *_serve_args(phone, tools, lock_dir, tmp_path / "cache2", tmp_path / "port2")],
        capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fleetnas-agent: phone_busy: phone {phone.serial} is already "
                           f"driven by another fleetnas agent on this host (pid {proc.pid},")

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    with AndroidPhone.from_specs(phone.serial, [str(tools["benchmark_model"])],
                                 lock_dir=lock_dir) as again:  # the lock went with the agent
        assert again.fingerprint


def test_an_agent_killed_mid_run_leaves_nothing_once_the_next_one_starts(
    phone: FakePhone, tools: dict[str, Path], lock_dir: Path, tmp_path: Path,
    adb_home: Path, procs: list[subprocess.Popen[str]],
) -> None:
    args = _serve_args(phone, tools, lock_dir, tmp_path / "cache", tmp_path / "port")
    proc, port = _start(args, tmp_path / "port", procs)
    phone.set_faults(hang_after_runs=0)
    with AgentClient(f"127.0.0.1:{port}") as client:
        sha = client.ensure_model(tflite_models.fc_chain(width=64, depth=2))
        request = agent_pb2.BenchmarkRequest(model_sha256=sha, settings=agent_pb2.BenchmarkSettings(
            warmup_runs=1, min_runs=4, max_duration_s=5.0, timeout_s=120.0))
        pending = client._stub.Benchmark.future(request, timeout=120)
        wait_for(lambda: any(n == "benchmark_model" for _, n in phone.live_processes()), 60,
                 "the benchmark to run on the phone")
        proc.kill()  # SIGKILL: no drain, no cleanup of its own
        proc.wait()
        pending.cancel()
    # a killed agent cannot stop what runs on the phone
    assert any(n == "benchmark_model" for _, n in phone.live_processes())

    (tmp_path / "port").unlink()
    phone.set_faults()
    nxt, _ = _start(args, tmp_path / "port", procs)  # the next agent stops it at start
    assert [n for _, n in phone.live_processes() if n != "shell"] == []
    assert phone.wait_gone() == []
    gone = psutil.wait_procs(_adb_clients(adb_home), timeout=15)[1]
    assert gone == []  # the killed agent's adb shell ended with the run it waited for
    nxt.send_signal(signal.SIGTERM)
    assert nxt.wait(60) == 0


def _start_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, naming the fix
    return code, err[0]


def test_start_errors_are_one_line_naming_the_fix(
    phone: FakePhone, tools: dict[str, Path], lock_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["--log-level", "critical", "serve", "--port", "0", "--cache-dir", str(tmp_path),
            "--adb", phone.serial, "--adb-lock-dir", str(lock_dir)]
    bm = ["--adb-benchmark-binary", f"benchmark_model={tools['benchmark_model']}"]

    phone.set_state("absent")
    code, line = _start_error([*base, *bm], capsys)
    assert code == 1 and line.startswith(
        f"fleetnas-agent: device_not_found: phone {phone.serial} is not attached")
    assert "plug it in, enable USB debugging, or check the serial" in line
    phone.set_state("unauthorized")
    code, line = _start_error([*base, *bm], capsys)
    assert code == 1 and "device_unauthorized:" in line and "Allow USB debugging" in line
    phone.set_state("offline")
    code, line = _start_error([*base, *bm], capsys)
    assert code == 1 and "device_offline:" in line and "adb reconnect offline" in line
    phone.set_state("device")

    code, line = _start_error([*base, *bm, "--adb-path", str(tmp_path / "no-adb")], capsys)
    assert code == 1 and "adb_not_found:" in line and "platform-tools" in line
    code, line = _start_error(
        [*base, "--adb-benchmark-binary", f"benchmark_model={tmp_path / 'missing'}"], capsys)
    assert code == 1 and "binary_missing:" in line and "--adb-benchmark-binary" in line
    elf = tmp_path / "benchmark_model_x86"
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (62).to_bytes(2, "little") + bytes(40))
    code, line = _start_error([*base, "--adb-benchmark-binary", str(elf)], capsys)
    assert code == 1 and "binary_not_executable:" in line and "built for x86_64" in line
    code, line = _start_error([*base, "--adb-benchmark-binary", f"tflite={elf}"], capsys)
    assert code == 2 and "say which tool it is" in line
    code, line = _start_error([*base], capsys)
    assert code == 2 and "--adb needs at least one --adb-benchmark-binary" in line
    code, line = _start_error([*base[:7], *bm], capsys)
    assert code == 2 and "--adb-benchmark-binary needs --adb SERIAL" in line
    lone = AndroidPhone.from_specs(phone.serial, [str(tools["benchmark_model"])],
                                   lock_dir=lock_dir)
    try:
        code, line = _start_error([*base, *bm], capsys)
        assert code == 1 and line.startswith(
            f"fleetnas-agent: phone_busy: phone {phone.serial} is already driven")
        assert f"(pid {os.getpid()}," in line and "stop that agent or pick another phone" in line
    finally:
        lone.close()
    assert phone.live_processes() == []
