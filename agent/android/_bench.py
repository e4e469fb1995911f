"""Benchmark a model on a phone: push, cool down, pin, run, parse, clean up.

One :meth:`PhoneBench.run`:

1. **prepare** (one ``adb shell``): create the work directory, stop a
   benchmark left running by an earlier run (its pid file names it; it is
   killed only if its command line is fleetnas' binary, so a recycled pid is
   never hit), and hash what is already on the phone;
2. **push** the tool (and its libraries) and the model, only when the
   phone's copy differs (sha256), then ``chmod 755`` the binaries;
3. **cool down** until the thermal state settles (``_cooldown.py``); the
   last poll is the "before" state;
4. **run** ``taskset MASK <tool> ...`` in the background of one ``adb
   shell``, writing its pid to ``run/bench.pid``, waiting for it and
   printing its result file after a marker. The shell's exit status is the
   tool's: 0 is parsed; 127 means the binary (or a library) is missing,
   126 that it cannot be executed, 128+N that signal N killed it, any
   other status a crash — each a named error ending with the tool's last
   lines;
5. **after** state, warnings, result;
6. **profile** (only with ``settings.profile_runs``): step 4 once more with
   the tool's per-operator profiler on, in a run of its own, so the timed
   statistics are never the profiler's (``benchmark_model`` profiles every
   timed run it makes: profiling the timed run would slow it).

Past the timeout the host-side adb is killed *and* the tool is killed on
the phone through its pid file (verified gone): no process is left
behind. :meth:`PhoneBench.cancel` (another thread: the client went away)
stops a run the same way, at whatever step it is: the run raises
BenchmarkCancelled. If the phone vanishes mid-run (unplugged) the run fails with
DeviceLost; the process it leaves on the phone is stopped by step 1 of
the next run.

Trust: the model and binaries come from the agent's own cache and its
command line; nothing from the wire reaches the phone's shell except
content hashes (hex) and numbers.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from fleetnas.agent.android import _errors
from fleetnas.agent.android._adb import Adb, AdbTimeout, ShellResult, last_lines
from fleetnas.agent.android._cooldown import CoolDownRecord, wait_for_cool_down
from fleetnas.agent.android._device import PhoneDescription
from fleetnas.agent.android._result import PhoneBenchResult, PhoneBenchSettings, SustainedResult
from fleetnas.agent.android._state import PhoneState, PhoneStateSampler, phone_warnings
from fleetnas.agent.android._tools import BenchmarkTool, ToolResult
from fleetnas.agent.errors import AgentError, InvalidSettings
from fleetnas.agent.model_store import validate_sha256
from fleetnas.api.v1 import agent_pb2

DEFAULT_WORK_DIR = "/data/local/tmp/fleetnas"
RESULT_MARKER = "@@fleetnas-result-file"
KILLED_MARKER = "@@fleetnas-killed"
ALIVE_MARKER = "@@fleetnas-alive"
NO_TASKSET_MARKER = "@@fleetnas-no-taskset"
NOT_EXECUTABLE_MARKER = "@@fleetnas-not-executable"
PREPARE_TIMEOUT_S = 60.0
PUSH_BYTES_PER_S = 5_000_000  # a slow USB 2 link; pushes get 30 s + size at this rate
CANCEL_RETRY_S = 1.0
_WORK_DIR = re.compile(r"/[A-Za-z0-9._/-]+")
_HASH_LINE = re.compile(r"^([0-9a-f]{64})\s+(\S+)$")


class _RunControl:
    """The run in progress, if any, and whether it was asked to stop. Thread-safe.

    Each run has its own events, and a run starts only once no cancel is
    under way, so a cancel's last kill never reaches the next run.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._run: tuple[threading.Event, threading.Event] | None = None  # (cancelled, done)
        self._cancels = 0

    @property
    def active(self) -> bool:
        return self._run is not None

    @property
    def cancelled(self) -> bool:
        """Whether the run in progress was asked to stop (for the run's own thread)."""
        run = self._run
        return run is not None and run[0].is_set()

    @contextmanager
    def running(self) -> Iterator[None]:
        run = (threading.Event(), threading.Event())
        with self._lock:
            if self._run is not None:
                raise RuntimeError("a PhoneBench runs one benchmark at a time")
            self._lock.wait_for(lambda: self._cancels == 0, timeout=2 * PREPARE_TIMEOUT_S)
            self._run = run
        try:
            yield
        finally:
            with self._lock:
                self._run = None
            run[1].set()

    @contextmanager
    def stopping(self) -> Iterator[threading.Event | None]:
        """Mark the run in progress as cancelled; yields its "done" event (None when no run
        is in progress). The next run waits until this exits."""
        with self._lock:
            run = self._run
            if run is not None:
                run[0].set()
                self._cancels += 1
        if run is None:
            yield None
            return
        try:
            yield run[1]
        finally:
            with self._lock:
                self._cancels -= 1
                self._lock.notify_all()


class PhoneBench:
    """Runs benchmarks on one phone. Not thread-safe: one run at a time (the agent's
    job gate guarantees it)."""

    def __init__(
        self,
        adb: Adb,
        description: PhoneDescription,
        tools: Sequence[BenchmarkTool],
        *,
        sampler: PhoneStateSampler | None = None,
        work_dir: str = DEFAULT_WORK_DIR,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """One tool per model format; each is checked against the phone's ABI
        (BinaryNotExecutable). ValueError for two tools of one format or a work
        directory that is not an absolute plain path."""
        if not _WORK_DIR.fullmatch(work_dir) or ".." in work_dir:
            raise ValueError(f"work_dir (--adb-work-dir) must be an absolute plain path on the "
                             f"phone (letters, digits, . _ - /), got {work_dir[:80]!r}")
        self._tools: dict[str, BenchmarkTool] = {}
        for tool in tools:
            if tool.model_format in self._tools:
                raise ValueError(f"two benchmark tools for .{tool.model_format} models")
            tool.check_abi(description.abi)
            self._tools[tool.model_format] = tool
        self._adb = adb
        self._description = description
        self._sampler = sampler or PhoneStateSampler(adb)
        self._work = work_dir.rstrip("/")
        self._clock = clock
        self._sleep = sleep
        self._control = _RunControl()

    @property
    def formats(self) -> list[str]:
        """Model formats this phone can benchmark (those with a tool)."""
        return sorted(self._tools)

    @property
    def description(self) -> PhoneDescription:
        return self._description

    def tool(self, model_format: str) -> BenchmarkTool:
        """The tool for ``model_format``; InvalidSettings naming the fix if there is none."""
        tool = self._tools.get(model_format)
        if tool is None:
            raise InvalidSettings(
                f"this phone agent has no benchmark binary for .{model_format} models "
                f"(it has: {', '.join(self.formats) or 'none'}); give one with "
                "--adb-benchmark-binary"
            )
        return tool

    # -- remote paths -------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return f"{self._work}/bin/{name}"

    def _model(self, sha: str, fmt: str) -> str:
        return f"{self._work}/models/{sha}.{fmt}"

    def _relative(self, remote: str) -> str:
        return remote[len(self._work) + 1:]

    def _pid_file(self) -> str:
        return f"{self._work}/run/bench.pid"

    # -- the run ------------------------------------------------------------------
    def run(
        self, model_path: Path, model_sha256: str, model_format: str,
        settings: PhoneBenchSettings,
    ) -> PhoneBenchResult:
        """Benchmark the model at ``model_path`` (of format ``model_format``) once.

        Raises InvalidSettings (no tool for the format, unknown cluster), the
        adb errors, PushFailed, BinaryMissing, BinaryNotExecutable,
        BenchmarkCrashed, BenchmarkHung, DeviceLost, ToolOutputUnreadable;
        BenchmarkCancelled after :meth:`cancel`.
        """
        tool, mask = self._choose(model_format, settings)
        if settings.profile_runs and tool.no_profile_reason:
            raise InvalidSettings(f"profile: {tool.no_profile_reason}")
        with self._control.running():
            remote_model = self._prepare_checked(tool, Path(model_path), model_sha256)
            before, record = self._cool_down(settings)
            result = self._measure(tool, mask, remote_model, model_sha256, settings, before,
                                   record)
            if not settings.profile_runs:
                return result
            return replace(result, profile=self._profile(tool, mask, remote_model,
                                                         model_sha256, settings))

    def _profile(
        self, tool: BenchmarkTool, mask: str, remote_model: str, sha: str,
        settings: PhoneBenchSettings,
    ) -> agent_pb2.OperatorProfile:
        """Step 6: the profiled run, parsed (its errors are the timed run's)."""
        spec = settings.profile_spec()
        command = tool.command(self._bin(tool.binary.name), remote_model, spec)
        output = tool.output_file(spec)
        done = self._execute(tool, mask, command, sha, settings.timeout_s, output)
        stdout, marked, result_text = done.stdout.partition("\n" + RESULT_MARKER + "\n")
        return tool.parse_profile(stdout, result_text if marked else None, spec)

    def run_sustained(
        self, model_path: Path, model_sha256: str, model_format: str,
        settings: PhoneBenchSettings, *, duration_s: float, max_rounds: int = 1000,
    ) -> SustainedResult:
        """Run back to back, without cool-down between rounds, for ``duration_s`` seconds
        (at least one round; one cool-down before the first). Shows how latency drifts as
        the phone heats up and throttles."""
        if not duration_s > 0 or max_rounds < 1:
            raise InvalidSettings(f"sustained duration_s must be > 0 and max_rounds >= 1, got "
                                  f"{duration_s!r}, {max_rounds!r}")
        tool, mask = self._choose(model_format, settings)
        with self._control.running():
            remote_model = self._prepare_checked(tool, Path(model_path), model_sha256)
            before, record = self._cool_down(settings)
            start = self._clock()
            rounds: list[PhoneBenchResult] = []
            while not rounds or (self._clock() - start < duration_s
                                 and len(rounds) < max_rounds):
                result = self._measure(tool, mask, remote_model, model_sha256, settings,
                                       before, record if not rounds else None)
                rounds.append(result)
                before = result.after
        return SustainedResult(rounds=tuple(rounds), duration_s=self._clock() - start)

    # -- cancellation -------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self._control.active

    def cancel(self, *, retry_s: float = CANCEL_RETRY_S) -> bool:
        """Stop the run in progress from another thread; False when none is.

        Blocks until that run has ended: the run stops at its next step
        (after the push, at the next cool-down poll) or, while the tool runs,
        when this kills it on the phone through the pid file (retried every
        ``retry_s`` until the run ends: the tool may not have started yet).
        If the phone cannot be reached, the run fails on its own (DeviceLost).
        """
        with self._control.stopping() as done:
            if done is None:
                return False
            while not done.is_set():
                try:
                    self._adb.shell(self._kill_script(), timeout_s=PREPARE_TIMEOUT_S)
                except _errors.AndroidError:
                    break
                done.wait(retry_s)
        return True

    def _check_cancelled(self, what: str) -> None:
        if self._control.cancelled:
            raise _errors.BenchmarkCancelled(
                f"benchmark cancelled {what} (the client went away); nothing runs on the "
                "phone any more"
            )

    def _prepare_checked(self, tool: BenchmarkTool, model_path: Path, sha: str) -> str:
        remote_model = self.prepare(tool, model_path, validate_sha256(sha))
        self._check_cancelled("after the push")
        return remote_model

    def _choose(self, model_format: str, settings: PhoneBenchSettings) -> tuple[BenchmarkTool, str]:
        tool = self.tool(model_format)
        masks = self._description.masks()
        if settings.cluster not in masks:
            raise InvalidSettings(
                f"cluster {settings.cluster!r} is not on this phone; choose one of "
                f"{', '.join(masks)}"
            )
        return tool, masks[settings.cluster]

    def _cool_down(self, settings: PhoneBenchSettings) -> tuple[PhoneState, CoolDownRecord | None]:
        if settings.cooldown is None:
            return self._sampler.sample(), None
        last: list[PhoneState] = []

        def read() -> tuple[float | None, int | None]:
            self._check_cancelled("during the cool-down")
            state = self._sampler.sample()
            last.append(state)
            return state.soc_temperature_c, state.thermal_status

        record = wait_for_cool_down(read, settings.cooldown, clock=self._clock, sleep=self._sleep)
        return last[-1], record

    def _measure(
        self, tool: BenchmarkTool, mask: str, remote_model: str, sha: str,
        settings: PhoneBenchSettings, before: PhoneState, record: CoolDownRecord | None,
    ) -> PhoneBenchResult:
        spec = settings.spec()
        command = tool.command(self._bin(tool.binary.name), remote_model, spec)
        started_at, t0 = time.time(), self._clock()
        done = self._execute(tool, mask, command, sha, settings.timeout_s, tool.result_file)
        wall = self._clock() - t0
        stdout, _, result_text = done.stdout.partition("\n" + RESULT_MARKER + "\n")
        parsed: ToolResult = tool.parse(stdout, result_text if tool.result_file else None, spec)
        after = self._sampler.sample()
        warnings = phone_warnings(before, after, threads_used=settings.threads,
                                  logical_cores=self._description.logical_cores)
        if record is not None and record.warning():
            warnings.append(str(record.warning()))
        return PhoneBenchResult(
            model_sha256=sha, tool=tool.name, command=f"taskset {mask} {command}",
            settings=settings, mask=mask, samples_ms=parsed.samples_ms,
            samples_source=parsed.source, statistics=parsed.statistics,
            init_ms=parsed.init_ms, first_run_ms=parsed.first_run_ms,
            peak_memory_bytes=parsed.peak_memory_bytes, provider=parsed.provider,
            before=before, after=after, cooldown=record, warnings=tuple(warnings),
            started_at=started_at, wall_s=wall, fingerprint=self._description.fingerprint,
            tool_version=tool.version, runtime=tool.runtime,
        )

    # -- phone-side steps ---------------------------------------------------------
    def _kill_script(self) -> str:
        """Stop the benchmark named by the pid file (only if it is fleetnas' binary)."""
        pid_file, binaries = self._pid_file(), f"{self._work}/bin/"
        alive = f'grep -qF {binaries} /proc/"$p"/cmdline 2>/dev/null'
        return (
            f'p=$(cat {pid_file} 2>/dev/null); rm -f {pid_file}; '
            f'if [ -n "$p" ] && {alive}; then kill -9 "$p" 2>/dev/null; i=0; '
            f'while [ $i -lt 30 ] && {alive}; do sleep 0.1; i=$((i+1)); done; '
            f'if {alive}; then echo "{ALIVE_MARKER} $p"; else echo "{KILLED_MARKER} $p"; fi; fi'
        )

    def stop_leftover(self) -> int | None:
        """Stop a benchmark an earlier agent left running on the phone (it was killed, or
        the phone was unplugged mid-run); the pid it stopped, or None. A host-side ``adb
        shell`` still waiting for that run then ends too. Raises the adb errors."""
        done = self._adb.shell(self._kill_script(), timeout_s=PREPARE_TIMEOUT_S)
        found = re.search(rf"(?:{KILLED_MARKER}|{ALIVE_MARKER}) (\d+)", done.stdout)
        return int(found.group(1)) if found else None

    def prepare(self, tool: BenchmarkTool, model_path: Path, sha: str) -> str:
        """Make the phone ready to run ``tool`` on the model; returns the model's phone path."""
        remote_model = self._model(sha, tool.model_format)
        wanted = {self._bin(tool.binary.name): (tool.binary, tool.sha256)}
        for lib, lib_sha in zip(tool.libraries, tool.library_sha256, strict=True):
            wanted[self._bin(lib.name)] = (lib, lib_sha)
        wanted[remote_model] = (model_path, sha)
        script = "\n".join([
            f"mkdir -p {self._work}/bin {self._work}/models {self._work}/run || exit 97",
            self._kill_script(),
            f"command -v taskset >/dev/null 2>&1 || echo {NO_TASKSET_MARKER}",
            # relative to the work directory, so sha256sum names them as we do
            f"cd {self._work} && for f in {' '.join(self._relative(p) for p in wanted)}; do "
            "[ -f \"$f\" ] && sha256sum \"$f\"; done",
            f"[ -x {self._bin(tool.binary.name)} ] || echo {NOT_EXECUTABLE_MARKER}",
        ])
        done = self._adb.shell(script, timeout_s=PREPARE_TIMEOUT_S)
        if done.exit_status == 97:
            raise _errors.PushFailed(f"cannot create {self._work} on the phone: {done.tail(3)}")
        if NO_TASKSET_MARKER in done.stdout:
            raise _errors.BinaryMissing(
                "taskset is not on the phone (toybox has it since Android 6); fleetnas needs "
                "it to pin the benchmark to a core cluster"
            )
        present = {m.group(2): m.group(1) for m in map(_HASH_LINE.match, done.stdout.splitlines())
                   if m}
        pushed = False
        for remote, (local, digest) in wanted.items():
            if present.get(self._relative(remote)) != digest:
                size = local.stat().st_size
                self._adb.push(local, remote, timeout_s=30.0 + size / PUSH_BYTES_PER_S)
                pushed = True
        if not pushed and NOT_EXECUTABLE_MARKER not in done.stdout:
            return remote_model
        binaries = [remote for remote in wanted if remote != remote_model]
        check = self._adb.shell(
            f"chmod 755 {' '.join(binaries)} && [ -x {self._bin(tool.binary.name)} ]"
        )
        if check.exit_status != 0:
            raise _errors.BinaryNotExecutable(
                f"{tool.name}: {self._bin(tool.binary.name)} cannot be made executable on the "
                f"phone: {check.tail(3) or f'exit {check.exit_status}'}"
            )
        return remote_model

    def _execute(
        self, tool: BenchmarkTool, mask: str, command: str, sha: str, timeout_s: float,
        output: str | None,
    ) -> ShellResult:
        """Run ``command``; ``output``: the file (a glob of the tool's own, never from the
        wire) in the run folder whose text follows RESULT_MARKER in the stdout."""
        result = f"{self._work}/run/{output}" if output else ""
        script = "\n".join([
            f"cd {self._work}/run || exit 97",
            f"rm -f {result}" if result else "true",
            f"LD_LIBRARY_PATH={self._work}/bin taskset {mask} {command} 2>&1 &",
            f"echo $! > {self._pid_file()}",
            "wait $!",
            "__bench_rc=$?",
            f"rm -f {self._pid_file()}",
            f"for f in {result}; do if [ -f \"$f\" ]; then printf '\\n{RESULT_MARKER}\\n'; "
            "cat \"$f\"; rm -f \"$f\"; fi; done" if result else "true",
            "(exit $__bench_rc)",
        ])
        try:
            done = self._adb.shell(script, timeout_s=timeout_s)
        except AdbTimeout as exc:
            raise self._hung(tool, sha, exc) from None
        except _errors.DeviceLost as exc:
            raise _errors.DeviceLost(
                f"{exc.message}\nThe {tool.name} run of model {sha[:12]} did not finish; if it "
                "still runs on the phone, the next benchmark stops it first."
            ) from None
        self._check_cancelled(f"while {tool.name} ran; it was killed on the phone")
        if done.exit_status != 0:
            raise _exit_error(tool, done)
        return done

    def _hung(self, tool: BenchmarkTool, sha: str, exc: AdbTimeout) -> _errors.BenchmarkHung:
        tail = last_lines(exc.stdout + exc.stderr, 10)
        try:
            kill = self._adb.shell(self._kill_script(), timeout_s=PREPARE_TIMEOUT_S)
            killed = re.search(rf"{KILLED_MARKER} (\d+)", kill.stdout)
            alive = re.search(rf"{ALIVE_MARKER} (\d+)", kill.stdout)
            if alive:
                where = f"it could NOT be stopped on the phone (pid {alive.group(1)} still runs)"
            elif killed:
                where = f"it was killed on the host and on the phone (pid {killed.group(1)})"
            else:
                where = "it was killed on the host and had already ended on the phone"
        except _errors.AndroidError as err:
            where = f"it was killed on the host; the phone could not be reached to stop it ({err})"
        return _errors.BenchmarkHung(
            f"{tool.name} on model {sha[:12]} ran past its {exc.timeout_s:g} s timeout; "
            f"{where}. Last output:\n{tail or '(none)'}"
        )


def _exit_error(tool: BenchmarkTool, done: ShellResult) -> AgentError:
    """The named error for a tool that exited with ``done.exit_status`` != 0."""
    status, tail = done.exit_status, done.tail()
    if status == 97:
        return _errors.PushFailed(f"the work directory is gone from the phone: {tail}")
    if status == 127:
        return _errors.BinaryMissing(
            f"{tool.name}: the phone could not find the binary or a library it needs "
            f"(exit 127); push them with --adb-benchmark-binary. Last lines:\n{tail}"
        )
    if status == 126:
        return _errors.BinaryNotExecutable(
            f"{tool.name}: the phone cannot execute the binary (exit 126; wrong ABI or no "
            f"exec permission). Last lines:\n{tail}"
        )
    if status > 128:
        try:
            name = signal.Signals(status - 128).name
        except ValueError:
            name = f"signal {status - 128}"
        return _errors.BenchmarkCrashed(
            f"{tool.name} was killed by {name} on the phone (exit {status}). Last lines:\n{tail}"
        )
    return _errors.BenchmarkCrashed(
        f"{tool.name} failed on the phone (exit {status}). Last lines:\n{tail}"
    )
