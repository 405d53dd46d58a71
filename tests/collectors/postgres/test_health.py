"""health: wraparound ages, xmin holders, lock waits and connections, with sessions staged to show them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tutormax_ops.collectors.postgres.health import (
    connection_usage,
    database_xid_ages,
    health_report,
    lock_waits,
    table_xid_ages,
    xmin_holders,
)


@pytest.fixture(scope="module")
def database(database_with) -> str:
    tables = (
        "CREATE TABLE rooms (id int) WITH (autovacuum_freeze_max_age = 100000)",
        "CREATE TABLE tutors (id int)",
    )
    return database_with("health", tables)


@pytest.fixture
def blocked(database) -> Iterator[tuple[int, int]]:
    """A session holding an ACCESS EXCLUSIVE lock in an open transaction, and one waiting for it.
    Yields (holder pid, waiter pid) once the waiter is seen waiting."""
    with (
        psycopg.connect(database) as holder,
        psycopg.connect(database, autocommit=True) as waiter,
        # Autocommit: pg_stat_activity is read once per transaction, so polling needs new ones.
        psycopg.connect(database, autocommit=True) as watcher,
    ):
        holder.execute("LOCK TABLE tutors IN ACCESS EXCLUSIVE MODE")
        thread = threading.Thread(target=lambda: waiter.execute("SELECT count(*) FROM tutors"))
        thread.start()
        query = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s"
        deadline = time.monotonic() + 10
        while watcher.execute(query, (waiter.info.backend_pid,)).fetchone()[0] != "Lock":
            assert time.monotonic() < deadline, "the waiting session never started waiting"
            time.sleep(0.05)
        try:
            yield holder.info.backend_pid, waiter.info.backend_pid
        finally:
            holder.rollback()
            thread.join()


def test_database_wraparound(connect, database) -> None:
    ages = {row.database: row for row in database_xid_ages(connect(database))}
    this = ages[psycopg.conninfo.conninfo_to_dict(database)["dbname"]]
    assert this.xid_age > 0 and this.freeze_max_age > 0
    assert this.percent_of_freeze_max_age == pytest.approx(100 * this.xid_age / this.freeze_max_age)


def test_table_wraparound_uses_the_table_setting(connect, database) -> None:
    ages = {row.table: row for row in table_xid_ages(connect(database))}
    assert ages["rooms"].freeze_max_age == 100_000
    assert ages["tutors"].freeze_max_age > 100_000
    assert table_xid_ages(connect(database), min_xid_age=2**31 - 1) == []


def test_old_transaction_holds_back_xmin(connect, database) -> None:
    with psycopg.connect(database) as old:
        old_pid = old.info.backend_pid
        old.execute("SELECT txid_current()")  # takes an xid and keeps the transaction open
        time.sleep(1.1)
        holders = xmin_holders(connect(database), min_duration_s=1)
        recent_only = xmin_holders(connect(database), min_duration_s=3600)
        old.rollback()
    [holder] = [row for row in holders if row.pid == old_pid]
    assert holder.kind == "backend" and holder.state == "idle in transaction"
    assert holder.duration_s >= 1 and holder.xmin_age >= 1  # its xmin is below the next xid
    assert holder.query == "SELECT txid_current()"
    assert not [row for row in recent_only if row.pid == old_pid]


@pytest.mark.parametrize("as_monitor", [False, True])
def test_lock_waits(connect, database, monitor_role, blocked, as_monitor) -> None:
    holder_pid, waiter_pid = blocked
    conn = connect(database, role=monitor_role if as_monitor else None)
    [wait] = [row for row in lock_waits(conn) if row.pid == waiter_pid]
    assert wait.blocking_pids == [holder_pid]
    assert wait.blocking_queries == ["LOCK TABLE tutors IN ACCESS EXCLUSIVE MODE"]
    assert wait.query == "SELECT count(*) FROM tutors" and wait.waiting_s > 0
    assert lock_waits(conn, min_wait_s=3600) == []


def test_connections(connect, database) -> None:
    conn = connect(database)
    usage = connection_usage(conn)
    max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
    assert usage.connections >= 1 and usage.max_connections == max_connections
    assert usage.usage_percent == pytest.approx(
        100 * usage.connections / (usage.max_connections - usage.reserved_connections)
    )


def test_full_report_as_pg_monitor(connect, database, monitor_role) -> None:
    report = health_report(connect(database, role=monitor_role))
    assert report.databases and report.tables and report.connections.connections >= 1
