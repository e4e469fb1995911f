"""Retry policy: which failures are retried, where, after how long; which mark a device down.

:class:`RetryPolicy` classifies the error of one attempt into a
:class:`Decision`:

* ``FAIL``: permanent (corrupt model, unsupported operator, invalid settings,
  benchmark timeout, memory cap), or the job used up its ``max_retries``;
* ``SAME_DEVICE``: the agent is overloaded (too many concurrent calls of one
  RPC kind: :class:`~fleetnas.agent.errors.AgentOverloaded`, reason
  ``AGENT_OVERLOADED``, or gRPC's own reasonless concurrent-RPC limit, which
  the client translates to the same class): retry on the same device, which is not marked down,
  after a bounded exponential backoff (:class:`OverloadBackoff`: 0.1 s
  doubling to 2 s, 5 times); these retries do not count against
  ``max_retries``. Once they are used up the error counts as any transient one;
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
    AgentOverloaded,
    AgentUnavailable,
    ShuttingDown,
    Unauthenticated,
)
from fleetnas.controller.fleet import MissingSecret, backoff_delay

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
    SAME_DEVICE = "same_device"
    ELSEWHERE = "elsewhere"


@dataclass(frozen=True)
class OverloadBackoff:
    """How often and after how long an overloaded device is asked again."""

    max_tries: int = 5
    initial_s: float = 0.1
    max_s: float = 2.0

    def __post_init__(self) -> None:
        if self.max_tries < 0:
            raise ValueError(f"max_tries must be >= 0, got {self.max_tries}")
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(
                f"need 0 < initial_s <= max_s, got initial_s={self.initial_s}, max_s={self.max_s}"
            )

    def delay(self, tries: int) -> float:
        """The wait before the ``tries``-th retry (1-based)."""
        return backoff_delay(tries, self.initial_s, self.max_s)


def is_overloaded(error: BaseException) -> bool:
    """True for the agent's "too many calls at once" (module docstring)."""
    return isinstance(error, AgentOverloaded)


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
        overload: OverloadBackoff | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if backoff_s < 0:
            raise ValueError(f"retry_backoff_s must be >= 0, got {backoff_s}")
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.overload = overload or OverloadBackoff()

    @staticmethod
    def device_gone(error: BaseException) -> bool:
        """True when the error says the device is unreachable or refuses us."""
        return isinstance(error, _DEVICE_GONE)

    def transient(self, error: BaseException) -> bool:
        """True when a retry (elsewhere or later) may succeed."""
        return self.device_gone(error) or (isinstance(error, AgentError) and error.transient)

    def decide(self, error: BaseException, attempts: int, overloads: int = 0) -> Verdict:
        """The verdict after the ``attempts``-th attempt of a job failed with ``error``.

        ``overloads`` counts the job's earlier retries on an overloaded device
        (they are among ``attempts`` and do not count against ``max_retries``).
        """
        if is_overloaded(error) and overloads < self.overload.max_tries:
            return Verdict(Decision.SAME_DEVICE, self.overload.delay(overloads + 1))
        counted = attempts - overloads
        if not self.transient(error) or counted > self.max_retries:
            return Verdict(Decision.FAIL)
        return Verdict(Decision.ELSEWHERE, self.backoff_s * 2 ** (counted - 1))
