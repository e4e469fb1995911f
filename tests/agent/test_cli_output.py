"""What the CLIs print: --json keeps zero/false fields and 64-bit integers as numbers; describe says
"unknown" for what the host does not tell."""

from __future__ import annotations

import json

from fleetnas.agent.proto_json import message_dict
from fleetnas.api.v1 import agent_pb2


def test_zero_and_false_fields_are_printed_and_int64_stay_numbers() -> None:
    status = agent_pb2.AgentStatus(busy=False, queue_length=0, cache_bytes=123_456_789_012)
    data = json.loads(json.dumps(message_dict(status)))
    assert data["busy"] is False and data["queue_length"] == 0
    assert data["cache_bytes"] == 123_456_789_012 and isinstance(data["cache_bytes"], int)


def test_nested_repeated_and_optional_fields() -> None:
    result = agent_pb2.BenchmarkResult(
        samples_ms=[1.5, 2.0], peak_rss_bytes=2**40,
        state_before=agent_pb2.DeviceState(memory_available_bytes=2**35),
        settings=agent_pb2.BenchmarkSettings(intra_op_threads=0),
    )
    data = message_dict(result)
    assert data["samples_ms"] == [1.5, 2.0] and data["peak_rss_bytes"] == 2**40
    assert data["state_before"]["memory_available_bytes"] == 2**35
    assert data["settings"]["intra_op_threads"] == 0  # optional, set to zero: printed
    assert "warmup_runs" not in data["settings"]  # optional, never set: not reported


def test_describe_says_unknown_for_frequencies_the_host_does_not_tell() -> None:
    from fleetnas.agent.report import format_description

    blank = agent_pb2.DeviceDescription(cpu=agent_pb2.CpuInfo(model="vm cpu"))
    assert "0-0 MHz" not in format_description(blank)
    assert "range unknown, now unknown" in format_description(blank)
    known = agent_pb2.DeviceDescription(
        cpu=agent_pb2.CpuInfo(freq_min_mhz=600, freq_max_mhz=1800, freq_current_mhz=1500))
    assert "600-1800 MHz, now 1500 MHz" in format_description(known)
