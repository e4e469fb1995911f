"""The Android shell: benchmarks run on a phone attached to this host over ADB.

The agent serves the phone as if it were the device it runs on
(``fleetnas-agent serve --adb SERIAL``): Describe is the phone's
(``AndroidPhone.describe``) with the runtimes its benchmark binaries run,
Status shows the phone's state, Benchmark pushes the cached model to the
phone and times it there (``agent/android``). Nothing of the host's own
state, telemetry or warnings enters a result: the host is not what was
measured.

Status never waits on the phone: it answers from a sample refreshed in the
background (one adb call at most every :data:`STATUS_MAX_AGE_S`), and no
refresh runs while a benchmark holds the phone, so a Status poll never
puts load on the phone during a measurement; each benchmark's "after"
state becomes the latest sample. A refresh that fails (phone unplugged)
keeps the previous sample, whose ``timestamp`` then shows its age, and is
logged.

Host fingerprint: the phone's (``android.phone_fingerprint``: its
``ro.serialno``), so agents on different hosts that reach one phone
are recognised as one device. ``--host-fingerprint`` overrides it, as on
any agent.
"""

from __future__ import annotations

import threading
from pathlib import Path

from fleetnas.agent import __version__
from fleetnas.agent._freshest import Refreshed
from fleetnas.agent.android import AndroidPhone, CoolDownPolicy
from fleetnas.agent.config import AgentConfig
from fleetnas.agent.device_probe import host_fingerprint
from fleetnas.agent.logs import get_logger
from fleetnas.agent.runtimes import ONNXRUNTIME
from fleetnas.agent.shells._base import DeviceShell
from fleetnas.api.v1 import agent_pb2

STATUS_MAX_AGE_S = 5.0


class AndroidShell(DeviceShell):
    """One phone, locked for this agent for its lifetime (see the module docstring)."""

    def __init__(
        self,
        phone: AndroidPhone,
        *,
        fingerprint_override: str | None = None,
        status_max_age_s: float = STATUS_MAX_AGE_S,
    ) -> None:
        """Takes one state sample now (the adb errors if the phone is not reachable).
        Owns ``phone``: :meth:`close` closes it."""
        self.phone = phone
        self._description = _describe(phone, fingerprint_override)
        self._status = Refreshed(phone.sample_state, phone.sample_state(), status_max_age_s,
                                 on_error=self._refresh_failed)  # fmt: skip
        self._failing = False
        self._closed = False
        self._canceller: threading.Thread | None = None

    @classmethod
    def open(cls, config: AgentConfig) -> AndroidShell:
        """The phone of ``config.adb_serial`` with ``config``'s binaries, cluster and cool-down.

        A benchmark an earlier agent left running on the phone (it was killed
        mid-run) is stopped first. Raises the phone's named errors (PhoneBusy, AdbNotFound,
        DeviceNotFound, DeviceUnauthorized, DeviceOffline, BinaryMissing,
        BinaryNotExecutable), InvalidSettings for a cluster the phone does
        not have, ValueError for a bad binary spec or ``--host-fingerprint``.
        """
        assert config.adb_serial, "open_shell opens an AndroidShell only with --adb"
        phone = AndroidPhone.from_specs(
            config.adb_serial,
            list(config.adb_benchmark_binaries),
            adb_executable=config.adb_path,
            cluster=config.adb_cluster,
            cooldown=CoolDownPolicy(target_c=config.adb_cooldown_target_c,
                                    timeout_s=config.adb_cooldown_timeout_s),
            lock_dir=config.adb_lock_dir,
            work_dir=config.adb_work_dir,
        )
        try:
            stopped = phone.bench.stop_leftover()
            if stopped is not None:
                get_logger().warning("stopped a benchmark an earlier agent left on the phone",
                                     extra={"serial": config.adb_serial, "pid": stopped})
            return cls(phone, fingerprint_override=config.host_fingerprint)
        except BaseException:
            phone.close()
            raise

    def _refresh_failed(self, exc: Exception) -> None:
        if not self._failing:  # once per outage, not on every Status
            get_logger().warning("phone state not refreshed; Status shows the last sample",
                                 extra={"serial": self.phone.adb.serial, "error": str(exc)})
        self._failing = True

    def describe(self) -> agent_pb2.DeviceDescription:
        description = agent_pb2.DeviceDescription()
        description.CopyFrom(self._description)
        return description

    def status_state(self) -> agent_pb2.DeviceState:
        state = agent_pb2.DeviceState()
        state.CopyFrom(self._status.get())
        return state

    def benchmark(
        self, model_path: Path, model_sha256: str, settings: agent_pb2.BenchmarkSettings
    ) -> agent_pb2.BenchmarkResult:
        with self._status.hold():
            result = self.phone.benchmark(model_path, model_sha256, settings)
        self._failing = False
        self._status.put(result.state_after)
        return result

    def cancel_current(self) -> bool:
        if not self.phone.bench.running:
            return False
        if self._canceller is not None and self._canceller.is_alive():
            return True  # already being stopped (the service asks until the job ends)
        # Stopping takes adb calls; never on the gRPC thread that reports the disconnect.
        self._canceller = threading.Thread(target=self.phone.cancel, name="phone-cancel",
                                           daemon=True)
        self._canceller.start()
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._status.close()
        self.phone.cancel()
        self.phone.close()


def _describe(phone: AndroidPhone, fingerprint_override: str | None) -> agent_pb2.DeviceDescription:
    """The phone's description, the agent's version, the runtimes its binaries run."""
    description = phone.describe()
    description.agent_version = __version__
    if fingerprint_override is not None:
        description.host_fingerprint = host_fingerprint(override=fingerprint_override)
    # benchmarks are pinned to one cluster: that is what they may keep busy
    description.cpu.usable_cores = phone.pinned_cpus
    description.runtimes.extend(phone.runtimes())
    onnxruntime = next(r for r in description.runtimes if r.name == ONNXRUNTIME)
    if onnxruntime.available:  # the v1 fields: what a v1 client resolves against
        description.runtime.onnxruntime_version = onnxruntime.version
        description.runtime.available_providers.extend(onnxruntime.accelerators)
    return description
