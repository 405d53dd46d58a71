"""The maintenance plan and VACUUM runner on a real PostgreSQL: selection, identifiers, locks, window."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tutormax_ops.core.config import Maintenance
from tutormax_ops.maintenance import (
    MaintenanceParamError,
    Plan,
    Snapshot,
    TableRef,
    VacuumResult,
    build_plan,
    display_name,
    from_jsonable,
    maintenance_statement,
    request_from_params,
    take_snapshot,
    to_jsonable,
    vacuum_tables,
)
from tutormax_ops.maintenance_report import collect_findings, recommend, sanitize_query

WEIRD = TableRef("Mixed Case", 'we"ird name')


def make_table(url: str, table: TableRef, *, rows: int = 5000, deleted_percent: int = 50) -> None:
    """A table with autovacuum off and `deleted_percent` of its rows deleted (dead tuples), then analyzed.

    ANALYZE runs in a second session: a backend flushes its pending table statistics at exit at the
    latest, and ANALYZE in the same session would be mixed with the counts not yet flushed.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(table.schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id int PRIMARY KEY, payload text NOT NULL) WITH (autovacuum_enabled = false)"
            ).format(table.identifier)
        )
        conn.execute(
            sql.SQL("INSERT INTO {} SELECT g, repeat('x', 100) FROM generate_series(1, %s) AS g").format(
                table.identifier
            ),
            (rows,),
        )
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE id %% 100 < %s").format(table.identifier), (deleted_percent,)
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(table.identifier))


def dead_tuples(url: str, table: TableRef) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s",
            (table.schema, table.table),
        ).fetchone()
    return row[0]


def request(**params: object):
    return request_from_params(params, Maintenance(schemas=("public", "Mixed Case")))


@pytest.fixture
def database_url(fresh_database) -> str:
    url = fresh_database("maintenance")
    make_table(url, TableRef("public", "bloated"), rows=8000, deleted_percent=50)
    make_table(url, TableRef("public", "clean"), rows=1000, deleted_percent=0)
    make_table(url, WEIRD, rows=2000, deleted_percent=40)
    return url


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def test_display_names_quote_only_where_sql_needs_it() -> None:
    assert display_name("public", "orders") == "public.orders"
    assert WEIRD.display == '"Mixed Case"."we""ird name"'


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


def test_plan_takes_dead_tuple_ratio_and_oldest_xid_first(conn: psycopg.Connection) -> None:
    snapshot = take_snapshot(conn, ("public", "Mixed Case"), "before")
    plan = build_plan(conn, request(min_dead_tuple_ratio=0.2), snapshot)
    assert [t.ref for t in plan.tables] == [TableRef("public", "bloated"), WEIRD]  # created first: older xid
    assert plan.below_thresholds == 1
    assert "50.0% dead tuples" in plan.tables[0].reason

    everything = build_plan(conn, request(min_dead_tuple_ratio=0), snapshot)
    ages = [t.xid_age for t in everything.tables]
    assert len(ages) == 3 and ages == sorted(ages, reverse=True)

    by_age = request_from_params({}, Maintenance(schemas=("public",), min_dead_tuple_ratio=1, min_xid_age=0))
    public = take_snapshot(conn, ("public",), "before")
    assert [t.table for t in build_plan(conn, by_age, public).tables] == ["bloated", "clean"]


def test_plan_named_tables_and_exclusions(conn: psycopg.Connection) -> None:
    snapshot = take_snapshot(conn, ("public", "Mixed Case"), "before")
    named = build_plan(
        conn, request(tables=['"Mixed Case"."we""ird name"'], min_dead_tuple_ratio=0), snapshot
    )
    assert [t.ref for t in named.tables] == [WEIRD]
    settings = Maintenance(schemas=("public", "Mixed Case"), exclude_tables=("bloated", "public.gone"))
    excluded = build_plan(conn, request_from_params({"min_dead_tuple_ratio": 0}, settings), snapshot)
    assert TableRef("public", "bloated") not in [t.ref for t in excluded.tables]
    assert excluded.excluded == ("public.bloated",)
    assert excluded.notes == ("maintenance.exclude_tables: no table 'public.gone' (ignored)",)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tables": ["nope"]}, r"^tables: no table 'nope' in this database"),
        # Newer servers' parse_ident read it as a name that is not there; PG 15 rejects its syntax.
        (
            {"tables": ['"unterminated']},
            r"^tables: (no table '\"unterminated'|'\"unterminated' is not a valid)",
        ),
        ({"tables": ["a.b.c.d"]}, r"^tables: 'a.b.c.d' is not a valid table name"),
        ({"tables": ["pg_catalog.pg_class"]}, r"^tables: pg_catalog.pg_class is outside schemas"),
        ({"tables": ["bloated_pkey"]}, r"^tables: public.bloated_pkey is not a table"),
        ({"schemas": ["public", "nope"]}, r"^schemas: no schema named 'nope'"),
    ],
)
def test_plan_refuses_what_the_database_does_not_have(
    conn: psycopg.Connection, params: dict, message: str
) -> None:
    snapshot = take_snapshot(conn, ("public",), "before")
    with pytest.raises(MaintenanceParamError, match=message):
        build_plan(conn, request(**params), snapshot)


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


def test_results_round_trip_through_json(conn: psycopg.Connection) -> None:
    snapshot = take_snapshot(conn, ("public", "Mixed Case"), "before")
    plan = build_plan(conn, request(), snapshot)
    assert from_jsonable(Snapshot, to_jsonable(snapshot)) == snapshot
    assert from_jsonable(Plan, to_jsonable(plan)) == plan
    result = VacuumResult("completed", "2 done", (), 0.0, "updated", 180000, 1.5)
    assert from_jsonable(VacuumResult, to_jsonable(result)) == result


def test_recommendations_carry_sql_that_runs(conn: psycopg.Connection) -> None:
    conn.execute('CREATE INDEX "Dup Idx" ON public.bloated (id)')  # the primary key covers it
    with pytest.raises(psycopg.errors.UniqueViolation):  # leaves an invalid index behind
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY half_built ON public.clean (payload)")
    findings = collect_findings(conn, ["public"], slow_query_ms=100)
    recommendations = recommend(findings, [], freeze_min_percent=0)
    by_target = {(r.kind, r.target): r.sql for r in recommendations}
    assert len(by_target) == len(recommendations)  # "Dup Idx" is duplicate and unused: recommended once
    assert [r.reason for r in recommendations if r.target == 'public."Dup Idx"'] == [
        "has the same keys as public.bloated_pkey, which serves the same reads"
    ]
    assert by_target[("drop_index", 'public."Dup Idx"')] == 'DROP INDEX CONCURRENTLY "public"."Dup Idx";'
    assert by_target[("reindex", "public.half_built")] == 'REINDEX INDEX CONCURRENTLY "public"."half_built";'
    assert by_target[("freeze", "public.bloated")] == 'VACUUM (FREEZE, ANALYZE) "public"."bloated";'
    for statement in {by_target[("drop_index", 'public."Dup Idx"')], by_target[("freeze", "public.bloated")]}:
        conn.execute(statement)
    assert conn.execute("SELECT to_regclass('public.\"Dup Idx\"')").fetchone() == (None,)


def test_statement_texts_lose_passwords_and_url_credentials() -> None:
    query = "ALTER ROLE app PASSWORD 'it''s secret'; SELECT dblink('postgresql://app:hunter2@db/x', $1)"
    assert (
        sanitize_query(query) == "ALTER ROLE app PASSWORD '***'; SELECT dblink('postgresql://***@db/x', $1)"
    )
