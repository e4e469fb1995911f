"""The agent's grpc.health.v1 servicer: grpc-health's, with a shutdown that cannot deadlock.

grpc-health's ``enter_graceful_shutdown`` sends NOT_SERVING to every open Watch
stream while holding the servicer's lock. A stream that is ending at that moment
(its client cancelled it or closed the channel) runs its close callback on the
gRPC server's polling thread, and that callback waits for the same lock; the
send, meanwhile, may wait for the polling thread to complete the write. Seen as
an agent whose ``stop`` never returned after a test cancelled its Watch streams.
Here the statuses change under the lock and the streams are told after it is
released, so a closing stream can always take the lock and go.
"""

from __future__ import annotations

from grpc_health.v1 import health, health_pb2

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class AgentHealthServicer(health.HealthServicer):
    """``health.HealthServicer`` whose graceful shutdown tells the watchers outside its lock."""

    def enter_graceful_shutdown(self) -> None:
        """Permanently NOT_SERVING for every service; later ``set`` calls are ignored."""
        with self._lock:
            if self._gracefully_shutting_down:  # type: ignore[has-type]
                return
            self._gracefully_shutting_down = True
            for service in self._server_status:
                self._server_status[service] = NOT_SERVING
            watchers = [callback for service in self._server_status
                        for callback in self._send_response_callbacks.get(service, ())]
        for callback in watchers:
            try:
                callback(health_pb2.HealthCheckResponse(status=NOT_SERVING))
            except Exception:  # noqa: BLE001 -- a stream that ended meanwhile has nobody to tell
                continue
