"""Shared helpers of the agent benches (``bench_agent_*.py``); not a bench itself.

* :class:`AgentProcess`: a real ``fleetnas-agent serve`` subprocess on loopback
  (port 0 + port file), so the client, the agent and its workers are three
  processes, as in a deployment.
* :func:`wait_quiet`: block until an agent's process tree stops using CPU (its
  warm spare worker has finished importing onnxruntime), so that a timing loop
  run next in the bench process does not share the cores with that import.
* A bare onnxruntime baseline (:func:`bare_session`, :func:`bare_feeds`,
  :func:`bare_loop`, :func:`bare_fixed`), written independently of the agent's
  worker but following its documented protocol: same session options, same
  seeded inputs, same stopping rule, ``time.perf_counter`` around each run,
  garbage collector off while timing.
* The bench models (:data:`MODELS`) and small table/statistics helpers.

Nothing here asserts on timings: the benches print figures.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import psutil

from fleetnas.agent.client import AgentClient
from fleetnas.agent.errors import AgentError
from fleetnas.agent.settings import resolve_settings
from fleetnas.api.v1 import agent_pb2

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
# Limits the bench agents run with (also used to resolve settings locally).
AGENT_MAX_TIMEOUT_S = 600.0
AGENT_MEMORY_CAP_MB = 2048

_OPT_LEVELS = {
    agent_pb2.GRAPH_OPTIMIZATION_DISABLE: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    agent_pb2.GRAPH_OPTIMIZATION_BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    agent_pb2.GRAPH_OPTIMIZATION_EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    agent_pb2.GRAPH_OPTIMIZATION_ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


# -- models ---------------------------------------------------------------------
def test_models(name: str = "onnx_models") -> ModuleType:
    """A test-suite model-builder module (``tests/<name>.py``), importable from bench/."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module(f"tests.{name}")


def onnx_models() -> ModuleType:
    """The test-suite ONNX builders (``tests/onnx_models.py``)."""
    return test_models("onnx_models")


@dataclass(frozen=True)
class BenchModel:
    """A bench model: ``build(seed)`` gives its bytes (the seed changes weights, not cost)."""

    name: str
    description: str
    builder: str  # function name in tests/onnx_models.py
    args: tuple[int, ...]

    def build(self, seed: int = 0) -> bytes:
        return getattr(onnx_models(), self.builder)(*self.args, seed=seed)


# Sizes chosen on a 1-thread x86 core: ~0.05 ms, ~1 ms, ~12 ms per run.
MODELS: tuple[BenchModel, ...] = (
    BenchModel("small-mlp", "mlp 512x4 (~0.05 ms, 4 MB)", "mlp", (512, 4)),
    BenchModel("medium-conv", "conv 32ch 56px x4 (~1 ms)", "conv_net", (32, 56, 4)),
    BenchModel("large-conv", "conv 64ch 64px x10 (~12 ms)", "conv_net", (64, 64, 10)),
)


def model_by_name(name: str) -> BenchModel:
    for model in MODELS:
        if model.name == name:
            return model
    raise SystemExit(f"unknown model {name!r}; choose from {[m.name for m in MODELS]}")


# -- settings -------------------------------------------------------------------
def resolved_settings(**overrides: object) -> agent_pb2.BenchmarkSettings:
    """The agent's defaults (plus ``overrides``) resolved exactly as the agent resolves them,
    so the agent and the bare loop run the very same settings."""
    requested = agent_pb2.BenchmarkSettings(**overrides)  # type: ignore[arg-type]
    return resolve_settings(
        requested,
        max_timeout_s=AGENT_MAX_TIMEOUT_S,
        memory_cap_bytes=AGENT_MEMORY_CAP_MB * 1024 * 1024,
        available_providers=ort.get_available_providers(),
    )


def describe_settings(s: agent_pb2.BenchmarkSettings) -> str:
    return (
        f"warmup {s.warmup_runs}, min_runs {s.min_runs}, min_duration {s.min_duration_s:g} s, "
        f"max_runs {s.max_runs}, threads {s.intra_op_threads}/{s.inter_op_threads}, "
        f"graph opt {agent_pb2.GraphOptimization.Name(s.graph_optimization)}, seed {s.seed}"
    )


# -- the agent process ------------------------------------------------------------
class AgentProcess:
    """One ``fleetnas-agent serve`` subprocess on loopback, port chosen by the OS.

    Use as a context manager, or call :meth:`stop`. :meth:`restart` stops it
    (SIGTERM: graceful) and starts a new process on the same cache folder.
    """

    def __init__(self, cache_dir: Path, *, startup_timeout_s: float = 60.0) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._startup_timeout_s = startup_timeout_s
        self.port = 0
        self.incarnation = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._start()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def client(self) -> AgentClient:
        return AgentClient(self.address, call_timeout_s=60.0)

    def _start(self) -> None:
        port_file = self.cache_dir / "agent.port"
        port_file.unlink(missing_ok=True)
        argv = [
            sys.executable, "-m", "fleetnas.agent.cli", "--log-format", "text",
            "serve", "--host", LOOPBACK, "--port", "0", "--port-file", str(port_file),
            "--cache-dir", str(self.cache_dir),
            "--max-timeout", str(AGENT_MAX_TIMEOUT_S),
            "--memory-cap-mb", str(AGENT_MEMORY_CAP_MB),
        ]  # fmt: skip
        with open(self.cache_dir / "agent.log", "ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.incarnation += 1
        deadline = time.monotonic() + self._startup_timeout_s
        self.port = 0
        while not self.port:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the agent exited at start; see {self.cache_dir}/agent.log")
            text = port_file.read_text().strip() if port_file.exists() else ""
            if text.isdigit():
                self.port = int(text)
            elif time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the agent did not write its port file in time")
            else:
                time.sleep(0.05)
        with self.client() as client:
            while True:
                try:
                    if client.health(timeout=2.0):
                        break
                except AgentError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the agent never became healthy")
                time.sleep(0.05)
        wait_quiet(self.pid)  # the first warm spare imports onnxruntime

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (the agent drains and exits), then SIGKILL after ``timeout_s``."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self._start()

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tree_cpu_s(proc: psutil.Process) -> float:
    total = 0.0
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for p in family:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def wait_quiet(
    pid: int, *, window_s: float = 0.1, max_busy: float = 0.05, timeout_s: float = 15.0
) -> float:
    """Wait until process ``pid`` and its children use at most ``max_busy`` of one core over
    a ``window_s`` window (or ``timeout_s`` passes); returns the seconds waited."""
    proc = psutil.Process(pid)
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        before = _tree_cpu_s(proc)
        time.sleep(window_s)
        if _tree_cpu_s(proc) - before <= max_busy * window_s:
            break
    return time.monotonic() - start


# -- the bare onnxruntime baseline ---------------------------------------------------
def bare_session(
    model: bytes, s: agent_pb2.BenchmarkSettings, providers: Sequence[object] | None = None
) -> tuple[ort.InferenceSession, float]:
    """A session from bytes with the agent's session options (``providers``, with their
    options, default ``s.providers``); returns it and its creation ms."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = s.intra_op_threads
    options.inter_op_num_threads = s.inter_op_threads
    options.graph_optimization_level = _OPT_LEVELS[s.graph_optimization]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.add_session_config_entry("session.load_model_format", "ONNX")
    start = time.perf_counter()
    session = ort.InferenceSession(model, sess_options=options,
                                   providers=list(providers or s.providers))  # fmt: skip
    return session, (time.perf_counter() - start) * 1000.0


def bare_feeds(session: ort.InferenceSession, seed: int) -> dict[str, np.ndarray]:
    """Seeded standard-normal float32 inputs, as the agent makes them (static float inputs)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        if inp.type != "tensor(float)" or not all(isinstance(d, int) for d in inp.shape):
            raise ValueError(f"bench models have static float inputs; {inp.name} is {inp.type}")
        feeds[inp.name] = rng.standard_normal(tuple(inp.shape), dtype=np.float32)
    return feeds


def stop_rule(runs: int, elapsed_s: float, s: agent_pb2.BenchmarkSettings) -> bool:
    """The agent's stopping rule for a timed loop."""
    return (
        (runs >= s.min_runs and elapsed_s >= s.min_duration_s)
        or runs >= s.max_runs
        or elapsed_s >= s.max_duration_s
    )


@dataclass
class BareRun:
    """One bare benchmark: times in ms; ``wall_ms`` from before session creation to the end."""

    create_ms: float
    first_ms: float
    warmup_ms: float
    samples_ms: list[float]
    wall_ms: float

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)


def timed_runs(run: Callable[[], object], stop: Callable[[int, float], bool]) -> list[float]:
    """``perf_counter`` around each ``run()``, gc off, until ``stop(runs, elapsed_s)``."""
    samples: list[float] = []
    gc.collect()
    gc.disable()
    try:
        loop_start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            run()
            t1 = time.perf_counter()
            samples.append((t1 - t0) * 1000.0)
            if stop(len(samples), t1 - loop_start):
                return samples
    finally:
        gc.enable()


def _bare(
    model: bytes, s: agent_pb2.BenchmarkSettings, stop: Callable[[int, float], bool]
) -> BareRun:
    wall_start = time.perf_counter()
    session, create_ms = bare_session(model, s)
    feeds = bare_feeds(session, s.seed)

    def run() -> object:
        return session.run(None, feeds)

    t0 = time.perf_counter()
    run()
    t1 = time.perf_counter()
    for _ in range(s.warmup_runs):
        run()
    t2 = time.perf_counter()
    samples = timed_runs(run, stop)
    wall_ms = (time.perf_counter() - wall_start) * 1000.0
    return BareRun(create_ms, (t1 - t0) * 1000.0, (t2 - t1) * 1000.0, samples, wall_ms)


def bare_loop(model: bytes, s: agent_pb2.BenchmarkSettings) -> BareRun:
    """Session, first run, ``warmup_runs``, then timed runs under the agent's stopping rule."""
    return _bare(model, s, lambda runs, elapsed: stop_rule(runs, elapsed, s))


def bare_gpu_median(model: bytes, s: agent_pb2.BenchmarkSettings,
                    providers: Sequence[object]) -> float:  # fmt: skip
    """Median (ms) of a bare GPU loop with I/O binding: the seeded inputs copied to the GPU
    once and bound there, outputs bound on the GPU, each timed run one
    ``run_with_iobinding``, after a first run and ``warmup_runs``, under the agent's
    stopping rule. ``providers`` with their options (CUDA, TensorRT on device 0)."""
    session, _ = bare_session(model, s, providers)
    binding = session.io_binding()
    values = {name: ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0)
              for name, array in bare_feeds(session, s.seed).items()}  # fmt: skip
    for name, value in values.items():
        binding.bind_ortvalue_input(name, value)
    for output in session.get_outputs():
        binding.bind_output(output.name, "cuda", 0)
    for _ in range(1 + s.warmup_runs):
        session.run_with_iobinding(binding)
    samples = timed_runs(lambda: session.run_with_iobinding(binding),
                          lambda runs, elapsed: stop_rule(runs, elapsed, s))  # fmt: skip
    return statistics.median(samples)


def bare_fixed(model: bytes, s: agent_pb2.BenchmarkSettings, runs: int) -> BareRun:
    """Session, first run, ``warmup_runs``, then exactly ``runs`` timed runs."""
    return _bare(model, s, lambda n, _elapsed: n >= runs)


def bare_loop_in_subprocess(model_path: Path, s: agent_pb2.BenchmarkSettings) -> float:
    """:func:`bare_loop` in a fresh Python process (no agent code involved); its median ms.

    Tells isolation effects from per-process ones: a fresh process gets a
    fresh memory layout, which moves tiny, memory-bound models by a few %.
    """
    out = subprocess.run(
        [sys.executable, __file__, "bare", str(model_path), s.SerializeToString().hex()],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(out.stdout.strip())


# -- statistics and printing ---------------------------------------------------------
def cv(values: Sequence[float]) -> float:
    """Sample standard deviation / mean (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    return statistics.stdev(values) / statistics.mean(values)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def load_line(label: str) -> str:
    one, five, fifteen = os.getloadavg()
    return (
        f"load average {label}: {one:.2f} {five:.2f} {fifteen:.2f} "
        f"(1/5/15 min; {os.cpu_count()} CPUs)"
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A right-aligned plain-text table (first column left-aligned)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out)

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def header(title: str, lines: Sequence[str] = ()) -> None:
    print(title)
    print("=" * len(title))
    print(f"onnxruntime {ort.__version__}, python {sys.version.split()[0]}, pid {os.getpid()}")
    for text in lines:
        print(text)
    print(load_line("at start"))
    print()


def _main(argv: Sequence[str]) -> int:
    """``_agent_common.py bare MODEL SETTINGS_HEX``: print one bare loop's median ms."""
    if len(argv) != 3 or argv[0] != "bare":
        print("usage: _agent_common.py bare MODEL_PATH SETTINGS_HEX", file=sys.stderr)
        return 2
    settings = agent_pb2.BenchmarkSettings.FromString(bytes.fromhex(argv[2]))
    print(bare_loop(Path(argv[1]).read_bytes(), settings).median_ms)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
