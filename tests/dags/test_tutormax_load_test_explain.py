"""End to end (issue 29): a dropped index makes the load test's REGRESSION email name the statement
that got slower as its likely cause. Real PostgreSQL, Redis, SMTP sink and reference service; the
DAG through dag.test(); Locust as a subprocess.

The service's database is this test's own, with enough sessions (`SESSIONS_PER_DAY` × `DAYS`) that
the tutor-feedback reads, which filter sessions by tutor, take tens of milliseconds each without
`ix_sessions_tutor_id_scheduled_at`: far beyond a shared machine's noise, so the aggregate p95
regresses however busy the machine is. The history is `BASELINE_RUNS` unchanged smoke runs, each
storing its evidence, each from a cold cache: `min_history` (3), the shortest history the rule judges,
with a looser false-alarm level (the rule's sensitivity is bench/loadtest.py's subject, not this test's)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from html import unescape
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from support import read_emails
from tutormax_ops.devstack import stack as devstack

DAG_ID = "tutormax_load_test"
SHORT_SMOKE = {"profile": "smoke", "run_time": 30}
BASELINE_RUNS = 3
DAYS, SESSIONS_PER_DAY = 10, 60_000
INDEX, TABLE, COLUMNS = "ix_sessions_tutor_id_scheduled_at", "sessions", ("tutor_id", "scheduled_at")


@pytest.fixture
def large_service(stack: devstack.Stack, airflow_db: dict, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The reference service on a database of its own, large enough for an index to matter, with
    the Airflow connections pointing at it (results in the same database, a schema of this test's)."""
    name = f"tutormax_explain_{os.getpid()}"
    url = devstack.create_database(stack.admin_url, name, extensions=devstack.SERVICE_EXTENSIONS)
    try:
        devstack.migrate_service_schema(url)
        devstack.load_service_data(url, days=DAYS, sessions_per_day=SESSIONS_PER_DAY)
        port = devstack.free_port()
        service = devstack.start_reference_service(
            database_url=url, redis_url=stack.endpoints.redis_url, port=port, log_dir=stack.log_dir
        )
        try:
            served = replace(
                stack.endpoints, db_url=url, results_url=url, api_url=f"http://{devstack.LOOPBACK}:{port}"
            )
            for variable, value in served.airflow_env().items():
                monkeypatch.setenv(variable, value)
            monkeypatch.setenv("TUTORMAX_OPS__STORAGE__RESULTS_SCHEMA", f"lt_explain_{uuid.uuid4().hex[:8]}")
            # This test is about the cause, not about how small a step 3 runs of history may flag at
            # 1% false alarms per run (bench/loadtest.py measures that): a looser level lets the
            # dropped index's step, intermittent on a shared machine, be a REGRESSION at run 4.
            monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__REGRESSION__FALSE_ALARM_RATE", "0.2")
            # The detector is judged on whatever machine runs it (as in test_tutormax_load_test.py).
            monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__HOST_SATURATION_PERCENT", "100")
            yield url
        finally:
            service.stop()
    finally:
        devstack.drop_database(stack.admin_url, name)


def cold_cache_run(run_dag, redis_url: str) -> object:
    """A smoke run that starts with the service's cache keys unlinked: each run of this test reads
    the same share of its answers from the database (the locustfile's ids repeat from run to run,
    so a cache left warm would serve the feedback reads without a query)."""
    import redis

    from tutormax_ops.cache.keys import clear

    client = redis.Redis.from_url(redis_url)
    try:
        clear(client, "tutormax:cache:*", dry_run=False, scan_count=1000, unlink_batch=500)
    finally:
        client.close()
    return run_dag(DAG_ID, run_conf=SHORT_SMOKE)


def stored_run(db_url: str, run_id: str) -> dict:
    from tutormax_ops.core.config import load_settings

    schema = load_settings().storage.results_schema
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        run = conn.execute(
            sql.SQL("SELECT * FROM {} WHERE run_id = %s").format(sql.Identifier(schema, "loadtest_runs")),
            (run_id,),
        ).fetchone()
        evidence = conn.execute(
            sql.SQL("SELECT bytes FROM {} WHERE run_id = %s").format(
                sql.Identifier(schema, "loadtest_evidence")
            ),
            (run_id,),
        ).fetchone()
    assert run is not None and run["valid"], run and run["invalid_reason"]
    return {**run, "evidence_bytes": evidence["bytes"] if evidence else None}


@pytest.mark.timeout(1200)
def test_a_dropped_index_is_the_likely_cause_the_regression_email_names(
    large_service: str, run_dag, maildir, stack: devstack.Stack
) -> None:
    for _ in range(BASELINE_RUNS):
        baseline = cold_cache_run(run_dag, stack.endpoints.redis_url)
        assert stored_run(large_service, baseline.run_id)["evidence_bytes"] is not None
    with psycopg.connect(large_service, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(INDEX)))
    before = len(read_emails(maildir))
    try:
        dag_run = cold_cache_run(run_dag, stack.endpoints.redis_url)
    finally:
        with psycopg.connect(large_service, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                    sql.Identifier(INDEX),
                    sql.Identifier(TABLE),
                    sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
                )
            )
    run = stored_run(large_service, dag_run.run_id)
    assert run["regression_verdict"] == "regression", run["findings"]
    assert 0 < run["evidence_bytes"] < 50_000
    [email] = [m for m in read_emails(maildir)[before:] if "load test smoke" in m["subject"]]
    assert "REGRESSION" in email["subject"]
    html = unescape(next(p.get_content() for p in email.walk() if p.get_content_type() == "text/html"))
    body = html[html.index("<body") :]
    # The first line of the body, before any table, names the statement and the dropped index.
    likely = body[body.index("Likely cause:") : body.index("</p>", body.index("Likely cause:"))]
    assert body.index("Likely cause:") < body.index("<table")
    assert "statement slower per call" in likely, likely
    assert "FROM feedback JOIN sessions" in likely and f"{TABLE}.{INDEX} dropped" in likely, likely
    summary = json.loads((Path(run["artifacts_uri"].removeprefix("file://")) / "summary.json").read_text())
    assert summary["suspects"][0]["kind"] == "slower statement"
