"""suggestions: seq-scan-heavy queries yield the right CREATE INDEX CONCURRENTLY, covered ones none.

The workload tests need pg_stat_statements preloaded; the parser and "unavailable" tests run everywhere.
"""

from __future__ import annotations

import psycopg
import pytest

from tutormax_ops.collectors.postgres.suggestions import index_suggestions, query_predicates

ROWS = 20_000
THRESHOLDS = {"min_seq_scans": 20, "min_table_rows": 5_000}
# Run 25 times each, with changing parameters, by the workload.
SEQ_SCAN_QUERIES = (
    # 1,000 tutors leave about 20 rows per tutor: tutor_id alone is selective enough.
    "SELECT id FROM lessons WHERE status = %s AND tutor_id = %s",
    # 10 subjects leave 2,000 rows: the ORDER BY column, also the range column, goes after it.
    "SELECT * FROM lessons l WHERE l.subject = %s AND l.starts_at >= %s ORDER BY l.starts_at LIMIT 10",
)
# Already served by lessons_student_idx: must not be suggested.
COVERED_QUERY = "SELECT * FROM lessons WHERE student_id = %s"


def parameters(query: str, number: int) -> tuple:
    if "status" in query:
        return ("done", number)
    if "subject" in query:
        return (f"subject-{number % 10}", "2026-01-01")
    return (number,)


@pytest.fixture(scope="module")
def database(fresh_database, statements_preloaded, flush_stats) -> str:
    if not statements_preloaded:
        pytest.skip("pg_stat_statements is not in shared_preload_libraries on this server")
    url = fresh_database("suggestions")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION pg_stat_statements")
        admin.execute(
            """
            CREATE TABLE lessons (id int PRIMARY KEY, tutor_id int, student_id int, subject text,
                                  status text, starts_at timestamptz)
            """
        )
        admin.execute(
            """
            INSERT INTO lessons
            SELECT g, g %% 1000, g %% 5000, 'subject-' || (g %% 10), (ARRAY['done', 'booked'])[1 + g %% 2],
                   '2026-01-01'::timestamptz + g * interval '1 hour'
            FROM generate_series(1, %s) AS g
            """,
            (ROWS,),
        )
        admin.execute("CREATE INDEX lessons_student_idx ON lessons (student_id)")
        admin.execute("ANALYZE lessons")
        for query in (*SEQ_SCAN_QUERIES, COVERED_QUERY):
            for number in range(25):
                admin.execute(query, parameters(query, number))
        flush_stats(admin)
    return url


def test_seq_scan_heavy_queries_get_the_right_index(connect, database) -> None:
    report = index_suggestions(connect(database), **THRESHOLDS)
    assert report.available
    found = {suggestion.columns: suggestion for suggestion in report.suggestions}
    assert set(found) == {("tutor_id",), ("subject", "starts_at")}
    assert found[("tutor_id",)].sql == 'CREATE INDEX CONCURRENTLY ON "public"."lessons" ("tutor_id")'
    assert found[("subject", "starts_at")].sql == (
        'CREATE INDEX CONCURRENTLY ON "public"."lessons" ("subject", "starts_at")'
    )
    assert found[("tutor_id",)].estimated_rows == pytest.approx(ROWS / 1000, rel=0.3)
    assert found[("tutor_id",)].calls == 25 and found[("tutor_id",)].table_rows == pytest.approx(ROWS)


def test_applied_suggestion_is_not_suggested_again(connect, database) -> None:
    """The statement runs as is; afterwards its columns are covered by an index prefix."""
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute('CREATE INDEX CONCURRENTLY ON "public"."lessons" ("tutor_id", "status")')
        try:
            report = index_suggestions(connect(database), **THRESHOLDS)
        finally:
            admin.execute("DROP INDEX lessons_tutor_id_status_idx")
    assert {suggestion.columns for suggestion in report.suggestions} == {("subject", "starts_at")}


def test_pg_monitor_role_gets_unranked_columns(connect, database, monitor_role) -> None:
    """Without pg_stats there is nothing to rank by: columns keep the query's order."""
    report = index_suggestions(connect(database, role=monitor_role), **THRESHOLDS)
    found = {suggestion.columns: suggestion for suggestion in report.suggestions}
    assert set(found) == {("status", "tutor_id"), ("subject", "starts_at")}
    assert all(suggestion.estimated_rows is None for suggestion in report.suggestions)


def test_unavailable_without_pg_stat_statements(connect, fresh_database) -> None:
    report = index_suggestions(connect(fresh_database("suggestions_bare")))
    assert not report.available and report.suggestions == ()
    assert "CREATE EXTENSION pg_stat_statements" in report.fix


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "SELECT * FROM public.t x WHERE x.a = $1 AND b IN ($2, $3) AND $4 < c AND d BETWEEN $5 AND $6 "
            "AND (e = $7 OR f = $8) AND g IS NULL ORDER BY c DESC LIMIT $9",
            ("public", "t", ("a", "b"), ("c", "d"), (("c", True),)),
        ),
        ("UPDATE t SET a = $1 WHERE b = $2", (None, "t", ("b",), (), ())),
        ("DELETE FROM t WHERE created_at < now() - $1::interval", (None, "t", (), ("created_at",), ())),
        ("SELECT * FROM t WHERE a = b ORDER BY lower(c)", (None, "t", (), (), ())),
        ("SELECT * FROM t JOIN u ON t.id = u.id WHERE t.a = $1", None),
        ("SELECT * FROM t WHERE a = $1; SELECT 1", None),
        ("SELECT * FROM t WHERE", None),
    ],
)
def test_query_predicates(query, expected) -> None:
    predicates = query_predicates(query)
    if expected is None:
        assert predicates is None
    else:
        assert (
            predicates.schema,
            predicates.table,
            predicates.equality,
            predicates.ranges,
            predicates.order_by,
        ) == expected
