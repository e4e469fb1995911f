"""Planning a batch: which jobs are measured, and which share another job's measurement.

Two kinds of sharing, both decided before anything is dispatched:

* **Identical jobs** (same model, target and settings request,
  :meth:`Job.identity`) are measured once; the later ones are *duplicates*
  of the first (:func:`split_duplicates`).
* **A class job that would land on a device job's device** (same model, the
  device is in the class, and the two requests resolve to the same settings
  hash on that device, so they would be the same measurement there) is
  *merged* into the device job (:func:`merge_class_jobs`): the device job is
  measured on its device anyway, and the class's devices are
  interchangeable, so its result answers the class job too. A merged class
  job whose device job fails is not failed with it: the scheduler runs it on
  its own, on any device of its class.

Only jobs the cost DB could not answer are merged (a cached class job is
already answered). Requests whose hash on the device cannot be known (the
device was never described) are merged only when the requests are
byte-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.scheduler._jobs import Job

#: ``hash_on(device, request, model_format)``: the settings hash the device would record,
#: or ``None`` when it cannot be known (see ``CacheLookup.settings_hash_for``)
HashOn = Callable[[str, agent_pb2.BenchmarkSettings, int], "str | None"]


def split_duplicates(jobs: Sequence[Job]) -> tuple[list[int], list[tuple[int, int]]]:
    """``(primaries, duplicates)``: the index of the first job of each identity, in order,
    and ``(index, primary)`` for every later identical job."""
    first_of: dict[tuple[str, bool, str, bytes], int] = {}
    duplicates: list[tuple[int, int]] = []
    for index, job in enumerate(jobs):
        primary = first_of.setdefault(job.identity(), index)
        if primary != index:
            duplicates.append((index, primary))
    return list(first_of.values()), duplicates


@dataclass(frozen=True)
class _Leader:
    index: int
    device: str
    settings: bytes
    settings_hash: str | None


def merge_class_jobs(
    jobs: Sequence[Job],
    misses: Sequence[int],
    eligible: Sequence[tuple[str, ...]],
    hash_on: HashOn,
) -> tuple[list[int], dict[int, int]]:
    """``(to_run, merged)`` among the jobs at ``misses`` (module docstring).

    ``eligible[i]`` are the devices job ``i`` may run on. ``merged`` maps a
    class job's index to the index of the device job it shares; ``to_run``
    are the other indexes of ``misses``, in order.
    """
    leaders: dict[str, list[_Leader]] = {}  # model sha256 -> its device jobs
    for index in misses:
        job = jobs[index]
        if not job.target.is_class:
            device = job.target.name
            leaders.setdefault(job.model.sha256, []).append(_Leader(
                index, device, job.settings.SerializeToString(deterministic=True),
                hash_on(device, job.settings, job.model.model_format),
            ))  # fmt: skip
    merged: dict[int, int] = {}
    for index in misses:
        job = jobs[index]
        if not job.target.is_class:
            continue
        request = job.settings.SerializeToString(deterministic=True)
        for leader in leaders.get(job.model.sha256, ()):
            if leader.device not in eligible[index]:
                continue
            if leader.settings == request or (
                leader.settings_hash is not None
                and hash_on(leader.device, job.settings, job.model.model_format)
                == leader.settings_hash
            ):
                merged[index] = leader.index
                break
    return [i for i in misses if i not in merged], merged
