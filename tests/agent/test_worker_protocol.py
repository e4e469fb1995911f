"""The runner↔worker pipe protocol: typed round trips, bounded reads, refused garbage."""

from __future__ import annotations

import io
import json
import os
import struct
import threading

import pytest

from fleetnas.agent._text import client_text, echo
from fleetnas.agent._worker_protocol import (
    MAX_JOB_BYTES,
    PREFIX_BYTES,
    VERSION,
    Failure,
    FrameReader,
    Job,
    ProtocolError,
    Ready,
    ReferenceJob,
    Result,
    encode,
    read_message,
    write_message,
)
from fleetnas.agent.reference import Calibration

REFERENCE = ReferenceJob(
    path="/cache/reference.onnx", name="ref", sha256="ab" * 32, calibrated_ms=None,
    calibrated_at=None, calibration_runs=200, max_calibration_cv=0.1,
)  # fmt: skip
MESSAGES = [
    Ready(pid=123, vm_data_bytes=1 << 27, runtimes={"onnxruntime": "1.32.0", "litert": "2.3.0"}),
    Ready(pid=123, vm_data_bytes=0, runtimes={}),
    Job(model_path="/cache/models/x.onnx", settings=bytes(range(256)) * 3, reference=None),
    Job(model_path="m", settings=b"", reference=None, model_sha256="ab" * 32,
        engine_cache_dir="/cache/trt-engines"),  # fmt: skip
    Job(model_path="m", settings=b"", reference=REFERENCE),
    Job(
        model_path="m",
        settings=b"\x00\n",
        reference=ReferenceJob("p", "n", "s", 2.5, 1700000000.25, 200, 0.1),
    ),
    Result(result=b"\x08\x01" * 1000, calibration=None, elapsed_s=0.5),
    Result(result=b"", calibration=Calibration(2.5, 1700000000.0, 200), elapsed_s=3),
    Failure(reason="ModelInvalid", message="bad \n bytes ☃", elapsed_s=0.0),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_both_readers(message) -> None:
    frame = encode(message)
    assert read_message(io.BytesIO(frame), MAX_JOB_BYTES) == message
    reader = FrameReader(MAX_JOB_BYTES)
    for i in range(len(frame)):  # one byte at a time: a message appears only when complete
        assert reader.next_message() is None
        reader.feed(frame[i : i + 1])
        assert reader.pending
    assert reader.next_message() == message
    assert not reader.pending and reader.next_message() is None


def test_two_frames_in_one_read_come_out_in_order() -> None:
    reader = FrameReader(MAX_JOB_BYTES)
    reader.feed(encode(MESSAGES[0]) + encode(MESSAGES[-1]))
    assert reader.next_message() == MESSAGES[0]
    assert reader.next_message() == MESSAGES[-1]


def test_write_message_writes_a_whole_large_frame_through_a_pipe() -> None:
    message = Job(model_path="m", settings=os.urandom(3 << 20), reference=None)
    read_fd, write_fd = os.pipe()
    received = bytearray()

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as f:
            received.extend(f.read())

    thread = threading.Thread(target=drain)
    thread.start()
    write_message(write_fd, message)
    os.close(write_fd)
    thread.join(30)
    assert read_message(io.BytesIO(bytes(received)), MAX_JOB_BYTES) == message


def test_an_oversized_frame_is_refused_from_its_prefix() -> None:
    frame = encode(Job(model_path="m", settings=b"x" * 2000, reference=None))
    reader = FrameReader(max_bytes=1000)
    with pytest.raises(ProtocolError, match="over the cap of 1000 bytes"):
        reader.feed(frame[:PREFIX_BYTES])  # before the body is buffered
    with pytest.raises(ProtocolError, match="over the cap"):
        read_message(io.BytesIO(frame), 1000)


@pytest.mark.parametrize(
    "frame,fragment",
    [
        (b"GARBAGE-GARBAGE", "not a worker protocol frame"),
        (struct.pack(">3sBBII", b"FNW", VERSION + 1, 1, 2, 0) + b"{}", "version"),
        (struct.pack(">3sBBII", b"FNW", VERSION, 99, 2, 0) + b"{}", "unknown message kind"),
        (struct.pack(">3sBBII", b"FNW", VERSION, 1, 3, 0) + b"{x}", "unreadable message header"),
        (struct.pack(">3sBBII", b"FNW", VERSION, 1, 2, 0) + b"[]", "not an object"),
    ],
    ids=["magic", "version", "kind", "json", "not-object"],
)
def test_garbage_frames_are_protocol_errors(frame: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        read_message(io.BytesIO(frame), MAX_JOB_BYTES)


def _frame(kind: int, header: dict[str, object], blob: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack(">3sBBII", b"FNW", VERSION, kind, len(raw), len(blob)) + raw + blob


@pytest.mark.parametrize(
    "frame,fragment",
    [
        (_frame(Ready.KIND, {"pid": "1", "vm_data_bytes": 0, "runtimes": {}}), "'pid'"),
        (_frame(Ready.KIND, {"pid": True, "vm_data_bytes": 0, "runtimes": {}}), "'pid'"),
        (_frame(Ready.KIND, {"pid": 1, "runtimes": {}}), "'vm_data_bytes' is missing"),
        (_frame(Ready.KIND, {"pid": 1, "vm_data_bytes": 0, "runtimes": {"ort": 1}}),
         "'runtimes' is not a map of strings"),
        (_frame(Ready.KIND, {"pid": 1, "vm_data_bytes": 0}), "'runtimes' is missing"),
        (_frame(Failure.KIND, {"reason": "os.system", "message": "", "elapsed_s": 0}), "reason"),
        (_frame(Result.KIND, {"calibration": None, "elapsed_s": "soon"}), "'elapsed_s'"),
        (
            _frame(Result.KIND, {"calibration": {"latency_ms": -1.0, "calibrated_at": 0.0,
                                                 "runs": 1}, "elapsed_s": 0}),
            "bad calibration",
        ),  # fmt: skip
        (_frame(Job.KIND, {"model_path": "m", "reference": "r"}), "'reference'"),
        (_frame(Job.KIND, {"model_path": "m", "reference": None, "model_sha256": 7,
                           "engine_cache_dir": ""}), "'model_sha256'"),  # fmt: skip
    ],
    ids=["str-int", "bool-int", "missing", "runtimes-map", "runtimes-missing", "reason", "float",
         "calibration", "reference", "sha-type"],
)
def test_each_field_is_type_checked(frame: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        read_message(io.BytesIO(frame), MAX_JOB_BYTES)


def test_a_stream_that_ends_inside_a_frame_is_an_error_and_an_empty_one_is_eof() -> None:
    frame = encode(MESSAGES[1])
    assert read_message(io.BytesIO(b""), MAX_JOB_BYTES) is None
    for cut in (3, PREFIX_BYTES + 5):
        with pytest.raises(ProtocolError, match="ended"):
            read_message(io.BytesIO(frame[:cut]), MAX_JOB_BYTES)


def test_client_text_drops_host_paths_and_bounds_length() -> None:
    text = (
        "[Errno 2] No such file or directory: '/home/ann/.cache/fleetnas-agent/models/ab.onnx'\n"
        '  File "/opt/venv/lib/python3.11/site-packages/fleetnas/agent/worker_main.py", line 3'
        r" and C:\Users\ann\agent\x.onnx, but onnxruntime/core/graph.cc:12 stays"
    )
    out = client_text(text)
    assert "/home/ann" not in out and "/opt/venv" not in out and "Users" not in out
    assert "…/ab.onnx" in out and "…/worker_main.py" in out and "…/x.onnx" in out
    assert "onnxruntime/core/graph.cc:12" in out and "\n" not in out
    assert client_text("x" * 5000) == "x" * 600 + "... (4400 more characters)"
    assert echo("n" * 1_000_000).startswith("'" + "n" * 79 + "...") and echo("short") == "'short'"
    assert len(echo("n" * 1_000_000)) < 120
