"""End to end, the maintenance DAG under strain: PostgreSQL going down after the vacuum, and a
3,000-table catalog (XCom and email sizes)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from maintenance.catalog import dead_tuples, make_table
from maintenance.targets import BLOATED, DAG_ID, Target, point_at
from support import read_emails, task_states
from tutormax_ops.devstack import stack as devstack


@pytest.fixture
def own_postgres(stack) -> Iterator[tuple[str, devstack.Server]]:
    """A PostgreSQL server of this test's own, which it may stop (under the stack's folder, which the
    unprivileged server user may enter)."""
    root = stack.log_dir.parent / f"own_postgres_{os.getpid()}"
    port = devstack.free_port()
    server = devstack.start_postgres(root, port, log_dir=root)
    yield server.url, server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_postgres_down_after_the_vacuum_still_stores_an_incomplete_report(
    stack, fresh_database, run_dag, maildir, monkeypatch, tmp_path, own_postgres
) -> None:
    admin_url, server = own_postgres
    target = Target(devstack.create_database(admin_url, "doomed"), fresh_database("maint_results"), tmp_path)
    make_table(target.db_url, BLOATED, rows=20_000, deleted_percent=50)
    point_at(monkeypatch, stack, target)
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
    assert {task: states[task] for task in states} == {
        "snapshot_before": ["success"],
        "plan": ["success"],
        "vacuum": ["success"],
        "snapshot_after": ["failed"],
        "report": ["success"],
        "store": ["success"],
        "notify": ["success"],
        "outcome": ["failed"],
    }
    report = target.report(dag_run)
    assert report["status"] == "incomplete"
    assert report["incomplete"] == ["the after-snapshot failed: the figures after maintenance are missing"]
    (row,) = [row for row in report["tables"] if row["planned"]]
    assert (row["name"], row["outcome"], row["dead_tuples_after"]) == ("public.bloated", "done", None)
    assert report["unavailable"][0].startswith("all findings: the database could not be reached")
    (status, summary) = target.results(
        "SELECT status, summary FROM tutormax_ops.runs WHERE run_id = %s", dag_run.run_id
    )[0]
    assert status == "incomplete" and summary["done"] == 1 and summary["incomplete"] == report["incomplete"]
    html = target.folder(dag_run).joinpath("report.html").read_text()
    assert "Incomplete:</b> the after-snapshot failed" in html
    subjects = [m["subject"] for m in read_emails(maildir)[sent_before:]]
    assert any(DAG_ID in s and "incomplete" in s for s in subjects), subjects


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
