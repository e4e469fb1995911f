"""Values re-taken at most every ``max_age_s``, without ever making callers queue.

For answers that many callers may ask for at once (``Status``):

* :class:`Freshest`: one caller takes a fresh value when the kept one is
  old; the others meanwhile get the kept one instead of waiting. Only the
  very first call waits (there is nothing to hand out yet). For values
  that are quick to take (this host's sysfs).
* :class:`Refreshed`: nobody waits; a background thread takes the fresh
  value, and a benchmark can hold refreshes off. For values that are slow
  to take or that disturb the device (a phone's state over adb).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


class Refreshed(Generic[T]):
    """The newest value of ``take()``, re-taken in the background: :meth:`get` never waits.

    For a value that is slow or unreliable to take (a phone's state over
    adb: one call, tens of milliseconds, seconds when the phone hangs).
    :meth:`get` returns the kept value at once; when it is at least
    ``max_age_s`` old it also starts one refresh on a thread of its own
    (never two at once). A refresh that raises keeps the old value and
    hands the exception to ``on_error``; the next :meth:`get` past the age
    tries again. :meth:`put` replaces the value with a fresher one taken
    elsewhere.

    :meth:`hold` keeps refreshes off while a caller needs the device to
    itself (a benchmark): entering waits for a refresh in flight to end (at
    most ``wait_s``), and none starts until it exits. :meth:`close` stops
    refreshing for good and waits for the one in flight. Thread-safe.
    """

    def __init__(
        self,
        take: Callable[[], T],
        initial: T,
        max_age_s: float,
        *,
        on_error: Callable[[Exception], None] | None = None,
        wait_s: float = 60.0,
    ) -> None:
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s!r}")
        self._take = take
        self._max_age_s = max_age_s
        self._on_error = on_error
        self._wait_s = wait_s
        self._cond = threading.Condition()
        self._value = initial
        self._at = time.monotonic()
        self._refreshing: threading.Thread | None = None
        self._holds = 0
        self._closed = False

    def get(self) -> T:
        with self._cond:
            stale = time.monotonic() - self._at >= self._max_age_s
            if stale and self._refreshing is None and not self._holds and not self._closed:
                self._refreshing = threading.Thread(target=self._refresh, name="refresh",
                                                    daemon=True)  # fmt: skip
                self._refreshing.start()
            return self._value

    def put(self, value: T) -> None:
        with self._cond:
            self._value, self._at = value, time.monotonic()

    def _refresh(self) -> None:
        try:
            value = self._take()
        except Exception as exc:  # noqa: BLE001 -- kept value stays; the owner is told
            if self._on_error is not None:
                self._on_error(exc)
            with self._cond:
                self._at = time.monotonic()  # try again after max_age_s, not on every get
                self._refreshing = None
                self._cond.notify_all()
            return
        with self._cond:
            self._value, self._at = value, time.monotonic()
            self._refreshing = None
            self._cond.notify_all()

    def _wait_idle(self) -> None:
        self._cond.wait_for(lambda: self._refreshing is None, timeout=self._wait_s)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """No refresh while inside; entering waits for the one in flight (see the class)."""
        with self._cond:
            self._holds += 1
            self._wait_idle()
        try:
            yield
        finally:
            with self._cond:
                self._holds -= 1

    def close(self) -> None:
        """Refresh no more; wait (at most ``wait_s``) for a refresh in flight. Idempotent."""
        with self._cond:
            self._closed = True
            self._wait_idle()
