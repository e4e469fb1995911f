"""Progress of long commands on stderr: one event type, two renderings.

Every long command (``search``, ``lut build|calibrate|eval|check``,
``measure``, ``demo``) turns its library's progress records (the driver's
``SearchProgress``, the LUT library's ``LutProgress``, the scheduler's job
``Progress``, an accuracy estimator's setup progress) into one
:class:`ProgressEvent` with the adapters below and hands it to a
:func:`progress` sink:

* on a terminal, a rich progress bar per task (``task`` is the bar's label),
  with the event's counts beside it and its ``note`` / ``detail`` as lines
  under the bars;
* anywhere else (a log file, CI, a pipe), **one JSON line per event**::

      {"event": "progress", "task": "search", "done": 12, "total": 40,
       "counts": {"measured": 20, "ran": 18}, "detail": "...", "note": "...",
       "elapsed_s": 61.2, "eta_s": 142.8,
       "per_candidate_s": {"export": 0.41, "measure": 1.3, "accuracy": 0.05}}

  (``elapsed_s``, ``eta_s`` and ``per_candidate_s`` only for events that know
  them: a search's steps)

  so that a log shows how far the command got, and a tool can follow it.

``--quiet`` turns both off. The sink is written to from the command's own
thread only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import click
from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from fleetnas.controller.cli._options import format_duration
from fleetnas.controller.driver import SearchProgress
from fleetnas.controller.lut import LutProgress
from fleetnas.controller.report import format_value
from fleetnas.controller.scheduler import Progress as JobProgress


@dataclass(frozen=True)
class ProgressEvent:
    """How far one task of a command got.

    ``task`` names the bar (one bar per distinct task); ``counts`` are shown
    beside it; ``note`` is a line that stays (e.g. the best so far) and
    ``detail`` what runs now; ``elapsed_s`` and ``eta_s`` the task's time so far
    and likely still to go (``None``: unknown).
    """

    task: str
    done: int
    total: int | None
    counts: Mapping[str, int] = field(default_factory=dict)
    detail: str = ""
    note: str = ""
    elapsed_s: float | None = None
    eta_s: float | None = None
    per_item_s: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"event": "progress", "task": self.task, "done": self.done, "total": self.total,
               "counts": dict(self.counts), "detail": self.detail, "note": self.note}
        times = {"elapsed_s": self.elapsed_s, "eta_s": self.eta_s}
        out.update({k: round(v, 1) for k, v in times.items() if v is not None})
        if self.per_item_s:
            out["per_candidate_s"] = {k: round(v, 3) for k, v in self.per_item_s.items()}
        return out

    def times_text(self) -> str:
        """``per candidate: export 0.42s  measure 1.3s  accuracy 0.05s`` (empty when unknown)."""
        if not self.per_item_s:
            return ""
        return "per candidate: " + "  ".join(f"{phase} {seconds:.2g}s"
                                             for phase, seconds in self.per_item_s.items())


ProgressSink = Callable[[ProgressEvent], None]

#: ``--quiet``: no progress at all (neither bars nor JSON lines)
quiet_option = click.option("--quiet", is_flag=True,
                            help="No progress (bars on a terminal, JSON lines elsewhere).")


# -- adapters -----------------------------------------------------------------------------------


def search_event(p: SearchProgress) -> ProgressEvent:
    """A search's progress: candidates done of the budget, measurements, the best so far."""
    counts = {"measured": p.measured, "ran": p.device_runs, "predicted": p.predicted}
    note = ""
    if p.phase == "step" and p.best:
        best = "  ".join(f"{p.labels.get(name, name)} {format_value(name, value)}"
                         for name, value in p.best.items())
        note = f"best so far (front of {p.front}): {best}"
    return ProgressEvent("search", p.trials, p.budget, counts,
                         detail=p.detail if p.phase != "step" else "", note=note,
                         elapsed_s=p.elapsed_s, eta_s=p.eta_s, per_item_s=p.per_candidate_s)


def lut_event(label: str, p: LutProgress) -> ProgressEvent:
    """A LUT phase (export or measure) of ``label`` (e.g. ``blocks``)."""
    counts = ({"cached": p.cached, "measured": p.measured, "failed": p.failed}
              if p.phase == "measure" else {})  # fmt: skip
    return ProgressEvent(f"{p.phase} {label}", p.done, p.total, counts, detail=p.item)


def job_event(p: JobProgress) -> ProgressEvent:
    """The scheduler's jobs: one more finished."""
    outcome = p.outcome
    return ProgressEvent("measure", p.done, p.total,
                         detail=f"{outcome.job.tag} {outcome.status.value}")


# -- sinks --------------------------------------------------------------------------------------


class _Bars(Progress):
    """Rich bars with free lines under them (the events' note and detail)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.lines = Text()  # before Progress starts rendering
        super().__init__(*args, **kwargs)

    def get_renderables(self) -> Iterator[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.lines.plain:
            yield self.lines


def _counts_text(counts: Mapping[str, int]) -> str:
    return "  ".join(f"{name} {value}" for name, value in counts.items())


@contextmanager
def _bars(stream: IO[str]) -> Iterator[ProgressSink]:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
               MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[counts]}"))
    with _Bars(*columns, console=Console(file=stream), transient=False) as bars:
        tasks: dict[str, Any] = {}
        note = ["", ""]  # the last note and time split: they stay until replaced

        def show(event: ProgressEvent) -> None:
            if event.task not in tasks:
                tasks[event.task] = bars.add_task(event.task, total=event.total, counts="")
            note[0] = event.note or note[0]
            note[1] = event.times_text() or note[1]
            bars.lines = Text("\n".join(x for x in (*note, event.detail) if x), style="dim")
            counts = _counts_text(event.counts)
            if event.eta_s is not None:
                counts += f"  ETA {format_duration(event.eta_s)}"
            bars.update(tasks[event.task], total=event.total, completed=event.done,
                        counts=counts)

        yield show


def _json_lines(stream: IO[str]) -> ProgressSink:
    def write(event: ProgressEvent) -> None:
        stream.write(json.dumps(event.to_dict()) + "\n")
        stream.flush()

    return write


@contextmanager
def progress(quiet: bool, *, stream: IO[str] | None = None) -> Iterator[ProgressSink | None]:
    """The progress sink of a command (see the module docstring); ``None`` when quiet.

    ``stream`` defaults to stderr; bars when it is a terminal, else JSON lines.
    """
    if quiet:
        yield None
        return
    out = stream if stream is not None else sys.stderr
    if out.isatty():
        with _bars(out) as show:
            yield show
    else:
        yield _json_lines(out)


def adapted(sink: ProgressSink | None, adapt: Callable[[Any], ProgressEvent]) -> Callable[[Any], None] | None:
    """A library progress callback that feeds ``sink`` through ``adapt`` (None stays None)."""
    if sink is None:
        return None
    return lambda record: sink(adapt(record))


@contextmanager
def lut_progress(quiet: bool, label: str) -> Iterator[Callable[[LutProgress], None] | None]:
    """A LUT library ``on_progress`` callback for the phases of ``label`` (None when quiet)."""
    with progress(quiet) as sink:
        yield adapted(sink, lambda p: lut_event(label, p))


@contextmanager
def phase_progress(quiet: bool, label: str) -> Iterator[Callable[[str, int, int], None] | None]:
    """A ``(phase, done, total)`` callback (``controller.predict``'s) for ``label`` (None when quiet)."""
    with progress(quiet) as sink:
        if sink is None:
            yield None
            return
        yield lambda phase, done, total: sink(ProgressEvent(f"{phase} {label}", done, total))


@contextmanager
def setup_progress(quiet: bool) -> Iterator[Callable[[str, int, int | None, str], None] | None]:
    """An accuracy estimator's ``prepare`` callback, ``(task, done, total, detail)``
    (``controller.accuracy.SetupProgress``: a supernet's training), None when quiet."""
    with progress(quiet) as sink:
        if sink is None:
            yield None
            return
        yield lambda task, done, total, detail: sink(ProgressEvent(task, done, total, detail=detail))


@contextmanager
def search_progress(quiet: bool) -> Iterator[Callable[[SearchProgress], None] | None]:
    """A driver ``on_progress`` callback (None when quiet)."""
    with progress(quiet) as sink:
        yield adapted(sink, search_event)


@contextmanager
def job_progress(quiet: bool) -> Iterator[Callable[[JobProgress], None] | None]:
    """A scheduler ``on_progress`` callback (None when quiet)."""
    with progress(quiet) as sink:
        yield adapted(sink, job_event)
