"""Bring your own service: the load-test and smoke DAGs against a second service (tests/byo_service.py),
configured by a YAML file and connections alone, as the README's "Load-testing your own service" says.

The service runs under real uvicorn on a free port, on its own PostgreSQL database (also the results
history, so its history starts empty) and the session's Redis; it records every request it receives,
which is how "no request reached the service" is checked. Its traffic is the documented example
locustfile, copied outside include/locust/ as a team would copy it into its own repository.

The run's targets are the team's own (config too) and generous: this file proves the plumbing end to
end; tests/loadtest/test_verdict.py and test_tutormax_load_test.py prove the judging.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.rows import dict_row
from test_tutormax_load_test import refusal

from support import read_emails, task_states
from tutormax_ops.core.config import load_settings
from tutormax_ops.core.paths import LOCUST_DIR
from tutormax_ops.devstack import stack as devstack

DAG_ID = "tutormax_load_test"
PROFILE = "myservice"
HEALTH_PATH = "/api/v1/utils/health-check/"
ITEMS = 200
ROUTES = {"GET /api/v1/items/", "GET /api/v1/items/{id}"}
SCHEMA = load_settings().storage.results_schema


@dataclass(frozen=True)
class Byo:
    url: str
    db_url: str
    request_log: Path

    def requests(self) -> list[str]:
        """Every request the service received so far, as "GET /path"."""
        return self.request_log.read_text().splitlines() if self.request_log.exists() else []


@pytest.fixture(scope="module")
def byo(stack, fresh_database, tmp_path_factory) -> Iterator[Byo]:
    folder = tmp_path_factory.mktemp("byo")
    db_url = fresh_database("byo")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE TABLE items (id integer PRIMARY KEY, title text NOT NULL)")
        conn.execute("INSERT INTO items SELECT n, 'item ' || n FROM generate_series(1, %s) AS n", (ITEMS,))
    port = devstack.free_port()
    request_log = folder / "requests.log"
    env = devstack.python_env(
        BYO_DATABASE_URL=db_url, BYO_REDIS_URL=stack.endpoints.redis_url, BYO_REQUEST_LOG=str(request_log)
    )
    tests_dir = Path(__file__).resolve().parents[1]
    argv = [sys.executable, "-m", "uvicorn", "byo_service:app", "--app-dir", str(tests_dir),
            "--host", devstack.LOOPBACK, "--port", str(port), "--no-access-log"]  # fmt: skip
    server = devstack.spawn("byo-service", argv, log_path=folder / "byo-service.log", env=env)
    try:
        devstack.wait_until(
            lambda: devstack.port_accepts(port), timeout_s=60, what="byo service", log_path=server.log_path
        )
        yield Byo(f"http://{devstack.LOOPBACK}:{port}", db_url, request_log)
    finally:
        server.stop()


def write_config(folder: Path, locustfile: str, **overrides: Any) -> Path:
    """The team's own file of changes only, in a folder of its own: layered over the shipped settings."""
    folder.mkdir(parents=True, exist_ok=True)
    profile = {
        "users": 10,
        "spawn_rate": 10,
        "run_time_s": 30,
        "locustfile": locustfile,
        "think_time_s": [0.1, 0.3],
        "ids": {"sql": "SELECT id FROM items ORDER BY id LIMIT %(limit)s", "sql_params": {"limit": 100}},
        "options": {"routes": [{"path": "/api/v1/items/", "weight": 1}, {"path": "/api/v1/items/{id}", "weight": 4}]},
        "targets": {"throughput_rps": 0, "p95_api_ms": 1000, "p95_query_ms": 1000, "cache_hit_rate_percent": 50},
    }  # fmt: skip
    own = {
        "service": {
            "health_check": {"path": HEALTH_PATH, "status": 200, "json_field": "", "json_value": True}
        },
        "loadtest": {"default_profile": PROFILE, "profiles": {PROFILE: profile}},
    }
    for section, values in overrides.items():
        own[section] = {**own.get(section, {}), **values}
    (folder / "zz_myservice.yaml").write_text(yaml.safe_dump(own))
    return folder


@dataclass(frozen=True)
class Configured:
    locustfile: Path
    results_url: str


@pytest.fixture
def configured(
    byo: Byo, stack, fresh_database, airflow_db, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Configured:
    """Connections to the byo service and its database, the team's config folder and locustfile.
    Each test gets an empty results history, so no test's verdict depends on another's runs."""
    results_url = fresh_database("byo_results")
    endpoints = replace(stack.endpoints, db_url=byo.db_url, results_url=results_url, api_url=byo.url)
    for name, value in endpoints.airflow_env().items():
        monkeypatch.setenv(name, value)
    locustfile = tmp_path / "team_repo" / "locustfile.py"
    locustfile.parent.mkdir()
    shutil.copy(LOCUST_DIR / "json_api_locustfile.py", locustfile)
    monkeypatch.setenv("TUTORMAX_OPS_CONFIG_DIR", str(write_config(tmp_path / "config", str(locustfile))))
    # The run proves the plumbing, not this machine's spare CPU (other jobs share it): the host check
    # is tested on its own in tests/loadtest/test_validity.py; every other validity check stays.
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__HOST_SATURATION_PERCENT", "100")
    return Configured(locustfile, results_url)


def history(db_url: str, run_id: str) -> tuple[dict | None, list[dict]]:
    """The run's history rows; none where nothing was ever stored (no history schema yet)."""
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        stored = conn.execute("SELECT to_regclass(%s) AS t", (f"{SCHEMA}.loadtest_runs",)).fetchone()
        if stored["t"] is None:
            return None, []
        query = "SELECT * FROM {} WHERE dag_id = %s AND run_id = %s"
        run = conn.execute(
            sql.SQL(query).format(sql.Identifier(SCHEMA, "loadtest_runs")), (DAG_ID, run_id)
        ).fetchone()
        endpoints = conn.execute(
            sql.SQL(query).format(sql.Identifier(SCHEMA, "loadtest_endpoints")), (DAG_ID, run_id)
        ).fetchall()
    return run, endpoints


def test_the_load_test_runs_end_to_end_against_another_service_through_config_alone(
    byo: Byo, configured: Configured, run_dag, maildir: Path
) -> None:
    seen_before, sent_before = len(byo.requests()), len(read_emails(maildir))
    dag_run = run_dag(DAG_ID, run_conf={"notify": "always"})
    assert task_states(dag_run) == {
        name: ["success"] for name in ("plan", "guard", "run", "analyze", "notify", "verdict")
    }
    run, endpoints = history(configured.results_url, dag_run.run_id)
    assert run is not None and run["valid"], run
    assert (run["profile"], run["verdict"], run["targets_verdict"]) == (PROFILE, "pass", "pass")
    assert run["regression_verdict"] == "insufficient history"
    assert {row["endpoint"] for row in endpoints} == ROUTES  # named by route template, not by id
    assert sum(row["requests"] for row in endpoints) == run["requests"] > 100
    assert run["cache_hit_rate"] is not None  # its Redis, measured from the connection

    received = Counter(line.split(" ", 1)[1] for line in byo.requests()[seen_before:])
    item_paths = [path for path in received if path.startswith("/api/v1/items/") and path != "/api/v1/items/"]
    assert received[HEALTH_PATH] == 1 and received["/api/v1/items/"] > 0 and len(item_paths) > 10
    assert "/health" not in received and "/api/ids/sample" not in received
    ids = {int(path.rsplit("/", 1)[1]) for path in item_paths}
    assert ids <= set(range(1, 101))  # only the ids its SQL query returned

    folder = Path(run["artifacts_uri"].removeprefix("file://"))
    report = (folder / "report.html").read_text()
    assert "optional: <code>/api/performance/summary</code>" in report and "optional, not available" in report
    assert json.loads((folder / "ids.json").read_text()) == list(range(1, 101))
    [email] = [m for m in read_emails(maildir)[sent_before:] if f"load test {PROFILE}" in m["subject"]]
    html = next(part.get_content() for part in email.walk() if part.get_content_type() == "text/html")
    assert dag_run.run_id in html and "GET /api/v1/items/{id}" in html


def test_the_smoke_dag_checks_the_configured_health_path(byo: Byo, configured: Configured, run_dag) -> None:
    seen_before = len(byo.requests())
    dag_run = run_dag("tutormax_smoke_connectivity")
    assert task_states(dag_run) == {"check": ["success"] * 5, "summarize": ["success"]}
    assert byo.requests()[seen_before:] == [f"GET {HEALTH_PATH}"]


def test_a_missing_locustfile_fails_plan_and_no_request_reaches_the_service(
    byo: Byo, configured: Configured, run_dag, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd
) -> None:
    missing = tmp_path / "team_repo" / "renamed_locustfile.py"
    monkeypatch.setenv("TUTORMAX_OPS_CONFIG_DIR", str(write_config(tmp_path / "missing", str(missing))))
    seen_before = len(byo.requests())
    dag_run = run_dag(DAG_ID)
    states = task_states(dag_run)
    assert states["plan"] == ["failed"] and states["guard"] == ["upstream_failed"]
    assert {ti.task_id: ti.try_number for ti in dag_run.get_task_instances()}["plan"] == 1  # config: no retry
    assert byo.requests()[seen_before:] == []
    assert history(configured.results_url, dag_run.run_id)[0] is None
    output = capfd.readouterr()
    assert (
        f"LocustfileError: loadtest.profiles.{PROFILE}.locustfile: {missing} does not exist (no request was sent)"
        in output.out + output.err
    )


def test_a_json_field_health_check_refuses_a_200_with_the_wrong_value(
    byo: Byo, configured: Configured, run_dag, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd
) -> None:
    check = {"path": "/api/v1/utils/status", "status": 200, "json_field": "status", "json_value": "ok"}
    config = write_config(tmp_path / "status", str(configured.locustfile), service={"health_check": check})
    monkeypatch.setenv("TUTORMAX_OPS_CONFIG_DIR", str(config))
    seen_before = len(byo.requests())
    dag_run = run_dag(DAG_ID)
    states = task_states(dag_run)
    assert states["guard"] == ["failed"] and states["run"] == ["upstream_failed"]
    assert byo.requests()[seen_before:] == ["GET /api/v1/utils/status"]  # asked once, no load
    reason = refusal(capfd)
    assert reason.startswith(
        f"load test refused, no load was sent: {byo.url}: GET /api/v1/utils/status answered 200"
    )
    assert reason.endswith('(expected GET /api/v1/utils/status -> 200, status == "ok")'), reason
    smoke = run_dag("tutormax_smoke_connectivity")
    assert task_states(smoke)["summarize"] == ["failed"]


@pytest.mark.e2e  # dag.test() of its own (a scheduled run), not through run_dag
def test_a_scheduled_run_that_starts_hours_late_sends_no_load_and_stores_the_skip(
    byo: Byo, configured: Configured, scheduled_runs: None, airflow_db
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from tutormax_ops.core.paths import PROJECT_ROOT

    window_minutes = load_settings().loadtest.window_minutes
    scheduled_at = (datetime.now(UTC) - timedelta(hours=5)).replace(second=0, microsecond=0)
    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{DAG_ID}.py")).get_dag(DAG_ID)
    seen_before = len(byo.requests())
    dag_run = dag.test(logical_date=scheduled_at, run_after=scheduled_at)
    assert str(dag_run.run_type) in ("scheduled", "DagRunType.SCHEDULED")
    assert task_states(dag_run) == {
        name: ["skipped"] for name in ("plan", "guard", "run", "analyze", "notify", "verdict")
    }
    assert byo.requests()[seen_before:] == []
    run, endpoints = history(configured.results_url, dag_run.run_id)
    assert run is not None and run["verdict"] == "skipped" and not run["valid"] and endpoints == []
    late_h = 5 - window_minutes / 60
    assert run["invalid_reason"].startswith(f"skipped: started {late_h:.1f} h after its window ("), run
    assert run["profile"] == PROFILE
