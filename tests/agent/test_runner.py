"""BenchmarkRunner with real worker subprocesses and real onnxruntime.

One runner serves the whole module, so every failure test also proves that
the same runner still serves a good benchmark afterwards.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import onnxruntime
import psutil
import pytest

from fleetnas.agent import errors
from fleetnas.agent._runner_worker import worker_env
from fleetnas.agent._worker_protocol import MAX_JOB_BYTES
from fleetnas.agent.reference import (
    REFERENCE_NAME,
    Calibration,
    CalibrationKey,
    CalibrationStore,
    default_reference_path,
    sha256_file,
)
from fleetnas.agent.runner import BenchmarkRunner
from fleetnas.agent.settings import resolve_settings
from fleetnas.agent.stats import latency_stats
from fleetnas.api.v1 import agent_pb2
from tests import onnx_models

REPO = Path(__file__).resolve().parents[2]
MAX_TIMEOUT_S = 60.0
MEMORY_CAP = 1024**3


def settings(**fields: object) -> agent_pb2.BenchmarkSettings:
    """Resolved settings with few runs (fast), overridable per test."""
    values: dict[str, object] = dict(
        warmup_runs=2, min_runs=5, max_runs=40, min_duration_s=0.0, max_duration_s=0.5
    )
    values.update(fields)
    return resolve_settings(
        agent_pb2.BenchmarkSettings(**values),
        max_timeout_s=MAX_TIMEOUT_S,
        memory_cap_bytes=MEMORY_CAP,
        available_providers=onnxruntime.get_available_providers(),
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runner")


@pytest.fixture(scope="module")
def runner(workdir: Path) -> Iterator[BenchmarkRunner]:
    # Keep every calibration: the machine running the tests may be busy, and the
    # noisy-calibration gate has its own test.
    r = BenchmarkRunner(
        scratch_dir=workdir / "scratch",
        calibration_store=CalibrationStore(workdir / "cal.json"),
        max_calibration_cv=10.0,
    )
    yield r
    r.close()


@pytest.fixture(scope="module")
def model_file(workdir: Path) -> Callable[[bytes], Path]:
    def write(data: bytes) -> Path:
        path = workdir / f"model-{abs(hash(data))}.onnx"
        path.write_bytes(data)
        return path

    return write


@pytest.fixture(scope="module")
def good(model_file: Callable[[bytes], Path]) -> Path:
    return model_file(onnx_models.mlp(width=32, depth=2))


def assert_still_works(runner: BenchmarkRunner, good: Path) -> None:
    result = runner.run(good, "good", settings())
    assert len(result.samples_ms) >= 5
    assert runner.current_worker_pid is None


def run_and_grab_pid(
    runner: BenchmarkRunner,
    path: Path,
    s: agent_pb2.BenchmarkSettings,
    on_pid: Callable[[int], None] = lambda pid: None,
) -> tuple[list[int], Exception | None]:
    """Run in a thread; poll current_worker_pid and call ``on_pid`` once it appears."""
    outcome: list[Exception | None] = [None]

    def target() -> None:
        try:
            runner.run(path, "x", s)
        except (errors.AgentError, ValueError) as exc:  # the test inspects it
            outcome[0] = exc

    thread = threading.Thread(target=target)
    thread.start()
    pids: list[int] = []
    while thread.is_alive() and not pids:
        pid = runner.current_worker_pid
        if pid is not None:
            pids.append(pid)
            on_pid(pid)
        thread.join(timeout=0.005)
    thread.join(timeout=120)
    assert not thread.is_alive()
    return pids, outcome[0]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- good runs -----------------------------------------------------------------


def test_plain_run_fields(runner: BenchmarkRunner, good: Path) -> None:
    import time

    s = settings(seed=7)
    before = time.time()
    result = runner.run(good, "a" * 64, s)
    after = time.time()
    assert result.model_sha256 == "a" * 64
    assert result.settings == s
    assert 5 <= len(result.samples_ms) <= 40
    assert all(v > 0 for v in result.samples_ms)
    assert result.stats == latency_stats(result.samples_ms)
    assert result.provider == "CPUExecutionProvider"
    assert result.onnxruntime_version == onnxruntime.__version__
    assert result.session_create_ms > 0 and result.first_run_ms > 0
    assert result.peak_rss_bytes > 20 * 1024**2
    assert [(i.name, list(i.dims), i.element_type) for i in result.inputs] == [
        ("x", [1, 32], "float")
    ]
    assert before <= result.started_at <= after
    assert 0 < result.wall_s < after - before + 1
    assert not result.HasField("paired")
    assert result.model_format == agent_pb2.MODEL_FORMAT_ONNX
    assert result.runtime_version == onnxruntime.__version__
    assert result.timed_inferences == len(result.samples_ms)
    assert 0 < result.loop_start_ns < result.loop_end_ns
    # the CPU path: host tensors, no copies, no engine cache, no profile unless asked
    assert not result.HasField("copies") and not result.HasField("engine_cache_hit")
    assert not result.HasField("profile")
    # fields the service fills
    assert not result.HasField("state_before") and not result.HasField("state_after")
    assert result.agent_version == "" and result.host_fingerprint == ""
    assert runner.current_worker_pid is None


def test_max_runs_stops_the_loop(runner: BenchmarkRunner, good: Path) -> None:
    result = runner.run(good, "x", settings(min_runs=3, max_runs=3, max_duration_s=5.0))
    assert len(result.samples_ms) == 3


def test_min_runs_reached_before_stopping(runner: BenchmarkRunner, good: Path) -> None:
    result = runner.run(good, "x", settings(min_runs=25, max_runs=1000, max_duration_s=5.0))
    assert len(result.samples_ms) == 25


def test_paired_run_calibrates_once_and_reuses(runner: BenchmarkRunner, good: Path) -> None:
    store = CalibrationStore(runner._store.path)  # a second view of the same file
    s = settings(method=agent_pb2.METHOD_PAIRED)
    first = runner.run(good, "x", s)
    p = first.paired
    assert first.settings.method == agent_pb2.METHOD_PAIRED
    assert len(p.ratios) == len(first.samples_ms) == len(p.reference_samples_ms) >= 5
    for ratio, cand, ref in zip(p.ratios, first.samples_ms, p.reference_samples_ms, strict=True):
        assert ratio == pytest.approx(cand / ref)
    assert p.ratio_median == pytest.approx(statistics.median(p.ratios))
    assert p.latency_ms == pytest.approx(p.ratio_median * p.reference_calibrated_ms)
    assert p.reference_calibrated_ms > 0
    assert p.reference_name == REFERENCE_NAME
    assert p.reference_sha256 == sha256_file(default_reference_path())
    assert len(store) == 1

    key = CalibrationKey.of(
        p.reference_sha256,
        intra_op_threads=1,
        inter_op_threads=1,
        providers=["CPUExecutionProvider"],
        graph_optimization=agent_pb2.GRAPH_OPTIMIZATION_ALL,
        runtime_version=onnxruntime.__version__,
    )
    stored = store.get(key)
    assert stored is not None and stored.runs >= 200
    assert stored.latency_ms == p.reference_calibrated_ms
    assert stored.calibrated_at == p.reference_calibrated_at

    second = runner.run(good, "x", s)
    assert second.paired.reference_calibrated_ms == p.reference_calibrated_ms
    assert second.paired.reference_calibrated_at == p.reference_calibrated_at
    assert len(store) == 1


def test_paired_calibration_survives_a_new_runner(
    runner: BenchmarkRunner, good: Path, workdir: Path
) -> None:
    s = settings(method=agent_pb2.METHOD_PAIRED)
    first = runner.run(good, "x", s)
    other = BenchmarkRunner(
        scratch_dir=workdir / "scratch2",
        calibration_store=CalibrationStore(runner._store.path),
        prestart=False,
    )
    try:
        again = other.run(good, "x", s)
    finally:
        other.close()
    assert again.paired.reference_calibrated_at == first.paired.reference_calibrated_at


def test_noisy_calibration_is_used_once_not_kept(workdir: Path, good: Path) -> None:
    store = CalibrationStore(workdir / "strict.json")
    strict = BenchmarkRunner(
        scratch_dir=workdir / "scratch-strict",
        calibration_store=store,
        prestart=False,
        max_calibration_cv=0.0,  # any real calibration is "too noisy"
    )
    try:
        result = strict.run(good, "x", settings(method=agent_pb2.METHOD_PAIRED))
    finally:
        strict.close()
    assert result.paired.reference_calibrated_ms > 0
    assert result.paired.latency_ms == pytest.approx(
        result.paired.ratio_median * result.paired.reference_calibrated_ms
    )
    assert any("calibration was noisy" in w for w in result.warnings)
    assert len(store) == 0


def test_dynamic_dims_need_input_shapes(
    runner: BenchmarkRunner, good: Path, model_file: Callable[[bytes], Path]
) -> None:
    path = model_file(onnx_models.dynamic_batch_mlp(16))
    with pytest.raises(errors.InvalidSettings) as info:
        runner.run(path, "x", settings())
    assert "'x'" in info.value.message and "batch" in info.value.message
    assert "input_shapes" in info.value.message

    shaped = settings(input_shapes=[agent_pb2.InputShape(name="x", dims=[4, 16])])
    result = runner.run(path, "x", shaped)
    assert [list(i.dims) for i in result.inputs] == [[4, 16]]

    for bad in (
        agent_pb2.InputShape(name="x", dims=[4]),  # wrong rank
        agent_pb2.InputShape(name="x", dims=[4, 17]),  # contradicts the fixed dim
        agent_pb2.InputShape(name="nope", dims=[1, 16]),  # no such input
    ):
        with pytest.raises(errors.InvalidSettings) as info:
            runner.run(path, "x", settings(input_shapes=[bad]))
        assert bad.name in info.value.message


# -- failures, each followed by a good run --------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: b"",
        lambda: onnx_models.truncated(onnx_models.mlp(32, 2)),
        lambda: onnx_models.random_bytes(4096, seed=3),
    ],
    ids=["empty", "truncated", "random"],
)
def test_bad_bytes_are_model_invalid(
    runner: BenchmarkRunner, good: Path, model_file: Callable[[bytes], Path], make
) -> None:
    with pytest.raises(errors.ModelInvalid):
        runner.run(model_file(make()), "x", settings())
    assert_still_works(runner, good)


def test_unsupported_op(
    runner: BenchmarkRunner, good: Path, model_file: Callable[[bytes], Path]
) -> None:
    with pytest.raises(errors.UnsupportedOperator) as info:
        runner.run(model_file(onnx_models.with_unsupported_op()), "x", settings())
    assert "NoSuchOp" in info.value.message
    assert_still_works(runner, good)


def test_timeout_kills_the_worker(
    runner: BenchmarkRunner, good: Path, model_file: Callable[[bytes], Path]
) -> None:
    path = model_file(onnx_models.slow_model(5.0))
    s = settings(timeout_s=1.0, warmup_runs=0, min_runs=1, max_runs=1)
    pids, exc = run_and_grab_pid(runner, path, s)
    assert isinstance(exc, errors.BenchmarkTimeout), exc
    assert "1 s" in exc.message and "timeout_s" in exc.message
    assert len(pids) == 1 and gone(pids[0])
    assert_still_works(runner, good)


@pytest.mark.parametrize(
    "hog_bytes",
    [2 * 1024**3, 320 * 1024**2],
    ids=["allocation-fails-under-rlimit", "rss-watch-kills"],
)
def test_memory_cap(
    runner: BenchmarkRunner, good: Path, model_file: Callable[[bytes], Path], hog_bytes: int
) -> None:
    cap = 256 * 1024**2
    path = model_file(onnx_models.memory_hog(hog_bytes))
    with pytest.raises(errors.MemoryCapExceeded) as info:
        runner.run(path, "x", settings(memory_cap_bytes=cap, max_duration_s=5.0))
    assert "256 MiB" in info.value.message
    assert_still_works(runner, good)


def test_killed_worker_is_worker_crashed(
    runner: BenchmarkRunner, good: Path, model_file: Callable[[bytes], Path]
) -> None:
    path = model_file(onnx_models.slow_model(3.0))
    s = settings(timeout_s=30.0, warmup_runs=0, min_runs=1, max_runs=1)
    pids, exc = run_and_grab_pid(runner, path, s, on_pid=lambda pid: os.kill(pid, signal.SIGKILL))
    assert isinstance(exc, errors.WorkerCrashed), exc
    assert "SIGKILL" in exc.message
    assert gone(pids[0])
    assert_still_works(runner, good)


def test_dead_spare_is_replaced(runner: BenchmarkRunner, good: Path) -> None:
    spare = runner.spare_worker_pid
    assert spare is not None
    os.kill(spare, signal.SIGKILL)
    # A spare that *died* while it waited: dead (a zombie its zygote keeps until the runner
    # has its exit status) before the next job. A kill still in flight at the hand-off is
    # another case (the job's worker dies mid-job), which a loaded host made this test hit
    # in a clean-clone CI run.
    deadline = time.monotonic() + 10
    while True:
        try:
            if psutil.Process(spare).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break  # reaped already
        assert time.monotonic() < deadline, "the killed spare never died"
        time.sleep(0.01)
    time.sleep(0.2)  # the zygote's exit report reaching the runner
    assert_still_works(runner, good)


def test_missing_model_file_is_internal_error(runner: BenchmarkRunner, good: Path) -> None:
    with pytest.raises(errors.InternalError):
        runner.run(good.with_name("no-such-model.onnx"), "x", settings())


def _wait_idle(pid: int, quiet_s: float = 0.5, timeout_s: float = 60) -> None:
    """Until ``pid`` sleeps without using CPU for ``quiet_s``: a spare that has said Ready."""
    process = psutil.Process(pid)
    deadline = time.monotonic() + timeout_s
    while True:
        before = sum(process.cpu_times()[:2])
        time.sleep(quiet_s)
        if process.status() == psutil.STATUS_SLEEPING and sum(process.cpu_times()[:2]) == before:
            return
        assert time.monotonic() < deadline, "the spare never went idle"


def test_spare_killed_at_the_hand_off_gives_the_job_to_a_fresh_worker(
    runner: BenchmarkRunner, good: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The spare is alive when the job is written to it and dies before it reads it (held
    by SIGSTOP, then SIGKILLed): the job never ran, so a fresh worker must run it."""
    assert_still_works(runner, good)  # a spare of this runner's own, started after a run
    spare = runner.spare_worker_pid
    assert spare is not None
    _wait_idle(spare)
    os.kill(spare, signal.SIGSTOP)
    killer = threading.Timer(0.5, os.kill, (spare, signal.SIGKILL))
    killer.start()
    try:
        with caplog.at_level("WARNING", logger="fleetnas.agent.runner"):
            result = runner.run(good, "good", settings())
    finally:
        killer.join()
    assert len(result.samples_ms) >= 5
    assert any("died before its job" in r.getMessage() for r in caplog.records), caplog.text
    assert gone(spare)
    assert_still_works(runner, good)


def test_unresolved_settings_rejected(runner: BenchmarkRunner, good: Path) -> None:
    with pytest.raises(ValueError, match="not resolved"):
        runner.run(good, "x", agent_pb2.BenchmarkSettings(min_runs=3))


def test_close_kills_the_spare_and_refuses_new_work(workdir: Path, good: Path) -> None:
    r = BenchmarkRunner(
        scratch_dir=workdir / "scratch3", calibration_store=CalibrationStore(workdir / "c3.json")
    )
    spare = r.spare_worker_pid
    assert spare is not None
    r.close()
    r.close()
    assert gone(spare)
    with pytest.raises(errors.ShuttingDown):
        r.run(good, "x", settings())


# -- pieces ----------------------------------------------------------------------


def test_worker_env_drops_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETNAS_AGENT_TOKEN", "s3cret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    env = worker_env()
    assert "s3cret" not in env.values()
    assert env["PATH"] == os.environ["PATH"]


def test_calibration_store_roundtrip_and_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    key = CalibrationKey.of(
        "ab" * 32,
        intra_op_threads=1,
        inter_op_threads=1,
        providers=["CPUExecutionProvider"],
        graph_optimization=4,
        runtime_version="1.0",
    )
    store = CalibrationStore(path)
    assert store.get(key) is None
    store.put(key, Calibration(latency_ms=2.5, calibrated_at=123.0, runs=200))
    assert CalibrationStore(path).get(key) == Calibration(2.5, 123.0, 200)
    other = CalibrationKey.of(
        "ab" * 32,
        intra_op_threads=2,
        inter_op_threads=1,
        providers=["CPUExecutionProvider"],
        graph_optimization=4,
        runtime_version="1.0",
    )
    assert store.get(other) is None
    path.write_text("{not json")
    assert store.get(key) is None
    assert list(tmp_path.glob("cal.json.corrupt-*"))
    store.put(key, Calibration(latency_ms=3.0, calibrated_at=1.0, runs=200))
    assert store.get(key) == Calibration(3.0, 1.0, 200)


def test_reference_asset_is_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_reference_model.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        default_reference_path().read_bytes() == (REPO / "agent/assets/reference.onnx").read_bytes()
    )


def test_calibration_on_a_noisy_host_is_used_once_not_kept(workdir: Path, good: Path) -> None:
    store = CalibrationStore(workdir / "noisy-host.json")
    runner = BenchmarkRunner(
        scratch_dir=workdir / "scratch-noisy-host", calibration_store=store, prestart=False
    )
    try:
        first = runner.run(good, "x", settings(method=agent_pb2.METHOD_PAIRED),
                           keep_calibration=False)
        assert len(store) == 0
        assert any("noisy host" in w and "not kept" in w for w in first.warnings)
        second = runner.run(good, "x", settings(method=agent_pb2.METHOD_PAIRED))
    finally:
        runner.close()
    assert first.paired.reference_calibrated_ms > 0
    # the quiet run calibrated afresh (the noisy calibration was never stored) and kept it
    assert second.paired.reference_calibrated_at != first.paired.reference_calibrated_at
    assert len(store) == 1 or any("calibration was noisy" in w for w in second.warnings)


# -- bounded input and client-safe details (what gets past settings validation) -------


def assert_client_safe(message: str, *host_paths: str) -> None:
    for path in (str(REPO), sys.prefix, *host_paths):
        assert path not in message, message
    assert "Traceback" not in message and 'File "' not in message, message


def with_shapes(shapes: list[agent_pb2.InputShape]) -> agent_pb2.BenchmarkSettings:
    s = settings()
    s.input_shapes.extend(shapes)  # past settings validation, as if a cap were missing
    return s


def test_ten_thousand_input_shapes_are_invalid_settings_not_a_crash(runner, good) -> None:
    shapes = [agent_pb2.InputShape(name=f"in{i:05d}", dims=[1, 32]) for i in range(10_000)]
    with pytest.raises(errors.InvalidSettings) as info:
        runner.run(good, "x", with_shapes(shapes))
    message = info.value.message
    assert "'in00000'" in message and "and 9995 more" in message and "['x']" in message
    assert len(message) < 1000
    assert_client_safe(message, str(good.parent))
    assert len(runner.run(good, "x", settings()).samples_ms) >= 5


def test_a_one_megabyte_input_name_is_invalid_settings_not_a_crash(runner, good) -> None:
    with pytest.raises(errors.InvalidSettings) as info:
        runner.run(good, "x", with_shapes([agent_pb2.InputShape(name="n" * 2**20, dims=[1])]))
    assert "which the model does not have" in info.value.message
    assert len(info.value.message) < 1000
    assert_client_safe(info.value.message, str(good.parent))


def test_a_job_over_the_pipe_cap_is_refused_before_it_is_sent(runner, good) -> None:
    big = with_shapes([agent_pb2.InputShape(name="n" * (MAX_JOB_BYTES + 1), dims=[1])])
    with pytest.raises(errors.InvalidSettings, match=f"at most {MAX_JOB_BYTES} bytes"):
        runner.run(good, "x", big)
    assert len(runner.run(good, "x", settings()).samples_ms) >= 5


def test_a_native_crash_tells_the_client_its_name_and_the_log_its_traceback(
    runner, good, workdir: Path
) -> None:
    path = workdir / "slow.onnx"
    path.write_bytes(onnx_models.slow_model(3.0))
    s = settings(timeout_s=30.0, warmup_runs=0, min_runs=1, max_runs=1)
    _, exc = run_and_grab_pid(runner, path, s, on_pid=lambda pid: os.kill(pid, signal.SIGSEGV))
    assert isinstance(exc, errors.WorkerCrashed), exc
    assert "SIGSEGV" in exc.message and "Segmentation fault" in exc.message
    assert "agent's log" in exc.message
    assert_client_safe(exc.message, str(workdir))
    # the traceback travels as the error's private detail (the service logs it), and the
    # model prefix the runner adds keeps it
    assert exc.message.startswith("model x: ")
    assert "Fatal Python error: Segmentation fault" in exc.private
    assert "Current thread" in exc.private and 'File "' in exc.private  # its Python stack


def test_shapes_of_2_62_are_refused_by_size_before_allocation(
    runner: BenchmarkRunner, model_file: Callable[[bytes], Path]
) -> None:
    path = model_file(onnx_models.relu(["rows", "cols"]))
    with pytest.raises(errors.InvalidSettings) as info:
        runner.run(path, "x", with_shapes([agent_pb2.InputShape(name="x", dims=[2**62, 2**62])]))
    assert "'x'" in info.value.message and f"{2**124 * 4} bytes" in info.value.message


def test_a_missing_cache_file_names_no_host_path(runner, good) -> None:
    with pytest.raises(errors.InternalError) as info:
        runner.run(good.with_name("gone.onnx"), "x", settings())
    assert "cannot read the model file" in info.value.message
    assert_client_safe(info.value.message, str(good.parent))
