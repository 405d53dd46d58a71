"""The VACUUM runner on a real PostgreSQL: statements, parallel sessions, locks, the window, errors."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import sql

from maintenance.catalog import WEIRD, dead_tuples
from tutormax_ops.maintenance.common import TableRef
from tutormax_ops.maintenance.vacuum import maintenance_statement, vacuum_tables


@pytest.mark.parametrize(
    ("mode", "version", "expected"),
    [
        (
            "vacuum_analyze",
            180000,
            'VACUUM (ANALYZE, SKIP_LOCKED, TRUNCATE false, SKIP_DATABASE_STATS) "Mixed Case"."we""ird name"',
        ),
        (
            "vacuum_analyze",
            150000,
            'VACUUM (ANALYZE, SKIP_LOCKED, TRUNCATE false) "Mixed Case"."we""ird name"',
        ),
        (
            "vacuum_freeze_analyze",
            170000,
            'VACUUM (FREEZE, ANALYZE, SKIP_LOCKED, TRUNCATE false, SKIP_DATABASE_STATS) "Mixed Case"."we""ird name"',
        ),
        ("analyze_only", 180000, 'ANALYZE (SKIP_LOCKED) "Mixed Case"."we""ird name"'),
    ],
)
def test_statements_quote_identifiers_and_never_use_full(mode: str, version: int, expected: str) -> None:
    statement = maintenance_statement(mode, truncate=False, server_version_num=version)(WEIRD)
    text = statement.as_string().splitlines()[-1]
    assert text == expected
    assert "FULL" not in text


def test_runner_vacuums_in_parallel_and_skips_a_locked_table_at_once(database_url: str) -> None:
    locked = TableRef("public", "bloated")
    with psycopg.connect(database_url) as probe:
        statement_for = maintenance_statement(
            "vacuum_analyze", truncate=False, server_version_num=probe.info.server_version
        )
    with (
        psycopg.connect(database_url) as holder,
        psycopg.connect(database_url, autocommit=True) as first,
        psycopg.connect(database_url, autocommit=True) as second,
    ):
        holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(locked.identifier))
        started = time.monotonic()
        outcomes = vacuum_tables(
            [first, second], [locked, WEIRD], statement_for, deadline=time.monotonic() + 60
        )
        elapsed = time.monotonic() - started
        holder.rollback()
    by_table = {TableRef(o.schema, o.table): o for o in outcomes}
    assert by_table[locked].outcome == "skipped_locked"
    assert "lock not available" in by_table[locked].detail
    assert by_table[WEIRD].outcome == "done"
    assert elapsed < 5  # never queued behind the lock
    assert dead_tuples(database_url, WEIRD) == 0
    assert dead_tuples(database_url, locked) > 3000


def test_window_end_times_out_the_running_statement_and_defers_the_rest(database_url: str) -> None:
    tables = [TableRef("public", "bloated"), TableRef("public", "clean"), WEIRD]
    with psycopg.connect(database_url, autocommit=True) as conn:
        started = time.monotonic()
        outcomes = vacuum_tables(
            [conn], tables, lambda table: sql.SQL("SELECT pg_sleep(30)"), deadline=time.monotonic() + 0.5
        )
        assert time.monotonic() - started < 5
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session survives the timeout
    assert [o.outcome for o in outcomes] == ["timed_out", "deferred", "deferred"]
    assert outcomes[1].detail == "the window ended before it could start"

    with psycopg.connect(database_url, autocommit=True) as conn:
        expired = vacuum_tables([conn], tables, lambda table: sql.SQL("SELECT 1"), deadline=time.monotonic())
    assert {o.outcome for o in expired} == {"deferred"}


def test_an_error_is_recorded_and_the_other_tables_go_on(database_url: str) -> None:
    gone = TableRef("public", "dropped meanwhile")
    with psycopg.connect(database_url, autocommit=True) as conn:
        statement_for = maintenance_statement(
            "vacuum_analyze", truncate=False, server_version_num=conn.info.server_version
        )
        outcomes = vacuum_tables([conn], [gone, WEIRD], statement_for, deadline=time.monotonic() + 60)
    assert [o.outcome for o in outcomes] == ["error", "done"]
    assert 'relation "public.dropped meanwhile" does not exist' in outcomes[0].detail


def test_a_scheduled_run_started_after_its_window_vacuums_nothing_and_says_why(database_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from maintenance.catalog import request
    from tutormax_ops.core.windows import run_window
    from tutormax_ops.maintenance.plan import build_plan
    from tutormax_ops.maintenance.snapshot import take_snapshot
    from tutormax_ops.maintenance.vacuum import execute_plan

    with psycopg.connect(database_url, autocommit=True) as conn:
        plan = build_plan(conn, request(), take_snapshot(conn, ("public", "Mixed Case"), "before"))
    scheduled = datetime.now(UTC) - timedelta(hours=5)
    started = scheduled + timedelta(hours=3, minutes=12)  # e.g. the DAG was unpaused late
    window = run_window(run_type="scheduled", run_after=scheduled, started_at=started, minutes=120)
    # No connection id is needed: a late run returns before it opens any session.
    result = execute_plan("no_connection", plan, lock_key=1, lock_wait_s=0, window=window, started_at=started)
    assert result.status == "skipped"
    assert result.detail.startswith("skipped: started 1.2 h after its window (")
    assert {o.outcome for o in result.outcomes} == {"deferred"} and len(result.outcomes) == len(
        plan.tables
    ) == 2
    assert dead_tuples(database_url, TableRef("public", "bloated")) > 3000


def table_state(url: str, table: TableRef) -> tuple[int, bool, int]:
    """(n_dead_tup, analyzed, age(relfrozenxid)) of one table."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT s.n_dead_tup, s.last_analyze IS NOT NULL, age(c.relfrozenxid)"
            " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
            " WHERE s.schemaname = %s AND s.relname = %s",
            (table.schema, table.table),
        ).fetchone()


def test_analyze_only_analyzes_and_leaves_dead_tuples_and_freeze_mode_freezes(database_url: str) -> None:
    bloated = TableRef("public", "bloated")
    with psycopg.connect(database_url, autocommit=True) as conn:
        version = conn.info.server_version
        conn.execute("SELECT pg_stat_reset_single_table_counters(%s::regclass)", ("public.bloated",))
        analyze = maintenance_statement("analyze_only", truncate=False, server_version_num=version)
        (outcome,) = vacuum_tables([conn], [bloated], analyze, deadline=time.monotonic() + 60)
        assert outcome.outcome == "done"
        dead, analyzed, _ = table_state(database_url, bloated)
        assert analyzed and dead > 3000  # ANALYZE removes nothing
        conn.execute("SELECT txid_current()")  # make the table's xid older than the newest
        freeze = maintenance_statement("vacuum_freeze_analyze", truncate=False, server_version_num=version)
        (outcome,) = vacuum_tables([conn], [bloated], freeze, deadline=time.monotonic() + 60)
    assert outcome.outcome == "done"
    dead, _, xid_age = table_state(database_url, bloated)
    assert dead == 0 and xid_age <= 2  # FREEZE set relfrozenxid to the newest possible


def test_a_session_that_breaks_mid_run_records_an_error_and_the_other_session_takes_the_rest(
    database_url: str,
) -> None:
    tables = [TableRef("public", "bloated"), TableRef("public", "clean"), WEIRD]
    with (
        psycopg.connect(database_url, autocommit=True) as first,
        psycopg.connect(database_url, autocommit=True) as second,
        psycopg.connect(database_url, autocommit=True) as killer,
    ):
        doomed = first.info.backend_pid

        def statement_for(table: TableRef) -> sql.Composable:
            if table == tables[0]:  # the first session takes it first, and dies in it
                killer.execute("SELECT pg_terminate_backend(%s)", (doomed,))
            return sql.SQL("SELECT pg_sleep(0.2)")

        outcomes = vacuum_tables([first, second], tables, statement_for, deadline=time.monotonic() + 60)
    by_table = {TableRef(o.schema, o.table): o for o in outcomes}
    broken = [o for o in outcomes if o.outcome == "error"]
    assert len(broken) == 1 and "terminat" in broken[0].detail.lower()
    assert sorted(o.outcome for o in outcomes) == ["done", "done", "error"]
    assert set(by_table) == set(tables)


def test_a_failing_only_database_stats_is_reported_not_raised(database_url: str) -> None:
    from tutormax_ops.maintenance.vacuum import TableOutcome, _update_database_stats

    done = [TableOutcome("public", "bloated", "done", 0.1)]
    with (
        psycopg.connect(database_url) as holder,
        psycopg.connect(database_url, autocommit=True) as control,
    ):
        if control.info.server_version < 160000:
            pytest.skip("VACUUM (ONLY_DATABASE_STATS) needs PostgreSQL 16+")
        # Another session holds the database's pg_database row: the update of datfrozenxid waits,
        # and the control session's lock_timeout (as in production) stops it.
        holder.execute("SELECT 1 FROM pg_database WHERE datname = current_database() FOR UPDATE")
        control.execute("SET lock_timeout = '200ms'")
        message = _update_database_stats(control, "vacuum_analyze", done, control.info.server_version)
        holder.rollback()
    assert message == "error: VACUUM (ONLY_DATABASE_STATS) failed: canceling statement due to lock timeout"
