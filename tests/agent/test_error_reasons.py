"""Every ErrorReason has one named error, and it survives the wire both ways.

A real gRPC server on loopback aborts with each server-side error class
(``errors.abort_with``); the client side (``errors.from_rpc_error``) must
give back the same class, status code, message and ``transient`` flag.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from fleetnas.agent import errors
from fleetnas.api.v1 import agent_pb2

SERVER_ERRORS = errors._SERVER_ERRORS  # the classes a server raises


@pytest.fixture(scope="module")
def failing_server() -> Iterator[grpc.Channel]:
    """A server whose method ``/t/Fail`` aborts with the error class named in the request."""
    by_name = {cls.__name__: cls for cls in SERVER_ERRORS}

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        cls = by_name[request.decode()]
        errors.abort_with(context, cls(f"{cls.__name__} from the server"))
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "t", {"Fail": grpc.unary_unary_rpc_method_handler(fail)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()
    server.stop(grace=None)


def test_every_reason_has_exactly_one_server_error() -> None:
    reasons = [cls.reason for cls in SERVER_ERRORS]
    assert len(reasons) == len(set(reasons))
    named = set(agent_pb2.ErrorReason.values()) - {agent_pb2.ERROR_REASON_UNSPECIFIED}
    assert set(reasons) == named


@pytest.mark.parametrize("cls", SERVER_ERRORS, ids=lambda c: c.__name__)
def test_the_client_gets_the_same_error_back(
    failing_server: grpc.Channel, cls: type[errors.AgentError]
) -> None:
    call = failing_server.unary_unary("/t/Fail")
    with pytest.raises(grpc.RpcError) as caught:
        call(cls.__name__.encode(), timeout=10)
    assert caught.value.code() == cls.code
    back = errors.from_rpc_error(caught.value)
    assert type(back) is cls
    assert back.message == f"{cls.__name__} from the server"
    assert back.transient == cls.transient


@pytest.mark.parametrize("cls", [errors.DeviceLost, errors.DeviceNotFound,
                                 errors.DeviceOffline], ids=lambda c: c.__name__)
def test_a_phone_that_may_come_back_is_transient(cls: type[errors.AgentError]) -> None:
    assert cls.transient and cls.code == grpc.StatusCode.UNAVAILABLE
    assert issubclass(cls, errors.AndroidError)


def test_a_phone_that_needs_a_person_is_not_transient() -> None:
    for cls in (errors.DeviceUnauthorized, errors.PhoneBusy, errors.BinaryMissing,
                errors.BinaryNotExecutable, errors.AdbNotFound):
        assert not cls.transient and cls.code == grpc.StatusCode.FAILED_PRECONDITION, cls
