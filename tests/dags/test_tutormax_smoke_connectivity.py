"""End to end: the smoke DAG against real PostgreSQL, Redis, SMTP and the reference service."""

from __future__ import annotations

import json

from support import read_emails, task_states

DAG_ID = "tutormax_smoke_connectivity"


def test_every_connection_answers(airflow_connections, run_dag) -> None:
    dag_run = run_dag(DAG_ID)
    assert str(dag_run.state) == "success"
    assert task_states(dag_run) == {"check": ["success"] * 5, "summarize": ["success"]}


def test_a_dead_connection_fails_the_run_and_emails_without_secrets(
    airflow_connections, run_dag, maildir, monkeypatch
) -> None:
    secret = "s3cr3t-p4ss"
    monkeypatch.setenv(
        "AIRFLOW_CONN_TUTORMAX_REDIS",
        json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": 9, "password": secret}),
    )
    before = len(read_emails(maildir))
    dag_run = run_dag(DAG_ID)
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run) == {"check": ["success"] * 5, "summarize": ["failed"]}
    new_emails = read_emails(maildir)[before:]
    subjects = [message["subject"] for message in new_emails]
    assert any("tutormax_smoke_connectivity.summarize failed" in subject for subject in subjects), subjects
    bodies = [
        part.get_content()
        for message in new_emails
        for part in message.walk()
        if part.get_content_type() == "text/html"
    ]
    assert any("tutormax_redis" in body for body in bodies)
    assert all(secret not in body for body in bodies)
