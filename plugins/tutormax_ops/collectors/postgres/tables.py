"""Tables: sizes, tuples, scans, vacuum/analyze history and freeze ages, one row per user table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from tutormax_ops.collectors.postgres._run import fetch_all, locked_relations, optional_list


@dataclass(frozen=True)
class TableStats:
    """One user table. Ages are seconds before now (None: never happened).

    Sizes are None while the table is `locked` (an ACCESS EXCLUSIVE lock held or queued on it, its TOAST
    table or an index): reading them would wait behind that lock.
    """

    schema: str
    table: str
    locked: bool
    heap_bytes: int | None
    index_bytes: int | None
    toast_bytes: int | None  # the TOAST table and its index
    table_bytes: int | None  # heap (with its free space and visibility maps) and TOAST: all but indexes
    total_bytes: int | None  # table_bytes + index_bytes
    live_tuples: int
    dead_tuples: int
    dead_ratio: float | None  # dead / (live + dead); None for a table with neither
    seq_scans: int
    seq_tuples_read: int
    idx_scans: int
    idx_tuples_fetched: int
    mods_since_analyze: int
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None
    last_vacuum_age_s: float | None
    last_autovacuum_age_s: float | None
    last_analyze_age_s: float | None
    last_autoanalyze_age_s: float | None
    xid_age: int | None  # age(relfrozenxid), the older of the table and its TOAST table
    mxid_age: int | None
    autovacuum_enabled: bool


def table_stats(
    conn: psycopg.Connection,
    *,
    schemas: Sequence[str] | None = None,
    table: str | None = None,
    share: tuple[int, int] | None = None,
) -> list[TableStats]:
    """Every user table (optionally only some schemas, or one table name), largest first.

    `share=(part, parts)` reads only part `part` (0-based) of `parts` disjoint shares of them, so that
    as many sessions can measure the shares at once (`by_size` puts them back in order)."""
    part, parts = share if share is not None else (None, None)
    params = {
        "schemas": optional_list(schemas),
        "table": table,
        "locked": locked_relations(conn),
        "part": part,
        "parts": parts,
    }
    return fetch_all(conn, "tables", TableStats, params)


def by_size(tables: Iterable[TableStats]) -> list[TableStats]:
    """Largest first (unmeasured ones last), then by name: the order of a single `table_stats` call."""
    return sorted(
        tables,
        key=lambda row: (row.total_bytes is None, -(row.total_bytes or 0), row.schema, row.table),
    )


@dataclass(frozen=True)
class SchemaDeadTuples:
    """Dead tuples of one schema a run did not look at."""

    schema: str
    tables: int
    dead_tuples: int
    live_tuples: int
    dead_ratio: float | None
    worst_table_dead_ratio: float | None


def dead_tuples_by_schema(conn: psycopg.Connection, *, outside: Sequence[str]) -> list[SchemaDeadTuples]:
    """Schemas other than `outside` with dead tuples, most first."""
    return fetch_all(conn, "dead_tuples_by_schema", SchemaDeadTuples, {"schemas": list(outside)})
