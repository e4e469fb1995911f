"""One periodic daemon thread, shared by every meter and watcher that samples.

:class:`PeriodicThread` calls a function every ``period_s`` until stopped.
``stop`` wakes the thread at once (it waits on an ``Event``, not ``sleep``)
and joins it, so a measurement's end never waits out a sampling period and
no thread outlives the object that started it. An exception in the
function ends the thread and is kept in :attr:`error` for the owner to
report; it never escapes into the interpreter's thread excepthook.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

MIN_PERIOD_S = 0.001
MAX_PERIOD_S = 60.0
JOIN_TIMEOUT_S = 5.0


class PeriodicThread:
    """Calls ``fn()`` every ``period_s`` seconds on a daemon thread, from start until stop.

    The first call happens one period after :meth:`start` (owners take their
    first sample synchronously before starting). Single use. Raises
    ``ValueError`` for a period outside [MIN_PERIOD_S, MAX_PERIOD_S].
    """

    def __init__(self, fn: Callable[[], None], period_s: float, *, name: str) -> None:
        if not (
            isinstance(period_s, (int, float))
            and math.isfinite(period_s)
            and MIN_PERIOD_S <= period_s <= MAX_PERIOD_S
        ):
            raise ValueError(
                f"period_s must be in [{MIN_PERIOD_S}, {MAX_PERIOD_S}] seconds, got {period_s!r}"
            )
        self._fn = fn
        self._period_s = float(period_s)
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None
        self.calls = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = JOIN_TIMEOUT_S) -> None:
        """Stop and join; raises ``RuntimeError`` if ``fn`` is stuck past ``timeout_s``."""
        self._wake.set()
        if self._thread.ident is None:
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise RuntimeError(
                f"sampling thread {self._thread.name!r} did not stop within {timeout_s} s "
                "(a sensor read is hanging)"
            )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._wake.wait(self._period_s):
            try:
                self._fn()
            except Exception as err:  # noqa: BLE001 - kept for the owner, who reports it
                self.error = err
                return
            self.calls += 1
