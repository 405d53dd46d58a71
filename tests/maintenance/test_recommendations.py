"""Recommendations: one per object, each with its evidence, SQL that runs, and a warning beside every
destructive statement. Findings come from a real PostgreSQL where the server can produce them."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from tutormax_ops.collectors.postgres.bloat import IndexBloat
from tutormax_ops.collectors.postgres.health import XminHolder, xmin_holders
from tutormax_ops.core.config import Maintenance
from tutormax_ops.maintenance.findings import Findings, collect_findings, no_findings
from tutormax_ops.maintenance.recommendations import (
    WARN_DROP_CONSTRAINT,
    WARN_DROP_INDEX,
    WARN_DROP_SLOT,
    WARN_ROLLBACK_PREPARED,
    WARN_TERMINATE,
    recommend,
)

DAY = 86400.0
OLD_ENOUGH = Maintenance(min_stats_age_days=7)


def findings_of(conn: psycopg.Connection) -> Findings:
    return collect_findings(conn, ["public"], slow_query_ms=100)


def test_recommendations_carry_sql_that_runs(conn: psycopg.Connection) -> None:
    conn.execute('CREATE INDEX "Dup Idx" ON public.bloated (id)')  # the primary key covers it
    with pytest.raises(psycopg.errors.UniqueViolation):  # leaves an invalid index behind
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY half_built ON public.clean (payload)")
    recommendations = recommend(findings_of(conn), [], OLD_ENOUGH, stats_age_s=30 * DAY, freeze_min_percent=0)
    by_target = {(r.kind, r.target): r for r in recommendations}
    assert len({r.target for r in recommendations}) == len(recommendations)  # one per object
    dup = by_target[("drop_index", 'public."Dup Idx"')]
    assert dup.reason == "has the same keys as public.bloated_pkey, which serves the same reads"
    assert dup.sql == 'DROP INDEX CONCURRENTLY "public"."Dup Idx";'
    assert dup.warning == WARN_DROP_INDEX
    assert "is covered by CREATE UNIQUE INDEX bloated_pkey" in dup.evidence and "MiB" in dup.evidence
    rebuild = by_target[("reindex", "public.half_built")]
    assert rebuild.sql == 'REINDEX INDEX CONCURRENTLY "public"."half_built";'
    assert rebuild.warning is None and "indisvalid = false" in rebuild.evidence
    freeze = by_target[("freeze", "public.bloated")]
    assert (
        freeze.sql == 'VACUUM (FREEZE, ANALYZE) "public"."bloated";'
        and "age(relfrozenxid)" in freeze.evidence
    )
    for statement in (dup.sql, freeze.sql):
        conn.execute(statement)
    assert conn.execute("SELECT to_regclass('public.\"Dup Idx\"')").fetchone() == (None,)


def test_a_duplicate_pair_whose_covering_index_is_unused_yields_one_drop_of_the_covered(
    conn: psycopg.Connection,
) -> None:
    conn.execute("CREATE TABLE public.pair (a int, b int)")
    conn.execute('CREATE INDEX "Dup A" ON public.pair (a)')
    conn.execute('CREATE INDEX "Dup B" ON public.pair (a, b)')  # covers "Dup A"; neither is scanned
    findings = findings_of(conn)
    unused = {index.index for index in findings.unused_indexes}
    assert {"Dup A", "Dup B"} <= unused
    on_pair = [r for r in recommend(findings, [], OLD_ENOUGH, stats_age_s=30 * DAY) if "Dup" in r.target]
    assert [(r.kind, r.target) for r in on_pair] == [("drop_index", 'public."Dup A"')]
    assert on_pair[0].reason == 'has a leading prefix of public."Dup B", which serves the same reads'


def test_no_drop_of_an_unused_index_until_its_statistics_are_old_enough(conn: psycopg.Connection) -> None:
    conn.execute("CREATE INDEX bloated_payload ON public.bloated (payload)")  # like a migration's index
    findings = findings_of(conn)
    assert "bloated_payload" in {index.index for index in findings.unused_indexes}
    # A fresh database: statistics never reset, and this DAG has not watched it before.
    for stats_age_s in (None, 0.0, 6.9 * DAY):
        young = recommend(findings, [], OLD_ENOUGH, stats_age_s=stats_age_s)
        assert [r for r in young if r.kind == "drop_index"] == [], stats_age_s
    (drop,) = [
        r for r in recommend(findings, [], OLD_ENOUGH, stats_age_s=7.5 * DAY) if r.kind == "drop_index"
    ]
    assert drop.target == "public.bloated_payload" and drop.warning == WARN_DROP_INDEX
    assert drop.evidence.startswith("0 scans in 7.5 days of statistics; size ")


def bloated_index(actual_bytes: int, percent: float) -> IndexBloat:
    bloat = round(actual_bytes * percent / 100)
    return IndexBloat(
        "public", "t", "t_idx", 90, 1e5, True, actual_bytes, actual_bytes - bloat, bloat, percent, True, None
    )


def test_no_reindex_below_the_minimum_size_and_the_evidence_names_the_method() -> None:
    small = dataclasses.replace(no_findings("test"), bloated_indexes=[bloated_index(1_500_000, 44.0)])
    assert recommend(small, [], Maintenance()) == []  # 1.5 MB at 44% bloat: below PgHero's 100 MB
    (item,) = recommend(small, [], Maintenance(reindex_min_bytes=1_000_000))
    assert (item.kind, item.warning) == ("reindex", None)
    assert item.evidence.startswith(
        "about 44% bloat (0.6 MiB of 1.4 MiB; btree catalog estimate from pg_stats"
    )


def test_the_same_index_bloated_and_duplicate_gets_only_the_drop(conn: psycopg.Connection) -> None:
    conn.execute('CREATE INDEX "Dup Idx" ON public.bloated (id)')
    found = findings_of(conn)
    bloated = dataclasses.replace(bloated_index(200 << 20, 60.0), table="bloated", index="Dup Idx")
    findings = dataclasses.replace(found, bloated_indexes=[bloated])
    on_index = [r for r in recommend(findings, [], Maintenance()) if r.target == 'public."Dup Idx"']
    assert [r.kind for r in on_index] == ["drop_index"]


def test_a_unique_constraint_duplicate_is_dropped_with_its_constraint_and_a_warning(
    conn: psycopg.Connection,
) -> None:
    conn.execute("ALTER TABLE public.clean ADD CONSTRAINT clean_id_key UNIQUE (id)")  # the pkey covers it
    (item,) = [
        r for r in recommend(findings_of(conn), [], Maintenance()) if r.target == "public.clean_id_key"
    ]
    assert item.sql == 'ALTER TABLE "public"."clean" DROP CONSTRAINT "clean_id_key";'
    assert item.warning == WARN_DROP_CONSTRAINT
    conn.execute(item.sql)


def test_an_old_transaction_gets_pg_terminate_backend_with_a_warning(database_url: str, conn) -> None:
    with psycopg.connect(database_url, application_name="forgotten") as holder:
        holder.execute("SELECT txid_current()")  # an open transaction with an xid: holds back xmin
        conn.execute("CREATE TABLE public.later (id int)")  # the horizon moves on behind it
        holders = [h for h in xmin_holders(conn, min_duration_s=0) if h.name == "forgotten"]
        assert holders, "the open transaction is listed"
        findings = dataclasses.replace(no_findings("test"), xmin_holders=holders)
        (item,) = recommend(findings, [], Maintenance())
        assert item.sql == f"SELECT pg_terminate_backend({holder.info.backend_pid});"
        assert item.warning == WARN_TERMINATE and item.evidence.startswith("xmin age ")
        holder.rollback()


@pytest.mark.parametrize(
    ("kind", "name", "statement", "warning"),
    [
        ("replication_slot", "old_slot", "SELECT pg_drop_replication_slot('old_slot');", WARN_DROP_SLOT),
        ("prepared_transaction", "tx'1", "ROLLBACK PREPARED 'tx''1';", WARN_ROLLBACK_PREPARED),
    ],
)
def test_slots_and_prepared_transactions_get_their_statement_with_a_warning(
    kind: str, name: str, statement: str, warning: str
) -> None:
    # Produced when the collector lists such a holder; building one needs wal_level=logical or
    # max_prepared_transactions > 0, which the test server does not have.
    holder = XminHolder(kind, None, name, None, None, None, None, 2_000_000, None)
    (item,) = recommend(dataclasses.replace(no_findings("test"), xmin_holders=[holder]), [], Maintenance())
    assert (item.sql, item.warning) == (statement, warning)
