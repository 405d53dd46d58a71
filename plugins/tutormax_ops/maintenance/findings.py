"""What the report shows beside the tables: index, query and wraparound findings from the collectors."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import psycopg

from tutormax_ops.collectors.postgres.bloat import IndexBloat, index_bloat
from tutormax_ops.collectors.postgres.health import (
    DatabaseXidAge,
    TableXidAge,
    XminHolder,
    database_xid_ages,
    table_xid_ages,
    xmin_holders,
)
from tutormax_ops.collectors.postgres.indexes import (
    DuplicateIndex,
    InvalidIndex,
    UnusedIndex,
    duplicate_indexes,
    invalid_indexes,
    unused_indexes,
)
from tutormax_ops.collectors.postgres.queries import StatementDelta, slow_queries, statements_snapshot
from tutormax_ops.collectors.postgres.tables import SchemaDeadTuples, dead_tuples_by_schema
from tutormax_ops.core.notify import redact
from tutormax_ops.maintenance.common import error_line

TOP_N = 10
_PASSWORD_LITERAL = re.compile(r"(PASSWORD\s+)'(?:[^']|'')*'", re.IGNORECASE)
Row = TypeVar("Row")


@dataclass(frozen=True)
class Findings:
    bloated_indexes: list[IndexBloat]
    unused_indexes: list[UnusedIndex]
    duplicate_indexes: list[DuplicateIndex]
    invalid_indexes: list[InvalidIndex]
    slow_queries: list[StatementDelta]
    statements_unavailable: str | None
    database_xid_ages: list[DatabaseXidAge]
    table_xid_ages: list[TableXidAge]
    xmin_holders: list[XminHolder]
    unavailable: list[str]
    other_schemas: list[SchemaDeadTuples]  # dead tuples outside the run's schemas: not looked at


def no_findings(reason: str) -> Findings:
    """Findings with every section left out, for the reason given."""
    return Findings([], [], [], [], [], reason, [], [], [], [reason], [])


def collect_findings(conn: psycopg.Connection, schemas: Sequence[str], *, slow_query_ms: float) -> Findings:
    """Every collector the report shows. One that fails (a timeout on a huge catalog, a missing
    privilege) leaves its section empty with the reason, instead of losing the whole report."""
    unavailable: list[str] = []

    def section(name: str, collect: Callable[[], list[Row]]) -> list[Row]:
        try:
            return collect()
        except psycopg.Error as error:
            if conn.broken:
                raise
            unavailable.append(f"{name}: {error_line(error)}")
            return []

    statements = statements_snapshot(conn)  # says itself why pg_stat_statements cannot be read
    slow = (
        slow_queries(None, statements, min_duration_ms=slow_query_ms, limit=TOP_N)
        if statements.available
        else []
    )
    return Findings(
        bloated_indexes=section(
            "index bloat",
            lambda: [row for row in index_bloat(conn, schemas=schemas) if row.bloat_bytes][:TOP_N],
        ),
        unused_indexes=section("unused indexes", lambda: unused_indexes(conn, schemas=schemas)),
        duplicate_indexes=section("duplicate indexes", lambda: duplicate_indexes(conn, schemas=schemas)),
        invalid_indexes=section("invalid indexes", lambda: invalid_indexes(conn, schemas=schemas)),
        # Statement texts are normalised by pg_stat_statements, but utility statements keep literals.
        slow_queries=[dataclasses.replace(row, query=sanitize_query(row.query)) for row in slow],
        statements_unavailable=None
        if statements.available
        else f"{statements.reason}. Fix: {statements.fix}",
        database_xid_ages=section("database xid ages", lambda: database_xid_ages(conn)),
        table_xid_ages=section("table xid ages", lambda: table_xid_ages(conn, schemas=schemas, limit=TOP_N)),
        # Another session's query text may hold anything, secrets included: it is not reported.
        xmin_holders=[
            dataclasses.replace(row, query=None)
            for row in section("xmin holders", lambda: xmin_holders(conn))
        ],
        other_schemas=section("other schemas", lambda: dead_tuples_by_schema(conn, outside=schemas)),
        unavailable=unavailable,
    )


def sanitize_query(query: str) -> str:
    return redact(_PASSWORD_LITERAL.sub(r"\1'***'", query))
