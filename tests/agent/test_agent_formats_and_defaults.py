"""On a real agent: model formats from the bytes, runtimes in Describe, device-side defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fleetnas.agent import errors
from fleetnas.agent.client import sha256_hex
from fleetnas.agent.config import ConfigError
from fleetnas.api.v1 import agent_pb2
from tests.agent.conftest import fast_settings
from tests.agent.test_runtimes import TFLITE_HEAD

NOT_A_MODEL = b"\x00\x00\x00\x00 neither onnx nor tflite" * 8


def test_upload_and_has_models_report_the_format(agent, good_model) -> None:
    server, client = agent
    onnx = client.upload_model(good_model)
    assert onnx.format == agent_pb2.MODEL_FORMAT_ONNX
    tflite = client.upload_model(TFLITE_HEAD + b"\x00" * 64)
    assert tflite.format == agent_pb2.MODEL_FORMAT_TFLITE
    junk = client.upload_model(NOT_A_MODEL)
    assert junk.format == agent_pb2.MODEL_FORMAT_UNRECOGNIZED
    assert client.upload_model(good_model).format == agent_pb2.MODEL_FORMAT_ONNX  # already there
    hashes = [onnx.sha256, "0" * 64, tflite.sha256, junk.sha256]
    response = client.query_models(hashes)
    assert list(response.present) == [onnx.sha256, tflite.sha256, junk.sha256]
    assert list(response.missing) == ["0" * 64]
    assert [(m.sha256, m.format, m.size_bytes) for m in response.present_models] == [
        (onnx.sha256, agent_pb2.MODEL_FORMAT_ONNX, len(good_model)),
        (tflite.sha256, agent_pb2.MODEL_FORMAT_TFLITE, len(TFLITE_HEAD) + 64),
        (junk.sha256, agent_pb2.MODEL_FORMAT_UNRECOGNIZED, len(NOT_A_MODEL)),
    ]


def test_the_result_names_format_runtime_and_version(agent, good_model) -> None:
    server, client = agent
    desc = client.describe()
    assert [r.name for r in desc.runtimes] == ["onnxruntime", "litert"]
    assert desc.runtimes[0].version == desc.runtime.onnxruntime_version
    result = client.benchmark(client.ensure_model(good_model), fast_settings())
    assert result.model_format == agent_pb2.MODEL_FORMAT_ONNX
    assert result.settings.runtime == "onnxruntime"
    assert result.runtime_version == result.onnxruntime_version == desc.runtimes[0].version


def test_bytes_of_no_known_format_are_refused_before_a_worker_runs(agent, good_model) -> None:
    server, client = agent
    sha = client.ensure_model(NOT_A_MODEL)
    with pytest.raises(errors.ModelInvalid, match="neither ONNX .* nor TFLite") as info:
        client.benchmark(sha, fast_settings())
    assert sha[:12] in info.value.message
    assert client.benchmark(client.ensure_model(good_model), fast_settings()).stats.median_ms > 0


def test_a_tflite_model_needs_the_litert_runtime(agent) -> None:
    from fleetnas.agent.settings import resolve_for_description

    server, client = agent
    desc = client.describe()
    sha = client.ensure_model(TFLITE_HEAD + b"\x00" * 64)
    with pytest.raises(errors.InvalidSettings, match="runs ONNX models, not TFLite"):
        client.benchmark(sha, fast_settings(runtime="onnxruntime"))
    if desc.runtimes[1].available:  # ai-edge-litert installed: a TFLite model resolves to it
        resolved = resolve_for_description(fast_settings(), desc,
                                           model_format=agent_pb2.MODEL_FORMAT_TFLITE)
        assert resolved.runtime == "litert" and list(resolved.providers) == ["XNNPACK"]
        return
    with pytest.raises(errors.InvalidSettings, match="runtime='litert'") as info:
        client.benchmark(sha, fast_settings())
    assert "pip install 'fleetnas[litert]'" in info.value.message


def test_device_side_defaults_apply_to_unset_settings_and_say_so(start_agent, good_model) -> None:
    server, client = start_agent(default_threads=2, default_providers=("CPUExecutionProvider",),
                                 device_class="pi4")
    defaults = client.describe().defaults
    assert defaults.intra_op_threads == 2 and list(defaults.providers) == ["CPUExecutionProvider"]
    assert defaults.device_class == "pi4"
    sha = client.ensure_model(good_model)
    unset = client.benchmark(sha, fast_settings())
    assert unset.settings.intra_op_threads == 2
    assert list(unset.settings.agent_defaults) == ["intra_op_threads", "providers"]
    explicit = client.benchmark(sha, fast_settings(intra_op_threads=1))
    assert explicit.settings.intra_op_threads == 1
    assert list(explicit.settings.agent_defaults) == ["providers"]


def test_an_agent_without_defaults_describes_none(agent) -> None:
    server, client = agent
    defaults = client.describe().defaults
    assert not defaults.HasField("intra_op_threads") and not defaults.providers
    assert defaults.device_class == ""


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"default_providers": ("NopeExecutionProvider",)}, "--default-provider NopeExecutionProvider"),
    ({"default_threads": 999}, "--default-threads must be 0..256"),
    ({"device_class": "pi 4; rm"}, "--class 'pi 4; rm' must be"),
    ({"energy_idle_s": -1.0}, "--energy-idle-s must be"),
])  # fmt: skip
def test_bad_device_defaults_are_refused_at_start(start_agent, overrides, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        start_agent(**overrides)


def test_serve_flags_reach_the_config(tmp_path) -> None:
    """The CLI's one-line error names the flag (and the agent does not start)."""
    done = subprocess.run(
        [sys.executable, "-m", "fleetnas.agent.cli", "serve", "--port", "0", "--cache-dir",
         str(tmp_path), "--default-threads", "4", "--class", "pi4", "--default-provider",
         "CPUExecutionProvider", "--default-provider", "NopeExecutionProvider"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--default-provider NopeExecutionProvider is not available here" in done.stderr
    assert "CPUExecutionProvider" in done.stderr


def test_resolving_against_the_description_matches_the_agent(start_agent, good_model) -> None:
    """What the controller computes from Describe is what the agent echoes."""
    from fleetnas.agent.settings import resolve_for_description

    server, client = start_agent(default_threads=2)
    request = fast_settings(seed=3)
    expected = resolve_for_description(request, client.describe())
    result = client.benchmark(client.ensure_model(good_model), request)
    assert result.settings == expected
    assert sha256_hex(good_model) == result.model_sha256
