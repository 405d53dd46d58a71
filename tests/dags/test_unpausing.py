"""Unpausing a scheduled DAG (catchup=False, a past start_date) creates its latest missed run at once.
Those runs are made here as the scheduler makes them (scheduled, `run_after` hours ago) with
dag.test(): nothing a person did not plan may follow, neither requests, nor load, nor email."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from maintenance.targets import ALL_SUCCESS, new_target, point_at
from support import read_emails, task_states
from tutormax_ops.core.assets import CACHE_WARMED
from tutormax_ops.core.paths import PROJECT_ROOT


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{dag_id}.py")).get_dag(dag_id)


def _hours_ago(hours: float) -> datetime:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(second=0, microsecond=0)


def test_a_maintenance_catch_up_run_vacuums_nothing_and_emails_nobody(
    stack, fresh_database, maildir, scheduled_runs, airflow_db, monkeypatch, tmp_path
) -> None:
    target = point_at(monkeypatch, stack, new_target(fresh_database, tmp_path))
    sent_before = len(read_emails(maildir))
    missed = _hours_ago(5)
    dag_run = _dag("tutormax_db_maintenance").test(logical_date=missed, run_after=missed)
    report = target.report(dag_run)
    assert task_states(dag_run) == {**ALL_SUCCESS, "notify": ["skipped"]}
    assert report["status"] == "skipped" and "after its window" in report["status_detail"]
    about_run = [
        m["subject"] for m in read_emails(maildir)[sent_before:] if "tutormax_db_maintenance" in m["subject"]
    ]
    assert about_run == []


def test_a_cache_warming_catch_up_run_warms_nothing_and_emits_no_event(
    airflow_connections, scheduled_runs, airflow_db
) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    missed = _hours_ago(13)  # the 01:30 run, unpaused in the afternoon
    dag_run = _dag("tutormax_cache_warming").test(logical_date=missed, run_after=missed)
    assert set(map(tuple, task_states(dag_run).values())) == {("skipped",)}, task_states(dag_run)
    with create_session() as session:
        events = session.execute(
            select(AssetEvent.source_run_id)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == CACHE_WARMED.name, AssetEvent.source_run_id == dag_run.run_id)
        ).all()
    assert events == []
