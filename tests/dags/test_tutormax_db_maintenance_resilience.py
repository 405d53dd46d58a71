"""End to end, the maintenance DAG under strain: PostgreSQL going down after the vacuum, and a
3,000-table catalog (XCom and email sizes)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from maintenance.catalog import dead_tuples, make_table
from maintenance.targets import BLOATED, DAG_ID, Target, new_target, point_at
from support import read_emails, task_states
from tutormax_ops.devstack import stack as devstack
from tutormax_ops.devstack.connections import smtp_connection


class OwnPostgres:
    """A PostgreSQL server of a test's own, which it may stop and start again (under the stack's
    folder, which the unprivileged server user may enter)."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, devstack.free_port()
        self.server = devstack.start_postgres(root, self.port, log_dir=root)
        self.admin_url = self.server.url

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = devstack.start_postgres(self.root, self.port, log_dir=self.root)


@pytest.fixture
def own_postgres(stack) -> Iterator[OwnPostgres]:
    own = OwnPostgres(stack.log_dir.parent / f"own_postgres_{os.getpid()}")
    yield own
    own.stop()
    shutil.rmtree(own.root, ignore_errors=True)


def test_both_databases_down_after_the_vacuum_still_build_store_and_send_the_report(
    stack, run_dag, maildir, monkeypatch, tmp_path, own_postgres
) -> None:
    # tutormax_results on the same server as tutormax_db: the demo's default, which the README allows.
    server = own_postgres
    target = Target(
        devstack.create_database(server.admin_url, "doomed"),
        devstack.create_database(server.admin_url, "doomed_results"),
        tmp_path,
    )
    make_table(target.db_url, BLOATED, rows=20_000, deleted_percent=50)
    point_at(monkeypatch, stack, target)
    monkeypatch.setattr("tutormax_ops.maintenance.store.STORE_RETRY_S", 0.1, raising=False)
    import tutormax_ops.maintenance.vacuum as vacuum_module

    real_vacuum = vacuum_module.vacuum

    def vacuum_then_stop_postgres(*args, **kwargs):  # the real step, then the server goes away
        result = real_vacuum(*args, **kwargs)
        assert dead_tuples(target.db_url, BLOATED) == 0  # the VACUUM really ran
        server.stop()
        return result

    monkeypatch.setattr(vacuum_module, "vacuum", vacuum_then_stop_postgres)
    sent_before = len(read_emails(maildir))
    dag_run = run_dag(DAG_ID)

    assert str(dag_run.state) == "failed"
    states = task_states(dag_run)
    assert {task: states[task][-1] for task in states} == {
        "snapshot_before": "success",
        "plan": "success",
        "vacuum": "success",
        "snapshot_after": "failed",
        "report": "success",
        "store": "success",
        "notify": "success",
        "outcome": "failed",
    }
    report = target.report(dag_run)
    assert report["status"] == "incomplete"
    (incomplete,) = report["incomplete"]
    assert incomplete.startswith(
        "the after-snapshot failed (OperationalError: PostgreSQL connection 'tutormax_db'"
    )
    (row,) = [row for row in report["tables"] if row["planned"]]
    assert (row["name"], row["outcome"], row["dead_tuples_after"]) == ("public.bloated", "done", None)
    assert report["unavailable"][0].startswith("all findings: the database could not be reached")
    assert any(
        reason.startswith("history and trend: tutormax_results could not be reached")
        for reason in report["unavailable"]
    )
    html = target.folder(dag_run).joinpath("report.html").read_text()
    assert "Incomplete:</b> the after-snapshot failed" in html
    subjects = [m["subject"] for m in read_emails(maildir)[sent_before:]]
    assert any(DAG_ID in s and "incomplete" in s for s in subjects), subjects
    verdict = target.step(dag_run, "outcome")
    assert not verdict["passed"]
    assert (
        "the after-snapshot failed (OperationalError: PostgreSQL connection 'tutormax_db'"
        in verdict["message"]
    )
    assert (
        "step store: the history rows were not stored (tutormax_results unreachable after 3 attempts"
        in (verdict["message"])
    )

    # The server is back: the next run stores the history the first one could not.
    server.start()
    monkeypatch.setattr(vacuum_module, "vacuum", real_vacuum)
    later = run_dag(DAG_ID, run_conf={"notify": "never"})
    assert str(later.state) == "success", task_states(later)
    stored = "SELECT status, summary->>'done' FROM tutormax_ops.runs WHERE run_id = %s"
    assert target.results(stored, dag_run.run_id) == [("incomplete", "1")]
    assert not target.folder(dag_run).joinpath("steps", "history_pending.json.gz").exists()


def test_a_report_email_that_could_not_be_sent_fails_the_run_naming_the_connection(
    stack, fresh_database, run_dag, monkeypatch, tmp_path
) -> None:
    target = point_at(monkeypatch, stack, new_target(fresh_database, tmp_path))
    refusing = f"smtp://127.0.0.1:{devstack.free_port()}"  # nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(smtp_connection(refusing)))
    dag_run = run_dag(DAG_ID)
    assert str(dag_run.state) == "failed"
    states = task_states(dag_run)
    assert (states["store"][-1], states["notify"][-1], states["outcome"][-1]) == (
        "success",
        "failed",
        "failed",
    )
    # Stored before anyone was (not) told.
    assert target.results("SELECT status FROM tutormax_ops.runs WHERE run_id = %s", dag_run.run_id) == [
        ("completed",)
    ]
    verdict = target.step(dag_run, "outcome")
    assert verdict["problems"] == [
        "step notify: the report email was not sent through connection 'smtp_default': "
        + verdict["problems"][0].split("'smtp_default': ", 1)[1]
    ]
    assert "ConnectionError: SMTP connection 'smtp_default' at 127.0.0.1:" in verdict["message"]


def xcom_sizes(dag_run) -> dict[str, int]:
    """{task_id/key: bytes} of every XCom the run stored, read from the metadata database."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(XComModel.task_id, XComModel.key, XComModel.value)
            .filter(XComModel.dag_id == DAG_ID, XComModel.run_id == dag_run.run_id)
            .all()
        )
    return {
        f"{task}/{key}": len(value if isinstance(value, str) else json.dumps(value))
        for task, key, value in rows
    }


def make_many_tables(url: str, count: int) -> None:
    """`count` small tables, each with a few dead rows, created in one statement per batch."""
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(0, count, 500):
            conn.execute(
                sql.SQL(
                    "DO $$ BEGIN FOR i IN {}..{} LOOP EXECUTE format("
                    "'CREATE TABLE public.%I (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);"
                    " INSERT INTO public.%I SELECT g, ''x'' FROM generate_series(1, 10) g;"
                    " DELETE FROM public.%I WHERE id <= 2', 't' || i, 't' || i, 't' || i); END LOOP; END $$"
                ).format(sql.Literal(start), sql.Literal(min(start + 500, count) - 1))
            )


@pytest.mark.slow
def test_at_3000_tables_xcom_stays_under_64_kb_and_the_email_under_300_kb(
    stack, fresh_database, run_dag, maildir, monkeypatch, tmp_path
) -> None:
    tables = 3000
    target = point_at(
        monkeypatch,
        stack,
        Target(fresh_database("maint_3000"), fresh_database("maint_3000_results"), tmp_path),
    )
    make_many_tables(target.db_url, tables)
    # Sizes are under test here, not speed: catalog statements over 3,000 tables on a loaded 2-core
    # machine may exceed the 5 s production timeout, which would only leave sections out.
    monkeypatch.setenv("TUTORMAX_OPS__COLLECTORS__STATEMENT_TIMEOUT_MS", "120000")
    sent_before = len(read_emails(maildir))
    dag_run = run_dag(DAG_ID, run_conf={"min_dead_tuple_ratio": 0, "parallel_jobs": 2})
    assert str(dag_run.state) == "success", task_states(dag_run)
    report = target.report(dag_run)
    assert report["totals"]["done"] == tables
    sizes = xcom_sizes(dag_run)
    assert {key.split("/")[0] for key in sizes} >= {"snapshot_before", "plan", "vacuum", "report", "store"}
    assert all(key.endswith("/return_value") for key in sizes), sizes  # no key stored a second time
    assert max(sizes.values()) < 64 * 1024, sizes
    (message,) = [m for m in read_emails(maildir)[sent_before:] if DAG_ID in m["subject"]]
    assert len(message.as_bytes()) < 300 * 1024
    assert f"{tables - 15} more tables in the stored report" in message.get_body(("html",)).get_content()
