"""Snapshots on a real PostgreSQL: a run naming tables snapshots only those, with the database figures."""

from __future__ import annotations

import psycopg

from maintenance.catalog import WEIRD, make_partitioned
from tutormax_ops.maintenance.common import TableRef
from tutormax_ops.maintenance.snapshot import take_snapshot


def test_a_snapshot_of_named_tables_covers_those_and_the_database_figures(
    database_url: str, conn: psycopg.Connection
) -> None:
    leaves = make_partitioned(database_url, TableRef("public", "events"), partitions=2)
    schemas = ("public", "Mixed Case")
    full = take_snapshot(conn, schemas, "before")
    assert len(full.tables) == full.tables_in_scope == 3 + 1 + 2  # bloated, clean, weird, events + leaves
    named = take_snapshot(conn, schemas, "before", only=frozenset({WEIRD, TableRef("public", "events")}))
    assert {t.ref for t in named.tables} == {WEIRD, TableRef("public", "events"), *leaves}
    assert named.tables_in_scope == full.tables_in_scope
    assert named.database_bytes > 1_000_000 and named.database_xid_age > 0
    assert {leaf.ref for leaf in named.partitions} == set(leaves)
    assert named.partitioned == {TableRef("public", "events")}
