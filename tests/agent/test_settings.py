"""resolve_settings: defaults filled, caps applied, each invalid case named."""

from __future__ import annotations

import math
import re

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
        if setting.repeated:
            assert tuple(getattr(out, setting.name)) == setting.default
        elif setting.default is not None and setting.name not in ("max_duration_s", "runtime"):
            assert getattr(out, setting.name) == setting.default, setting.name
    assert out.max_duration_s == min(settings_mod.DEFAULT_MAX_DURATION_S, MAX_TIMEOUT / 2)
    assert out.timeout_s == MAX_TIMEOUT
    assert out.memory_cap_bytes == CAP
    assert out.graph_optimization == agent_pb2.GRAPH_OPTIMIZATION_ALL
    assert out.method == agent_pb2.METHOD_PLAIN
    assert out.intra_op_threads == 1 and out.inter_op_threads == 1
    assert out.runtime == "onnxruntime"  # by the format (ONNX when none is given)
    assert not out.profile and out.profile_runs == 10 and not out.agent_defaults


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


def test_the_table_lists_every_field_once_with_a_spelling() -> None:
    from fleetnas.agent.settings import SETTINGS, flag_settings, identity_fields, run_limit_fields

    names = [s.name for s in SETTINGS]
    assert sorted(names) == sorted(f.name for f in agent_pb2.BenchmarkSettings.DESCRIPTOR.fields)
    flags = flag_settings()
    assert len({s.flag for s in flags}) == len({s.keyword for s in flags}) == len(flags)
    assert {s.name for s in SETTINGS} - {s.name for s in flags} == {"memory_cap_bytes",
                                                                    "agent_defaults"}
    assert set(run_limit_fields()) == {"timeout_s", "memory_cap_bytes", "profile",
                                       "profile_runs", "agent_defaults"}
    assert set(identity_fields()) | set(run_limit_fields()) == set(names)
    for s in SETTINGS:
        assert s.help and "default" not in s.help.lower(), s.name  # the table adds it
        assert s.help_text().endswith(f"(default: {s.default_shown()})")


def test_help_shows_the_tables_defaults() -> None:
    from fleetnas.agent.settings import setting

    assert setting("warmup_runs").help_text().endswith("(default: 10)")
    assert setting("graph_optimization").help_text().endswith("(default: all)")
    assert setting("method").help_text().endswith("(default: plain)")
    assert setting("providers").help_text().endswith("(default: CPUExecutionProvider)")


def test_argparse_flags_keywords_and_pairs_spell_the_same_request() -> None:
    import argparse

    from fleetnas.agent.settings_args import (
        add_settings_flags,
        build_settings,
        settings_from_namespace,
        settings_from_pairs,
    )

    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    args = parser.parse_args(["--threads", "2", "--opt-level", "basic", "--shape", "x=1x3",
                              "--provider", "A", "--provider", "B", "--min-duration", "0.2",
                              "--method", "paired", "--profile", "--profile-runs", "5",
                              "--runtime", "litert"])
    from_flags = settings_from_namespace(args)
    from_pairs = settings_from_pairs([("threads", "2"), ("opt-level", "basic"),
                                      ("shape", "x=1x3"), ("provider", "A"), ("provider", "B"),
                                      ("min_duration", "0.2"), ("--method", "paired"),
                                      ("profile", "true"), ("profile-runs", "5"),
                                      ("runtime", "litert")])
    from_keywords = build_settings(threads=2, opt_level="basic", shapes=["x=1x3"],
                                   providers=["A", "B"], min_duration=0.2, method="paired",
                                   profile=True, profile_runs=5, runtime="litert")
    assert from_flags == from_pairs == from_keywords
    assert from_flags.profile and from_flags.profile_runs == 5 and not from_flags.fp16
    assert not settings_from_namespace(parser.parse_args([])).profile  # a switch: absent = unset
    assert from_flags.intra_op_threads == 2
    assert from_flags.graph_optimization == agent_pb2.GRAPH_OPTIMIZATION_BASIC
    assert list(from_flags.providers) == ["A", "B"]
    assert [(s.name, list(s.dims)) for s in from_flags.input_shapes] == [("x", [1, 3])]
    assert not from_flags.HasField("warmup_runs")  # unset stays unset


@pytest.mark.parametrize("pairs,fragment", [
    ([("thread", "2")], "no benchmark setting 'thread'; keys: warmup, min-runs"),
    ([("threads", "two")], "threads='two' is not a int"),
    ([("opt-level", "fast")], "choose one of disable, basic, extended, all"),
    ([("shape", "x")], "bad shape"),
    ([("profile", "maybe")], "profile='maybe' is not a bool"),
])
def test_bad_pairs_name_the_key(pairs, fragment) -> None:
    from fleetnas.agent.settings_args import settings_from_pairs

    with pytest.raises(ValueError, match=re.escape(fragment)):
        settings_from_pairs(pairs)


# -- runtimes, device-side defaults, profiles, fp16 --------------------------------------

ORT = agent_pb2.RuntimeInfo(name="onnxruntime", version="1.2", available=True,
                            accelerators=AVAILABLE, formats=[agent_pb2.MODEL_FORMAT_ONNX])
LITERT = agent_pb2.RuntimeInfo(name="litert", version="2.3", available=True,
                               accelerators=["XNNPACK", "GPU"],
                               formats=[agent_pb2.MODEL_FORMAT_TFLITE])
NO_LITERT = agent_pb2.RuntimeInfo(name="litert", available=False,
                                  reason="ai-edge-litert is not installed: pip install x",
                                  formats=[agent_pb2.MODEL_FORMAT_TFLITE])


def resolve_with(request: agent_pb2.BenchmarkSettings | None = None, *, runtimes=(ORT, LITERT),
                 defaults=None, model_format=agent_pb2.MODEL_FORMAT_ONNX):
    return resolve_settings(request or agent_pb2.BenchmarkSettings(), max_timeout_s=MAX_TIMEOUT,
                            memory_cap_bytes=CAP, available_providers=AVAILABLE,
                            runtimes=list(runtimes), defaults=defaults, model_format=model_format)


def test_the_runtime_follows_the_format_and_its_default_accelerator() -> None:
    onnx = resolve_with()
    assert onnx.runtime == "onnxruntime" and list(onnx.providers) == ["CPUExecutionProvider"]
    tflite = resolve_with(model_format=agent_pb2.MODEL_FORMAT_TFLITE)
    assert tflite.runtime == "litert" and list(tflite.providers) == ["XNNPACK"]
    check_resolved(tflite)


@pytest.mark.parametrize("request_fields,model_format,runtimes,fragments", [
    ({"runtime": "tvm"}, agent_pb2.MODEL_FORMAT_ONNX, (ORT, LITERT),
     ["runtime='tvm'", "runtimes: ['onnxruntime', 'litert']"]),
    ({}, agent_pb2.MODEL_FORMAT_TFLITE, (ORT, NO_LITERT),
     ["runtime='litert'", "not available", "pip install"]),
    ({"runtime": "litert"}, agent_pb2.MODEL_FORMAT_ONNX, (ORT, LITERT),
     ["runtime='litert'", "runs TFLite models, not ONNX"]),
    ({"providers": ["CUDAExecutionProvider"]}, agent_pb2.MODEL_FORMAT_TFLITE, (ORT, LITERT),
     ["for runtime litert", "available: ['XNNPACK', 'GPU']"]),
    ({"fp16": True}, agent_pb2.MODEL_FORMAT_ONNX, (ORT, LITERT),
     ["fp16=True", "TensorrtExecutionProvider"]),
    ({"profile": True, "profile_runs": 0}, agent_pb2.MODEL_FORMAT_ONNX, (ORT, LITERT),
     ["profile_runs=0", "between 1 and 1000"]),
    ({}, agent_pb2.MODEL_FORMAT_UNRECOGNIZED, (ORT, LITERT),
     ["no runtime runs unrecognized models"]),
])  # fmt: skip
def test_bad_runtime_requests_name_the_field_and_the_fix(request_fields, model_format, runtimes,
                                                         fragments) -> None:
    with pytest.raises(InvalidSettings) as info:
        resolve_with(agent_pb2.BenchmarkSettings(**request_fields), runtimes=runtimes,
                     model_format=model_format)
    for fragment in fragments:
        assert fragment in info.value.message


def test_fp16_with_a_provider_that_has_the_switch() -> None:
    trt = agent_pb2.RuntimeInfo()
    trt.CopyFrom(ORT)
    trt.accelerators.append("TensorrtExecutionProvider")
    out = resolve_with(agent_pb2.BenchmarkSettings(fp16=True, providers=[
        "TensorrtExecutionProvider", "CPUExecutionProvider"]), runtimes=(trt,))
    assert out.fp16
    gpu = resolve_with(agent_pb2.BenchmarkSettings(fp16=True, providers=["GPU"]),
                       model_format=agent_pb2.MODEL_FORMAT_TFLITE)
    assert gpu.fp16


def test_device_defaults_fill_unset_threads_and_providers_and_say_so() -> None:
    defaults = agent_pb2.DeviceDefaults(intra_op_threads=4, providers=["AzureExecutionProvider"],
                                        device_class="pi4")
    out = resolve_with(defaults=defaults)
    assert out.intra_op_threads == 4 and list(out.providers) == ["AzureExecutionProvider"]
    assert list(out.agent_defaults) == ["intra_op_threads", "providers"]
    explicit = resolve_with(agent_pb2.BenchmarkSettings(
        intra_op_threads=1, providers=["CPUExecutionProvider"]), defaults=defaults)
    assert explicit.intra_op_threads == 1 and list(explicit.providers) == ["CPUExecutionProvider"]
    assert not explicit.agent_defaults
    # the default providers are onnxruntime's: a TFLite model keeps LiteRT's own default
    tflite = resolve_with(defaults=defaults, model_format=agent_pb2.MODEL_FORMAT_TFLITE)
    assert list(tflite.providers) == ["XNNPACK"] and list(tflite.agent_defaults) == [
        "intra_op_threads"]
    # a request's own agent_defaults is output only: ignored
    echoed = resolve_with(agent_pb2.BenchmarkSettings(agent_defaults=["seed"]))
    assert not echoed.agent_defaults


def test_resolving_for_a_description_matches_the_agent() -> None:
    from fleetnas.agent.settings import resolve_for_description

    description = agent_pb2.DeviceDescription(
        runtime=agent_pb2.RuntimeInfo(available_providers=AVAILABLE), runtimes=[ORT, LITERT],
        limits=agent_pb2.AgentLimits(max_timeout_s=MAX_TIMEOUT, memory_cap_bytes=CAP),
        defaults=agent_pb2.DeviceDefaults(intra_op_threads=3))
    request = agent_pb2.BenchmarkSettings(seed=5)
    assert resolve_for_description(request, description) == resolve_with(
        request, defaults=description.defaults)
    v1 = agent_pb2.DeviceDescription()  # an agent that predates runtimes and defaults
    v1.CopyFrom(description)
    v1.ClearField("runtimes")
    v1.ClearField("defaults")
    assert resolve_for_description(request, v1) == resolve(seed=5)


def test_identity_drops_run_limits_profiling_and_the_v1_runtime() -> None:
    from fleetnas.agent.settings import identity_settings

    new = resolve_with(agent_pb2.BenchmarkSettings(profile=True, timeout_s=30.0))
    v1_echo = agent_pb2.BenchmarkSettings()
    v1_echo.CopyFrom(new)
    for name in ("runtime", "profile", "profile_runs", "agent_defaults"):
        v1_echo.ClearField(name)  # a v1 agent's echo has none of these
    v1_echo.timeout_s = 99.0
    v1_echo.method = agent_pb2.METHOD_UNSPECIFIED
    assert identity_settings(new) == identity_settings(v1_echo)
    assert not identity_settings(new).HasField("timeout_s")
    litert = resolve_with(model_format=agent_pb2.MODEL_FORMAT_TFLITE)
    assert identity_settings(litert).runtime == "litert"
    assert identity_settings(resolve_with(defaults=agent_pb2.DeviceDefaults(
        intra_op_threads=1))) == identity_settings(resolve_with())
