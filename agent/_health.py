"""The agent's grpc.health.v1 servicer: grpc-health's, with sends that cannot deadlock.

grpc-health sends every response (a Watch stream's first status, each ``set``,
the graceful shutdown's NOT_SERVING) while holding the servicer's lock. A
stream that is ending at that moment (its client cancelled it or closed the
channel) runs its close callback on the gRPC server's polling thread, and that
callback waits for the same lock; the send, meanwhile, waits for the polling
thread to complete the write. Seen as an agent whose ``stop`` never returned
after a test cancelled its Watch streams (in 2 of 5 runs, the stack showing a
Watch's first send holding the lock and the poller in the close callback).

Here the statuses and the watcher sets change under the lock, and the sends
happen after it is released, serialised by a second lock that no gRPC callback
takes (so a watcher still sees its statuses in order); a closing stream can
always take the state lock and go.
"""

from __future__ import annotations

import threading
from typing import Any

from grpc_health.v1 import health, health_pb2

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class AgentHealthServicer(health.HealthServicer):
    """``health.HealthServicer`` whose responses are sent outside its state lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sending = threading.Lock()  # order of sends; never taken by a gRPC callback

    def Watch(self, request: Any, context: Any,  # noqa: N802 - the gRPC method name
              send_response_callback: Any = None) -> Any:
        if send_response_callback is None:  # a blocking server: grpc-health's own generator
            return super().Watch(request, context, send_response_callback)
        service = request.service
        with self._sending:
            with self._lock:
                status = self._server_status.get(service, SERVICE_UNKNOWN)
                self._send_response_callbacks.setdefault(service, set()).add(
                    send_response_callback)
                context.add_callback(self._on_close_callback(send_response_callback, service))
            _tell([send_response_callback], status)
        return None

    def set(self, service: str, status: int) -> None:
        """Set ``service``'s status and tell its watchers (ignored after the shutdown)."""
        with self._sending:
            with self._lock:
                if self._gracefully_shutting_down:  # type: ignore[has-type]
                    return
                self._server_status[service] = status
                watchers = list(self._send_response_callbacks.get(service, ()))
            _tell(watchers, status)

    def enter_graceful_shutdown(self) -> None:
        """Permanently NOT_SERVING for every service; later ``set`` calls are ignored."""
        with self._sending:
            with self._lock:
                if self._gracefully_shutting_down:  # type: ignore[has-type]
                    return
                self._gracefully_shutting_down = True
                for service in self._server_status:
                    self._server_status[service] = NOT_SERVING
                watchers = [callback for service in self._server_status
                            for callback in self._send_response_callbacks.get(service, ())]
            _tell(watchers, NOT_SERVING)


def _tell(watchers: list[Any], status: int) -> None:
    for callback in watchers:
        try:
            callback(health_pb2.HealthCheckResponse(status=status))
        except Exception:  # noqa: BLE001 -- a stream that ended meanwhile has nobody to tell
            continue
