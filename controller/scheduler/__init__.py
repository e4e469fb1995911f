"""The fleet scheduler: cache first, then one benchmark per physical host at a time.

Public API::

    with Scheduler(fleet, db) as scheduler:
        outcomes = scheduler.run(
            [Job.on_class(model_bytes, "pi4", settings), Job.on_device(path, "jetson-1")],
            on_progress=lambda p: print(f"{p.done}/{p.total}"),
        )
    for outcome in outcomes:
        outcome.status, outcome.latency_ms, outcome.error

See :mod:`fleetnas.controller.scheduler._scheduler` for the guarantees.
"""

from fleetnas.controller.scheduler._cache import CacheLookup, resolve_for
from fleetnas.controller.scheduler._formats import model_format_for
from fleetnas.controller.scheduler._hostlock import HostLocks
from fleetnas.controller.scheduler._jobs import (
    Attempt,
    Job,
    JobOutcome,
    ModelChanged,
    ModelRef,
    OutcomeStatus,
    Progress,
    Target,
)
from fleetnas.controller.scheduler._retry import OverloadBackoff, RetryPolicy, is_overloaded
from fleetnas.controller.scheduler._scheduler import (
    DEFAULT_DEVICE_WAIT_S,
    DEFAULT_MAX_RETRIES,
    NoDeviceAvailable,
    ProgressCallback,
    Scheduler,
)
from fleetnas.controller.scheduler._throughput import model_batch, throughput

__all__ = [
    "model_batch",
    "throughput",
    "DEFAULT_DEVICE_WAIT_S",
    "DEFAULT_MAX_RETRIES",
    "Attempt",
    "CacheLookup",
    "HostLocks",
    "Job",
    "JobOutcome",
    "ModelChanged",
    "ModelRef",
    "NoDeviceAvailable",
    "OutcomeStatus",
    "OverloadBackoff",
    "Progress",
    "ProgressCallback",
    "RetryPolicy",
    "Scheduler",
    "Target",
    "is_overloaded",
    "model_format_for",
    "resolve_for",
]
