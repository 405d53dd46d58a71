"""Tables with known dead tuples and awkward names, shared by the maintenance tests."""

from __future__ import annotations

import psycopg
from psycopg import sql

from tutormax_ops.core.config import Maintenance
from tutormax_ops.maintenance.common import Request, TableRef, request_from_params

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


def request(**params: object) -> Request:
    return request_from_params(params, Maintenance(schemas=("public", "Mixed Case")))


def make_partitioned(url: str, parent: TableRef, *, partitions: int = 3, rows: int = 3000) -> list[TableRef]:
    """A range-partitioned table with `partitions` leaves, autovacuum off, a third of the rows deleted."""
    leaves = [TableRef(parent.schema, f"{parent.table}_p{number}") for number in range(partitions)]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (id int NOT NULL, payload text) PARTITION BY RANGE (id)").format(
                parent.identifier
            )
        )
        for number, leaf in enumerate(leaves):
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({}) WITH (autovacuum_enabled = false)"
                ).format(leaf.identifier, parent.identifier, number * rows, (number + 1) * rows)
            )
        conn.execute(
            sql.SQL("INSERT INTO {} SELECT g, repeat('x', 50) FROM generate_series(0, %s) AS g").format(
                parent.identifier
            ),
            (partitions * rows - 1,),
        )
        conn.execute(sql.SQL("DELETE FROM {} WHERE id % 3 = 0").format(parent.identifier))
    return leaves
