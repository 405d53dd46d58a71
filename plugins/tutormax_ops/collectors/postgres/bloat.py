"""Bloat: catalog estimates for every table and btree index, and an exact mode for chosen relations.

The estimates read only `pg_class` and `pg_stats`, so their cost follows the size of the catalog, not of
the data: they are what the weekly report runs. `exact_bloat` reads every page through the pgstattuple
extension (or the visibility map through `pgstattuple_approx`) and is meant to confirm the estimate on
the few relations worth acting on. The methods are documented in the `.sql` files: they return
catalog facts and an expected size, and `_judge` below decides whether those facts can be trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from tutormax_ops.collectors.postgres._run import extension_schema, fetch_all, fetch_one, optional_list

# Relation kinds pgstattuple_approx accepts: tables, materialized views and TOAST tables.
_HEAP_KINDS = frozenset({"r", "m", "t"})
_NOT_VISIBLE = (
    "pg_stats not visible to this role: it may not SELECT every column (or row security hides the "
    "table), so the widths are unknown; grant SELECT, or run as the owner"
)
_EXTENSION_MISSING = (
    "the pgstattuple extension is not installed in this database: run CREATE EXTENSION pgstattuple "
    "(as the database owner); members of pg_stat_scan_tables, which pg_monitor includes, may then use it"
)


@dataclass(frozen=True)
class TableBloat:
    """Estimated bloat of one table (heap and TOAST). Size figures are None when not `estimable`."""

    schema: str
    table: str
    fillfactor: int
    estimated_rows: float
    actual_bytes: int
    expected_bytes: int | None
    bloat_bytes: int | None
    bloat_percent: float | None
    estimable: bool
    reason: str | None  # why not estimable, e.g. "pg_stats not visible to this role"


@dataclass(frozen=True)
class IndexBloat:
    """Estimated bloat of one btree index. Size figures are None when not `estimable`."""

    schema: str
    table: str
    index: str
    fillfactor: int
    estimated_rows: float
    deduplicated: bool  # whether the estimate assumed PG13+ btree deduplication
    actual_bytes: int
    expected_bytes: int | None
    bloat_bytes: int | None
    bloat_percent: float | None
    estimable: bool
    reason: str | None


@dataclass(frozen=True)
class ExactBloat:
    """Measured space of one relation. Percentages are of `bytes`; None when not `available`.

    `dead_free_percent` (dead tuples plus free space) is what a rewrite would reclaim, less the row
    overhead that pgstattuple leaves out, so it reads a few points below the catalog estimate.
    """

    schema: str
    relation: str
    method: str  # "pgstattuple" or "pgstattuple_approx"
    available: bool
    reason: str | None
    bytes: int | None = None
    live_percent: float | None = None
    dead_tuple_percent: float | None = None
    free_percent: float | None = None
    dead_free_percent: float | None = None
    scanned_percent: float | None = None


@dataclass(frozen=True)
class _CatalogFacts:
    """One row of table_bloat.sql or index_bloat.sql (index and deduplicated are NULL for tables)."""

    schema: str
    table: str
    index: str | None
    fillfactor: int
    estimated_rows: float
    deduplicated: bool | None
    block_size: int
    actual_pages: int
    expected_pages: float
    columns: int
    columns_with_stats: int
    stats_visible: bool
    has_name_column: bool


@dataclass(frozen=True)
class _Relation:
    schema: str
    name: str
    oid: int | None
    relkind: str | None


@dataclass(frozen=True)
class _Measure:
    bytes: int
    live_percent: float
    dead_tuple_percent: float
    free_percent: float
    scanned_percent: float


def table_bloat(conn: psycopg.Connection, *, schemas: Sequence[str] | None = None) -> list[TableBloat]:
    """The catalog estimate for every user table, most bloated first (not estimable ones last)."""
    facts = fetch_all(conn, "table_bloat", _CatalogFacts, {"schemas": optional_list(schemas)})
    rows = [TableBloat(f.schema, f.table, f.fillfactor, f.estimated_rows, **_judge(f)) for f in facts]
    return sorted(rows, key=_most_bloated_first)


def index_bloat(conn: psycopg.Connection, *, schemas: Sequence[str] | None = None) -> list[IndexBloat]:
    """The catalog estimate for every valid, non-empty btree index, most bloated first."""
    facts = fetch_all(conn, "index_bloat", _CatalogFacts, {"schemas": optional_list(schemas)})
    rows = [
        IndexBloat(
            f.schema,
            f.table,
            f.index or "",
            f.fillfactor,
            f.estimated_rows,
            bool(f.deduplicated),
            **_judge(f),
        )
        for f in facts
    ]
    return sorted(rows, key=_most_bloated_first)


def exact_bloat(
    conn: psycopg.Connection, relations: Sequence[tuple[str, str]], approx: bool = False
) -> list[ExactBloat]:
    """pgstattuple over each (schema, name), in order: tables or indexes.

    With `approx`, tables go through pgstattuple_approx (indexes still through pgstattuple). A missing
    extension, an unknown name, a lock or a timeout makes that row unavailable rather than raising.
    Each relation runs in its own (sub)transaction so that one failure leaves the session usable.
    """
    method = "pgstattuple_approx" if approx else "pgstattuple"
    schema = extension_schema(conn, "pgstattuple")
    if schema is None:
        return [ExactBloat(s, name, method, False, _EXTENSION_MISSING) for s, name in relations]
    resolved = fetch_all(
        conn,
        "relations",
        _Relation,
        {"schemas": [s for s, _ in relations], "names": [name for _, name in relations]},
    )
    return [_measure(conn, sql.Identifier(schema), relation, approx) for relation in resolved]


def _judge(facts: _CatalogFacts) -> dict[str, Any]:
    """The size figures of TableBloat/IndexBloat: None, with the reason, when the facts are not enough."""
    reason = _unreliable(facts)
    estimable = reason is None
    expected_pages = facts.expected_pages if facts.actual_pages else 0.0
    bloat_pages = max(facts.actual_pages - expected_pages, 0.0)
    bloat_percent = 100 * bloat_pages / facts.actual_pages if facts.actual_pages else 0.0
    return {
        "actual_bytes": facts.actual_pages * facts.block_size,
        "expected_bytes": int(expected_pages * facts.block_size) if estimable else None,
        "bloat_bytes": int(bloat_pages * facts.block_size) if estimable else None,
        "bloat_percent": bloat_percent if estimable else None,
        "estimable": estimable,
        "reason": reason,
    }


def _unreliable(facts: _CatalogFacts) -> str | None:
    if not facts.stats_visible:
        return _NOT_VISIBLE
    if facts.estimated_rows < 0:  # reltuples is -1 until the first VACUUM or ANALYZE (PG14+)
        return "never analyzed: run ANALYZE"
    if facts.actual_pages == 0:
        return None  # empty: nothing to estimate, nothing bloated
    if facts.columns_with_stats < facts.columns:
        missing = facts.columns - facts.columns_with_stats
        return f"no pg_stats for {missing} of {facts.columns} columns: run ANALYZE"
    if facts.has_name_column:
        return "has columns of type name, whose pg_stats widths are misleading"
    return None


def _most_bloated_first(row: TableBloat | IndexBloat) -> tuple[bool, int, str, str, str]:
    """Largest bloat first, then the not estimable ones; ties by name, for a stable report."""
    index = row.index if isinstance(row, IndexBloat) else ""
    return (row.bloat_bytes is None, -(row.bloat_bytes or 0), row.schema, row.table, index)


def _measure(
    conn: psycopg.Connection, schema: sql.Identifier, relation: _Relation, approx: bool
) -> ExactBloat:
    use_approx = approx and relation.relkind in _HEAP_KINDS
    method = "pgstattuple_approx" if use_approx else "pgstattuple"
    if relation.oid is None:
        return ExactBloat(relation.schema, relation.name, method, False, "relation not found")
    try:
        with conn.transaction():
            measured = fetch_one(conn, method, _Measure, {"oid": relation.oid}, schema=schema)
    except psycopg.Error as error:
        if conn.broken:
            raise
        return ExactBloat(relation.schema, relation.name, method, False, str(error).splitlines()[0])
    return ExactBloat(
        relation.schema,
        relation.name,
        method,
        True,
        None,
        bytes=measured.bytes,
        live_percent=measured.live_percent,
        dead_tuple_percent=measured.dead_tuple_percent,
        free_percent=measured.free_percent,
        dead_free_percent=measured.dead_tuple_percent + measured.free_percent,
        scanned_percent=measured.scanned_percent,
    )
