"""A value that is re-taken at most every ``max_age_s``, without ever making callers queue.

For answers that many callers may ask for at once (``Status``): one caller
takes a fresh value when the kept one is old; the others meanwhile get the
kept one instead of waiting. Only the very first call waits (there is
nothing to hand out yet).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Freshest(Generic[T]):
    """The newest value of ``take()``, at most ``max_age_s`` old when nobody else is taking one.

    Thread-safe. ``take`` runs on the calling thread, never on two at once.
    """

    def __init__(self, take: Callable[[], T], max_age_s: float) -> None:
        self._take = take
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._latest: tuple[float, T] | None = None

    def get(self) -> T:
        if self._lock.acquire(blocking=self._latest is None):
            try:
                latest = self._latest
                if latest is None or time.monotonic() - latest[0] >= self._max_age_s:
                    value = self._take()
                    latest = self._latest = (time.monotonic(), value)
            finally:
                self._lock.release()
        else:
            latest = self._latest
        assert latest is not None  # set before the lock was first released
        return latest[1]
