"""Tabular accuracy: look each arch up in a CSV of known accuracies (NAS-Bench-201 style).

The file has a header row with the columns ``arch`` and ``accuracy``, and
optionally ``dataset`` (one table holding several datasets, e.g. NAS-Bench-201's
cifar10, cifar100 and ImageNet16-120). Other columns are ignored. With a
``dataset`` column, the estimator needs ``dataset=NAME`` unless the table
holds one dataset only; without one, ``dataset=`` is refused.

:meth:`TableEstimator.prepare` checks the table against the search space:
every ``arch`` must parse with the space's own arch-string parser
(``space.decode``); rows are keyed by the space's canonical encoding, so two
spellings of one arch are one row (two different accuracies for it are an
error). It reports how much of the space the table covers. A candidate the
table lacks is a :class:`TableError` naming the arch string and the file:
a table is a measurement, and an arch nobody measured has no accuracy.
Values are returned as written (a fraction or a percentage: only the order
matters to the search).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, ClassVar

from fleetnas.controller.accuracy._base import AccuracyEstimator, EstimatorSetup
from fleetnas.controller.accuracy._errors import TableError
from fleetnas.controller.spaces import SearchSpace, UnknownArch

REQUIRED = ("arch", "accuracy")


def _read_rows(path: Path, dataset: str | None) -> list[tuple[int, str, float]]:
    """``(line, arch, accuracy)`` of the rows of ``dataset``; TableError saying what is wrong."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            rows = list(reader)
    except FileNotFoundError:
        raise TableError(f"accuracy table {path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TableError(f"accuracy table {path}: cannot be read ({exc})") from None
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise TableError(f"accuracy table {path}: no column {', '.join(missing)} (header: "
                         f"{','.join(columns) or 'empty'}); expected arch,accuracy or "
                         "arch,dataset,accuracy")
    datasets = sorted({(r.get("dataset") or "").strip() for r in rows}) if "dataset" in columns else []
    if dataset is not None and not datasets:
        raise TableError(f"accuracy table {path}: has no dataset column; drop dataset={dataset}")
    if dataset is None and len(datasets) > 1:
        raise TableError(f"accuracy table {path}: holds datasets {', '.join(datasets)}; choose "
                         f"one with table:{path},dataset=NAME")
    if dataset is not None and dataset not in datasets:
        raise TableError(f"accuracy table {path}: no rows for dataset {dataset!r} (it holds "
                         f"{', '.join(datasets)})")
    out = []
    for line, row in enumerate(rows, start=2):
        if dataset is not None and (row.get("dataset") or "").strip() != dataset:
            continue
        text = (row.get("accuracy") or "").strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise TableError(f"accuracy table {path} line {line}: accuracy {text!r} is not a "
                             "finite number")
        out.append((line, (row.get("arch") or "").strip(), value))
    if not out:
        raise TableError(f"accuracy table {path}: no rows")
    return out


class TableEstimator(AccuracyEstimator):
    """The accuracy the table at ``path`` gives an arch (see the module docstring).

    The file is read (and its columns checked) when the estimator is made;
    its archs are checked against a space by :meth:`prepare`, which
    :meth:`estimate` runs for a space it has not seen.
    """

    name = "table"
    cost: ClassVar[str] = "one dictionary lookup"

    def __init__(self, path: str | Path, *, dataset: str | None = None) -> None:
        self.path = Path(path)
        self.dataset = dataset
        self._rows = _read_rows(self.path, dataset)
        self._space: str | None = None
        self._table: dict[str, float] = {}

    def _where(self) -> str:
        return f"{self.path}" + (f" (dataset {self.dataset})" if self.dataset else "")

    def prepare(self, space: SearchSpace, setup: EstimatorSetup | None = None) -> list[str]:
        """Parse every row's arch with ``space``; the coverage line. TableError on a bad row."""
        table: dict[str, tuple[float, int]] = {}
        for line, text, value in self._rows:
            try:
                encoding = space.encode(space.decode(text))
            except (UnknownArch, ValueError) as exc:
                raise TableError(f"accuracy table {self.path} line {line}: arch {text!r} is not "
                                 f"an arch of space {space.identity()} ({exc})") from None
            seen = table.get(encoding)
            if seen is not None and seen[0] != value:
                raise TableError(f"accuracy table {self._where()} line {line}: arch {text!r} "
                                 f"has accuracy {value!r} here and {seen[0]!r} on line {seen[1]}")
            table[encoding] = (value, line)
        self._table = {k: v for k, (v, _) in table.items()}
        self._space = space.identity()
        size = space.size()
        covered = (f"{len(table)} of the space's {size} archs ({100.0 * len(table) / size:.1f} %)"
                   if size else f"{len(table)} archs (the space's size is not known)")
        return [f"accuracy table {self._where()}: {covered}"]

    def estimate(self, space: SearchSpace, arch: Any) -> float:
        if self._space != space.identity():
            self.prepare(space)
        encoding = space.encode(arch)
        try:
            return self._table[encoding]
        except KeyError:
            raise TableError(f"accuracy table {self._where()} has no row for arch {encoding!r}: "
                             "add it, or use a table that covers the space") from None
