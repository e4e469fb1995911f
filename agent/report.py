"""Plain-text rendering of benchmark results (the agent install has no rich)."""

from __future__ import annotations

from fleetnas.agent.model_format import format_name
from fleetnas.api.v1 import agent_pb2


def _rows(result: agent_pb2.BenchmarkResult) -> list[tuple[str, str]]:
    s = result.stats
    st = result.settings
    method = agent_pb2.Method.Name(st.method).removeprefix("METHOD_").lower()
    rows = [
        ("model", result.model_sha256[:16]),
        ("runtime", _runtime(result)),
        ("provider", result.provider),
        ("method", method),
        ("threads (intra/inter)", f"{st.intra_op_threads}/{st.inter_op_threads}"),
        *_spread(result),
        ("min / max", f"{s.min_ms:.4f} / {s.max_ms:.4f} ms"),
        ("std (cv)", f"{s.std_ms:.4f} ms ({100 * s.cv:.2f}%)"),
        ("session create", f"{result.session_create_ms:.1f} ms"),
        ("first run", f"{result.first_run_ms:.3f} ms"),
        ("peak RSS", f"{result.peak_rss_bytes / 2**20:.1f} MiB"),
    ]
    if result.HasField("paired"):
        p = result.paired
        rows += [
            ("paired latency", f"{p.latency_ms:.4f} ms"),
            ("ratio to reference", f"{p.ratio_median:.4f} (cv {100 * p.ratio_cv:.2f}%)"),
            ("reference calibrated", f"{p.reference_calibrated_ms:.4f} ms"),
        ]
    for name, state in (("before", result.state_before), ("after", result.state_after)):
        temp = f", {state.temperature_c:.1f} °C" if state.temperature_available else ""
        freq = f"{state.freq_current_mhz:.0f} MHz" if state.freq_current_mhz else "freq n/a"
        rows.append((f"device {name}", f"{freq}, load {state.load_1m:.2f}{temp}"))
    if st.agent_defaults:
        rows.append(("agent defaults", ", ".join(st.agent_defaults)))
    if result.HasField("gpu_memory"):
        peak = result.gpu_memory
        rows.append(("peak GPU memory", f"{peak.peak_bytes / 2**20:.1f} MiB"
                     if peak.HasField("peak_bytes") else f"n/a ({peak.reason})"))
    rows.extend(("energy", _energy(e)) for e in result.energy)
    for warning in result.warnings:
        rows.append(("warning", warning))
    return rows


def _spread(result: agent_pb2.BenchmarkResult) -> list[tuple[str, str]]:
    s = result.stats
    if result.samples_source == agent_pb2.SAMPLES_SOURCE_TOOL_STATISTICS:
        return [("runs", f"{result.timed_inferences} (the tool's statistics, no samples)"),
                ("median", "n/a (the tool gives none; median_ms holds its mean)"),
                ("mean", f"{s.mean_ms:.4f} ms"),
                ("p90 / p99", "n/a")]  # fmt: skip
    return [("runs", str(len(result.samples_ms))),
            ("median", f"{s.median_ms:.4f} ms"),
            ("mean", f"{s.mean_ms:.4f} ms"),
            ("p90 / p99", f"{s.p90_ms:.4f} / {s.p99_ms:.4f} ms")]  # fmt: skip


def _runtime(result: agent_pb2.BenchmarkResult) -> str:
    runtime = result.settings.runtime or "onnxruntime"
    version = result.runtime_version or result.onnxruntime_version
    return f"{runtime} {version} ({format_name(result.model_format)})"


def _energy(e: agent_pb2.Energy) -> str:
    where = f"{e.source}: {e.scope} ({e.method})"
    if not e.readable:
        return f"{where}: unreadable: {e.reason}"
    text = f"{where}: {e.mj_per_inference:.3f} ± {e.uncertainty_mj:.3f} mJ/inference"
    if e.HasField("mean_power_w"):
        text += f", {e.mean_power_w:.2f} W"
    if e.HasField("net_mj_per_inference"):
        text += f", net of idle {e.net_mj_per_inference:.3f} mJ"
    return text


def format_result(result: agent_pb2.BenchmarkResult) -> str:
    rows = _rows(result)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _cores(cpu: agent_pb2.CpuInfo) -> str:
    text = f"{cpu.physical_cores} physical, {cpu.logical_cores} logical"
    if cpu.usable_cores:
        text += f", {cpu.usable_cores} usable"
    if cpu.cpu_quota_cores:
        text += f" (cgroup quota {cpu.cpu_quota_cores:g} cores)"
    return text


def _gpu(g: agent_pb2.GpuInfo) -> str:
    extra = f" (sm {g.compute_capability}, CUDA {g.cuda_driver_version})" \
        if g.compute_capability else ""
    return f"{g.name}{extra}"


def _runtime_info(r: agent_pb2.RuntimeInfo) -> str:
    if not r.available:
        return f"not available: {r.reason}"
    return f"{r.version}: {', '.join(r.accelerators)}"


def _frequency(cpu: agent_pb2.CpuInfo) -> str:
    """The CPU's frequency range and current value; "unknown" for what the host does not
    tell (a VM or container without cpufreq reports zeros, never a real 0 MHz)."""
    if cpu.freq_max_mhz <= 0:
        span = "range unknown"
    else:
        span = f"{cpu.freq_min_mhz:.0f}-{cpu.freq_max_mhz:.0f} MHz"
    now = f"{cpu.freq_current_mhz:.0f} MHz" if cpu.freq_current_mhz > 0 else "unknown"
    return f"{span}, now {now}"


def format_description(desc: agent_pb2.DeviceDescription) -> str:
    cpu = desc.cpu
    rows = [
        ("agent", desc.agent_version),
        ("host", f"{desc.hostname} (fingerprint {desc.host_fingerprint})"),
        ("cpu", f"{cpu.model} [{cpu.architecture}]"),
        ("cores", _cores(cpu)),
        ("frequency", _frequency(cpu)),
        ("memory", f"{desc.memory.total_bytes / 2**30:.1f} GiB"),
        ("os", f"{desc.os.distribution or desc.os.system} / kernel {desc.os.kernel}"),
        ("board", desc.board_model or "-"),
        ("onnxruntime", f"{desc.runtime.onnxruntime_version}: {', '.join(desc.runtime.available_providers)}"
         if desc.runtime.onnxruntime_version else "-"),
        ("gpus", ", ".join(_gpu(g) for g in desc.gpus) or "-"),
    ]
    rows.extend((f"runtime {r.name}", _runtime_info(r)) for r in desc.runtimes
                if r.name != "onnxruntime")
    rows.extend((f"telemetry {t.name}", "yes" if t.available else f"no: {t.reason}")
                for t in desc.telemetry)
    d = desc.defaults
    if d.HasField("intra_op_threads") or d.providers or d.device_class:
        threads = str(d.intra_op_threads) if d.HasField("intra_op_threads") else "-"
        rows.append(("defaults", f"class {d.device_class or '-'}, threads {threads}, "
                                 f"providers {', '.join(d.providers) or '-'}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
