"""End to end: tutormax_load_test with dag.test() against the reference service, real PostgreSQL,
Redis and SMTP sink. Locust runs only as subprocesses, as in production.

History for the regression test is seeded from the real smoke run's rows (copied with ±5 % jitter
under new run ids), instead of four more 15 s runs.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from support import read_emails, task_states
from tutormax_ops.core.config import load_settings
from tutormax_ops.devstack import stack as devstack

DAG_ID = "tutormax_load_test"
SHORT_SMOKE = {"profile": "smoke", "run_time": 15}  # the profile's 20 users, a quarter of its time
SLOWED = "/api/tutors/{tutor_id}/dashboard"
SCHEMA = load_settings().storage.results_schema
_smoke: dict[str, Any] = {}  # the one real smoke run, shared by the tests that build on it


@pytest.fixture
def service(airflow_connections, service_db_url: str) -> str:
    """The connections, with pg_stat_statements in the service's database (a DBA's job in production)."""
    with psycopg.connect(service_db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return service_db_url


def runs(db_url: str, run_id: str) -> tuple[dict | None, list[dict]]:
    """The history rows of one run: its loadtest_runs row and its loadtest_endpoints rows."""
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        run = conn.execute(_select("loadtest_runs"), (DAG_ID, run_id)).fetchone()
        endpoints = conn.execute(_select("loadtest_endpoints"), (DAG_ID, run_id)).fetchall()
    return run, sorted(endpoints, key=lambda row: row["endpoint"])


def _select(table: str) -> sql.Composed:
    return sql.SQL("SELECT * FROM {} WHERE dag_id = %s AND run_id = %s").format(sql.Identifier(SCHEMA, table))


def _insert(conn: psycopg.Connection, table: str, row: dict) -> None:
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(SCHEMA, table),
            sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Placeholder() * len(row)),
        ),
        list(row.values()),
    )


def artifacts(run: dict) -> Path:
    return Path(run["artifacts_uri"].removeprefix("file://"))


@pytest.fixture
def smoke_run(service: str, run_dag) -> dict[str, Any]:
    if not _smoke:
        dag_run = run_dag(DAG_ID, run_conf=SHORT_SMOKE)
        _smoke.update(dag_run=dag_run, run_id=dag_run.run_id, states=task_states(dag_run))
    return _smoke


@contextlib.contextmanager
def tripwire(host: str = "127.0.0.1") -> Iterator[tuple[int, list[int]]]:
    """A listening socket that counts the connections made to it."""
    with socket.socket() as listener:
        listener.bind((host, 0))
        listener.listen(64)
        accepted: list[int] = []
        yield listener.getsockname()[1], accepted
        listener.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                listener.accept()[0].close()
                accepted.append(1)


def test_schedule_is_nightly_cron_or_the_schema_migrated_asset() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import AssetOrTimeSchedule

    from tutormax_ops.core.assets import SCHEMA_MIGRATED
    from tutormax_ops.core.paths import PROJECT_ROOT

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{DAG_ID}.py")).dags[DAG_ID]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert list(dag.timetable.asset_condition.objects) == [SCHEMA_MIGRATED]
    assert [task.task_id for task in dag.topological_sort()] == [
        "plan",
        "guard",
        "run",
        "analyze",
        "notify",
        "verdict",
    ]
    assert dag.get_task("run").execution_timeout == timedelta(
        seconds=load_settings().loadtest.run_task_timeout_s
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"profile": "nope"},
        {"notify": "sometimes"},
        {"run_time": 1},
        {"users": 0},
        {"host": "ftp://127.0.0.1"},
        {"processes": -1},
    ],
    ids=lambda bad: next(iter(bad)),
)
def test_a_bad_param_never_creates_a_run(run_dag, airflow_db, bad: dict) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        run_dag(DAG_ID, run_conf=bad)


def test_smoke_run_meets_the_targets_and_stores_artifacts_and_history(smoke_run, service: str) -> None:
    assert smoke_run["states"] == {
        name: ["success"] for name in ("plan", "guard", "run", "analyze", "notify", "verdict")
    }
    run, endpoints = runs(service, smoke_run["run_id"])
    assert run is not None and run["valid"] and run["verdict"] == "pass", run
    assert run["targets_verdict"] == "pass" and run["regression_verdict"] == "insufficient history"
    assert (
        run["p95_ms"] < 200
        and run["error_rate"] < 1
        and run["cache_hit_rate"] > 80
        and run["query_p95_ms"] < 100
    )
    assert {row["endpoint"] for row in endpoints} >= {
        "GET /api/tutors",
        "GET /api/students/{student_id}/history",
        "GET /api/tutors/{tutor_id}/dashboard",
        "GET /api/tutors/{tutor_id}/feedback",
        "GET /api/admin/overview",
    }
    assert sum(row["requests"] for row in endpoints) == run["requests"]
    folder = artifacts(run)
    for name in (
        "report.html",
        "locust.html",
        "locust.json",
        "locust_stats.csv",
        "locust_stats_history.csv",
        "summary.json",
        "server_metrics.json",
        "cpu_samples.csv",
        "trend.png",
    ):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["server"]["window"] == "steady state"
    assert "10 ms steps from 100 to 999 ms" in (folder / "report.html").read_text()


def seed_history(db_url: str, run_id: str, copies: int = 4) -> None:
    """Earlier runs like the real one: its rows under new ids, days before it, p95s jittered ±5 %."""
    rng = random.Random(11)
    run, endpoints = runs(db_url, run_id)
    with psycopg.connect(db_url) as conn:
        for copy in range(1, copies + 1):
            seeded = f"seeded__{uuid.uuid4().hex[:8]}"
            values = {
                **run,
                "run_id": seeded,
                "started_at": run["started_at"] - timedelta(days=copy),
                "p95_ms": run["p95_ms"] * rng.uniform(0.95, 1.05),
                "findings": Jsonb([]),
            }
            _insert(conn, "loadtest_runs", values)
            for row in endpoints:
                _insert(
                    conn,
                    "loadtest_endpoints",
                    {**row, "run_id": seeded, "p95_ms": row["p95_ms"] * rng.uniform(0.95, 1.05)},
                )


def test_injected_latency_is_a_regression_emailed_with_the_endpoint(
    smoke_run, service: str, stack, run_dag, maildir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed_history(service, smoke_run["run_id"])
    port = devstack.free_port()
    slowed = devstack.start_reference_service(
        database_url=service,
        redis_url=stack.endpoints.redis_url,
        port=port,
        log_dir=tmp_path,
        extra_env={"TUTORMAX_SERVICE_INJECTED_LATENCY_MS": f"{SLOWED}=150"},
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_TUTORMAX_API", json.dumps(devstack.http_connection(f"http://127.0.0.1:{port}"))
    )
    before = len(read_emails(maildir))
    try:
        dag_run = run_dag(DAG_ID, run_conf=SHORT_SMOKE)
    finally:
        slowed.stop()
    assert task_states(dag_run)["verdict"] == ["failed"] and task_states(dag_run)["notify"] == ["success"]
    run, _ = runs(service, dag_run.run_id)
    assert run["valid"] and run["regression_verdict"] == "regression"
    slowed_findings = [
        f for f in run["findings"] if f["scope"] == f"GET {SLOWED}" and f["metric"] == "p95_ms"
    ]
    # Every dashboard request now waits 150 ms, so its p95 is at least that, whatever the baseline was.
    assert slowed_findings and slowed_findings[0]["current"] >= 150 > slowed_findings[0]["baseline"]
    assert slowed_findings[0]["since_run_id"] == dag_run.run_id
    new_emails = read_emails(maildir)[before:]
    assert not any("verdict failed" in message["subject"] for message in new_emails)  # no second email
    [email] = [message for message in new_emails if "load test smoke" in message["subject"]]
    assert "REGRESSION" in email["subject"] and SLOWED in email["subject"]
    html = next(part.get_content() for part in email.walk() if part.get_content_type() == "text/html")
    assert f"GET {SLOWED}" in html and 'src="cid:trend.png"' in html and dag_run.run_id in html
    names = {part.get_filename() for part in email.walk() if part.get_filename()}
    assert names == {"trend.png", "locust_report.html"}


def test_a_host_off_the_allowlist_is_refused_before_any_request(service: str, run_dag) -> None:
    with tripwire("127.0.0.2") as (port, accepted):
        dag_run = run_dag(DAG_ID, run_conf={**SHORT_SMOKE, "host": f"http://127.0.0.2:{port}"})
    assert accepted == []
    states = task_states(dag_run)
    assert states["guard"] == ["failed"] and states["run"] == ["upstream_failed"]
    assert runs(service, dag_run.run_id)[0] is None


def test_a_user_count_over_the_cap_is_refused_before_any_request(service: str, run_dag) -> None:
    cap = load_settings().loadtest.max_users
    with tripwire() as (port, accepted):
        dag_run = run_dag(
            DAG_ID, run_conf={**SHORT_SMOKE, "users": cap + 1, "host": f"http://127.0.0.1:{port}"}
        )
    assert accepted == []
    assert task_states(dag_run)["guard"] == ["failed"] and task_states(dag_run)["run"] == ["upstream_failed"]


def test_a_held_advisory_lock_refuses_the_run(service: str, run_dag) -> None:
    key = load_settings().coordination.advisory_lock_key
    with psycopg.connect(service, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        dag_run = run_dag(DAG_ID, run_conf=SHORT_SMOKE)
    assert task_states(dag_run)["guard"] == ["failed"] and task_states(dag_run)["run"] == ["upstream_failed"]


def test_a_killed_run_leaves_no_locust_process_and_is_invalid(
    service: str, run_dag, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = uuid.uuid4().hex  # locust inherits it: how its processes are found, orphans included
    monkeypatch.setenv("TUTORMAX_TEST_RUN_MARKER", marker)
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__RUN_TASK_TIMEOUT_S", "10")  # read when the DAG is parsed
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__KILL_GRACE_S", "5")
    dag_run = run_dag(DAG_ID, run_conf={**SHORT_SMOKE, "run_time": 120, "notify": "never"})
    states = task_states(dag_run)
    assert states["run"] == ["failed"] and states["analyze"] == ["upstream_failed"]
    assert locust_processes(marker) == []
    run, endpoints = runs(service, dag_run.run_id)
    assert run is not None and not run["valid"] and run["verdict"] == "invalid" and endpoints == []
    assert "interrupted (AirflowTaskTimeout)" in run["invalid_reason"]


def locust_processes(marker: str) -> list[int]:
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("TUTORMAX_TEST_RUN_MARKER") == marker:
                found.append(process.pid)
    return found


def test_distributed_mode_with_two_workers_gives_one_merged_result(service: str, run_dag) -> None:
    dag_run = run_dag(
        DAG_ID, run_conf={"profile": "smoke", "run_time": 12, "users": 12, "processes": 2, "notify": "never"}
    )
    run, endpoints = runs(service, dag_run.run_id)
    assert run is not None and run["valid"] and run["processes"] == 2, run
    outcome = json.loads((artifacts(run) / "outcome.json").read_text())
    assert outcome["exit_codes"] == {"master": 0, "worker-1": 0, "worker-2": 0}
    entries = json.loads((artifacts(run) / "locust.json").read_text())
    assert sum(entry["num_requests"] for entry in entries) == run["requests"] > 0
    assert {row["endpoint"] for row in endpoints} == {
        f"{entry['method']} {entry['name']}" for entry in entries
    }  # one result: every endpoint once, the workers' counts merged by the master
    assert "2 workers connected" in (artifacts(run) / "master.log").read_text()
