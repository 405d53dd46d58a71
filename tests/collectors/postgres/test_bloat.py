"""bloat: the catalog estimates against engineered bloat and pgstattuple, and the exact mode.

The bloated tables are built deterministically: rows are deleted without VACUUM (autovacuum is off on
them), the session's counters are flushed, then ANALYZE records live rows and pages. Nothing reads the
tables with a sequential scan afterwards, since a scan may prune dead rows into free space.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tutormax_ops.collectors.postgres.bloat import exact_bloat, index_bloat, table_bloat

ROWS = 40_000
# Table name -> the remainders of id / 4 whose rows are deleted: 0, 25, 50 and 75% of them.
BLOATED = {"bloat_0": [], "bloat_25": [0], "bloat_50": [0, 2], "bloat_75": [1, 2, 3]}


def deleted_percent(name: str) -> float:
    return 100 * len(BLOATED[name]) / 4


def build_bloated(admin: psycopg.Connection, name: str, remainders: list[int]) -> None:
    table = sql.Identifier(name)
    # Mixed widths and a nullable column, as real rows have: the null bitmap and alignment matter.
    admin.execute(
        sql.SQL(
            """
            CREATE TABLE {} (id bigint, tutor_id int, status text, note text, created_at timestamptz)
                WITH (autovacuum_enabled = false)
            """
        ).format(table)
    )
    admin.execute(
        sql.SQL(
            """
            INSERT INTO {}
            SELECT g, g %% 500, (ARRAY['done', 'cancelled', 'scheduled'])[1 + g %% 3],
                   CASE WHEN g %% 10 <> 0 THEN md5(g::text) END,
                   '2026-01-01'::timestamptz + g * interval '1 minute'
            FROM generate_series(1, %(rows)s) AS g
            """
        ).format(table),
        {"rows": ROWS},
    )
    admin.execute(sql.SQL("CREATE INDEX ON {} (tutor_id)").format(table))
    admin.execute(
        sql.SQL("DELETE FROM {} WHERE id %% 4 = ANY (%(remainders)s)").format(table),
        {"remainders": remainders},
    )


@pytest.fixture(scope="module")
def database(fresh_database) -> str:
    url = fresh_database("bloat")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION pgstattuple")
        for name, remainders in BLOATED.items():
            build_bloated(admin, name, remainders)
        admin.execute("CREATE TABLE never_analyzed (id int)")
        admin.execute("INSERT INTO never_analyzed SELECT generate_series(1, 1000)")
        admin.execute("SELECT pg_stat_force_next_flush()")
        admin.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, BLOATED))))
    return url


@pytest.mark.parametrize("name", list(BLOATED))
def test_table_estimate_matches_the_deleted_fraction_and_pgstattuple(connect, database, name) -> None:
    conn = connect(database)
    estimate = {row.table: row for row in table_bloat(conn)}[name]
    [exact] = exact_bloat(conn, [("public", name)])
    assert estimate.estimable and estimate.reason is None
    assert estimate.bloat_percent == pytest.approx(deleted_percent(name), abs=5)
    assert exact.available and exact.method == "pgstattuple"
    # pgstattuple leaves row overhead out of dead + free, so it reads a few points lower.
    assert estimate.bloat_percent == pytest.approx(exact.dead_free_percent, abs=10)


def test_index_estimate(connect, database) -> None:
    """A btree index keeps the deleted rows' entries until VACUUM: its bloat follows the table's.
    tutor_id has 500 values: the estimate must model deduplication or it would see no bloat at all."""
    indexes = {row.table: row for row in index_bloat(connect(database))}
    for name in BLOATED:
        assert indexes[name].estimable and indexes[name].deduplicated
        assert indexes[name].bloat_percent == pytest.approx(deleted_percent(name), abs=10), name


def test_never_analyzed_table_is_not_estimable(connect, database) -> None:
    row = {row.table: row for row in table_bloat(connect(database))}["never_analyzed"]
    assert not row.estimable and "ANALYZE" in row.reason
    assert row.bloat_bytes is None and row.bloat_percent is None


def test_pg_monitor_role_is_told_the_estimate_is_unreliable(connect, database, monitor_role) -> None:
    """pg_stats hides the columns of tables a role cannot SELECT: say so instead of estimating from nothing."""
    conn = connect(database, role=monitor_role)
    for row in [*table_bloat(conn), *index_bloat(conn)]:
        assert not row.estimable
        assert row.reason.startswith("pg_stats not visible to this role")
        assert row.bloat_percent is None
    # pgstattuple is open to pg_stat_scan_tables, a member of pg_monitor: the exact mode still works.
    [exact] = exact_bloat(conn, [("public", "bloat_50")])
    assert exact.available and exact.dead_free_percent > 40


def test_exact_mode_approx_indexes_and_unknown_names(connect, database) -> None:
    rows = exact_bloat(
        connect(database),
        [("public", "bloat_25"), ("public", "bloat_25_tutor_id_idx"), ("public", "no such table")],
        approx=True,
    )
    table, index, unknown = rows
    assert table.available and table.method == "pgstattuple_approx"
    assert table.dead_tuple_percent == pytest.approx(25, abs=3)  # never vacuumed: every page scanned
    assert index.available and index.method == "pgstattuple"  # approx handles tables only
    assert (unknown.available, unknown.reason) == (False, "relation not found")


def test_exact_mode_without_the_extension_is_unavailable(connect, fresh_database) -> None:
    [row] = exact_bloat(connect(fresh_database("bloat_bare")), [("public", "anything")])
    assert not row.available
    assert "CREATE EXTENSION pgstattuple" in row.reason
