"""End to end: tutormax_migrations with dag.test() on scratch databases of the test PostgreSQL, with
the reference service's Alembic project and with a second project written here (see
tests/alembic_projects.py), configured through environment overrides alone."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import psycopg
import pytest

from alembic_projects import write_project
from support import read_emails, task_states
from tutormax_ops.core.config import load_settings
from tutormax_ops.core.storage import path_segment
from tutormax_ops.devstack import stack as devstack
from tutormax_ops.migrations.backup import pg_dump_version

DAG_ID = "tutormax_migrations"
SERVICE_INI = "include/tutormax_service/alembic.ini"


@pytest.fixture
def target_db(airflow_connections, fresh_database, monkeypatch) -> str:
    """An empty database behind the `tutormax_db` connection."""
    url = fresh_database("migrations")
    monkeypatch.setenv("AIRFLOW_CONN_TUTORMAX_DB", json.dumps(devstack.postgres_connection(url)))
    return url


def revision(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0] is None:
            return []
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def columns(url: str, table: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        ).fetchall()
    return {row[0] for row in rows}


def schema_migrated_events() -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count(AssetEvent.id))
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "tutormax_schema_migrated")
        )


def event_extra(run_id: str) -> list[dict]:
    """The metadata of the tutormax_schema_migrated events a run emitted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(
                select(AssetEvent.extra)
                .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .where(AssetModel.name == "tutormax_schema_migrated", AssetEvent.source_run_id == run_id)
            )
        )


def run_record(url: str, run_id: str) -> dict:
    schema = load_settings().storage.results_schema
    with psycopg.connect(url) as conn:
        status, summary = conn.execute(
            psycopg.sql.SQL("SELECT status, summary FROM {} WHERE dag_id = %s AND run_id = %s").format(
                psycopg.sql.Identifier(schema, "runs")
            ),
            (DAG_ID, run_id),
        ).fetchone()
    return {"status": status, **summary}


def test_reference_project_base_to_head_then_confirmed_downgrade(target_db, run_dag, service_db_url) -> None:
    events = schema_migrated_events()
    dag_run = run_dag(DAG_ID)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert task_states(dag_run) == {
        "preflight": ["success"],
        "preview_sql": ["skipped"],
        "backup": ["success"],
        "apply": ["success"],
        "verify": ["success"],
        "announce": ["success"],
    }
    assert event_extra(dag_run.run_id) == [{"from": [], "to": ["0003"], "applied": ["0001", "0002", "0003"]}]
    assert revision(target_db) == ["0003"]
    assert {"hourly_rate_cents"} <= columns(target_db, "tutors")
    with psycopg.connect(target_db) as conn:
        indexes = dict(
            conn.execute(
                "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname LIKE 'ix_%'"
            ).fetchall()
        )
        extension = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
    assert indexes == dict.fromkeys(
        [
            "ix_sessions_tutor_id_scheduled_at",
            "ix_sessions_student_id_scheduled_at",
            "ix_sessions_scheduled_at",
            "ix_feedback_created_at",
        ],
        True,
    )  # built by 0002's CREATE INDEX CONCURRENTLY
    assert extension is not None
    assert schema_migrated_events() == events + 1
    record = run_record(service_db_url, dag_run.run_id)
    assert record["status"] == "success" and record["from"] == [] and record["target"] == "0003"
    assert record["pending"] == ["0001", "0002", "0003"]
    backup = Path(record["backup"]["path"].removeprefix("file://"))
    assert backup.is_file() and backup.stat().st_size == record["backup"]["size_bytes"] > 0
    assert backup.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

    refused = run_dag(DAG_ID, run_conf={"action": "downgrade", "target_revision": "base", "confirm": "nope"})
    assert str(refused.state) == "failed"
    assert task_states(refused)["preflight"] == ["failed"]
    assert revision(target_db) == ["0003"]

    down = run_dag(DAG_ID, run_conf={"action": "downgrade", "target_revision": "base", "confirm": "base"})
    assert str(down.state) == "success", task_states(down)
    assert revision(target_db) == []
    assert tables(target_db) == {"alembic_version"}
    assert schema_migrated_events() == events + 2


def test_preview_sql_applies_nothing_and_stores_the_sql(target_db, run_dag) -> None:
    events = schema_migrated_events()
    dag_run = run_dag(DAG_ID, run_conf={"action": "preview_sql"})
    assert str(dag_run.state) == "success"
    assert task_states(dag_run) == {
        "preflight": ["success"],
        "preview_sql": ["success"],
        "backup": ["skipped"],
        "apply": ["skipped"],
        "verify": ["skipped"],
        "announce": ["skipped"],
    }
    assert tables(target_db) == set()
    assert schema_migrated_events() == events
    base = Path(load_settings().storage.artifacts_uri().removeprefix("file://"))
    preview = base / DAG_ID / path_segment(dag_run.run_id) / "preview.sql"
    text = preview.read_text()
    assert "CREATE TABLE tutors" in text and "CREATE INDEX CONCURRENTLY ix_sessions_scheduled_at" in text
    assert "INFO" not in text  # Alembic's log lines go to the task log, not into the SQL


def instances(dag_run) -> dict:
    return {ti.task_id: ti for ti in dag_run.get_task_instances()}


def test_a_migration_that_applies_nothing_emits_no_asset_event(target_db, run_dag) -> None:
    first = run_dag(DAG_ID)
    assert str(first.state) == "success", task_states(first)
    events = schema_migrated_events()
    again = run_dag(DAG_ID)  # already at head
    assert str(again.state) == "success", task_states(again)
    states = task_states(again)
    assert (states["apply"], states["verify"], states["announce"]) == (["success"], ["success"], ["skipped"])
    assert schema_migrated_events() == events


def test_a_downgrade_without_confirm_fails_at_once_naming_the_field(target_db, run_dag, maildir) -> None:
    """The form's default (`confirm` empty) is valid; the refusal comes from `preflight`, at once."""
    before = len(read_emails(maildir))
    dag_run = run_dag(DAG_ID, run_conf={"action": "downgrade", "target_revision": "base"})
    preflight = instances(dag_run)["preflight"]
    assert (str(preflight.state), preflight.try_number) == ("failed", 1)
    about_run = [m for m in read_emails(maildir)[before:] if dag_run.run_id in m["subject"]]
    assert len(about_run) == 1
    body = about_run[0].get_body(("html",)).get_content()
    assert "params.confirm" in body and "(try 1)" in body


def test_a_blocked_migration_fails_fast_leaves_schema_and_backup_and_emails_where(
    target_db, run_dag, maildir, monkeypatch
) -> None:
    monkeypatch.setenv("TUTORMAX_OPS__MIGRATIONS__LOCK_TIMEOUT_MS", "500")
    assert str(run_dag(DAG_ID, run_conf={"target_revision": "0002"}).state) == "success"
    assert revision(target_db) == ["0002"]
    before = len(read_emails(maildir))
    with psycopg.connect(target_db) as holder:
        holder.execute("LOCK TABLE tutors IN ACCESS SHARE MODE")  # a reader mid-transaction
        started = time.monotonic()
        dag_run = run_dag(DAG_ID)
        elapsed = time.monotonic() - started
        holder.rollback()
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run)["apply"] == ["failed"]
    assert instances(dag_run)["apply"].try_number == 1  # a failed migration is not retried
    assert elapsed < 120  # a 0.5 s lock wait, not a queue behind the reader
    assert revision(target_db) == ["0002"]
    assert "hourly_rate_cents" not in columns(target_db, "tutors")
    about_run = [m for m in read_emails(maildir)[before:] if dag_run.run_id in m["subject"]]
    assert [m["subject"] for m in about_run] == [
        f"[TutorMax Ops] migration upgrade to 0003 failed ({dag_run.run_id})"
    ]  # one failure, one email: the failure callback sends no second one
    body = about_run[0].get_body(("html",)).get_content()
    assert "lock timeout" in body.lower()
    path = body.split("kept at <code>")[1].split("</code>")[0]
    assert Path(path.removeprefix("file://")).stat().st_size > 0


def test_a_pg_dump_older_than_the_server_fails_before_applying(target_db, run_dag, monkeypatch) -> None:
    old = shutil.which("pg_dump", path="/usr/bin")
    with psycopg.connect(target_db) as conn:
        server_major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    found = pg_dump_version(old) if old else None
    if found is None or found.major >= server_major:
        pytest.skip("no pg_dump older than the server on this machine")
    monkeypatch.setenv("TUTORMAX_OPS__MIGRATIONS__PG_DUMP_PATH", old)
    dag_run = run_dag(DAG_ID)
    assert task_states(dag_run)["backup"] == ["failed"]
    assert task_states(dag_run)["apply"] == ["upstream_failed"]
    assert tables(target_db) == set()


def test_a_second_project_runs_through_config_alone(target_db, run_dag, monkeypatch, tmp_path) -> None:
    project = write_project(tmp_path / "acme")
    monkeypatch.setenv("TUTORMAX_OPS__MIGRATIONS__PROJECT", json.dumps(project.config))
    dag_run = run_dag(DAG_ID)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert tables(target_db) == {"alembic_version", "acme_widgets"}
    assert revision(target_db) == ["a2"]
    assert columns(target_db, "acme_widgets") == {"id", "name", "colour"}


def test_two_heads_fail_the_preflight_naming_both(target_db, run_dag, monkeypatch, tmp_path) -> None:
    project = write_project(tmp_path / "acme", second_head=True)
    monkeypatch.setenv("TUTORMAX_OPS__MIGRATIONS__PROJECT", json.dumps(project.config))
    dag_run = run_dag(DAG_ID)
    assert task_states(dag_run)["preflight"] == ["failed"]
    assert tables(target_db) == set()
