"""Running onnxruntime's model tools on bytes: a temporary folder, quiet logging, precise errors.

onnxruntime's quantization tools read and write files and log through the
root logger (e.g. "Please consider to run pre-processing"); the converters
here are functions of bytes, so each call gets its own temporary folder, and
records logged from onnxruntime's quantization package are moved to this
package's logger at DEBUG level for the duration of the call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx

from fleetnas.controller.compress._detect import precision_of
from fleetnas.controller.compress._errors import NotCompressible
from fleetnas.controller.compress._graph import load_model
from fleetnas.controller.compress._precision import Precision

log = logging.getLogger("fleetnas.controller.compress")
_ORT_QUANTIZATION_DIR = f"{os.sep}onnxruntime{os.sep}quantization{os.sep}"


class _MoveOrtRecords(logging.Filter):
    """Drops root-logger records emitted by onnxruntime.quantization, re-logging them at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _ORT_QUANTIZATION_DIR in record.pathname:
            log.debug("onnxruntime: %s", record.getMessage())
            return False
        return True


@contextlib.contextmanager
def ort_tool_call() -> Iterator[Path]:
    """A fresh temporary folder, with onnxruntime's quantization log records moved to DEBUG."""
    quiet = _MoveOrtRecords()
    logging.root.addFilter(quiet)
    try:
        with tempfile.TemporaryDirectory(prefix="fleetnas-compress-") as folder:
            yield Path(folder)
    finally:
        logging.root.removeFilter(quiet)


def require_fp32(data: bytes, target: Precision) -> onnx.ModelProto:
    """The checked model of ``data`` when it is float32; NotCompressible (with the evidence) otherwise."""
    model = load_model(data)
    found = precision_of(model)
    if found.precision is not Precision.FP32:
        raise NotCompressible(
            f"cannot make an {target.value} variant: the model is already "
            f"{found.precision.value} ({found.evidence.summary()}); start from its float32 original"
        )
    return model


def finish(path: Path, target: Precision, tool: str) -> bytes:
    """The bytes written by ``tool`` at ``path``, checked and showing evidence of ``target``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotCompressible(f"{tool} wrote no model ({exc})") from exc
    return check_result(data, target, tool)


def check_result(data: bytes, target: Precision, tool: str) -> bytes:
    """``data`` when it is a valid model showing evidence of ``target``, else NotCompressible."""
    model = load_model(data)
    found = precision_of(model)
    if target not in found.signals:
        raise NotCompressible(
            f"{tool} changed nothing to {target.value}: the result shows "
            f"{found.evidence.summary()} (the model has no ops it converts, e.g. Conv, MatMul, Gemm)"
        )
    return data
