"""One attached phone as the agent serves it: lock, Describe, Status, Benchmark.

:class:`AndroidPhone` is the seam the agent's service uses instead of its
local runner when it runs with ``--adb SERIAL``: construct it once at start
(it takes the per-host phone lock and checks the phone is attached and
authorized), then

* ``describe()`` for the ``Describe`` RPC (merge the agent's ``limits``)
  and ``runtimes()`` for what the supplied binaries run;
* ``sample_state()`` for ``Status`` (one adb call: the agent caches it);
* ``benchmark(path, sha, resolved_settings)`` for ``Benchmark``: a complete
  v1 result, device states and warnings included (the service must not add
  the host's own state or warnings: the host is not what was measured);
* ``cancel()`` from another thread stops a running ``benchmark`` (on the
  phone too);
* ``close()`` at shutdown (releases the lock).

``agent/shells/_android.py`` is that service-side wiring.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleetnas.agent.android._adb import Adb
from fleetnas.agent.android._bench import DEFAULT_WORK_DIR, PhoneBench
from fleetnas.agent.android._cooldown import CoolDownPolicy
from fleetnas.agent.android._device import PhoneDescription, describe_phone
from fleetnas.agent.android._lock import PhoneLock
from fleetnas.agent.android._result import PhoneBenchResult, PhoneBenchSettings
from fleetnas.agent.android._state import PhoneStateSampler
from fleetnas.agent.android._tools import (
    TOOL_CLASSES,
    BenchmarkTool,
    detect_format,
    tool_from_spec,
)
from fleetnas.agent.errors import InvalidSettings
from fleetnas.api.v1 import agent_pb2


class AndroidPhone:
    """A phone behind adb, locked for this agent. ``benchmark`` is not thread-safe (the
    agent's job gate runs one at a time); ``describe``/``sample_state`` may be called
    from any thread."""

    def __init__(
        self,
        serial: str,
        tools: Sequence[BenchmarkTool],
        *,
        adb_executable: str = "adb",
        lock_dir: Path | None = None,
        work_dir: str = DEFAULT_WORK_DIR,
        cluster: str = "big",
        cooldown: CoolDownPolicy | None = None,
    ) -> None:
        """Raises PhoneBusy (another agent here drives it), AdbNotFound, DeviceNotFound,
        DeviceUnauthorized, DeviceOffline, BinaryNotExecutable (a tool built for another
        ABI), ValueError (no tools, bad work_dir), InvalidSettings (unknown cluster)."""
        if not tools:
            raise ValueError("a phone agent needs at least one benchmark tool")
        self._tools = {tool.runtime: tool for tool in tools}
        self._lock = PhoneLock(serial, lock_dir=lock_dir)
        self._lock.acquire()
        try:
            self.adb = Adb(serial, executable=adb_executable)
            self.adb.check_ready()
            self.description: PhoneDescription = describe_phone(self.adb)
            self._sampler = PhoneStateSampler(self.adb)
            self._status_sampler = PhoneStateSampler(self.adb)
            self.bench = PhoneBench(self.adb, self.description, tools, sampler=self._sampler,
                                    work_dir=work_dir)
            self.cluster = cluster
            self.cooldown = cooldown if cooldown is not None else CoolDownPolicy()
            masks = self.description.masks()
            if cluster not in masks:
                raise InvalidSettings(
                    f"cluster {cluster!r} is not on phone {serial}; choose one of "
                    f"{', '.join(masks) or '(none: the phone lists no CPUs)'}"
                )
        except BaseException:
            self._lock.release()
            raise

    @classmethod
    def from_specs(cls, serial: str, binary_specs: Sequence[str], **kwargs: object) -> AndroidPhone:
        """Build the tools from ``--adb-benchmark-binary`` texts (see ``tool_from_spec``)."""
        return cls(serial, [tool_from_spec(spec) for spec in binary_specs], **kwargs)  # type: ignore[arg-type]

    @property
    def fingerprint(self) -> str:
        return self.description.fingerprint

    def describe(self) -> agent_pb2.DeviceDescription:
        """The phone's ``DeviceDescription`` (without ``limits``, ``agent_version`` and
        ``runtime``, which the service fills)."""
        return self.description.to_proto()

    def runtimes(self) -> list[agent_pb2.RuntimeInfo]:
        """One entry per runtime a tool can stand for; available where a binary was given.

        ``version`` is the tool build's identity (``benchmark_model
        sha256:0123456789ab``): the tools print no version of their own.
        """
        found = []
        for cls in TOOL_CLASSES.values():
            info = agent_pb2.RuntimeInfo(name=cls.runtime, formats=[cls.wire_format])
            tool = self._tools.get(cls.runtime)
            if tool is None:
                info.reason = (f"no {cls.name} binary for this phone: give one with "
                               f"--adb-benchmark-binary {cls.name}=PATH (docs/android.md)")
            else:
                info.available = True
                info.version = tool.version
                info.accelerators.extend(cls.accelerators)
            found.append(info)
        return found

    @property
    def pinned_cpus(self) -> int:
        """How many CPUs benchmarks are pinned to (the cluster's)."""
        return bin(int(self.description.masks()[self.cluster], 16)).count("1")

    def sample_state(self) -> agent_pb2.DeviceState:
        """The phone's state now (one adb call)."""
        return self._status_sampler.sample().to_proto()

    def run(self, model_path: Path, sha256: str, settings: PhoneBenchSettings) -> PhoneBenchResult:
        """Benchmark a cached model once, with phone settings; the format comes from its bytes."""
        with open(model_path, "rb") as f:
            model_format = detect_format(f.read(16))
        return self.bench.run(Path(model_path), sha256, model_format, settings)

    def benchmark(
        self, model_path: Path, sha256: str, settings: agent_pb2.BenchmarkSettings
    ) -> agent_pb2.BenchmarkResult:
        """The ``Benchmark`` RPC: resolved v1 settings in, v1 result out (see the module)."""
        phone_settings = PhoneBenchSettings.from_proto(
            settings, cluster=self.cluster, cooldown=self.cooldown
        )
        return self.run(model_path, sha256, phone_settings).to_proto(settings)

    def cancel(self) -> bool:
        """Stop the benchmark in progress (blocks until it has ended); False if none ran."""
        return self.bench.cancel()

    def close(self) -> None:
        """Release the phone lock (idempotent)."""
        self._lock.release()

    def __enter__(self) -> AndroidPhone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
