"""The one PostgreSQL advisory lock that migrations, maintenance and load tests share, so that
maintenance never runs during a migration and a migration never runs during maintenance.

The key comes from `coordination.advisory_lock_key`; every DAG takes the same one through this
module. Session-level locks are used: they survive the caller's transactions and are released
when the session ends, even if the worker dies.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

_POLL_S = 0.5


@dataclass(frozen=True)
class LockHolder:
    pid: int
    application_name: str
    state: str
    held_for_s: float


class LockNotAcquired(RuntimeError):
    """Another session held the lock for the whole wait; the message says who."""

    def __init__(self, key: int, waited_s: float, holder: LockHolder | None) -> None:
        who = (
            f"pid {holder.pid} ({holder.application_name or 'unnamed'}, {holder.state}, held {holder.held_for_s:.0f} s)"
            if holder
            else "another session"
        )
        super().__init__(f"advisory lock {key} is held by {who}; waited {waited_s:.0f} s")
        self.holder = holder


def lock_holder(conn: psycopg.Connection, key: int) -> LockHolder | None:
    """Who holds the advisory lock `key` now, if anyone (pg_locks splits a bigint key in two halves)."""
    row = conn.execute(
        """
        SELECT l.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
               extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::float8
        FROM pg_locks AS l
        LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = ((%(key)s::bigint >> 32) & 4294967295)::bigint::oid
          AND l.objid = (%(key)s::bigint & 4294967295)::bigint::oid
          AND l.objsubid = 1
        LIMIT 1
        """,
        {"key": key},
    ).fetchone()
    return LockHolder(*row) if row else None


def try_acquire(conn: psycopg.Connection, key: int) -> bool:
    (acquired,) = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(acquired)


def release(conn: psycopg.Connection, key: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


@contextlib.contextmanager
def exclusive(conn: psycopg.Connection, key: int, *, wait_s: float) -> Iterator[float]:
    """Hold the lock for the block; poll up to `wait_s` for it, then raise `LockNotAcquired`.

    Polling with pg_try_advisory_lock rather than blocking in pg_advisory_lock keeps the waiter
    out of the lock queue, so it never delays anyone, and lets the wait end on our own clock.
    Yields the seconds spent waiting.
    """
    started = time.monotonic()
    while not try_acquire(conn, key):
        waited = time.monotonic() - started
        if waited >= wait_s:
            raise LockNotAcquired(key, waited, lock_holder(conn, key))
        time.sleep(min(_POLL_S, max(wait_s - waited, 0.01)))
    try:
        yield time.monotonic() - started
    finally:
        if not conn.closed:
            release(conn, key)
