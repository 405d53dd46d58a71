"""core.registry against a real PostgreSQL: one row per run, reruns overwrite, the capability tables
hang off it, and a history from before the registry is moved into it by `ensure_results_schema`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from tutormax_ops.core.registry import (
    CAPABILITY_TABLES,
    RunRecord,
    describe_last_run,
    last_run,
    record_run,
)
from tutormax_ops.core.storage import ensure_results_schema

SCHEMA = "tutormax_ops"
STARTED = datetime(2026, 11, 28, 8, tzinfo=UTC)


@pytest.fixture
def results_conn(fresh_database):
    with psycopg.connect(fresh_database("registry"), autocommit=True) as conn:
        ensure_results_schema(conn, SCHEMA)
        yield conn


def _record(run_id: str, *, kind: str = "cache_warm", status: str = "success", minutes: int = 0) -> RunRecord:
    return RunRecord(
        dag_id="tutormax_cache_warming",
        run_id=run_id,
        kind=kind,
        started_at=STARTED + timedelta(minutes=minutes),
        status=status,
        headline=f"run {run_id}: {status}",
    )


def test_a_rerun_of_the_same_run_id_overwrites_its_row(results_conn: psycopg.Connection) -> None:
    record_run(results_conn, SCHEMA, _record("manual__1", status="failed"))
    record_run(results_conn, SCHEMA, _record("manual__1", status="success"))
    found = results_conn.execute("SELECT run_id, status, headline FROM tutormax_ops.runs").fetchall()
    assert found == [("manual__1", "success", "run manual__1: success")]


def test_the_last_run_of_a_kind_is_the_newest_of_that_kind_only(results_conn: psycopg.Connection) -> None:
    record_run(results_conn, SCHEMA, _record("older", minutes=0))
    record_run(results_conn, SCHEMA, _record("newer", minutes=10))
    record_run(results_conn, SCHEMA, _record("other_kind", kind="cache_clear", minutes=20))
    found = last_run(results_conn, SCHEMA, "cache_warm")
    assert found is not None and found["run_id"] == "newer"
    assert "newer: success" in describe_last_run(found, "cache_warm")
    missing = describe_last_run(last_run(results_conn, SCHEMA, "migration"), "migration")
    assert "no migration run is recorded" in missing and "tutormax_migrations" in missing


def test_a_capability_row_needs_its_registry_row(results_conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        results_conn.execute(
            "INSERT INTO tutormax_ops.cache_warm_runs (dag_id, run_id, started_at, triggered_by)"
            " VALUES ('tutormax_cache_warming', 'unregistered', now(), 'manual')"
        )


def test_a_history_from_before_the_registry_is_moved_into_it(results_conn: psycopg.Connection) -> None:
    """The schema as it was (no registry columns, no keys), with one run of each capability and a
    maintenance run that already had its `runs` row: the next `ensure_results_schema` registers the
    others, keeps that row, and ties the tables."""
    for table, constraint in CAPABILITY_TABLES.items():
        results_conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(SCHEMA, table), sql.Identifier(constraint)
            )
        )
    results_conn.execute(
        "ALTER TABLE tutormax_ops.runs DROP COLUMN run_type, DROP COLUMN headline, DROP COLUMN report_uri"
    )
    results_conn.execute(
        "INSERT INTO tutormax_ops.loadtest_runs (dag_id, run_id, profile, started_at, duration_s, users,"
        " valid, p95_ms, verdict, artifacts_uri) VALUES ('tutormax_load_test', 'old_lt', 'smoke', %s, 60,"
        " 10, true, 42.5, 'pass', 'file:///artifacts/old_lt')",
        (STARTED,),
    )
    results_conn.execute(
        "INSERT INTO tutormax_ops.cache_warm_runs (dag_id, run_id, started_at, triggered_by,"
        " hit_rate_before, hit_rate_after) VALUES ('tutormax_cache_warming', 'old_warm', %s, 'scheduled',"
        " 40, 95)",
        (STARTED,),
    )
    for run_id in ("old_maint", "kept_maint"):
        results_conn.execute(
            "INSERT INTO tutormax_ops.table_metrics (dag_id, run_id, phase, schema_name, table_name,"
            " collected_at) VALUES ('tutormax_db_maintenance', %s, 'before', 'public', 't', %s)",
            (run_id, STARTED),
        )
    results_conn.execute(
        "INSERT INTO tutormax_ops.runs (dag_id, run_id, kind, started_at, status)"
        " VALUES ('tutormax_db_maintenance', 'kept_maint', 'maintenance', %s, 'completed')",
        (STARTED,),
    )

    ensure_results_schema(results_conn, SCHEMA)

    found = results_conn.execute(
        "SELECT run_id, kind, status, headline, run_type FROM tutormax_ops.runs ORDER BY run_id"
    ).fetchall()
    assert [row[:3] for row in found] == [
        ("kept_maint", "maintenance", "completed"),
        ("old_lt", "load_test", "pass"),
        ("old_maint", "maintenance", "unknown"),
        ("old_warm", "cache_warm", "success"),
    ]
    headlines = {row[0]: row[3] for row in found}
    assert headlines["old_lt"] == "smoke load test, 10 users: pass, p95 42.5 ms"
    assert headlines["old_warm"] == "cache warming: hit rate 40.0% before, 95.0% after"
    assert headlines["kept_maint"] is None  # an existing row is kept as it was
    assert {row[4] for row in found if row[0] == "old_warm"} == {"scheduled"}
    tied = results_conn.execute(
        "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conname = ANY(%s) ORDER BY 1",
        (list(CAPABILITY_TABLES.values()),),
    ).fetchall()
    assert [name for (name,) in tied] == sorted(CAPABILITY_TABLES.values())
    ensure_results_schema(results_conn, SCHEMA)  # once tied, a later run changes nothing
    assert results_conn.execute("SELECT count(*) FROM tutormax_ops.runs").fetchone() == (4,)
