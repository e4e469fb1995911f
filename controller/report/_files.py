"""The front (or every trial) as CSV or JSON files.

CSV: one row per trial with ``rank`` (empty off the front), ``candidate_id``,
``arch``, one column per value in canonical units (latency ms, memory bytes,
counts), ``feasible``, ``violation``, ``source`` (latencies measured /
predicted / mixed), ``model_sha256``, and ``precision`` (``pi4=int8 x86=fp32``)
when any row has precision genes. JSON: ``{"search": {...}, "objectives":
[...], "constraints": [...], "front": [...], "trials": [...]}`` with each row's
per-value sources and measurement uids too.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fleetnas.controller.atomic_files import write_text_atomic
from fleetnas.controller.report._rows import ResultRow, precision_text

CSV_FIXED = ("rank", "candidate_id", "arch")
CSV_TAIL = ("feasible", "violation", "source", "model_sha256")


def csv_text(rows: Sequence[ResultRow], names: Sequence[str]) -> str:
    """CSV of ``rows`` with one column per name (see the module docstring)."""
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    genes = any(r.precisions for r in rows)
    writer.writerow([*CSV_FIXED, *names, *CSV_TAIL, *(["precision"] if genes else [])])
    for r in rows:
        writer.writerow([
            "" if r.rank is None else r.rank, r.candidate_id, r.encoding,
            *("" if r.values.get(n) is None else repr(float(r.values[n])) for n in names),
            "true" if r.feasible else "false", repr(r.violation), r.source or "",
            r.model_sha256 or "", *([precision_text(r)] if genes else []),
        ])  # fmt: skip
    return buffer.getvalue()


def write_csv(rows: Sequence[ResultRow], names: Sequence[str], path: str | Path) -> Path:
    """Write :func:`csv_text` to ``path`` atomically; returns the path."""
    return write_text_atomic(path, csv_text(rows, names))


def json_document(
    summary: Mapping[str, Any],
    objectives: Sequence[Mapping[str, Any]],
    constraints: Sequence[str],
    front: Sequence[ResultRow],
    trials: Sequence[ResultRow] | None,
    names: Sequence[str],
) -> dict[str, Any]:
    """The JSON document (see the module docstring); ``trials`` may be omitted."""
    document: dict[str, Any] = {
        "search": dict(summary),
        "objectives": [dict(o) for o in objectives],
        "constraints": list(constraints),
        "front": [r.to_dict(list(names)) for r in front],
    }
    if trials is not None:
        document["trials"] = [r.to_dict(list(names)) for r in trials]
    return document


def write_json(document: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``document`` as indented JSON to ``path`` atomically; returns the path."""
    return write_text_atomic(path, json.dumps(document, indent=2, sort_keys=False) + "\n")
