"""Reading the stored-predictor tables (``kernel_luts``, ``transfer_fits``): one row by id
or id prefix, or every row matching a few equality filters, newest first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetnas.controller.costdb import CostDB, named_rows


def row_by_id(db: CostDB, table: str, columns: str, row_id: str) -> list[Mapping[str, Any]]:
    """The rows whose id is ``row_id`` or, for 8 characters or more, starts with it (at
    most 2: more than one means the prefix is ambiguous)."""
    with db.read_snapshot() as conn:
        return named_rows(conn.execute(
            f"SELECT {columns} FROM {table} WHERE id LIKE ? ORDER BY id LIMIT 2",
            (row_id + "%" if len(row_id) >= 8 else row_id,)))  # fmt: skip


def rows_where(db: CostDB, table: str, columns: str,
               filters: Mapping[str, str | None]) -> list[Mapping[str, Any]]:
    """The rows equal to every non-None filter (column -> value), newest first."""
    where = [f"{column} = ?" for column, value in filters.items() if value is not None]
    args = [value for value in filters.values() if value is not None]
    sql = f"SELECT {columns} FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
    with db.read_snapshot() as conn:
        return named_rows(conn.execute(sql + " ORDER BY created_at DESC, id", args))
