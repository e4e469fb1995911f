"""LUTs in the cost database: the ``luts``, ``lut_entries`` and ``lut_reports`` tables.

A LUT is identified by (space identity, device, settings hash, precision):
the same blocks measured with other settings, for another configuration of
the space, or converted to another precision (an int8 LUT's entries are int8
QDQ blocks), form another LUT (measurements are still shared through the
cache, so a second LUT only costs the blocks the first lacks). See
``docs/lut.md`` for the schema.

:class:`LutStore` reads and writes those tables through a :class:`CostDB`, in
the same transactions and under the same lock as the rest of the database,
so it is as safe as ``CostDB`` itself with several threads and processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import (
    LOCAL_SOURCE,
    CorruptRow,
    CostDB,
    canonical_json,
    named_row,
)
from fleetnas.controller.export import BLOCK_ARCH_PREFIX
from fleetnas.controller.lut._calibration import Calibration
from fleetnas.controller.lut._errors import AmbiguousLut, LutNotFound
from fleetnas.controller.lut._metrics import Accuracy
from fleetnas.controller.lut._robust import DEFAULT_LUT_STATISTIC, STATISTICS
from fleetnas.controller.lut._settings import settings_mismatches
from fleetnas.controller.spaces import GENE_SEPARATOR

__all__ = [
    "BLOCK_ARCH_PREFIX",
    "DEFAULT_LUT_PRECISION",
    "LutEntry",
    "LutInfo",
    "LutReport",
    "LutStore",
    "block_variant_arch",
    "canonical_precision",
]

STATUSES = ("building", "complete")
#: the precision of a LUT built from the blocks as exported (and of every LUT stored before
#: LUTs had a precision: migration 10)
DEFAULT_LUT_PRECISION = "fp32"
REPORT_KINDS = ("eval", "check")

_LUT_COLUMNS = (
    "*, (SELECT count(*) FROM lut_entries AS e WHERE e.lut_id = luts.id) AS entries"
)
_ACCURACY_FIELDS = tuple(f.name for f in fields(Accuracy))


def _json(row: Mapping[str, Any], table: str, column: str) -> Any:
    """The JSON value of ``row[column]`` (``None`` for NULL); raises CorruptRow."""
    text = row[column]
    try:
        return None if text is None else json.loads(text)
    except ValueError as exc:
        raise CorruptRow(table, row["id"], column, exc) from exc


def _calibration(row: Mapping[str, Any], table: str) -> Calibration | None:
    data = _json(row, table, "calibration")
    return None if data is None else Calibration.from_dict(data)


@dataclass(frozen=True)
class LutInfo:
    """One LUT as stored. ``entries`` is how many blocks it has; times are unix seconds."""

    id: int
    space: str
    space_name: str
    space_config: dict[str, Any]
    space_version: int
    device: str
    settings_hash: str
    settings: dict[str, Any]
    status: str
    blocks_total: int
    calibration: Calibration | None
    source: str
    created_at: float
    updated_at: float
    entries: int
    #: the robust statistic of the entries' raw samples (``_robust.STATISTICS``)
    statistic: str = DEFAULT_LUT_STATISTIC
    #: the precision its blocks (and calibration nets) were converted to before measuring
    precision: str = DEFAULT_LUT_PRECISION

    @property
    def coverage(self) -> float:
        """Share of the space's distinct blocks that have an entry, in [0, 1]."""
        return self.entries / self.blocks_total if self.blocks_total else 0.0

    @property
    def threads(self) -> int | None:
        """The intra-op threads of its settings (``None`` if not recorded)."""
        value = self.settings.get("intra_op_threads")
        return None if value is None else int(value)

    @property
    def method(self) -> str:
        return str(self.settings.get("method", "METHOD_PLAIN")).removeprefix("METHOD_").lower()

    def label(self) -> str:
        shown = "" if self.precision == DEFAULT_LUT_PRECISION else f", {self.precision}"
        return f"{self.space} on {self.device} (settings {self.settings_hash}{shown})"

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> LutInfo:
        """From a ``luts`` row (by column name) with its ``entries`` count."""
        return cls(
            id=row["id"], space=row["space"], space_name=row["space_name"],
            space_config=_json(row, "luts", "space_config"), space_version=row["space_version"],
            device=row["device"], settings_hash=row["settings_hash"],
            settings=_json(row, "luts", "settings"), status=row["status"],
            blocks_total=row["blocks_total"], calibration=_calibration(row, "luts"),
            source=row["source"], created_at=row["created_at"], updated_at=row["updated_at"],
            entries=row["entries"], statistic=row["statistic"], precision=row["precision"],
        )  # fmt: skip


@dataclass(frozen=True)
class LutEntry:
    """The latency of one block: ``measurement_uid`` names the measurement it came from."""

    block_key: str
    model_sha256: str
    latency_ms: float
    measurement_uid: str | None = None


@dataclass(frozen=True)
class LutReport:
    """A stored ``lut eval`` or ``lut check`` result.

    ``threshold`` (percent) and ``stale`` are the check's verdict (``None`` /
    ``False`` for an eval). ``details`` holds the per-arch rows
    (``arch``, ``raw_sum_ms``, ``predicted_ms``, ``measured_ms``,
    ``measurement_uid``) and, for a check, ``reasons`` and ``warnings``.
    """

    lut_id: int
    kind: str
    accuracy: Accuracy
    created_at: float = field(default_factory=time.time)
    threshold: float | None = None
    stale: bool = False
    calibration: Calibration | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> LutReport:
        """From a ``lut_reports`` row (by column name)."""
        return cls(
            id=row["id"], lut_id=row["lut_id"], kind=row["kind"], created_at=row["created_at"],
            accuracy=Accuracy(**{name: row[name] for name in _ACCURACY_FIELDS}),
            threshold=row["threshold"], stale=bool(row["stale"]),
            calibration=_calibration(row, "lut_reports"),
            details=_json(row, "lut_reports", "details"),
        )  # fmt: skip


def _check_statistic(statistic: str) -> None:
    if statistic not in STATISTICS:
        raise ValueError(f"statistic {statistic!r}: choose one of {', '.join(STATISTICS)}")


def block_variant_arch(block_key: str, precision: str = DEFAULT_LUT_PRECISION) -> str:
    """The ``models.arch`` origin of a block's model at ``precision``: ``block:<key>`` for
    fp32 (the export itself), ``block:<key>@<precision>`` for a variant of it (the form
    the search gives an arch's variants)."""
    arch = BLOCK_ARCH_PREFIX + block_key
    return arch if precision == DEFAULT_LUT_PRECISION else f"{arch}{GENE_SEPARATOR}{precision}"


def _lut_word(precision: str) -> str:
    """``"LUT"`` for fp32 (as every message said before precisions), else ``"int8 LUT"``."""
    return "LUT" if precision == DEFAULT_LUT_PRECISION else f"{precision} LUT"


def canonical_precision(precision: str) -> str:
    """The stored name of a gene precision (``"INT8"``, ``"int8-static"`` -> ``"int8"``);
    raises UnknownPrecision (a ValueError listing the names). Imports the compress
    package's precision table lazily (onnx)."""
    if precision == DEFAULT_LUT_PRECISION:
        return precision
    from fleetnas.controller.compress import parse_precision

    return parse_precision(precision).value


class LutStore:
    """The LUT tables of one cost database. Thread-safe as ``CostDB`` is."""

    def __init__(self, db: CostDB) -> None:
        self.db = db

    # -- LUTs ---------------------------------------------------------------------------

    def ensure(
        self,
        *,
        space: str,
        space_name: str,
        space_config: Mapping[str, Any],
        space_version: int,
        device: str,
        settings_hash: str,
        settings: Mapping[str, Any],
        blocks_total: int,
        source: str = LOCAL_SOURCE,
        statistic: str = DEFAULT_LUT_STATISTIC,
        precision: str = DEFAULT_LUT_PRECISION,
    ) -> LutInfo:
        """The LUT with this identity (``precision`` is part of it), created (status
        ``building``, entries computed with ``statistic``) if missing.

        An existing LUT keeps its entries, status, calibration and statistic
        (:meth:`restate` changes that); ``blocks_total`` and ``updated_at`` are refreshed.
        """
        _check_statistic(statistic)
        precision = canonical_precision(precision)
        now = time.time()
        with self.db.write_transaction() as conn:
            conn.execute(
                """
                INSERT INTO luts (space, space_name, space_config, space_version, device,
                                  settings_hash, settings, status, blocks_total, calibration,
                                  source, created_at, updated_at, statistic, precision)
                VALUES (?, ?, ?, ?, ?, ?, ?, 'building', ?, NULL, ?, ?, ?, ?, ?)
                ON CONFLICT (space, device, settings_hash, precision) DO UPDATE SET
                    blocks_total = excluded.blocks_total, updated_at = excluded.updated_at
                """,
                (space, space_name, canonical_json(dict(space_config)), space_version, device,
                 settings_hash, canonical_json(dict(settings)), blocks_total, source, now, now,
                 statistic, precision),
            )  # fmt: skip
            row = named_row(conn.execute(
                f"SELECT {_LUT_COLUMNS} FROM luts "
                "WHERE space = ? AND device = ? AND settings_hash = ? AND precision = ?",
                (space, device, settings_hash, precision),
            ))  # fmt: skip
        assert row is not None
        return LutInfo._from_row(row)

    def get(self, lut_id: int) -> LutInfo:
        """The LUT with this id; raises LutNotFound."""
        row = self.db.query_one(f"SELECT {_LUT_COLUMNS} FROM luts WHERE id = ?", (lut_id,))
        if row is None:
            raise LutNotFound(f"no LUT with id {lut_id}")
        return LutInfo._from_row(row)

    def find(
        self,
        *,
        space_name: str | None = None,
        space: str | None = None,
        device: str | None = None,
        settings_hash: str | None = None,
        precision: str | None = None,
    ) -> list[LutInfo]:
        """Every LUT matching all given filters (``precision``: any when ``None``), by space,
        device, then newest first."""
        if precision is not None:
            precision = canonical_precision(precision)
        terms = [
            (column, value)
            for column, value in (
                ("space_name", space_name), ("space", space), ("device", device),
                ("settings_hash", settings_hash), ("precision", precision),
            )
            if value is not None
        ]  # fmt: skip
        where = " AND ".join(f"{c} = ?" for c, _ in terms)
        sql = f"SELECT {_LUT_COLUMNS} FROM luts"
        if where:
            sql += f" WHERE {where}"
        sql += " ORDER BY space, device, updated_at DESC, id DESC"
        rows = self.db.query(sql, [v for _, v in terms])
        return [LutInfo._from_row(r) for r in rows]

    def select(
        self,
        *,
        space_name: str,
        device: str,
        space: str | None = None,
        settings_hash: str | None = None,
        request: agent_pb2.BenchmarkSettings | None = None,
        precision: str = DEFAULT_LUT_PRECISION,
    ) -> LutInfo:
        """The one LUT of ``space_name`` on ``device`` at ``precision`` that the filters leave.

        ``space`` (an identity), ``settings_hash`` and ``request`` (a settings
        request: every field it sets must match the LUT's) narrow the choice. With
        no ``space`` given, the default-configured space's LUT (identity ==
        name) wins when several configurations match. Raises LutNotFound
        (listing what exists and the command to build one) or AmbiguousLut
        (listing the candidates and the flags that pick one).
        """
        precision = canonical_precision(precision)
        candidates = self.find(
            space_name=space_name, space=space, device=device, settings_hash=settings_hash,
            precision=precision,
        )
        if request is not None:
            candidates = [c for c in candidates if not settings_mismatches(request, c.settings)]
        if not candidates:
            existing = self.find(device=device) or self.find(space_name=space_name)
            listing = "; ".join(info.label() for info in existing[:8])
            flag = "" if precision == DEFAULT_LUT_PRECISION else f" --precision {precision}"
            raise LutNotFound(
                f"no {_lut_word(precision)} of {space or space_name} on {device}"
                + (f" with settings {settings_hash}" if settings_hash else "")
                + (" with the settings asked for" if request is not None else "")
                + f" (existing: {listing or 'none'}); build one with "
                f"`fleetnas lut build --space {space_name} --device {device}{flag}`"
            )
        if len(candidates) > 1 and space is None:
            default = [c for c in candidates if c.space == space_name]
            if len({c.settings_hash for c in candidates}) == 1 and len(default) == 1:
                return default[0]
        if len(candidates) > 1:
            listing = "; ".join(
                f"{c.space} settings {c.settings_hash} ({c.threads} threads, {c.method})"
                for c in candidates
            )
            raise AmbiguousLut(
                f"{len(candidates)} LUTs of {space_name} on {device}: {listing}; pick one with "
                "--settings-hash (or the build's settings flags) and --resolution/--space-config"
            )
        return candidates[0]

    def set_status(self, lut_id: int, status: str) -> None:
        """Mark a LUT ``building`` or ``complete``."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r}: choose one of {', '.join(STATUSES)}")
        with self.db.write_transaction() as conn:
            conn.execute(
                "UPDATE luts SET status = ?, updated_at = ? WHERE id = ?",
                (status, time.time(), lut_id),
            )

    def set_calibration(self, lut_id: int, calibration: Calibration | None) -> None:
        """Store (or clear, with ``None``) the LUT's calibration."""
        text = None if calibration is None else canonical_json(calibration.to_dict())
        with self.db.write_transaction() as conn:
            conn.execute(
                "UPDATE luts SET calibration = ?, updated_at = ? WHERE id = ?",
                (text, time.time(), lut_id),
            )

    def restate(self, lut_id: int, statistic: str, latencies: Mapping[str, float]) -> int:
        """Set the LUT's statistic and its entries' latencies (block key -> ms, computed with
        it), and clear its calibration (fitted on the old sums), in one transaction.

        Entries not in ``latencies`` keep their value. Returns how many were rewritten.
        """
        _check_statistic(statistic)
        with self.db.write_transaction() as conn:
            conn.execute(
                "UPDATE luts SET statistic = ?, calibration = NULL, updated_at = ? WHERE id = ?",
                (statistic, time.time(), lut_id),
            )
            conn.executemany(
                "UPDATE lut_entries SET latency_ms = ? WHERE lut_id = ? AND block_key = ?",
                ((float(ms), lut_id, key) for key, ms in latencies.items()),
            )
        return len(latencies)

    def delete(self, lut_id: int) -> None:
        """Remove a LUT with its entries and reports (measurements and models stay)."""
        with self.db.write_transaction() as conn:
            conn.execute("DELETE FROM luts WHERE id = ?", (lut_id,))

    # -- entries ------------------------------------------------------------------------

    def put_entries(
        self, lut_id: int, entries: Iterable[LutEntry], *, origin_space: str | None = None,
        precision: str = DEFAULT_LUT_PRECISION,
    ) -> int:
        """Add or replace entries (one per block key), in one transaction; returns the count.

        Model rows missing from ``models`` are created, so entries of an
        imported LUT can name models this database has never seen; with
        ``origin_space`` they get that space and ``block:<key>`` as origin
        where none is known (``block:<key>@<precision>`` for another
        ``precision`` than fp32: :func:`block_variant_arch`).
        """
        rows = [
            (lut_id, e.block_key, e.model_sha256, float(e.latency_ms), e.measurement_uid)
            for e in entries
        ]
        if not rows:
            return 0
        now = time.time()
        with self.db.write_transaction() as conn:
            conn.executemany(
                """
                INSERT INTO models (sha256, space, arch, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (sha256) DO UPDATE SET
                    space = COALESCE(models.space, excluded.space),
                    arch = COALESCE(models.arch, excluded.arch)
                """,
                (
                    (r[2], origin_space,
                     None if origin_space is None else block_variant_arch(r[1], precision), now)
                    for r in rows
                ),
            )
            conn.executemany(
                """
                INSERT INTO lut_entries (lut_id, block_key, model_sha256, latency_ms,
                                         measurement_uid)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (lut_id, block_key) DO UPDATE SET
                    model_sha256 = excluded.model_sha256, latency_ms = excluded.latency_ms,
                    measurement_uid = excluded.measurement_uid
                """,
                rows,
            )
            conn.execute("UPDATE luts SET updated_at = ? WHERE id = ?", (now, lut_id))
        return len(rows)

    def entries(self, lut_id: int) -> dict[str, LutEntry]:
        """The LUT's entries by block key (sorted by key)."""
        rows = self.db.query(
            "SELECT block_key, model_sha256, latency_ms, measurement_uid FROM lut_entries "
            "WHERE lut_id = ? ORDER BY block_key",
            (lut_id,),
        )
        return {r["block_key"]: LutEntry(**r) for r in rows}

    # -- reports ------------------------------------------------------------------------

    def add_report(self, report: LutReport) -> LutReport:
        """Store an eval or check result; returns it with its id."""
        if report.kind not in REPORT_KINDS:
            raise ValueError(f"report kind {report.kind!r}: choose one of {REPORT_KINDS}")
        acc = report.accuracy
        calibration = (
            None if report.calibration is None else canonical_json(report.calibration.to_dict())
        )
        values = {
            "lut_id": report.lut_id, "kind": report.kind, "created_at": report.created_at,
            **acc.to_dict(), "threshold": report.threshold, "stale": int(report.stale),
            "calibration": calibration, "details": canonical_json(report.details),
        }  # fmt: skip
        with self.db.write_transaction() as conn:
            cursor = conn.execute(
                f"INSERT INTO lut_reports ({', '.join(values)}) "
                f"VALUES ({', '.join(':' + name for name in values)})",
                values,
            )
        return LutReport(
            lut_id=report.lut_id, kind=report.kind, accuracy=acc, created_at=report.created_at,
            threshold=report.threshold, stale=report.stale, calibration=report.calibration,
            details=report.details, id=cursor.lastrowid,
        )  # fmt: skip

    def reports(self, lut_id: int, *, kind: str | None = None, limit: int | None = None) -> list[LutReport]:
        """The LUT's reports (of one kind when given), newest first."""
        sql = "SELECT * FROM lut_reports WHERE lut_id = ?"
        params: list[Any] = [lut_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [LutReport._from_row(r) for r in self.db.query(sql, params)]

    def last_report(self, lut_id: int, kind: str) -> LutReport | None:
        """The newest report of ``kind``, or ``None``."""
        found = self.reports(lut_id, kind=kind, limit=1)
        return found[0] if found else None
