from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from tutormax_ops.core.storage import (
    ensure_results_schema,
    path_segment,
    replace_run_rows,
    run_artifacts_dir,
    upsert_rows,
)

SCHEMA = "tutormax_ops"


@pytest.fixture
def results_conn(fresh_database):
    with psycopg.connect(fresh_database("results"), autocommit=True) as conn:
        ensure_results_schema(conn, SCHEMA)
        yield conn


def _run_row(status: str) -> dict:
    return {
        "dag_id": "tutormax_db_maintenance",
        "run_id": "manual__2026-11-28T08:00:00+00:00",
        "kind": "maintenance",
        "started_at": datetime(2026, 11, 28, 8, tzinfo=UTC),
        "status": status,
    }


def test_schema_creation_is_repeatable(results_conn: psycopg.Connection) -> None:
    ensure_results_schema(results_conn, SCHEMA)
    tables = results_conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (SCHEMA,)
    ).fetchall()
    assert [name for (name,) in tables] == [
        "cache_warm_runs",
        "cache_warm_targets",
        "health_alerts",
        "health_checklist",
        "health_snapshots",
        "loadtest_endpoints",
        "loadtest_evidence",
        "loadtest_runs",
        "runs",
        "table_metrics",
    ]


def test_rerun_upserts_instead_of_duplicating(results_conn: psycopg.Connection) -> None:
    upsert_rows(results_conn, SCHEMA, "runs", [_run_row("running")], key=("dag_id", "run_id"))
    upsert_rows(results_conn, SCHEMA, "runs", [_run_row("success")], key=("dag_id", "run_id"))
    rows = results_conn.execute("SELECT status FROM tutormax_ops.runs").fetchall()
    assert rows == [("success",)]


def test_replace_run_rows_drops_what_a_rerun_no_longer_produces(results_conn: psycopg.Connection) -> None:
    upsert_rows(results_conn, SCHEMA, "runs", [_run_row("success")], key=("dag_id", "run_id"))
    base = {
        "dag_id": "tutormax_db_maintenance",
        "run_id": "manual__2026-11-28T08:00:00+00:00",
        "phase": "before",
        "schema_name": "public",
        "collected_at": datetime(2026, 11, 28, 8, tzinfo=UTC),
    }
    key = ("dag_id", "run_id", "phase", "schema_name", "table_name")
    first = [{**base, "table_name": name, "dead_tuples": 10} for name in ("a", "b")]
    replace_run_rows(
        results_conn, SCHEMA, "table_metrics", first, dag_id=base["dag_id"], run_id=base["run_id"], key=key
    )
    second = [{**base, "table_name": "a", "dead_tuples": 3}]
    replace_run_rows(
        results_conn, SCHEMA, "table_metrics", second, dag_id=base["dag_id"], run_id=base["run_id"], key=key
    )
    rows = results_conn.execute("SELECT table_name, dead_tuples FROM tutormax_ops.table_metrics").fetchall()
    assert rows == [("a", 3)]


def test_identifiers_are_quoted_not_interpolated(results_conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable):
        upsert_rows(
            results_conn, SCHEMA, 'runs"; DROP TABLE tutormax_ops.runs; --', [_run_row("x")], key=("dag_id",)
        )
    assert results_conn.execute("SELECT to_regclass('tutormax_ops.runs') IS NOT NULL").fetchone() == (True,)


def test_path_segment_makes_run_ids_safe() -> None:
    assert path_segment("manual__2026-11-28T08:00:00+00:00") == "manual__2026-11-28T08_00_00_00_00"
    assert path_segment("../../etc/passwd") == "etc_passwd"
    assert path_segment("..") == "_"


def test_artifacts_dir_is_keyed_by_run_and_reset_on_rerun(tmp_path) -> None:
    base = tmp_path.as_uri()
    folder = run_artifacts_dir(base, "tutormax_db_maintenance", "manual__1")
    (folder / "stale.csv").write_text("old attempt")
    again = run_artifacts_dir(base, "tutormax_db_maintenance", "manual__1")
    (again / "report.html").write_text("<html></html>")
    assert str(again) == str(folder)
    assert sorted(path.name for path in again.iterdir()) == ["report.html"]
    assert (tmp_path / "tutormax_db_maintenance" / "manual__1" / "report.html").read_text() == "<html></html>"
