"""The health DAG's and the Performance page's access to the results database: sessions with the
collectors' timeouts, and the statements of `include/sql/tutormax_perf_health/` as dict rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.db import load_sql

if TYPE_CHECKING:
    import psycopg


SQL_FOLDER = "tutormax_perf_health"


def rows(
    conn: psycopg.Connection, name: str, schema: str, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Run `tutormax_perf_health/<name>.sql` with `{schema}` quoted and the values bound."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(load_sql(f"{SQL_FOLDER}/{name}.sql", schema=schema), dict(params or {}))
        return cursor.fetchall() if cursor.description else []


def one(
    conn: psycopg.Connection, name: str, schema: str, params: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    found = rows(conn, name, schema, params)
    return found[0] if found else None


def hour_of(moment: datetime) -> datetime:
    """The UTC hour a run belongs to: its snapshot's key."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
