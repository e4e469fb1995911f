"""Token authentication for the agent's gRPC server.

Clients send ``authorization: Bearer <token>`` metadata. The server compares
the presented token with its own in constant time (``hmac.compare_digest``)
and answers UNAUTHENTICATED, with a reason in trailing metadata, when it is
missing or wrong. The standard health service is exempt so load balancers
and the controller's heartbeats can probe liveness without secrets; it
reveals nothing but SERVING / NOT_SERVING.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

from fleetnas.agent.errors import REASON_METADATA_KEY, Unauthenticated

AUTH_METADATA_KEY = "authorization"
_EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)


def bearer(token: str) -> tuple[str, str]:
    """The metadata pair a client sends for ``token``."""
    return (AUTH_METADATA_KEY, f"Bearer {token}")


def _deny(message: str) -> grpc.RpcMethodHandler:
    def abort(_request: Any, context: grpc.ServicerContext) -> None:
        context.set_trailing_metadata(((REASON_METADATA_KEY, Unauthenticated("").reason_name),))
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    # A unary handler serves both unary and (by not reading) streaming requests
    # well enough to deliver the status; streams get a stream handler.
    return grpc.unary_unary_rpc_method_handler(abort)


def _deny_stream(message: str) -> grpc.RpcMethodHandler:
    def abort(_request_iterator: Any, context: grpc.ServicerContext) -> None:
        context.set_trailing_metadata(((REASON_METADATA_KEY, Unauthenticated("").reason_name),))
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.stream_unary_rpc_method_handler(abort)


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Rejects calls whose bearer token does not match ``token``."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("token must be non-empty")
        self._expected = token.encode()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method.startswith(_EXEMPT_PREFIXES):
            return continuation(handler_call_details)
        presented = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == AUTH_METADATA_KEY:
                presented = value if isinstance(value, str) else value.decode(errors="replace")
        if presented is None:
            message = "missing token: pass --token or set FLEETNAS_AGENT_TOKEN on the client"
        elif not presented.startswith("Bearer "):
            message = "malformed authorization metadata: expected 'Bearer <token>'"
        elif hmac.compare_digest(presented[len("Bearer ") :].encode(), self._expected):
            return continuation(handler_call_details)
        else:
            message = "wrong token: check FLEETNAS_AGENT_TOKEN matches the agent's token"
        if method.endswith("/UploadModel"):
            return _deny_stream(message)
        return _deny(message)
