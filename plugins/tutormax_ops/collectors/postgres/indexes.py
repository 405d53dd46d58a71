"""Indexes: usage per table, never-scanned, redundant (duplicate or prefix) and invalid indexes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from tutormax_ops.collectors.postgres._run import (
    column_or,
    fetch_all,
    fetch_one,
    fetch_scalars,
    locked_relations,
    optional_list,
    relation_columns,
)


@dataclass(frozen=True)
class IndexUsage:
    """One index of a user table and how often it is scanned."""

    schema: str
    table: str
    index: str
    scans: int
    tuples_read: int
    tuples_fetched: int
    last_scan: datetime | None  # PG16+ only; None before, or when never scanned
    locked: bool  # ACCESS EXCLUSIVE lock on the index or its table: size and definition are None
    size_bytes: int | None
    is_primary: bool
    is_unique: bool
    is_valid: bool
    is_exclusion: bool
    is_replica_identity: bool
    definition: str | None


@dataclass(frozen=True)
class StatsReset:
    """When this database's activity counters were last reset (None: never), and how long ago."""

    stats_reset: datetime | None
    stats_age_s: float | None


@dataclass(frozen=True)
class StatsOrigin:
    """Who this database is (cluster, oid, name) and what bounds the age of its activity counters."""

    system_identifier: str | None  # None: this role may not read pg_control_system()
    database_oid: int
    database: str
    stats_reset: datetime | None  # None: this database's counters were never reset
    server_stats_since: datetime | None  # the server started without its statistics (crash, restore)
    observed_at: datetime

    @property
    def identity(self) -> str:
        cluster = self.system_identifier or "unknown (pg_control_system() not readable)"
        return f"system {cluster}, database oid {self.database_oid} {self.database!r}"


@dataclass(frozen=True)
class UnusedIndex:
    """An index not scanned since the statistics were reset, with how old those statistics are:
    a recent reset makes "unused" meaningless (counters are also lost on a crash or restore)."""

    schema: str
    table: str
    index: str
    locked: bool
    size_bytes: int | None
    scans: int
    last_scan: datetime | None
    stats_reset: datetime | None  # None: this database's statistics were never reset
    stats_age_s: float | None
    definition: str | None


@dataclass(frozen=True)
class DuplicateIndex:
    """`index` is redundant next to `covering_index` (same keys, or a leading prefix of its keys)."""

    schema: str
    table: str
    index: str
    covering_index: str
    size_bytes: int
    same_keys: bool  # True: an exact duplicate; False: a prefix of the covering index's keys
    owning_constraint: str | None  # drop this constraint rather than the index
    definition: str
    covering_definition: str


@dataclass(frozen=True)
class InvalidIndex:
    """An index with indisvalid = false. `build_in_progress` means a concurrent build is running now."""

    schema: str
    table: str
    index: str
    locked: bool
    size_bytes: int | None
    is_ready: bool
    build_in_progress: bool
    definition: str | None


def index_usage(
    conn: psycopg.Connection,
    *,
    schemas: Sequence[str] | None = None,
    table: str | None = None,
    unused_only: bool = False,
) -> list[IndexUsage]:
    """Every index of the user tables (or of one table), grouped by table; with `unused_only`, only
    those `find_unused` may report (the others' sizes and definitions are not read)."""
    params = {
        "schemas": optional_list(schemas),
        "table": table,
        "locked": locked_relations(conn),
        "unused_only": unused_only,
    }
    return fetch_all(conn, "index_usage", IndexUsage, params, last_idx_scan=_last_idx_scan(conn))


def stats_reset(conn: psycopg.Connection) -> StatsReset:
    return fetch_one(conn, "stats_reset", StatsReset)


def stats_origin(conn: psycopg.Connection) -> StatsOrigin:
    """This database's identity and the moments its counters cannot be older than."""
    try:
        with conn.transaction():  # a savepoint inside a caller's transaction: the refusal is undone
            identifiers = fetch_scalars(conn, "system_identifier")
    except psycopg.errors.InsufficientPrivilege:
        identifiers = [None]
    origin = fetch_one(conn, "stats_origin", _StatsOriginRow)
    return StatsOrigin(identifiers[0], **vars(origin))


@dataclass(frozen=True)
class _StatsOriginRow:
    database_oid: int
    database: str
    stats_reset: datetime | None
    server_stats_since: datetime | None
    observed_at: datetime


def unused_indexes(
    conn: psycopg.Connection, *, schemas: Sequence[str] | None = None, min_size_bytes: int = 0
) -> list[UnusedIndex]:
    """Indexes with no scan since the last stats reset, excluding those that enforce a rule, largest first."""
    usage = index_usage(conn, schemas=schemas, unused_only=True)
    return find_unused(usage, stats_reset(conn), min_size_bytes=min_size_bytes)


def find_unused(
    usage: Sequence[IndexUsage], reset: StatsReset, *, min_size_bytes: int = 0
) -> list[UnusedIndex]:
    """The unused indexes among `usage` rows already collected (collect_all reads usage only once).

    Primary-key, unique, exclusion and replica-identity indexes are kept out: they enforce a rule or
    serve replication even when no query reads them. Invalid ones are `invalid_indexes`' business. A
    locked index (size unknown) is kept, last.
    """
    unused = [
        UnusedIndex(
            schema=row.schema,
            table=row.table,
            index=row.index,
            locked=row.locked,
            size_bytes=row.size_bytes,
            scans=row.scans,
            last_scan=row.last_scan,
            stats_reset=reset.stats_reset,
            stats_age_s=reset.stats_age_s,
            definition=row.definition,
        )
        for row in usage
        if row.scans == 0
        and row.is_valid
        and not (row.is_primary or row.is_unique or row.is_exclusion or row.is_replica_identity)
        and (row.size_bytes is None or row.size_bytes >= min_size_bytes)
    ]
    return sorted(
        unused, key=lambda row: (row.size_bytes is None, -(row.size_bytes or 0), row.schema, row.index)
    )


def duplicate_indexes(
    conn: psycopg.Connection, *, schemas: Sequence[str] | None = None
) -> list[DuplicateIndex]:
    """Indexes another index of the same table makes redundant; one row per redundant pair.

    Tables under an ACCESS EXCLUSIVE lock are skipped: their index expressions cannot be read.
    """
    params = {"schemas": optional_list(schemas), "locked": locked_relations(conn)}
    return fetch_all(conn, "duplicate_indexes", DuplicateIndex, params)


def invalid_indexes(conn: psycopg.Connection, *, schemas: Sequence[str] | None = None) -> list[InvalidIndex]:
    """Indexes a failed concurrent build left invalid (and any being built right now, marked as such)."""
    params = {"schemas": optional_list(schemas), "locked": locked_relations(conn)}
    return fetch_all(conn, "invalid_indexes", InvalidIndex, params)


def _last_idx_scan(conn: psycopg.Connection) -> sql.Composable:
    """pg_stat_user_indexes.last_idx_scan exists from PG16 on; checked, not inferred from the version."""
    columns = relation_columns(conn, "pg_catalog", "pg_stat_user_indexes")
    return column_or(columns, "s", "last_idx_scan", "NULL")
