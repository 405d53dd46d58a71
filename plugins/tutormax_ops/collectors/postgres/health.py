"""Health: transaction-ID wraparound, what holds back vacuum, lock waits and connection headroom."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from tutormax_ops.collectors.postgres._run import (
    column_or,
    fetch_all,
    fetch_one,
    optional_list,
    relation_columns,
)


@dataclass(frozen=True)
class DatabaseXidAge:
    """age(datfrozenxid) of one database, as a share of autovacuum_freeze_max_age and of 2^31."""

    database: str
    xid_age: int
    mxid_age: int
    freeze_max_age: int
    percent_of_freeze_max_age: float
    percent_of_wraparound: float


@dataclass(frozen=True)
class TableXidAge:
    """age(relfrozenxid) of one table against the freeze_max_age that applies to it."""

    schema: str
    table: str
    xid_age: int
    freeze_max_age: int
    percent_of_freeze_max_age: float


@dataclass(frozen=True)
class XminHolder:
    """Something that keeps VACUUM from removing dead rows: an old backend transaction, a prepared
    transaction or a replication slot (`kind`). `name` is the application, the gid or the slot name."""

    kind: str
    pid: int | None
    name: str | None
    username: str | None
    state: str | None
    started_at: datetime | None
    duration_s: float | None
    xmin_age: int | None
    query: str | None


@dataclass(frozen=True)
class LockWait:
    """A session waiting for a lock, and who holds it up."""

    pid: int
    username: str | None
    application_name: str | None
    wait_event: str | None
    blocking_pids: list[int]
    waiting_s: float | None
    query: str | None
    blocking_queries: list[str]


@dataclass(frozen=True)
class ConnectionUsage:
    """Client connections against what ordinary clients may open."""

    connections: int
    active: int
    idle: int
    idle_in_transaction: int
    waiting_on_locks: int
    max_connections: int
    reserved_connections: int
    usage_percent: float | None


@dataclass(frozen=True)
class HealthReport:
    databases: tuple[DatabaseXidAge, ...]
    tables: tuple[TableXidAge, ...]
    xmin_holders: tuple[XminHolder, ...]
    lock_waits: tuple[LockWait, ...]
    connections: ConnectionUsage


def database_xid_ages(conn: psycopg.Connection) -> list[DatabaseXidAge]:
    """Every database of the server, oldest datfrozenxid first."""
    return fetch_all(conn, "database_xid_age", DatabaseXidAge)


def table_xid_ages(
    conn: psycopg.Connection,
    *,
    schemas: Sequence[str] | None = None,
    min_xid_age: int = 0,
    limit: int = 20,
) -> list[TableXidAge]:
    """The user tables with the oldest relfrozenxid, oldest first."""
    params = {"schemas": optional_list(schemas), "min_xid_age": min_xid_age, "limit": limit}
    return fetch_all(conn, "table_xid_age", TableXidAge, params)


def xmin_holders(
    conn: psycopg.Connection, *, min_duration_s: float = 300.0, min_slot_xid_age: int = 1_000_000
) -> list[XminHolder]:
    """Transactions open (or prepared) for at least `min_duration_s`, and replication slots that
    retain rows older than `min_slot_xid_age` transactions."""
    params = {"min_duration_s": min_duration_s, "min_slot_xid_age": min_slot_xid_age}
    return fetch_all(conn, "xmin_holders", XminHolder, params)


def lock_waits(conn: psycopg.Connection, *, min_wait_s: float = 0.0) -> list[LockWait]:
    """Sessions that have waited for a lock for at least `min_wait_s`, longest first."""
    columns = relation_columns(conn, "pg_catalog", "pg_locks")  # waitstart: PG14+
    wait_start = column_or(columns, "l", "waitstart", "NULL")
    return fetch_all(conn, "lock_waits", LockWait, {"min_wait_s": min_wait_s}, wait_start=wait_start)


def connection_usage(conn: psycopg.Connection) -> ConnectionUsage:
    return fetch_one(conn, "connections", ConnectionUsage)


def health_report(
    conn: psycopg.Connection,
    *,
    schemas: Sequence[str] | None = None,
    table_limit: int = 20,
    min_transaction_s: float = 300.0,
    min_slot_xid_age: int = 1_000_000,
    min_lock_wait_s: float = 0.0,
) -> HealthReport:
    """All of the above in one report."""
    return HealthReport(
        databases=tuple(database_xid_ages(conn)),
        tables=tuple(table_xid_ages(conn, schemas=schemas, limit=table_limit)),
        xmin_holders=tuple(
            xmin_holders(conn, min_duration_s=min_transaction_s, min_slot_xid_age=min_slot_xid_age)
        ),
        lock_waits=tuple(lock_waits(conn, min_wait_s=min_lock_wait_s)),
        connections=connection_usage(conn),
    )


@dataclass(frozen=True)
class LockHolder:
    """A session holding a lock on a table (no query text: it may hold anything)."""

    schema: str
    table: str
    pid: int
    mode: str
    username: str | None
    application_name: str | None
    state: str | None
    xact_start: datetime | None
    query_start: datetime | None


def lock_holders(conn: psycopg.Connection, tables: Sequence[tuple[str, str]]) -> list[LockHolder]:
    """The sessions holding a granted lock on any of `tables` ((schema, table) pairs)."""
    if not tables:
        return []
    params = {"schemas": [schema for schema, _ in tables], "tables": [table for _, table in tables]}
    return fetch_all(conn, "lock_holders", LockHolder, params)
