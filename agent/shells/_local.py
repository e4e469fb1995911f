"""The local shell: benchmarks run on this host, in isolated worker processes.

What the service did before the device-shell seam, in one place: the
:class:`~fleetnas.agent.runner.BenchmarkRunner` (one worker process per
job, warm spare, timeout and memory cap), the host's state before and
after each job (``device_state.StateSampler``), the telemetry sources
(NVML, Jetson, RAPL: energy, GPU memory, their warnings) and the host
warnings (noisy host, throttling, more threads than usable cores).
"""

from __future__ import annotations

from pathlib import Path

from fleetnas.agent.config import AgentConfig
from fleetnas.agent.device_probe import describe_device
from fleetnas.agent.device_state import (
    StateSampler,
    noisy_host_warning,
    oversubscribed_warning,
    state_warnings,
)
from fleetnas.agent.device_telemetry import DeviceTelemetry
from fleetnas.agent.reference import CalibrationStore
from fleetnas.agent.runner import BenchmarkRunner
from fleetnas.agent.shells._base import DeviceShell
from fleetnas.api.v1 import agent_pb2

# The shortest CPU utilisation window of a state sample. Back-to-back jobs do not wait
# for it: a sample's window reaches back over earlier samples instead (StateSampler).
STATE_CPU_WINDOW_S = 0.05


class LocalShell(DeviceShell):
    """This host. Owns the runner and the telemetry sources it is given (closes them)."""

    def __init__(
        self,
        runner: BenchmarkRunner,
        telemetry: DeviceTelemetry,
        description: agent_pb2.DeviceDescription,
    ) -> None:
        """``description``: this host's (``describe_device``) with the telemetry's facts."""
        self.runner = runner
        self.telemetry = telemetry
        self._description = description
        self._telemetry_state = telemetry.status_state()
        # Samplers live as long as the agent: throttle counters are compared
        # between consecutive samples of one sampler. Benchmarks get their own,
        # so Status calls in between never hide a throttle seen during a run.
        # Status answers from the status sampler's latest snapshot, which
        # never blocks, so Status calls cannot pile up on the window.
        self._sampler = StateSampler(cpu_window_s=STATE_CPU_WINDOW_S)
        self._status_sampler = StateSampler(cpu_window_s=STATE_CPU_WINDOW_S)
        self._closed = False

    @classmethod
    def open(
        cls,
        config: AgentConfig,
        *,
        telemetry: DeviceTelemetry | None = None,
        runner_class: type[BenchmarkRunner] = BenchmarkRunner,
    ) -> LocalShell:
        """Describe this host, probe telemetry (unless given) and start the runner.

        ValueError for a malformed ``--host-fingerprint``; the telemetry is
        closed when anything fails.
        """
        telemetry = telemetry or DeviceTelemetry.probe(idle_s=config.energy_idle_s)
        try:
            description = describe_device(fingerprint_override=config.host_fingerprint)
            telemetry.describe_into(description)
            cache_dir = Path(config.cache_dir)
            runner = runner_class(
                scratch_dir=cache_dir / "scratch",
                calibration_store=CalibrationStore(cache_dir / "calibration.json"),
                spare_after_run=False,  # started after the "after" sample (see benchmark)
            )
        except BaseException:
            telemetry.close()
            raise
        return cls(runner, telemetry, description)

    def describe(self) -> agent_pb2.DeviceDescription:
        description = agent_pb2.DeviceDescription()
        description.CopyFrom(self._description)
        return description

    def status_state(self) -> agent_pb2.DeviceState:
        state = self._status_sampler.latest()
        state.MergeFrom(self._telemetry_state())
        return state

    def benchmark(
        self, model_path: Path, model_sha256: str, settings: agent_pb2.BenchmarkSettings
    ) -> agent_pb2.BenchmarkResult:
        cpu = self._description.cpu
        threads = settings.intra_op_threads
        before = self._sampler.sample()
        noisy = noisy_host_warning(before, threads_used=threads, logical_cores=cpu.logical_cores)
        try:
            with self.telemetry.job(lambda: self.runner.current_worker_pid) as telemetry:
                result = self.runner.run(
                    model_path, model_sha256, settings, keep_calibration=noisy is None
                )
            after = self._sampler.sample()
        finally:
            self.runner.start_spare()
        result.state_before.CopyFrom(before)
        result.state_after.CopyFrom(after)
        if not result.runtime_version and settings.runtime == "onnxruntime":
            result.runtime_version = result.onnxruntime_version  # a worker that predates it
        if not result.samples_source:
            result.samples_source = agent_pb2.SAMPLES_SOURCE_RAW  # the worker times every run
        telemetry.finish(result)
        result.warnings.extend(
            state_warnings(before, after, threads_used=threads, logical_cores=cpu.logical_cores)
        )
        oversubscribed = oversubscribed_warning(
            threads, usable_cores=cpu.usable_cores, physical_cores=cpu.physical_cores
        )
        if oversubscribed:
            result.warnings.append(oversubscribed)
        return result

    def cancel_current(self) -> bool:
        return self.runner.cancel_current()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.runner.close()
        self.telemetry.close()
