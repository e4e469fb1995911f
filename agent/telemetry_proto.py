"""Telemetry dataclasses (``fleetnas.agent.telemetry``) as the wire API's messages.

One function per message; each copies what the hardware told and leaves an
optional field unset where it did not (``None`` never becomes 0). The
``unreadable`` notes travel as ``"what: reason"`` strings.
"""

from __future__ import annotations

from fleetnas.agent.telemetry import (
    EnergyPerInference,
    EnergyReading,
    GpuDescription,
    GpuSample,
    JetsonDescription,
    JetsonSample,
    NvmlDescription,
    RaplDescription,
    Unreadable,
)
from fleetnas.api.v1 import agent_pb2


def _notes(unreadable: tuple[Unreadable, ...]) -> list[str]:
    return [str(note) for note in unreadable]


def gpu_info(gpu: GpuDescription, nvml: NvmlDescription) -> agent_pb2.GpuInfo:
    info = agent_pb2.GpuInfo(
        index=gpu.index,
        name=gpu.name or "",
        uuid=gpu.uuid or "",
        memory_bytes=gpu.memory_total_bytes or 0,
        driver_version=nvml.driver_version or "",
        cuda_driver_version=nvml.cuda_driver_version or "",
        compute_capability=gpu.compute_capability or "",
        mig_mode=gpu.mig_mode or "",
        energy_method=gpu.energy_method or "",
        unreadable=_notes(gpu.unreadable),
    )
    if gpu.power_limit_w is not None:
        info.power_limit_w = gpu.power_limit_w
    if gpu.slowdown_temperature_c is not None:
        info.slowdown_temperature_c = gpu.slowdown_temperature_c
    return info


def jetson_info(jetson: JetsonDescription) -> agent_pb2.JetsonInfo:
    info = agent_pb2.JetsonInfo(
        board=jetson.board,
        power_modes=[agent_pb2.JetsonPowerMode(id=m.id, name=m.name or "")
                     for m in jetson.power_modes],
        gpu_devfreq=jetson.gpu_devfreq or "",
        rails=list(jetson.rails),
        energy_scope=jetson.energy_scope or "",
        unreadable=_notes(jetson.unreadable),
    )  # fmt: skip
    if jetson.default_power_mode is not None:
        info.default_power_mode = jetson.default_power_mode
    return info


def rapl_info(rapl: RaplDescription) -> agent_pb2.RaplInfo:
    info = agent_pb2.RaplInfo(interface=rapl.interface, energy_scope=rapl.energy_scope or "")
    for d in rapl.domains:
        domain = info.domains.add(part=d.part, kind=d.kind, readable=d.readable, reason=d.reason)
        if d.max_energy_range_uj is not None:
            domain.max_energy_range_uj = d.max_energy_range_uj
    return info


def gpu_state(gpu: GpuSample) -> agent_pb2.GpuState:
    state = agent_pb2.GpuState(index=gpu.index, unreadable=_notes(gpu.unreadable))
    for name in ("sm_clock_mhz", "memory_clock_mhz", "temperature_c", "power_w",
                 "gpu_utilization_percent", "memory_utilization_percent",
                 "memory_used_bytes", "throttled"):
        value = getattr(gpu, name)
        if value is not None:
            setattr(state, name, value)
    if gpu.clock_event_reasons is not None:
        state.clock_event_reasons_known = True
        state.clock_event_reasons.extend(gpu.clock_event_reasons)
    return state  # fmt: skip


def jetson_state(sample: JetsonSample) -> agent_pb2.JetsonState:
    state = agent_pb2.JetsonState(unreadable=_notes(sample.unreadable))
    if sample.power_mode is not None:
        state.power_mode_id = sample.power_mode.id
        state.power_mode_name = sample.power_mode.name or ""
    for name in ("gpu_freq_mhz", "gpu_min_freq_mhz", "gpu_max_freq_mhz", "gpu_load_percent",
                 "emc_freq_mhz"):
        value = getattr(sample, name)
        if value is not None:
            setattr(state, name, value)
    for rail in sample.rails:
        out = state.rails.add(label=rail.label, power_w=rail.power_w)
        if rail.voltage_v is not None:
            out.voltage_v = rail.voltage_v
        if rail.current_a is not None:
            out.current_a = rail.current_a
    return state  # fmt: skip


def energy(
    source: str,
    loop: EnergyReading,
    inferences: int,
    per: EnergyPerInference | None,
) -> agent_pb2.Energy:
    """The Energy message of one meter's reading over the timed loop (``loop``, already cut
    out of the job's reading) and its per-inference figures (``per``, ``None`` when
    unreadable)."""
    out = agent_pb2.Energy(
        source=source,
        method=loop.method,
        scope=loop.scope,
        interval_s=loop.interval_s,
        inferences=inferences,
        samples=loop.samples,
    )
    if loop.joules is None or loop.resolution_j is None or per is None:
        out.readable = False
        out.reason = loop.reason or "the meter read no energy"
        return out
    out.readable = True
    out.joules = loop.joules
    out.resolution_j = loop.resolution_j
    out.mj_per_inference = per.mj_per_inference
    out.uncertainty_mj = per.uncertainty_mj
    if loop.mean_power_w is not None:
        out.mean_power_w = loop.mean_power_w
    if per.idle_power_w is not None and per.net_mj_per_inference is not None:
        out.idle_power_w = per.idle_power_w
        out.net_mj_per_inference = per.net_mj_per_inference
        out.net_uncertainty_mj = per.net_uncertainty_mj or 0.0
    return out
