"""The plan on a real PostgreSQL: selection, named tables, exclusions, refused names."""

from __future__ import annotations

import psycopg
import pytest

from maintenance.catalog import WEIRD, make_partitioned, request
from tutormax_ops.core.config import Maintenance
from tutormax_ops.maintenance.common import MaintenanceParamError, TableRef, request_from_params
from tutormax_ops.maintenance.plan import build_plan
from tutormax_ops.maintenance.snapshot import take_snapshot


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


def test_named_tables_are_planned_whatever_their_ratio(conn: psycopg.Connection) -> None:
    snapshot = take_snapshot(conn, ("public", "Mixed Case"), "before")
    named = build_plan(conn, request(tables=["clean", "bloated"], min_dead_tuple_ratio=0.9), snapshot)
    assert sorted(t.table for t in named.tables) == ["bloated", "clean"]
    reasons = {t.table: t.reason for t in named.tables}
    assert reasons["clean"] == "named in the run's tables (below the thresholds)"
    assert named.below_thresholds == 0


def test_a_partitioned_table_plans_each_leaf_once_and_its_parent_for_analyze_only(
    database_url: str, conn: psycopg.Connection
) -> None:
    leaves = make_partitioned(database_url, TableRef("public", "events"))
    snapshot = take_snapshot(conn, ("public",), "before")
    everything = build_plan(conn, request(schemas=["public"], min_dead_tuple_ratio=0), snapshot)
    actions = [(t.ref, t.action) for t in everything.tables]
    assert actions[-1] == (TableRef("public", "events"), "analyze_parent")  # after its partitions
    assert [ref for ref, action in actions if action == "maintain"].count(leaves[0]) == 1
    assert set(leaves) <= {ref for ref, action in actions if action == "maintain"}
    assert "partitioned: 3 of its 3 partitions planned" in everything.tables[-1].reason

    named = build_plan(
        conn, request(schemas=["public"], tables=["events"], min_dead_tuple_ratio=0.9), snapshot
    )
    assert [(t.ref, t.action) for t in named.tables] == [
        *((leaf, "maintain") for leaf in sorted(leaves, key=lambda ref: ref.table)),
        (TableRef("public", "events"), "analyze_parent"),
    ]


def test_statistics_are_maintained_never_analyzed_and_many_changed_rows_with_the_reason(
    conn: psycopg.Connection, database_url: str
) -> None:
    # A session that ends: a backend flushes its table counters at exit at the latest.
    with psycopg.connect(database_url, autocommit=True) as writer:
        writer.execute("CREATE TABLE public.no_stats (id int) WITH (autovacuum_enabled = false)")
        writer.execute("INSERT INTO public.no_stats SELECT generate_series(1, 5000)")
        writer.execute("INSERT INTO public.clean SELECT g, 'y' FROM generate_series(1001, 1300) AS g")
    snapshot = take_snapshot(conn, ("public",), "before")
    plan = build_plan(conn, request(schemas=["public"], min_dead_tuple_ratio=0.2), snapshot)
    planned = {t.table: t for t in plan.tables}
    assert planned["no_stats"].action == "analyze"
    assert planned["no_stats"].reason == "never analyzed: the planner has no statistics for its 5,000 rows"
    assert planned["clean"].action == "analyze"
    assert planned["clean"].reason.startswith("300 rows changed since the last analyze (23.1% of live rows")
    assert planned["bloated"].action == "maintain" and "dead tuples" in planned["bloated"].reason
    strict = Maintenance(schemas=("public",), min_dead_tuple_ratio=0.2, min_mods_since_analyze_ratio=0.5)
    assert "clean" not in {
        t.table for t in build_plan(conn, request_from_params({}, strict), snapshot).tables
    }
