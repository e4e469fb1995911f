"""The device-shell contract: where the agent's benchmarks run.

A shell is the measured device as the service sees it. The agent API stays
the same whichever shell serves it: Describe, Status and Benchmark go to
the shell, the rest (model store, job gate, auth, budgets) is the
service's own. Implementations:

* :class:`~fleetnas.agent.shells.LocalShell` — this host: isolated worker
  processes (``runner.py``), host state sampling, telemetry sources;
* :class:`~fleetnas.agent.shells.AndroidShell` — a phone reached over ADB
  (``agent/android``): models are pushed and timed on the phone.

:func:`~fleetnas.agent.shells.open_shell` chooses one from the agent's
configuration; nothing else in the agent branches on the kind of device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from fleetnas.api.v1 import agent_pb2


class DeviceShell(ABC):
    """Where benchmarks run. The service holds one for the agent's lifetime.

    Contract:

    * :meth:`describe` is called once, at start (it may block on the
      device); it fills everything of ``DeviceDescription`` but ``limits``
      and ``defaults``, which the server adds. Its ``runtimes`` are what
      this device can run; requests are resolved against them.
    * :meth:`status_state` is for ``Status``: it never waits on the device
      (a cached or latest snapshot; ``timestamp`` says how old). Thread-safe.
    * :meth:`benchmark` runs one benchmark of a cached model with settings
      resolved against :meth:`describe`, and returns a complete result: the
      measurement, the device's states before and after, the warnings.
      The service adds ``agent_version``, ``host_fingerprint`` and
      ``model_format``. Blocks until done; not thread-safe (the job gate
      runs one at a time). Failures are named
      :class:`~fleetnas.agent.errors.AgentError` subclasses; the shell
      works for the next benchmark after any of them.
    * :meth:`cancel_current` (any thread) stops the benchmark running now,
      whose :meth:`benchmark` then raises; returns whether one was running.
      It returns at once (stopping may finish in the background).
    * :meth:`close` (idempotent) stops what runs and releases the device;
      later benchmarks raise ShuttingDown or a device error.
    """

    @abstractmethod
    def describe(self) -> agent_pb2.DeviceDescription:
        """The device's description (no ``limits``, no ``defaults``)."""

    @abstractmethod
    def status_state(self) -> agent_pb2.DeviceState:
        """The device's state for ``Status``, without waiting on the device."""

    @abstractmethod
    def benchmark(
        self, model_path: Path, model_sha256: str, settings: agent_pb2.BenchmarkSettings
    ) -> agent_pb2.BenchmarkResult:
        """Benchmark the cached model at ``model_path`` with resolved ``settings``."""

    @abstractmethod
    def cancel_current(self) -> bool:
        """Stop the running benchmark (its client went away); whether one was running."""

    @abstractmethod
    def close(self) -> None:
        """Stop everything and release the device (idempotent)."""
