"""Plain-text rendering of benchmark results (the agent install has no rich)."""

from __future__ import annotations

from fleetnas.api.v1 import agent_pb2


def _rows(result: agent_pb2.BenchmarkResult) -> list[tuple[str, str]]:
    s = result.stats
    st = result.settings
    method = agent_pb2.Method.Name(st.method).removeprefix("METHOD_").lower()
    rows = [
        ("model", result.model_sha256[:16]),
        ("provider", result.provider),
        ("method", method),
        ("threads (intra/inter)", f"{st.intra_op_threads}/{st.inter_op_threads}"),
        ("runs", str(len(result.samples_ms))),
        ("median", f"{s.median_ms:.4f} ms"),
        ("mean", f"{s.mean_ms:.4f} ms"),
        ("p90 / p99", f"{s.p90_ms:.4f} / {s.p99_ms:.4f} ms"),
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
    for warning in result.warnings:
        rows.append(("warning", warning))
    return rows


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


def format_description(desc: agent_pb2.DeviceDescription) -> str:
    cpu = desc.cpu
    rows = [
        ("agent", desc.agent_version),
        ("host", f"{desc.hostname} (fingerprint {desc.host_fingerprint})"),
        ("cpu", f"{cpu.model} [{cpu.architecture}]"),
        ("cores", _cores(cpu)),
        ("frequency", f"{cpu.freq_min_mhz:.0f}-{cpu.freq_max_mhz:.0f} MHz, now {cpu.freq_current_mhz:.0f}"),
        ("memory", f"{desc.memory.total_bytes / 2**30:.1f} GiB"),
        ("os", f"{desc.os.distribution or desc.os.system} / kernel {desc.os.kernel}"),
        ("board", desc.board_model or "-"),
        ("onnxruntime", f"{desc.runtime.onnxruntime_version}: {', '.join(desc.runtime.available_providers)}"),
        ("gpus", ", ".join(g.name for g in desc.gpus) or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
