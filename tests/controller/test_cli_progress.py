"""One progress module: bars on a terminal, one JSON line per event anywhere else; one time format."""

from __future__ import annotations

import io
import json

from fleetnas.controller.cli._console import when
from fleetnas.controller.cli._progress import (
    ProgressEvent,
    job_event,
    lut_event,
    progress,
    search_event,
)
from fleetnas.controller.driver import SearchProgress
from fleetnas.controller.lut import LutProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_each_event_is_one_json_line() -> None:
    stream = io.StringIO()
    events = [
        lut_event("blocks", LutProgress("export", 3, 16, "cell/nor_conv_3x3")),
        lut_event("blocks", LutProgress("measure", 5, 16, "cell/skip", cached=2, measured=3)),
        search_event(SearchProgress("step", 10, 40, 18, 12, 2, 3, {"accuracy": 0.93,
                                                                  "latency[pi]": 1.5})),
    ]
    with progress(False, stream=stream) as sink:
        assert sink is not None
        for event in events:
            sink(event)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines == [e.to_dict() for e in events]
    assert lines[1] == {"event": "progress", "task": "measure blocks", "done": 5, "total": 16,
                        "counts": {"cached": 2, "measured": 3, "failed": 0},
                        "detail": "cell/skip", "note": ""}
    assert lines[2]["task"] == "search" and lines[2]["counts"] == {"measured": 18, "ran": 12,
                                                                    "predicted": 2}
    assert lines[2]["note"] == "best so far (front of 3): accuracy 0.93  latency[pi] 1.5 ms"
    labelled = search_event(SearchProgress("step", 10, 40, 18, 12, 2, 3, {"accuracy": 412.0},
                                           labels={"accuracy": "naswot score"}))
    assert labelled.note == "best so far (front of 3): naswot score 412"


def test_on_a_terminal_it_draws_bars_not_json() -> None:
    stream = Terminal()
    with progress(False, stream=stream) as sink:
        assert sink is not None
        sink(ProgressEvent("measure blocks", 4, 16, {"cached": 1}, detail="cell/a"))
        sink(ProgressEvent("measure blocks", 16, 16, {"cached": 9}))
    text = stream.getvalue()
    assert "measure blocks" in text and "16/16" in text and "cached 9" in text
    assert '"event"' not in text


def test_a_search_event_carries_its_elapsed_time_and_eta_in_json_and_on_the_bar() -> None:
    event = search_event(SearchProgress("step", 10, 40, 18, 12, 0, 3, elapsed_s=61.23,
                                        eta_s=183.71))
    stream = io.StringIO()
    with progress(False, stream=stream) as sink:
        assert sink is not None
        sink(event)
        sink(lut_event("blocks", LutProgress("export", 3, 16, "cell/a")))
    search_line, lut_line = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (search_line["elapsed_s"], search_line["eta_s"]) == (61.2, 183.7)
    assert "eta_s" not in lut_line and "elapsed_s" not in lut_line  # a LUT phase knows neither
    terminal = Terminal()
    with progress(False, stream=terminal) as sink:
        assert sink is not None
        sink(event)
    assert "ETA 3m4s" in terminal.getvalue()


def test_quiet_means_no_sink_at_all() -> None:
    stream = io.StringIO()
    with progress(True, stream=stream) as sink:
        assert sink is None
    assert stream.getvalue() == ""


def test_job_events_name_the_job_and_its_status() -> None:
    from fleetnas.controller.scheduler import Job, JobOutcome, OutcomeStatus
    from fleetnas.controller.scheduler import Progress as JobProgress

    outcome = JobOutcome(0, Job.on_device(b"model", "pi", tag="a.onnx"), OutcomeStatus.CACHED, "pi")
    event = job_event(JobProgress(1, 3, outcome))
    assert (event.task, event.done, event.total, event.detail) == ("measure", 1, 3, "a.onnx cached")


def test_one_time_format_everywhere() -> None:
    t = 1_764_633_300.0  # 2025-12-01 23:55 UTC
    assert when(t, now=t + 12.4) == "12 s ago"
    assert when(t, now=t + 3600) == "2025-12-01 23:55 UTC"
    assert when(None) == "-" and when(0, empty="never") == "never"
    assert when(t + 60, now=t) == "2025-12-01 23:56 UTC"  # in the future: a date, not "-60 s ago"


def test_a_search_step_splits_its_time_per_candidate_in_json_and_on_the_bar() -> None:
    split = {"export": 0.4213, "measure": 1.2871, "accuracy": 0.0519}
    event = search_event(SearchProgress("step", 10, 40, 18, 12, 0, 3, per_candidate_s=split))
    assert event.to_dict()["per_candidate_s"] == {"export": 0.421, "measure": 1.287,
                                                  "accuracy": 0.052}
    terminal = Terminal()
    with progress(False, stream=terminal) as sink:
        assert sink is not None
        sink(event)
    assert "per candidate: export 0.42s  measure 1.3s  accuracy 0.052s" in terminal.getvalue()
    before = search_event(SearchProgress("estimate", 0, 40, 0, 0, 0, 0))
    assert "per_candidate_s" not in before.to_dict() and before.times_text() == ""
