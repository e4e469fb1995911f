"""resolve_settings: defaults filled, caps applied, each invalid case named."""

from __future__ import annotations

import math

import pytest

from fleetnas.agent import settings as settings_mod
from fleetnas.agent.errors import InvalidSettings
from fleetnas.agent.settings import DEFAULTS, check_resolved, resolve_settings
from fleetnas.api.v1 import agent_pb2

AVAILABLE = ["CPUExecutionProvider", "AzureExecutionProvider"]
MAX_TIMEOUT = 120.0
CAP = 2 * 1024**3


def resolve(**fields) -> agent_pb2.BenchmarkSettings:
    return resolve_settings(
        agent_pb2.BenchmarkSettings(**fields),
        max_timeout_s=MAX_TIMEOUT,
        memory_cap_bytes=CAP,
        available_providers=AVAILABLE,
    )


def test_empty_request_gets_every_default() -> None:
    out = resolve()
    check_resolved(out)
    for setting in DEFAULTS:
        if setting.name in ("providers",):
            assert tuple(out.providers) == setting.default
        elif setting.default is not None and setting.name != "max_duration_s":
            assert getattr(out, setting.name) == setting.default, setting.name
    assert out.max_duration_s == min(settings_mod.DEFAULT_MAX_DURATION_S, MAX_TIMEOUT / 2)
    assert out.timeout_s == MAX_TIMEOUT
    assert out.memory_cap_bytes == CAP
    assert out.graph_optimization == agent_pb2.GRAPH_OPTIMIZATION_ALL
    assert out.method == agent_pb2.METHOD_PLAIN
    assert out.intra_op_threads == 1 and out.inter_op_threads == 1


def test_every_optional_field_is_set() -> None:
    out = resolve()
    for field in agent_pb2.BenchmarkSettings.DESCRIPTOR.fields:
        if field.has_presence and field.containing_oneof is not None:
            assert out.HasField(field.name), field.name


def test_request_is_not_modified_and_explicit_values_kept() -> None:
    req = agent_pb2.BenchmarkSettings(
        warmup_runs=0,
        min_runs=3,
        max_runs=7,
        min_duration_s=0.0,
        max_duration_s=1.5,
        intra_op_threads=2,
        inter_op_threads=0,
        seed=42,
        graph_optimization=agent_pb2.GRAPH_OPTIMIZATION_DISABLE,
        method=agent_pb2.METHOD_PAIRED,
        providers=["CPUExecutionProvider"],
        input_shapes=[agent_pb2.InputShape(name="x", dims=[4, 16])],
    )
    copy = agent_pb2.BenchmarkSettings()
    copy.CopyFrom(req)
    out = resolve_settings(
        req, max_timeout_s=MAX_TIMEOUT, memory_cap_bytes=CAP, available_providers=AVAILABLE
    )
    assert req == copy
    assert (out.warmup_runs, out.min_runs, out.max_runs) == (0, 3, 7)
    assert (out.min_duration_s, out.max_duration_s) == (0.0, 1.5)
    assert (out.intra_op_threads, out.inter_op_threads, out.seed) == (2, 0, 42)
    assert out.graph_optimization == agent_pb2.GRAPH_OPTIMIZATION_DISABLE
    assert out.method == agent_pb2.METHOD_PAIRED
    assert [(s.name, list(s.dims)) for s in out.input_shapes] == [("x", [4, 16])]


def test_caps_applied() -> None:
    out = resolve(timeout_s=10_000.0, memory_cap_bytes=CAP * 10)
    assert out.timeout_s == MAX_TIMEOUT
    assert out.memory_cap_bytes == CAP
    out = resolve(timeout_s=5.0, memory_cap_bytes=256 * 1024**2)
    assert out.timeout_s == 5.0
    assert out.memory_cap_bytes == 256 * 1024**2
    # the default max duration leaves room inside a short timeout
    assert out.max_duration_s <= 2.5


def test_defaults_yield_to_explicit_values() -> None:
    assert resolve(max_runs=5).min_runs == 5
    assert resolve(min_runs=50_000).max_runs == 50_000
    assert resolve(max_duration_s=0.2).min_duration_s == 0.2
    out = resolve(min_duration_s=20.0)
    assert out.max_duration_s >= out.min_duration_s


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        (dict(min_runs=50, max_runs=10), "min_runs"),
        (dict(max_runs=0), "max_runs"),
        (dict(min_runs=0), "min_runs"),
        (dict(max_runs=10**9), "max_runs"),
        (dict(min_duration_s=5.0, max_duration_s=1.0), "min_duration_s"),
        (dict(min_duration_s=-1.0), "min_duration_s"),
        (dict(max_duration_s=-1.0), "max_duration_s"),
        (dict(max_duration_s=0.0), "max_duration_s"),
        (dict(min_duration_s=math.nan), "min_duration_s"),
        (dict(max_duration_s=math.nan), "max_duration_s"),
        (dict(max_duration_s=math.inf), "max_duration_s"),
        (dict(max_duration_s=500.0), "max_duration_s"),  # past the (capped) timeout
        (dict(timeout_s=0.0), "timeout_s"),
        (dict(timeout_s=-3.0), "timeout_s"),
        (dict(timeout_s=math.nan), "timeout_s"),
        (dict(memory_cap_bytes=1000), "memory_cap_bytes"),
        (dict(intra_op_threads=1000), "intra_op_threads"),
        (dict(inter_op_threads=257), "inter_op_threads"),
        (dict(warmup_runs=10**7), "warmup_runs"),
        (dict(providers=["CUDAExecutionProvider"]), "providers"),
        (dict(providers=["CPUExecutionProvider", "CPUExecutionProvider"]), "providers"),
        (dict(graph_optimization=99), "graph_optimization"),
        (dict(method=7), "method"),
        (dict(input_shapes=[agent_pb2.InputShape(name="x", dims=[1, 0])]), "input_shapes[x]"),
        (dict(input_shapes=[agent_pb2.InputShape(name="x", dims=[-1, 4])]), "input_shapes[x]"),
        (
            dict(
                input_shapes=[
                    agent_pb2.InputShape(name="x", dims=[1]),
                    agent_pb2.InputShape(name="x", dims=[2]),
                ]
            ),
            "input_shapes.name",
        ),
        (dict(input_shapes=[agent_pb2.InputShape(name="", dims=[2])]), "input_shapes.name"),
    ],
)
def test_invalid_settings_name_the_field(fields: dict, named: str) -> None:
    with pytest.raises(InvalidSettings) as info:
        resolve(**fields)
    assert named in info.value.message
    assert "must" in info.value.message or "available" in info.value.message


def test_unknown_provider_lists_available_ones() -> None:
    with pytest.raises(InvalidSettings) as info:
        resolve(providers=["TensorrtExecutionProvider"])
    for name in AVAILABLE:
        assert name in info.value.message


def test_agent_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        resolve_settings(
            agent_pb2.BenchmarkSettings(),
            max_timeout_s=0,
            memory_cap_bytes=CAP,
            available_providers=AVAILABLE,
        )


def test_check_resolved_rejects_unresolved() -> None:
    with pytest.raises(ValueError, match="unset"):
        check_resolved(agent_pb2.BenchmarkSettings(min_runs=3))
