"""Precise statuses through a real agent on loopback: the right reason, a detail that names
what is wrong, and the agent serving on.
"""

from __future__ import annotations

import hashlib
import os

import grpc
import onnxruntime
import pytest

from fleetnas.api.v1 import agent_pb2
from tests import onnx_models
from tests.agent.conftest import fast_settings, raw_stub
from tests.agent.test_bad_input import _benchmark_call, _expect, _still_serves, _upload_raw


def _fails(agent, model: bytes, settings, code: grpc.StatusCode, reason: str, *fragments: str):
    server, client = agent
    sha = client.ensure_model(model)
    channel, stub, md = raw_stub(server.port)
    err = _expect(_benchmark_call(stub, md, sha, settings), code, reason, *fragments)
    channel.close()
    return err.details()


def test_a_scalar_bool_input_is_benchmarked(agent, good_model) -> None:
    _, client = agent
    result = client.benchmark(client.ensure_model(onnx_models.scalar_bool()), fast_settings())
    assert [(list(i.dims), i.element_type) for i in result.inputs] == [([], "bool")]
    assert len(result.samples_ms) >= 5 and result.stats.median_ms > 0


def test_huge_input_shapes_are_invalid_settings_naming_input_and_size(agent, good_model) -> None:
    # 2^31 - 1: the largest dim settings validation lets through (agent-service caps it there);
    # the worker's own check covers anything larger too (tests/agent/test_runner.py).
    dim = 2**31 - 1
    huge = fast_settings(input_shapes=[agent_pb2.InputShape(name="x", dims=[dim, dim])])
    detail = _fails(agent, onnx_models.relu(["rows", "cols"]), huge,
                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SETTINGS",
                    "'x'", f"{dim * dim * 4} bytes", "memory cap")  # fmt: skip
    assert "internal" not in detail.lower()
    _still_serves(agent[1], good_model)


def test_a_model_whose_own_input_is_over_the_cap_is_memory_cap(agent, good_model) -> None:
    _fails(agent, onnx_models.relu([2**40]), fast_settings(),
           grpc.StatusCode.RESOURCE_EXHAUSTED, "MEMORY_CAP", "'x'", f"{2**42} bytes")  # fmt: skip
    _still_serves(agent[1], good_model)


@pytest.mark.parametrize(
    "model,fragment",
    [(onnx_models.gather_out_of_range(), "indices"), (onnx_models.no_outputs(), "no outputs")],
    ids=["gather-out-of-range", "no-outputs"],
)
def test_a_model_that_cannot_run_is_model_invalid_without_shapes(
    agent, good_model, model: bytes, fragment: str
) -> None:
    detail = _fails(agent, model, fast_settings(), grpc.StatusCode.INVALID_ARGUMENT,
                    "MODEL_INVALID", fragment)  # fmt: skip
    assert "input_shapes" not in detail  # no shapes were given: the settings are not to blame
    _still_serves(agent[1], good_model)


def test_the_provider_reported_is_the_one_that_ran_the_nodes(agent) -> None:
    # The stock onnxruntime wheel registers the Azure provider, which runs no ordinary node.
    assert "AzureExecutionProvider" in onnxruntime.get_available_providers()
    _, client = agent
    sha = client.ensure_model(onnx_models.mlp(width=32, depth=2))
    result = client.benchmark(sha, fast_settings(providers=["AzureExecutionProvider"]))
    assert result.provider == "CPUExecutionProvider"
    assert list(result.settings.providers) == ["AzureExecutionProvider"]
    assert any("requested provider AzureExecutionProvider" in w and "CPUExecutionProvider" in w
               for w in result.warnings), list(result.warnings)  # fmt: skip
    plain = client.benchmark(sha, fast_settings())
    assert plain.provider == "CPUExecutionProvider"
    assert not any("provider" in w for w in plain.warnings)


def test_a_failed_upload_that_declared_much_and_sent_little_evicts_nothing(start_agent) -> None:
    server, client = start_agent(cache_budget_mb=8, max_model_mb=4)
    cached = [os.urandom(3 * 2**20), os.urandom(3 * 2**20)]
    hashes = [client.ensure_model(data) for data in cached]
    channel, stub, md = raw_stub(server.port)
    one_byte = b"x"
    _expect(lambda: _upload_raw(stub, md, one_byte, sha=hashlib.sha256(b"y").hexdigest(),
                                total=4 * 2**20),
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UPLOAD", "after 1 of the declared")  # fmt: skip
    channel.close()
    present, missing = client.has_models(hashes)
    assert present == hashes and missing == []
