"""Fixtures of the PostgreSQL collector tests: collector sessions limited the way tasks limit them,
a role that has only pg_monitor, and helpers to make statistics visible without waiting."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tutormax_ops.core.config import Collectors
from tutormax_ops.core.db import apply_session_limits

MONITOR_PASSWORD = "monitor-test-only"

Connect = Callable[..., psycopg.Connection]


@pytest.fixture(scope="session")
def monitor_role(pg_admin_url: str) -> Iterator[str]:
    """A login role whose only grant is pg_monitor, as a production monitoring user would be."""
    name = f"tutormax_monitor_{os.getpid()}"
    role = sql.Identifier(name)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_monitor").format(
                role, sql.Literal(MONITOR_PASSWORD)
            )
        )
    yield name
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


@pytest.fixture(scope="session")
def database_with(fresh_database: Callable[[str], str]) -> Callable[[str, Sequence[str]], str]:
    """`database_with(hint, statements)`: the URL of a fresh database where each statement ran (as the
    superuser, autocommit), after which that session's statistics were flushed for others to see."""

    def build(hint: str, statements: Sequence[str]) -> str:
        url = fresh_database(hint)
        with psycopg.connect(url, autocommit=True) as admin:
            for statement in statements:
                admin.execute(statement)
            admin.execute("SELECT pg_stat_force_next_flush()")
        return url

    return build


@pytest.fixture
def connect() -> Iterator[Connect]:
    """`connect(url, role=None)`: an autocommit collector session, read-only, with the configured
    statement and lock timeouts (as tasks open them); `role` logs in as that role instead.
    Every session is closed after the test."""
    opened: list[psycopg.Connection] = []
    limits = Collectors()

    def open_session(url: str, *, role: str | None = None) -> psycopg.Connection:
        conn = psycopg.connect(as_role(url, role) if role else url, autocommit=True, prepare_threshold=None)
        opened.append(conn)
        return apply_session_limits(
            conn,
            statement_timeout_ms=limits.statement_timeout_ms,
            lock_timeout_ms=limits.lock_timeout_ms,
            read_only=True,
        )

    yield open_session
    for conn in opened:
        conn.close()


def as_role(url: str, role: str) -> str:
    """The same server and database, logged in as `role` (with the test password)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    return parts._replace(netloc=f"{role}:{MONITOR_PASSWORD}@{host}:{parts.port or 5432}").geturl()


@pytest.fixture(scope="session")
def flush_stats() -> Callable[[psycopg.Connection], None]:
    """`flush_stats(conn)` makes that session's activity counters visible to others now, rather than
    within a second or so: a backend flushes them when it goes idle after the flag is set."""

    def flush(conn: psycopg.Connection) -> None:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")

    return flush
