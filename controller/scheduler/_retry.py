"""Retry policy: which failures are retried, where, after how long; which mark a device down.

:class:`RetryPolicy` classifies the error of one attempt into a
:class:`Decision`:

* ``FAIL``: permanent (corrupt model, unsupported operator, invalid settings,
  benchmark timeout, memory cap), or the job used up its ``max_retries``;
* ``ELSEWHERE``: transient (unreachable, draining, queue full, worker
  crashed, call deadline): retry on another device of the class (the same
  one when it is the only one), after ``backoff_s * 2 ** (attempts - 1)``.

Errors that mean "the device is gone" (unreachable, draining, deadline, bad
token, missing secret) also mark the device down (:meth:`device_gone`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fleetnas.agent.errors import (
    AgentDeadlineExceeded,
    AgentError,
    AgentUnavailable,
    ShuttingDown,
    Unauthenticated,
)
from fleetnas.controller.fleet import MissingSecret

DEFAULT_MAX_RETRIES = 2
DEFAULT_RETRY_BACKOFF_S = 0.25

# Errors after which the device itself is suspect: mark it down, try elsewhere.
_DEVICE_GONE: tuple[type[BaseException], ...] = (
    AgentUnavailable,
    AgentDeadlineExceeded,
    ShuttingDown,
    Unauthenticated,
    MissingSecret,
)


class Decision(enum.Enum):
    FAIL = "fail"
    ELSEWHERE = "elsewhere"


@dataclass(frozen=True)
class Verdict:
    """What to do after a failed attempt; ``delay_s`` before the next try."""

    decision: Decision
    delay_s: float = 0.0


class RetryPolicy:
    """Bounded retries of transient failures (module docstring). Immutable, thread-safe."""

    def __init__(
        self,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_s: float = DEFAULT_RETRY_BACKOFF_S,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if backoff_s < 0:
            raise ValueError(f"retry_backoff_s must be >= 0, got {backoff_s}")
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    @staticmethod
    def device_gone(error: BaseException) -> bool:
        """True when the error says the device is unreachable or refuses us."""
        return isinstance(error, _DEVICE_GONE)

    def transient(self, error: BaseException) -> bool:
        """True when a retry (elsewhere or later) may succeed."""
        return self.device_gone(error) or (isinstance(error, AgentError) and error.transient)

    def decide(self, error: BaseException, attempts: int) -> Verdict:
        """The verdict after the ``attempts``-th failed attempt of a job failed with ``error``."""
        if not self.transient(error) or attempts > self.max_retries:
            return Verdict(Decision.FAIL)
        return Verdict(Decision.ELSEWHERE, self.backoff_s * 2 ** (attempts - 1))
