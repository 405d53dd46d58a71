"""Names, params and the JSON form results take between tasks."""

from __future__ import annotations

import psycopg
from psycopg import sql

from maintenance.catalog import WEIRD, request
from tutormax_ops.maintenance.common import display_name, from_jsonable, to_jsonable
from tutormax_ops.maintenance.plan import Plan, build_plan
from tutormax_ops.maintenance.snapshot import Snapshot, take_snapshot
from tutormax_ops.maintenance.tables import table_rows
from tutormax_ops.maintenance.vacuum import VacuumResult


def test_display_names_quote_only_where_sql_needs_it() -> None:
    assert display_name("public", "orders") == "public.orders"
    assert WEIRD.display == '"Mixed Case"."we""ird name"'


def test_display_names_are_what_quote_ident_writes(conn: psycopg.Connection) -> None:
    names = ["orders", "select", "user", "Orders", 'we"ird', "name", "analyze", "_x1", "1st", "end"]
    expected = conn.execute(
        "SELECT array_agg(quote_ident(n) ORDER BY o) FROM unnest(%s::text[]) WITH ORDINALITY AS t(n, o)",
        (names,),
    ).fetchone()[0]
    assert [display_name("public", name).removeprefix("public.") for name in names] == expected
    assert display_name("public", "select") == 'public."select"'
    for name in names:  # each is valid SQL naming that table
        conn.execute(sql.SQL("CREATE TABLE {} ()").format(sql.Identifier("public", name)))
        conn.execute(f"SELECT * FROM {display_name('public', name)}")  # noqa: S608 - the name under test


def test_a_table_with_no_bloat_estimate_says_why(conn: psycopg.Connection, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as writer:
        writer.execute("CREATE TABLE public.no_stats AS SELECT generate_series(1, 500) AS id")
    snapshot = take_snapshot(conn, ("public",), "before")
    plan = build_plan(conn, request(schemas=["public"], dry_run=True), snapshot)
    result = VacuumResult("dry_run", "", (), None, "", None, 0.0)
    rows = {row.name: row for row in table_rows(plan, snapshot, result, None)}
    assert (
        rows["public.no_stats"].bloat_note
        == "no estimate: never analyzed, so pg_stats has no statistics for it"
    )
    assert rows["public.bloated"].bloat_note is None


def test_results_round_trip_through_json(conn: psycopg.Connection) -> None:
    snapshot = take_snapshot(conn, ("public", "Mixed Case"), "before")
    plan = build_plan(conn, request(), snapshot)
    assert from_jsonable(Snapshot, to_jsonable(snapshot)) == snapshot
    assert from_jsonable(Plan, to_jsonable(plan)) == plan
    result = VacuumResult("completed", "2 done", (), 0.0, "updated", 180000, 1.5)
    assert from_jsonable(VacuumResult, to_jsonable(result)) == result
