"""Recommendations on a real PostgreSQL: each carries SQL that runs."""

from __future__ import annotations

import psycopg
import pytest

from tutormax_ops.maintenance.findings import collect_findings
from tutormax_ops.maintenance.recommendations import recommend


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
