"""PostgreSQL sessions: opened through PostgresHook (any connection backend works), then given the
timeouts that every TutorMax Ops session must carry before it runs anything else."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from tutormax_ops.core.paths import SQL_DIR

if TYPE_CHECKING:
    from tutormax_ops.core.config import Settings

APPLICATION_NAME = "tutormax_ops"


def apply_session_limits(
    conn: psycopg.Connection,
    *,
    statement_timeout_ms: int,
    lock_timeout_ms: int,
    read_only: bool = False,
    application_name: str = APPLICATION_NAME,
) -> psycopg.Connection:
    """Set statement_timeout, lock_timeout (and read-only) for the rest of the session."""
    settings = {
        "statement_timeout": f"{int(statement_timeout_ms)}ms",
        "lock_timeout": f"{int(lock_timeout_ms)}ms",
        "application_name": application_name,
        "default_transaction_read_only": "on" if read_only else "off",
    }
    # set_config(..., false) is session-wide; in autocommit mode nothing can undo it.
    with conn.transaction():
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    return conn


def connect(
    conn_id: str,
    *,
    statement_timeout_ms: int,
    lock_timeout_ms: int,
    read_only: bool = False,
    autocommit: bool = True,
    application_name: str = APPLICATION_NAME,
) -> psycopg.Connection:
    """An autocommit psycopg 3 connection from an Airflow connection, with its limits already set."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    if not isinstance(conn, psycopg.Connection):
        raise TypeError(
            "PostgresHook did not return a psycopg 3 connection: install psycopg and SQLAlchemy 2"
        )
    conn.autocommit = autocommit
    conn.prepare_threshold = None  # server-side prepares break under changing settings and poolers
    return apply_session_limits(
        conn,
        statement_timeout_ms=statement_timeout_ms,
        lock_timeout_ms=lock_timeout_ms,
        read_only=read_only,
        application_name=application_name,
    )


def collector_session(conn_id: str, settings: Settings, *, read_only: bool = True) -> psycopg.Connection:
    """A session with the collectors' limits (`collectors.statement_timeout_ms`, `lock_timeout_ms`):
    for snapshots, findings and the results history."""
    return connect(
        conn_id,
        statement_timeout_ms=settings.collectors.statement_timeout_ms,
        lock_timeout_ms=settings.collectors.lock_timeout_ms,
        read_only=read_only,
    )


def load_sql(relative_path: str, **identifiers: str) -> sql.Composed | sql.SQL:
    """A statement from `include/sql/`, with `{name}` placeholders filled by quoted identifiers only."""
    text = (Path(SQL_DIR) / relative_path).read_text()
    statement = sql.SQL(text)  # type: ignore[arg-type] - trusted file shipped with the package
    if not identifiers:
        return statement
    return statement.format(**{name: sql.Identifier(value) for name, value in identifiers.items()})
