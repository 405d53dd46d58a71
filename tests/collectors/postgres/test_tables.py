"""tables.table_stats against a real server: sizes, tuples, scans, maintenance history, locks."""

from __future__ import annotations

import psycopg
import pytest

from tutormax_ops.collectors import to_dataframe
from tutormax_ops.collectors.postgres.tables import TableStats, by_size, table_stats

SETUP = (
    """
    CREATE TABLE sessions (id int PRIMARY KEY, tutor_id int, notes text)
        WITH (autovacuum_enabled = false)
    """,
    # EXTERNAL: stored out of line without compression, so the TOAST table surely grows.
    "ALTER TABLE sessions ALTER COLUMN notes SET STORAGE EXTERNAL",
    """
    INSERT INTO sessions
    SELECT g, g % 10, CASE WHEN g <= 20 THEN repeat(md5(g::text), 100) END
    FROM generate_series(1, 1000) AS g
    """,
    "DELETE FROM sessions WHERE id > 900",
    # Counters of this session's writes reach shared stats up to a second later; flushed now, they
    # cannot land on top of what ANALYZE is about to report.
    "SELECT pg_stat_force_next_flush()",
    "ANALYZE sessions",
    "UPDATE sessions SET tutor_id = 0 WHERE id <= 10",
    "CREATE TABLE scanned (id int PRIMARY KEY)",
    "INSERT INTO scanned SELECT generate_series(1, 100)",
    "CREATE SCHEMA other",
    "CREATE TABLE other.elsewhere (id int)",
    "SELECT count(*) FROM scanned",  # a sequential scan
    "SELECT id FROM scanned WHERE id = 7",  # an index scan
)


@pytest.fixture(scope="module")
def database(database_with) -> str:
    return database_with("tables", SETUP)


def by_name(rows: list[TableStats]) -> dict[str, TableStats]:
    return {f"{row.schema}.{row.table}": row for row in rows}


def test_sizes_tuples_and_maintenance(connect, database) -> None:
    stats = by_name(table_stats(connect(database)))
    sessions = stats["public.sessions"]
    assert sessions.heap_bytes > 0 and sessions.index_bytes > 0 and sessions.toast_bytes > 0
    assert sessions.total_bytes >= sessions.heap_bytes + sessions.index_bytes + sessions.toast_bytes
    # 1,000 inserted, 100 deleted, 10 updated (each update leaves one dead version).
    assert (sessions.live_tuples, sessions.dead_tuples) == (900, 110)
    assert sessions.dead_ratio == pytest.approx(110 / 1010)
    assert sessions.mods_since_analyze == 10
    assert sessions.last_analyze is not None and 0 <= sessions.last_analyze_age_s < 600
    assert sessions.last_vacuum is None and sessions.last_vacuum_age_s is None
    assert sessions.autovacuum_enabled is False
    assert sessions.xid_age is not None and sessions.xid_age > 0  # frozen in an earlier transaction
    assert sessions.locked is False


def test_scans(connect, database) -> None:
    scanned = by_name(table_stats(connect(database)))["public.scanned"]
    assert scanned.seq_scans >= 1 and scanned.seq_tuples_read >= 100
    assert scanned.idx_scans >= 1 and scanned.idx_tuples_fetched >= 1


def test_filters(connect, database) -> None:
    conn = connect(database)
    assert set(by_name(table_stats(conn, schemas=["other"]))) == {"other.elsewhere"}
    assert set(by_name(table_stats(conn, table="scanned"))) == {"public.scanned"}


def test_shares_split_the_tables_without_overlap(connect, database) -> None:
    conn = connect(database)
    every = table_stats(conn)
    shares = [table_stats(conn, share=(part, 2)) for part in (0, 1)]
    names = [set(by_name(share)) for share in shares]
    assert names[0].isdisjoint(names[1])
    assert names[0] | names[1] == set(by_name(every))
    assert [row.table for row in by_size(shares[0] + shares[1])] == [row.table for row in every]


def test_shares_are_about_even(connect, database_with) -> None:
    """Every table takes the same number of oids: split by oid parity, 100 like tables all fell in one
    share. By a hash of the oid, a share of fewer than 20 of 100 has a chance of about 1e-9."""
    tables = [f"CREATE TABLE like_{number} (id int PRIMARY KEY, v text)" for number in range(100)]
    conn = connect(database_with("table_shares", tables))
    sizes = [len(table_stats(conn, schemas=["public"], share=(part, 2))) for part in (0, 1)]
    assert sum(sizes) == 100 and min(sizes) >= 20, sizes


def test_pg_monitor_role_sees_the_same(connect, database, monitor_role) -> None:
    as_owner = by_name(table_stats(connect(database)))
    as_monitor = by_name(table_stats(connect(database, role=monitor_role)))
    assert set(as_monitor) == set(as_owner)
    assert as_monitor["public.sessions"].total_bytes == as_owner["public.sessions"].total_bytes


def test_exclusively_locked_table_is_reported_without_waiting(connect, database) -> None:
    """Size functions would queue behind an ACCESS EXCLUSIVE lock until lock_timeout failed the pass."""
    with psycopg.connect(database) as holder:
        holder.execute("LOCK TABLE scanned IN ACCESS EXCLUSIVE MODE")
        stats = by_name(table_stats(connect(database)))
        holder.rollback()
    assert stats["public.scanned"].locked is True
    assert stats["public.scanned"].total_bytes is None
    assert stats["public.sessions"].locked is False


def test_rows_become_a_dataframe(connect, database) -> None:
    frame = to_dataframe(table_stats(connect(database)))
    assert {"schema", "table", "dead_ratio", "xid_age"} <= set(frame.columns)
    assert len(frame) == 3
