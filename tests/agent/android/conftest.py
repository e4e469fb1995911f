"""Fixtures: the stand-in ``adb`` on PATH, stand-in phones, stand-in benchmark binaries."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetnas.agent.android import (
    Adb,
    CoolDownPolicy,
    LiteRtBenchmarkModel,
    OrtPerfTest,
    PhoneBench,
    PhoneBenchSettings,
    describe_phone,
)
from fleetnas.agent.client import AgentClient
from fleetnas.agent.config import AgentConfig
from fleetnas.agent.server import AgentServer, create_server
from tests.agent.android import tflite_models
from tests.agent.android.fake_phone import FakePhone, install_adb, install_tool

SERIAL = "R5CT1234ABC"
DATA = Path(__file__).parent / "data"
# Cool-down windows short enough for a test, long enough to poll a few times.
QUICK_COOLDOWN = CoolDownPolicy(target_c=38.0, settle_window_s=0.6, settle_delta_c=0.2,
                                poll_s=0.15, timeout_s=8.0)


def fast_settings(**overrides: object) -> PhoneBenchSettings:
    """Few runs and no cool-down unless asked: enough to exercise the path on a busy host."""
    values: dict = dict(threads=1, warmup_runs=2, runs=8, min_duration_s=0.0,
                        max_duration_s=5.0, timeout_s=60.0, cooldown=None)
    values.update(overrides)
    return PhoneBenchSettings(**values)


@pytest.fixture
def adb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty stand-in adb world: ``adb`` first on PATH, no phone attached."""
    home = tmp_path / "adb-home"
    home.mkdir()
    bin_dir = tmp_path / "host-bin"
    install_adb(bin_dir)
    monkeypatch.setenv("FAKE_ADB_HOME", str(home))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return home


@pytest.fixture
def add_phone(adb_home: Path) -> Iterator[Callable[..., FakePhone]]:
    """Attach stand-in phones; at teardown kill whatever a test left running on them."""
    phones: list[FakePhone] = []

    def add(serial: str = SERIAL, **kwargs: object) -> FakePhone:
        phone = FakePhone(adb_home, serial, **kwargs)  # type: ignore[arg-type]
        phones.append(phone)
        return phone

    yield add
    for phone in phones:
        phone.kill_all()


@pytest.fixture
def phone(add_phone: Callable[..., FakePhone]) -> FakePhone:
    return add_phone()


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Path]:
    directory = tmp_path / "tools"
    return {name: install_tool(directory, name)
            for name in ("benchmark_model", "onnxruntime_perf_test")}


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "locks"


@pytest.fixture(scope="session")
def tflite_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data = tflite_models.fc_chain(width=256, depth=3)
    path = tmp_path_factory.mktemp("models") / "m.tflite"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def onnx_model() -> tuple[Path, str]:
    """``tests.onnx_models.mlp(width=32, depth=2)``, stored (importing onnx costs seconds)."""
    path = DATA / "mlp_w32_d2.onnx"
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def bench(phone: FakePhone, tools: dict[str, Path]) -> PhoneBench:
    adb = Adb(phone.serial)
    description = describe_phone(adb)
    return PhoneBench(
        adb, description,
        [LiteRtBenchmarkModel(tools["benchmark_model"]),
         OrtPerfTest(tools["onnxruntime_perf_test"])],
    )


def binary_specs(tools: dict[str, Path]) -> tuple[str, ...]:
    """``--adb-benchmark-binary`` values for the stand-in tools."""
    return tuple(f"{name}={path}" for name, path in tools.items())


StartPhoneAgent = Callable[..., tuple[AgentServer, AgentClient]]


@pytest.fixture
def start_phone_agent(
    phone: FakePhone, tools: dict[str, Path], lock_dir: Path, tmp_path: Path
) -> Iterator[StartPhoneAgent]:
    """Start real agents (gRPC on 127.0.0.1:0) that serve the stand-in phone; AgentConfig
    overrides as keywords. Every one is stopped at teardown."""
    started: list[tuple[AgentServer, AgentClient]] = []

    def start(**overrides: object) -> tuple[AgentServer, AgentClient]:
        values: dict = dict(host="127.0.0.1", port=0, cache_dir=tmp_path / f"agent{len(started)}",
                            adb_serial=phone.serial, adb_benchmark_binaries=binary_specs(tools),
                            adb_lock_dir=lock_dir)
        values.update(overrides)
        server = create_server(AgentConfig(**values))
        client = AgentClient(f"127.0.0.1:{server.port}")
        started.append((server, client))
        return server, client

    yield start
    for server, client in started:
        client.close()
        server.stop(drain_timeout_s=5)


def install_logging_adb(bin_dir: Path, home: Path) -> Path:
    """An ``adb`` (for ``--adb-path``) that logs every call to ``home/adb-calls.log`` and,
    while ``home/slow`` holds a number, sleeps that many seconds first; then it runs the
    stand-in adb."""
    real = install_adb(bin_dir / "real")
    wrapper = bin_dir / "adb-logged"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$(printf "%s" "$*" | tr "\\n" " ")" >> "{home}/adb-calls.log"\n'
        f'if [ -f "{home}/slow" ]; then sleep "$(cat "{home}/slow")"; fi\n'
        f'exec "{real}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper
