"""Telemetry sources beyond the CPU: NVIDIA GPUs (NVML), Jetson boards, x86 RAPL; energy.

Each source implements :class:`TelemetrySource` (``status``, ``describe``,
``sample``, ``energy_meter``); values the hardware does not tell are
``None`` with a reason, never a guess. :func:`energy_per_inference` turns an
:class:`EnergyReading` over a timed loop into mJ per inference with its
uncertainty, and :func:`attribute` cuts a sub-interval (a worker's timed
loop) out of a reading's trace; :func:`available_sources` lists the sources
that read something on this machine. See docs/telemetry.md.

Importing this package imports no optional dependency: ``pynvml`` is
imported when an :class:`NvmlSource` is first used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetnas.agent.telemetry._attribution import attribute
from fleetnas.agent.telemetry._base import (
    EnergyMeter,
    EnergyReading,
    EnergyTrace,
    SensorError,
    SourceStatus,
    TelemetrySource,
    TracePoint,
    Unreadable,
)
from fleetnas.agent.telemetry._energy import EnergyPerInference, energy_per_inference
from fleetnas.agent.telemetry._gpu_memory import GpuMemoryPeak, PeakGpuMemory
from fleetnas.agent.telemetry._ina3221 import RailReading
from fleetnas.agent.telemetry._jetson import (
    JetsonDescription,
    JetsonSample,
    JetsonSource,
    PowerMode,
    parse_nvpmodel_conf,
    parse_nvpmodel_query,
    parse_nvpmodel_status,
)
from fleetnas.agent.telemetry._meters import (
    Counter,
    CounterMeter,
    PowerIntegratingMeter,
    UnreadableMeter,
    integrate_samples,
)
from fleetnas.agent.telemetry._nvml import (
    GpuDescription,
    GpuSample,
    NvmlDescription,
    NvmlSample,
    NvmlSource,
    decode_clock_event_reasons,
)
from fleetnas.agent.telemetry._rapl import RaplDescription, RaplDomain, RaplSample, RaplSource
from fleetnas.agent.telemetry._tegrastats import TegrastatsLine, parse_tegrastats_line
from fleetnas.agent.telemetry._watch import SampleWatch, gpu_warnings, jetson_warnings

__all__ = [
    "Counter",
    "CounterMeter",
    "EnergyMeter",
    "EnergyPerInference",
    "EnergyReading",
    "EnergyTrace",
    "GpuDescription",
    "GpuMemoryPeak",
    "GpuSample",
    "JetsonDescription",
    "JetsonSample",
    "JetsonSource",
    "NvmlDescription",
    "NvmlSample",
    "NvmlSource",
    "PeakGpuMemory",
    "PowerIntegratingMeter",
    "PowerMode",
    "RailReading",
    "RaplDescription",
    "RaplDomain",
    "RaplSample",
    "RaplSource",
    "SampleWatch",
    "SensorError",
    "SourceStatus",
    "TegrastatsLine",
    "TelemetrySource",
    "TracePoint",
    "Unreadable",
    "UnreadableMeter",
    "attribute",
    "available_sources",
    "decode_clock_event_reasons",
    "energy_per_inference",
    "gpu_warnings",
    "integrate_samples",
    "jetson_warnings",
    "parse_nvpmodel_conf",
    "parse_nvpmodel_query",
    "parse_nvpmodel_status",
    "parse_tegrastats_line",
]


def available_sources(
    *, root: Path = Path("/"), nvml: Any = None
) -> list[TelemetrySource[Any, Any]]:
    """The sources that read something here (NVML, Jetson, RAPL, in that order).

    Sources that are unavailable are closed and left out; callers own (and
    close) the ones returned. ``root`` and ``nvml`` are for tests.
    """
    candidates: list[TelemetrySource[Any, Any]] = [
        NvmlSource(nvml=nvml),
        JetsonSource(root=root),
        RaplSource(root=root),
    ]
    found = []
    for source in candidates:
        if source.status().available:
            found.append(source)
        else:
            source.close()
    return found
