"""On the wire: settings past validation still get a precise, permanent, path-free status.

The runner-level tests of the same bounds are in ``test_runner.py``.
"""

from __future__ import annotations

import grpc
import pytest

from fleetnas.api.v1 import agent_pb2
from tests import onnx_models
from tests.agent.conftest import fast_settings, raw_stub, reason_of
from tests.agent.test_runner import assert_client_safe


def test_on_the_wire_ten_thousand_shapes_are_a_permanent_error_without_paths(agent) -> None:
    server, client = agent
    sha = client.ensure_model(onnx_models.mlp(width=32, depth=2))
    request = agent_pb2.BenchmarkRequest(
        model_sha256=sha,
        settings=fast_settings(input_shapes=[
            agent_pb2.InputShape(name=f"in{i:05d}", dims=[1, 32]) for i in range(10_000)
        ]),
    )  # fmt: skip
    channel, stub, md = raw_stub(server.port)
    with pytest.raises(grpc.RpcError) as info:
        stub.Benchmark(request, timeout=120, metadata=md)
    channel.close()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert reason_of(info.value) == "ERROR_REASON_INVALID_SETTINGS"
    assert len(info.value.details()) < 2000
    assert_client_safe(info.value.details(), str(server.config.cache_dir))
