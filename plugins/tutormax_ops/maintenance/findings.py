"""What the report shows beside the tables: index, query and wraparound findings from the collectors."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


def collect_findings(
    conn: psycopg.Connection,
    schemas: Sequence[str],
    *,
    slow_query_ms: float,
    second: psycopg.Connection | None = None,
) -> Findings:
    """Every collector the report shows. One that fails (a timeout on a huge catalog, a missing
    privilege) leaves its section empty with the reason, instead of losing the whole report.

    With a `second` session, the index bloat estimate (on thousands of tables a catalog scan about as
    long as all the other sections together) is read on it meanwhile."""
    unavailable: list[str] = []

    def attempt(
        session: psycopg.Connection, collect: Callable[[], list[Row]]
    ) -> tuple[list[Row], str | None]:
        try:
            return collect(), None
        except psycopg.Error as error:
            if session.broken:
                raise
            return [], error_line(error)

    def recorded(name: str, outcome: tuple[list[Row], str | None]) -> list[Row]:
        rows, error = outcome
        if error is not None:
            unavailable.append(f"{name}: {error}")
        return rows

    bloat_session = second or conn

    def bloated_indexes() -> list[IndexBloat]:
        return [row for row in index_bloat(bloat_session, schemas=schemas) if row.bloat_bytes][:TOP_N]

    with ThreadPoolExecutor(max_workers=1) as pool:  # `second` is used by its thread only
        bloat = pool.submit(attempt, second, bloated_indexes).result if second else None
        statements = statements_snapshot(conn)  # says itself why pg_stat_statements cannot be read
        slow = (
            slow_queries(None, statements, min_duration_ms=slow_query_ms, limit=TOP_N)
            if statements.available
            else []
        )
        unused = attempt(conn, lambda: unused_indexes(conn, schemas=schemas))
        duplicate = attempt(conn, lambda: duplicate_indexes(conn, schemas=schemas))
        invalid = attempt(conn, lambda: invalid_indexes(conn, schemas=schemas))
        database_ages = attempt(conn, lambda: database_xid_ages(conn))
        table_ages = attempt(conn, lambda: table_xid_ages(conn, schemas=schemas, limit=TOP_N))
        holders = attempt(conn, lambda: xmin_holders(conn))
        other_schemas = attempt(conn, lambda: dead_tuples_by_schema(conn, outside=schemas))
        bloated = bloat() if bloat else attempt(conn, bloated_indexes)
    # Recorded in the order the report lists the sections, whichever session finished first.
    return Findings(
        bloated_indexes=recorded("index bloat", bloated),
        unused_indexes=recorded("unused indexes", unused),
        duplicate_indexes=recorded("duplicate indexes", duplicate),
        invalid_indexes=recorded("invalid indexes", invalid),
        # Statement texts are normalised by pg_stat_statements, but utility statements keep literals.
        slow_queries=[dataclasses.replace(row, query=sanitize_query(row.query)) for row in slow],
        statements_unavailable=None
        if statements.available
        else f"{statements.reason}. Fix: {statements.fix}",
        database_xid_ages=recorded("database xid ages", database_ages),
        table_xid_ages=recorded("table xid ages", table_ages),
        # Another session's query text may hold anything, secrets included: it is not reported.
        xmin_holders=[dataclasses.replace(row, query=None) for row in recorded("xmin holders", holders)],
        other_schemas=recorded("other schemas", other_schemas),
        unavailable=unavailable,
    )


def sanitize_query(query: str) -> str:
    return redact(_PASSWORD_LITERAL.sub(r"\1'***'", query))
