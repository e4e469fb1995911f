"""Peak GPU memory of one process (the benchmark worker), by polling NVML.

NVML reports a process's current GPU memory, not its peak, so
:class:`GpuMemoryPeak` polls :meth:`NvmlSource.process_gpu_memory` every
``period_s`` between ``start`` and ``stop`` and keeps the largest value.
An allocation that comes and goes between two polls is missed: the result
says how many polls it rests on. (NVML's accounting mode records a true
maximum, but enabling it needs root on the host; polling works everywhere.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fleetnas.agent.telemetry._sampling import PeriodicThread


class ProcessMemoryReader(Protocol):
    def process_gpu_memory(self, pid: int) -> tuple[int | None, str]: ...


@dataclass(frozen=True)
class PeakGpuMemory:
    """The largest GPU memory seen for ``pid``; ``None`` (with ``reason``) if never seen."""

    pid: int | None  # the last pid polled; None when the pid was never known
    peak_bytes: int | None
    polls: int
    period_s: float
    reason: str = ""


class GpuMemoryPeak:
    """Polls a process's GPU memory from :meth:`start` to :meth:`stop` and keeps the peak.

    Single use; ``stop`` joins the polling thread and polls once more. ``pid``
    may be a callable that returns the pid to poll now, or ``None`` while there
    is none yet (the agent's worker of the running job).
    """

    def __init__(
        self,
        source: ProcessMemoryReader,
        pid: int | Callable[[], int | None],
        *,
        period_s: float = 0.02,
    ) -> None:
        self._source = source
        self._pid_of: Callable[[], int | None] = pid if callable(pid) else (lambda: pid)
        self._pid: int | None = None
        self._period_s = period_s
        self._lock = threading.Lock()
        self._peak: int | None = None
        self._polls = 0
        self._last_reason = ""
        self._thread = PeriodicThread(self._poll, period_s, name="gpu-memory")

    def _poll(self) -> None:
        pid = self._pid_of()
        if pid is None:
            used, reason = None, "no process to poll yet"
        else:
            self._pid = pid
            used, reason = self._source.process_gpu_memory(pid)
        with self._lock:
            self._polls += 1
            if used is None:
                self._last_reason = reason
            elif self._peak is None or used > self._peak:
                self._peak = used

    def start(self) -> None:
        self._poll()
        self._thread.start()

    def stop(self) -> PeakGpuMemory:
        self._thread.stop()
        self._poll()
        with self._lock:
            return PeakGpuMemory(
                pid=self._pid,
                peak_bytes=self._peak,
                polls=self._polls,
                period_s=self._period_s,
                reason="" if self._peak is not None else self._last_reason,
            )

    @property
    def polling(self) -> bool:
        return self._thread.alive
