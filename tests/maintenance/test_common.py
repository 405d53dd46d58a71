"""Names, params and the JSON form results take between tasks."""

from __future__ import annotations

import psycopg

from maintenance.catalog import WEIRD, request
from tutormax_ops.maintenance.common import display_name, from_jsonable, to_jsonable
from tutormax_ops.maintenance.plan import Plan, build_plan
from tutormax_ops.maintenance.snapshot import Snapshot, take_snapshot
from tutormax_ops.maintenance.vacuum import VacuumResult


def test_display_names_quote_only_where_sql_needs_it() -> None:
    assert display_name("public", "orders") == "public.orders"
    assert WEIRD.display == '"Mixed Case"."we""ird name"'


def test_results_round_trip_through_json(conn: psycopg.Connection) -> None:
    snapshot = take_snapshot(conn, ("public", "Mixed Case"), "before")
    plan = build_plan(conn, request(), snapshot)
    assert from_jsonable(Snapshot, to_jsonable(snapshot)) == snapshot
    assert from_jsonable(Plan, to_jsonable(plan)) == plan
    result = VacuumResult("completed", "2 done", (), 0.0, "updated", 180000, 1.5)
    assert from_jsonable(VacuumResult, to_jsonable(result)) == result
