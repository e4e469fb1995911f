"""Per-RPC-kind budgets: a flood of one kind of call cannot starve the others.

The agent's gRPC server runs every handler on one thread pool. Each RPC kind
(one method: Benchmark, UploadModel, Status, ..., the health Check) has a
budget of handler threads it may hold at once (sizes:
:meth:`AgentConfig.thread_budgets`). A call past its kind's budget is refused
at once, holding its thread only for that, with RESOURCE_EXHAUSTED and reason
``AGENT_OVERLOADED`` (:class:`~fleetnas.agent.errors.AgentOverloaded`,
transient: retry with backoff). The pool has one thread per budget slot of
every kind (:attr:`AgentConfig.handler_threads`), so a call within its kind's
budget never waits for a thread that another kind holds: a flood of Status
calls leaves every thread Benchmark, UploadModel and HasModels are entitled
to, and a flood of uploads leaves those of Status and health.

The health Watch stream holds no thread (grpc-health answers it from
callbacks); its budget counts open streams instead, each released when its
stream ends, because every open stream counts against gRPC's own limit of
concurrent RPCs.

Budgets apply after authentication (the token interceptor runs first), so
unauthenticated calls never spend them. Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from grpc_health.v1 import health as grpc_health

from fleetnas.agent.errors import AgentOverloaded, abort_with
from fleetnas.api.v1 import agent_pb2

AGENT_SERVICE = agent_pb2.DESCRIPTOR.services_by_name["Agent"].full_name
HEALTH_SERVICE = grpc_health.SERVICE_NAME
#: open health Watch streams at once (they hold no thread, see the module docstring)
WATCH_STREAMS = 4


def method_path(service: str, method: str) -> str:
    """The gRPC method path of ``service``'s ``method``: ``/pkg.Service/Method``."""
    return f"/{service}/{method}"


class Budget:
    """How many calls of one RPC kind may be in progress at once.

    ``hint`` ends the refusal's message: what an operator may raise, or
    what a client should do.
    """

    def __init__(self, kind: str, limit: int, hint: str) -> None:
        if limit < 1:
            raise ValueError(f"the budget of {kind} must be at least 1, got {limit}")
        self.kind = kind
        self.limit = limit
        self.hint = hint
        self._slots = threading.BoundedSemaphore(limit)

    def try_acquire(self) -> bool:
        """Take a slot if one is free; never blocks."""
        return self._slots.acquire(blocking=False)

    def release(self) -> None:
        self._slots.release()

    def overloaded(self) -> AgentOverloaded:
        return AgentOverloaded(
            f"agent overloaded: {self.limit} {self.kind} calls already in progress; "
            f"retry with backoff ({self.hint})"
        )


def _guard_call(behavior: Callable[..., Any], budget: Budget) -> Callable[..., Any]:
    """A handler that holds a slot of ``budget`` while ``behavior`` runs (unary responses)."""

    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        if not budget.try_acquire():
            abort_with(context, budget.overloaded())
        try:
            return behavior(request, context)
        finally:
            budget.release()

    return guarded


def _guard_generator(behavior: Callable[..., Any], budget: Budget) -> Callable[..., Any]:
    """Like :func:`_guard_call` for a response stream: the slot is held until it ends."""

    def guarded(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        if not budget.try_acquire():
            abort_with(context, budget.overloaded())
        try:
            yield from behavior(request, context)
        finally:
            budget.release()

    return guarded


def _guard_open_stream(behavior: Callable[..., Any], budget: Budget) -> Callable[..., Any]:
    """For gRPC's non-blocking stream handlers: the slot is held until the RPC terminates."""

    def guarded(
        request: Any, context: grpc.ServicerContext, send_response_callback: Any = None
    ) -> Any:
        if not budget.try_acquire():
            abort_with(context, budget.overloaded())
        if not context.add_callback(budget.release):  # already terminated
            budget.release()
        return behavior(request, context, send_response_callback=send_response_callback)

    # gRPC passes send_response_callback only to handlers marked so.
    setattr(guarded, "experimental_non_blocking", True)  # noqa: B010
    setattr(  # noqa: B010
        guarded, "experimental_thread_pool", getattr(behavior, "experimental_thread_pool", None)
    )
    return guarded


_HANDLER_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def _guarded_handler(handler: grpc.RpcMethodHandler, budget: Budget) -> grpc.RpcMethodHandler:
    attribute, factory = _HANDLER_FACTORIES[
        (bool(handler.request_streaming), bool(handler.response_streaming))
    ]
    behavior = getattr(handler, attribute)
    if not handler.response_streaming:
        guarded = _guard_call(behavior, budget)
    elif getattr(behavior, "experimental_non_blocking", False):
        guarded = _guard_open_stream(behavior, budget)
    else:
        guarded = _guard_generator(behavior, budget)
    return factory(  # type: ignore[operator]
        guarded,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class RpcBudgets(grpc.ServerInterceptor):
    """Enforces one :class:`Budget` per method path; methods without one are untouched."""

    def __init__(self, budgets: Mapping[str, Budget]) -> None:
        self._budgets = dict(budgets)

    def of(self, method: str) -> Budget:
        """The budget of ``method`` (a path such as ``/fleetnas.api.v1.Agent/Status``)."""
        return self._budgets[method]

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        budget = self._budgets.get(handler_call_details.method)
        if handler is None or budget is None:
            return handler
        return _guarded_handler(handler, budget)


_HINTS = {
    "Benchmark": "the agent's benchmark queue is --max-queue long",
    "UploadModel": "agent flag --max-uploads",
}
_QUICK_HINT = "such calls take about a millisecond: spread them out"


def agent_budgets(thread_budgets: Mapping[str, int]) -> RpcBudgets:
    """The agent's budgets from ``thread_budgets`` (Agent method names, and ``Check`` for
    the health check), plus :data:`WATCH_STREAMS` open health Watch streams."""
    budgets: dict[str, Budget] = {}
    for kind, limit in thread_budgets.items():
        service = HEALTH_SERVICE if kind == "Check" else AGENT_SERVICE
        budgets[method_path(service, kind)] = Budget(kind, limit, _HINTS.get(kind, _QUICK_HINT))
    budgets[method_path(HEALTH_SERVICE, "Watch")] = Budget(
        "health Watch", WATCH_STREAMS, "close idle watches or poll Check instead"
    )
    return RpcBudgets(budgets)
