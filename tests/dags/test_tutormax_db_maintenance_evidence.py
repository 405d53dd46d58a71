"""End to end: the age of the unused-index evidence belongs to the database it judges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from maintenance.targets import DAG_ID, new_target, point_at
from tutormax_ops.core.storage import ensure_results_schema, upsert_rows

SCHEMA = "tutormax_ops"


def drops(report: dict) -> list[str]:
    return [r["sql"] for r in report["recommendations"] if r["kind"] == "drop_index"]


def test_a_database_created_now_gets_no_drop_whatever_the_history_of_other_databases(
    stack, fresh_database, run_dag, monkeypatch, tmp_path
) -> None:
    target = point_at(monkeypatch, stack, new_target(fresh_database, tmp_path))
    with psycopg.connect(target.db_url, autocommit=True) as conn:
        conn.execute("CREATE INDEX extra_unused ON public.bloated (payload)")
        assert conn.execute(
            "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone() == (None,)
    # This DAG's history already has a run 30 days old, on another database.
    month_ago = datetime.now(UTC) - timedelta(days=30)
    with psycopg.connect(target.results_url, autocommit=True) as results:
        ensure_results_schema(results, SCHEMA)
        upsert_rows(
            results,
            SCHEMA,
            "runs",
            [
                {
                    "dag_id": DAG_ID,
                    "run_id": "manual__another_database",
                    "kind": "maintenance",
                    "started_at": month_ago,
                    "status": "completed",
                }
            ],
            key=("dag_id", "run_id"),
        )
    dag_run = run_dag(DAG_ID, run_conf={"notify": "never"})
    report = target.report(dag_run)
    assert "extra_unused" in [index["index"] for index in report["unused_indexes"]]
    assert drops(report) == []
    evidence = report["evidence"]
    assert evidence["decided_by"] == "first observed by this DAG" and evidence["age_s"] < 600
    html = target.folder(dag_run).joinpath("report.html").read_text()
    assert "decided by <i>first observed by this DAG</i>" in html and "too young to judge" in html

    bounds = {bound["source"]: bound for bound in evidence["bounds"]}
    assert bounds["pg_stat_database.stats_reset"]["since"] is None
    assert "first to see this identity" in bounds["first observed by this DAG"]["note"]
