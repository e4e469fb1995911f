"""Samples taken *during* a run, and the warnings they support.

A GPU idles before a benchmark and drops back to idle clocks right after it,
so a before/after pair cannot show throttling that happened in between.
:class:`SampleWatch` samples a source every ``period_s`` while the run goes
on; :func:`gpu_warnings` and :func:`jetson_warnings` read the before sample,
those taken during the run and the after sample, and say what they saw,
naming the figure, like the CPU warnings of ``device_state``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from fleetnas.agent.device_state import FREQ_DROP_RATIO
from fleetnas.agent.telemetry._jetson import JetsonSample
from fleetnas.agent.telemetry._nvml import (
    THROTTLING_REASONS,
    GpuSample,
    NvmlDescription,
    NvmlSample,
)
from fleetnas.agent.telemetry._sampling import PeriodicThread

S = TypeVar("S")

MAX_SAMPLES = 10_000
HOT_MARGIN_C = 5.0  # warn this close to the GPU's own slowdown temperature
HOT_GPU_C = 85.0  # ... or at this temperature where the GPU does not state one
BUSY_PERCENT = 50.0  # GPU utilisation above which a low SM clock is not idling


class SampleWatch(Generic[S]):
    """Calls ``sample()`` every ``period_s`` from start to stop and keeps what it returns.

    ``None`` samples (source unavailable) are skipped; at most
    ``MAX_SAMPLES`` are kept (the oldest are dropped). Single use.
    """

    def __init__(self, sample: Callable[[], S | None], *, period_s: float = 0.5) -> None:
        self._sample = sample
        self._lock = threading.Lock()
        self._samples: list[S] = []
        self._thread = PeriodicThread(self._take, period_s, name="telemetry-watch")

    def _take(self) -> None:
        got = self._sample()
        if got is None:
            return
        with self._lock:
            self._samples.append(got)
            if len(self._samples) > MAX_SAMPLES:
                del self._samples[0]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[S]:
        """Stop (joining the thread) and return the samples, oldest first."""
        self._thread.stop()
        with self._lock:
            return list(self._samples)

    @property
    def watching(self) -> bool:
        return self._thread.alive


def gpu_warnings(
    samples: Sequence[NvmlSample], description: NvmlDescription | None = None
) -> list[str]:
    """Warnings for one run from its NVML samples (before, during..., after)."""
    warnings: list[str] = []
    by_gpu: dict[int, list[GpuSample]] = {}
    for sample in samples:
        for gpu in sample.gpus:
            by_gpu.setdefault(gpu.index, []).append(gpu)
    slowdown = {g.index: g.slowdown_temperature_c for g in description.gpus} if description else {}
    for index, gpus in sorted(by_gpu.items()):
        reasons = sorted(
            {r for g in gpus for r in (g.clock_event_reasons or ()) if r in THROTTLING_REASONS}
        )
        if reasons:
            warnings.append(f"throttling: GPU {index} reported {', '.join(reasons)} during the run")
        temperatures = [g.temperature_c for g in gpus if g.temperature_c is not None]
        limit = slowdown.get(index)
        threshold = limit - HOT_MARGIN_C if limit is not None else HOT_GPU_C
        if temperatures and max(temperatures) >= threshold:
            where = f"slowdown at {limit:.0f} °C" if limit is not None else f">= {HOT_GPU_C:.0f} °C"
            warnings.append(f"hot: GPU {index} reached {max(temperatures):.0f} °C ({where})")
        busy = [
            g.sm_clock_mhz
            for g in gpus
            if g.sm_clock_mhz
            and (g.gpu_utilization_percent or 0) >= BUSY_PERCENT
            and "gpu_idle" not in (g.clock_event_reasons or ())
        ]
        if busy and min(busy) < FREQ_DROP_RATIO * max(busy):
            warnings.append(
                f"throttling: GPU {index} SM clock ranged {min(busy)}-{max(busy)} MHz while busy"
            )
    return warnings


def jetson_warnings(samples: Sequence[JetsonSample]) -> list[str]:
    """Warnings for one run from its Jetson samples (before, during..., after)."""
    warnings: list[str] = []
    modes = [s.power_mode for s in samples if s.power_mode is not None]
    if modes and any(m.id != modes[0].id for m in modes):
        first, last = modes[0], modes[-1]
        warnings.append(
            f"power mode changed during the run: {first.name or first.id} -> "
            f"{last.name or last.id} (nvpmodel)"
        )
    caps = [s.gpu_max_freq_mhz for s in samples if s.gpu_max_freq_mhz is not None]
    if caps and min(caps) < max(caps):
        warnings.append(
            f"throttling: the Jetson GPU's clock cap moved between {min(caps):.0f} and "
            f"{max(caps):.0f} MHz during the run (thermal or power capping, or nvpmodel)"
        )
    return warnings
