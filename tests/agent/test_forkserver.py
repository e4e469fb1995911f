"""The fork server: workers forked from a warm, thread-free zygote keep every limit of a
spawned worker, cost a fraction of one per job, and fall back to spawning when the zygote
cannot serve. Real zygotes, real forks, real kills."""

from __future__ import annotations

import logging
import os
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fleetnas.agent import errors
from fleetnas.agent._forkserver import ForkServerLauncher
from fleetnas.agent._runner_worker import SpawnLauncher
from fleetnas.agent.reference import CalibrationStore
from fleetnas.agent.runner import BenchmarkRunner
from tests import onnx_models
from tests.agent.agent_process import gone, wait_all_gone, wait_for
from tests.agent.test_runner import settings

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the fork server runs on Linux only")  # fmt: skip
TINY = settings(warmup_runs=0, min_runs=1, max_runs=1)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "mlp.model"
    path.write_bytes(onnx_models.mlp(width=16, depth=1))
    return path


def make_runner(tmp_path: Path, name: str, **kwargs: object) -> BenchmarkRunner:
    return BenchmarkRunner(scratch_dir=tmp_path / name, max_calibration_cv=10.0,
                           calibration_store=CalibrationStore(tmp_path / f"{name}.json"),
                           **kwargs)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[BenchmarkRunner]:
    r = make_runner(tmp_path, "scratch")
    yield r
    r.close()


def zygote_of(r: BenchmarkRunner) -> int:
    launcher = r.launcher
    assert isinstance(launcher, ForkServerLauncher)
    return wait_for(lambda: launcher.zygote_pid, 60, "the zygote")


def spare(r: BenchmarkRunner) -> int:
    """The runner's spare once it is set up and waits for its job (blocked on its pipe)."""

    def waiting() -> int | None:
        pid = r.spare_worker_pid
        try:
            return pid if pid and "pipe_read" in Path(f"/proc/{pid}/wchan").read_text() else None
        except OSError:
            return None

    return wait_for(waiting, 180, "a spare worker waiting for its job")


def test_the_zygote_holds_one_thread_and_its_workers_are_its_children(runner, model) -> None:
    assert runner.launcher.name == "forkserver"
    zygote = zygote_of(runner)
    worker = spare(runner)
    assert psutil.Process(worker).ppid() == zygote
    assert psutil.Process(zygote).ppid() == os.getpid()
    assert len(os.listdir(f"/proc/{zygote}/task")) == 1
    runner.run(model, "m" * 64, TINY)
    assert len(os.listdir(f"/proc/{zygote}/task")) == 1  # serving a job started none either


def test_a_forked_worker_keeps_every_limit_of_a_spawned_one(tmp_path, monkeypatch, model) -> None:
    monkeypatch.setenv("FLEETNAS_AGENT_TOKEN", "s3cret-token")
    r = make_runner(tmp_path, "limits")
    try:
        worker = spare(r)
        environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        assert not any(b"s3cret-token" in item for item in environ)  # allow-listed env only
        assert b"OPENBLAS_NUM_THREADS=1" in environ and b"ORT_DISABLE_TELEMETRY=1" in environ
        cwd = Path(os.readlink(f"/proc/{worker}/cwd"))
        assert cwd.parent == tmp_path / "limits" and cwd.name.startswith("worker-")
        assert list(cwd.iterdir()) == []  # an empty working directory
        assert os.getsid(worker) == worker  # its own session
        limits = Path(f"/proc/{worker}/limits").read_text()
        assert [line.split()[4] for line in limits.splitlines()
                if line.startswith("Max core file size")] == ["0"]  # fmt: skip
        fds = {os.readlink(f"/proc/{worker}/fd/{fd}") for fd in os.listdir(f"/proc/{worker}/fd")}
        assert not any(fd.startswith("socket:") for fd in fds)  # not the zygote's control socket
        assert sum(fd.startswith("pipe:") for fd in fds) == 3  # job, answer, lifeline
        # the limits of a job hold: a timeout kills it, a good job then runs
        with pytest.raises(errors.BenchmarkTimeout):
            slow = tmp_path / "slow.model"
            slow.write_bytes(onnx_models.slow_model(5.0))
            r.run(slow, "s" * 64, settings(timeout_s=1.0, warmup_runs=0, min_runs=1, max_runs=1))
        assert len(r.run(model, "m" * 64, TINY).samples_ms) == 1
    finally:
        r.close()


def test_workers_die_with_their_zygote_and_a_new_zygote_takes_over(runner, model) -> None:
    zygote = zygote_of(runner)
    worker = spare(runner)
    os.kill(zygote, signal.SIGKILL)
    assert wait_all_gone([zygote, worker], 5.0) == []  # PR_SET_PDEATHSIG towards the zygote
    result = runner.run(model, "m" * 64, TINY)  # the dead spare is replaced, by a new zygote
    assert len(result.samples_ms) == 1
    assert zygote_of(runner) != zygote


def test_after_repeated_zygote_deaths_workers_are_spawned(runner, model) -> None:
    for _ in range(3):
        zygote = zygote_of(runner)
        os.kill(zygote, signal.SIGKILL)
        wait_for(lambda z=zygote: gone(z), 10, "the zygote to die")
        runner.run(model, "m" * 64, TINY)
    assert runner.launcher.zygote_pid is None  # gave up
    worker = spare(runner)
    assert psutil.Process(worker).ppid() == os.getpid()  # spawned by the agent itself
    assert len(runner.run(model, "m" * 64, TINY).samples_ms) == 1


def test_a_zygote_that_finds_a_thread_refuses_and_workers_are_spawned(
    tmp_path, monkeypatch, model, caplog: pytest.LogCaptureFixture
) -> None:
    """A module imported at start-up that starts a thread (here a sitecustomize on the
    allow-listed PYTHONPATH): forking then is unsafe, the zygote refuses."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()\n")
    monkeypatch.setenv("PYTHONPATH", f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    caplog.set_level(logging.WARNING, logger="fleetnas.agent._forkserver")
    r = make_runner(tmp_path, "threads")
    try:
        result = r.run(model, "m" * 64, TINY)
        assert len(result.samples_ms) == 1
        assert r.launcher.zygote_pid is None
        assert any("2 threads" in record.getMessage() and "spawning" in record.getMessage()
                   for record in caplog.records), [r.getMessage() for r in caplog.records]
        assert psutil.Process(spare(r)).ppid() == os.getpid()
    finally:
        r.close()


def test_a_forked_job_costs_a_fraction_of_a_spawned_one(tmp_path, model) -> None:
    """Back-to-back tiny jobs: the fixed cost per job, fork server vs a fresh spawn."""
    costs = {}
    for name, launcher in (("forkserver", None), ("spawn", SpawnLauncher())):
        r = make_runner(tmp_path, name, launcher=launcher)
        try:
            r.run(model, "m" * 64, TINY)  # warm: the zygote's imports are paid once
            walls = []
            for _ in range(3):
                start = time.perf_counter()
                r.run(model, "m" * 64, TINY)
                walls.append(time.perf_counter() - start)
            costs[name] = statistics.median(walls)
        finally:
            r.close()
    # measured here at load ~10: ~0.1 s forked vs ~2 s spawned per job
    assert costs["forkserver"] < costs["spawn"] / 3, costs
