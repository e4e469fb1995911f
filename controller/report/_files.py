"""The front (or every trial) as CSV or JSON files.

CSV: one row per trial with ``rank`` (empty off the front), ``candidate_id``,
``arch``, one column per value in canonical units (latency ms, memory bytes,
counts; headed by the value's label when it has one, e.g. ``naswot score``
for an ``accuracy`` estimated by a proxy), ``feasible``, ``violation``, ``source`` (latencies measured /
predicted / mixed), ``model_sha256``, and ``precision`` (``pi4=int8 x86=fp32``)
when any row has precision genes. JSON: ``{"search": {...}, "objectives":
[...], "constraints": [...], "front": [...], "trials": [...]}`` with each row's
per-value sources and measurement uids too, values keyed like the CSV columns.
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


def csv_text(rows: Sequence[ResultRow], names: Sequence[str],
             labels: Mapping[str, str] | None = None) -> str:
    """CSV of ``rows`` with one column per name, headed by its label in ``labels``
    when it has one (see the module docstring)."""
    import io

    labels = labels or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    genes = any(r.precisions for r in rows)
    writer.writerow([*CSV_FIXED, *(labels.get(n, n) for n in names), *CSV_TAIL,
                     *(["precision"] if genes else [])])
    for r in rows:
        writer.writerow([
            "" if r.rank is None else r.rank, r.candidate_id, r.encoding,
            *("" if r.values.get(n) is None else repr(float(r.values[n])) for n in names),
            "true" if r.feasible else "false", repr(r.violation), r.source or "",
            r.model_sha256 or "", *([precision_text(r)] if genes else []),
        ])  # fmt: skip
    return buffer.getvalue()


def write_csv(rows: Sequence[ResultRow], names: Sequence[str], path: str | Path,
              labels: Mapping[str, str] | None = None) -> Path:
    """Write :func:`csv_text` to ``path`` atomically; returns the path."""
    return write_text_atomic(path, csv_text(rows, names, labels))


def json_document(
    summary: Mapping[str, Any],
    objectives: Sequence[Mapping[str, Any]],
    constraints: Sequence[str],
    front: Sequence[ResultRow],
    trials: Sequence[ResultRow] | None,
    names: Sequence[str],
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON document (see the module docstring); ``trials`` may be omitted;
    ``labels`` key values by what they are (``{"accuracy": "naswot score"}``)."""
    document: dict[str, Any] = {
        "search": dict(summary),
        "objectives": [dict(o) for o in objectives],
        "constraints": list(constraints),
        "front": [r.to_dict(list(names), labels) for r in front],
    }
    if trials is not None:
        document["trials"] = [r.to_dict(list(names), labels) for r in trials]
    return document


def write_json(document: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``document`` as indented JSON to ``path`` atomically; returns the path."""
    return write_text_atomic(path, json.dumps(document, indent=2, sort_keys=False) + "\n")
