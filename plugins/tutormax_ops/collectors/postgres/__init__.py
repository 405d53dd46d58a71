"""PostgreSQL collectors, one module per concern as in PgHero:

- `tables`: sizes, tuples, scans, vacuum/analyze history, freeze ages;
- `bloat`: catalog estimates for tables and btree indexes, pgstattuple for chosen relations;
- `indexes`: usage, unused, duplicate/prefix-redundant and invalid indexes;
- `queries`: pg_stat_statements snapshots and the figures between two of them;
- `health`: wraparound, xmin holders, lock waits, connections;
- `suggestions`: index suggestions for seq-scan-heavy tables.

Every function takes a psycopg 3 connection that the caller has already limited with
`tutormax_ops.core.db.apply_session_limits(conn, statement_timeout_ms=..., lock_timeout_ms=...,
read_only=True)`; they never change session settings, never write, and work for a role that has only
`pg_monitor` (results say where that role makes a figure unreliable). `collect_all` is the full pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from tutormax_ops.collectors.postgres.bloat import IndexBloat, TableBloat, index_bloat, table_bloat
from tutormax_ops.collectors.postgres.health import HealthReport, health_report
from tutormax_ops.collectors.postgres.indexes import (
    DuplicateIndex,
    IndexUsage,
    InvalidIndex,
    UnusedIndex,
    duplicate_indexes,
    find_unused,
    index_usage,
    invalid_indexes,
    stats_reset,
)
from tutormax_ops.collectors.postgres.queries import StatementsSnapshot, statements_snapshot
from tutormax_ops.collectors.postgres.tables import TableStats, table_stats


@dataclass(frozen=True)
class PostgresSnapshot:
    """One full collection pass over a database.

    `statements` is a pg_stat_statements snapshot: pass the previous pass's to `queries.query_stats`
    (and friends) to get the figures for the period in between.
    """

    taken_at: datetime
    database: str
    server_version: int
    tables: tuple[TableStats, ...]
    table_bloat: tuple[TableBloat, ...]
    index_bloat: tuple[IndexBloat, ...]
    index_usage: tuple[IndexUsage, ...]
    unused_indexes: tuple[UnusedIndex, ...]
    duplicate_indexes: tuple[DuplicateIndex, ...]
    invalid_indexes: tuple[InvalidIndex, ...]
    statements: StatementsSnapshot
    health: HealthReport


def collect_all(
    conn: psycopg.Connection,
    *,
    schemas: Sequence[str] | None = None,
    unused_min_size_bytes: int = 0,
    wraparound_table_limit: int = 20,
    min_transaction_s: float = 300.0,
    min_slot_xid_age: int = 1_000_000,
    min_lock_wait_s: float = 0.0,
) -> PostgresSnapshot:
    """Tables, bloat estimates, indexes, pg_stat_statements and health, in one pass of catalog reads.

    Nothing here reads table data, so its cost follows the size of the catalog, not of the data.
    """
    usage = index_usage(conn, schemas=schemas)
    return PostgresSnapshot(
        taken_at=datetime.now(UTC),
        database=conn.info.dbname,
        server_version=conn.info.server_version,
        tables=tuple(table_stats(conn, schemas=schemas)),
        table_bloat=tuple(table_bloat(conn, schemas=schemas)),
        index_bloat=tuple(index_bloat(conn, schemas=schemas)),
        index_usage=tuple(usage),
        unused_indexes=tuple(find_unused(usage, stats_reset(conn), min_size_bytes=unused_min_size_bytes)),
        duplicate_indexes=tuple(duplicate_indexes(conn, schemas=schemas)),
        invalid_indexes=tuple(invalid_indexes(conn, schemas=schemas)),
        statements=statements_snapshot(conn),
        health=health_report(
            conn,
            schemas=schemas,
            table_limit=wraparound_table_limit,
            min_transaction_s=min_transaction_s,
            min_slot_xid_age=min_slot_xid_age,
            min_lock_wait_s=min_lock_wait_s,
        ),
    )
