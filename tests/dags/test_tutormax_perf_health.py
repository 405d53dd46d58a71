"""End to end: the hourly health DAG with `dag.test()` against real PostgreSQL, Redis, SMTP and the
reference service, over four scripted hours (two of them triggered as the REST API does, with no
logical date: the run's hour comes from `run_after`).

The p95 API figure comes from the newest valid load test, so each hour the test records a load-test
row with a chosen p95 (450, 480, 200, 210 ms against the 300 ms alert, clear level 270 ms): the alert
must raise in hour 1, hold in 2 and 3, resolve in 4, and email exactly twice. A rerun of hour 1 (with
hour 1's figure recorded again, since a rerun reads the live sources anew) must replace its rows, not
add to them, and must not email its raise again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from support import read_emails, task_states
from tutormax_ops.core.storage import ensure_results_schema

DAG_ID = "tutormax_perf_health"
SCHEMA = "tutormax_ops"
FIRST_HOUR = datetime(2026, 11, 2, 8, tzinfo=UTC)
P95_SERIES = [450.0, 480.0, 200.0, 210.0]
EXPECTED = ["raise", "hold", "hold", "resolve"]


@dataclass(frozen=True)
class Series:
    results_url: str
    runs: list[object]
    rerun: object
    emails: list  # emails sent during the series, the rerun included
    user_api: bool  # TUTORMAX_API_URL given: the invalidation probe stays off


def _record_load_test(url: str, number: int, p95_ms: float) -> None:
    """A load test as the load-test DAG stores it: its registry row, then its loadtest_runs row."""
    run_id = f"scripted_{number}"
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO tutormax_ops.runs (dag_id, run_id, kind, started_at, status, headline)"
            " VALUES ('tutormax_load_test', %s, 'load_test', now(), 'pass', 'scripted')",
            (run_id,),
        )
        conn.execute(
            "INSERT INTO tutormax_ops.loadtest_runs (dag_id, run_id, profile, started_at, valid, requests,"
            " failures, error_rate, rps, p95_ms) VALUES ('tutormax_load_test', %s, 'smoke', now(), true,"
            " 1000, 0, 0.0, 20.0, %s)",
            (run_id, p95_ms),
        )


def _run(dag, hour: datetime, conf: dict, *, rest: bool = False) -> object:
    """A run of `hour` as the UI or the schedule makes it (a logical date), or as
    `POST /api/v2/dags/{id}/dagRuns` does without one (only `run_after`)."""
    return dag.test(logical_date=None if rest else hour, run_after=hour, run_conf=conf)


@pytest.fixture(scope="module")
def series(
    stack, service_db_url, tutormax_api, airflow_db, fresh_database, maildir, tmp_path_factory
) -> Iterator[Series]:
    from airflow.dag_processing.dagbag import DagBag

    from tutormax_ops.core.paths import PROJECT_ROOT

    results_url = fresh_database("perf_health_results")
    with psycopg.connect(results_url, autocommit=True) as conn:
        ensure_results_schema(conn, SCHEMA)
    with psycopg.connect(service_db_url, autocommit=True) as conn:
        # One statement above the 100 ms slow-query level, so the runbook's slow-query step has one to list.
        conn.execute("SELECT pg_sleep(0.25) AS runbook_slow_statement")
    endpoints = replace(stack.endpoints, db_url=service_db_url, results_url=results_url, api_url=tutormax_api)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in endpoints.airflow_env().items():
            patch.setenv(name, value)
        patch.setenv("TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE", tmp_path_factory.mktemp("artifacts").as_uri())
        # The invalidation probe books a session: only through the service the tests started.
        patch.setenv("TUTORMAX_OPS__HEALTH__INVALIDATION_PROBE__ENABLED", str(not stack.endpoints.api_url))
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{DAG_ID}.py"))
        assert bag.import_errors == {}
        dag = bag.get_dag(DAG_ID)
        for task in dag.tasks:
            task.retry_delay = timedelta(seconds=0)
        sent_before = len(read_emails(maildir))
        runs = []
        for number, p95 in enumerate(P95_SERIES):
            _record_load_test(results_url, number, p95)
            # Hours 2 and 4 are REST-triggered runs: no logical date.
            runs.append(
                _run(dag, FIRST_HOUR + timedelta(hours=number), {"notify": True}, rest=number % 2 == 1)
            )
        # The rerun reads the live sources again: give it hour 1's figure, so its result is hour 1's.
        _record_load_test(results_url, len(P95_SERIES), P95_SERIES[0])
        rerun = _run(dag, FIRST_HOUR, {"notify": True})
        yield Series(
            results_url, runs, rerun, read_emails(maildir)[sent_before:], bool(stack.endpoints.api_url)
        )


def _query(url: str, statement: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def test_every_run_succeeds(series: Series) -> None:
    for dag_run in [*series.runs, series.rerun]:
        assert str(dag_run.state) == "success", task_states(dag_run)


def test_the_p95_alert_raises_holds_and_resolves(series: Series) -> None:
    found = _query(
        series.results_url,
        "SELECT hour, transition, state, value FROM tutormax_ops.health_alerts WHERE alert = 'api_p95_ms' ORDER BY hour",
    )
    assert [row[1] for row in found] == EXPECTED
    assert [row[3] for row in found] == P95_SERIES
    assert [row[0] for row in found] == [FIRST_HOUR + timedelta(hours=n) for n in range(4)]


def test_emails_only_on_raise_and_resolve(series: Series) -> None:
    subjects = [message["subject"] for message in series.emails if "api_p95_ms" in message["subject"]]
    assert len(subjects) == 2, subjects
    assert "raised: api_p95_ms" in subjects[0] and "08:00" in subjects[0]
    assert "resolved: api_p95_ms" in subjects[1] and "11:00" in subjects[1]
    body = next(
        part.get_content()
        for part in series.emails[[m["subject"] for m in series.emails].index(subjects[0])].walk()
        if part.get_content_type() == "text/html"
    )
    assert "Check the slow queries" in body and "alembic current" in body
    assert "scripted_0" in body  # the figure's source: the load test it came from


def test_the_raised_alert_carries_a_runbook_with_live_evidence(
    series: Series, statements_preloaded: bool
) -> None:
    (runbook,) = _query(
        series.results_url,
        "SELECT runbook FROM tutormax_ops.health_alerts WHERE alert = 'api_p95_ms' AND hour = %s",
        FIRST_HOUR,
    )[0]
    steps = {item["step"]: item["evidence"] for item in runbook}
    alembic = steps["Verify the indexes are applied: alembic current against head"]
    assert "project head" in alembic and "database at" in alembic
    slow = steps["Check the slow queries"]
    if statements_preloaded:
        # At least the fixture's statement is over the level; slower ones of other tests may rank above it.
        assert " ms × " in slow, slow
    else:
        assert slow.startswith("pg_stat_statements unavailable"), slow


def test_a_rerun_of_the_same_hour_replaces_its_snapshot(series: Series) -> None:
    hours = _query(series.results_url, "SELECT hour, run_id FROM tutormax_ops.health_snapshots ORDER BY hour")
    assert [row[0] for row in hours] == [FIRST_HOUR + timedelta(hours=n) for n in range(4)]
    assert hours[0][1] == series.rerun.run_id  # the rerun's row replaced the first one
    counts = _query(
        series.results_url, "SELECT count(*), count(DISTINCT (hour, alert)) FROM tutormax_ops.health_alerts"
    )
    assert counts[0][0] == counts[0][1] == 4 * 5


def test_snapshot_names_its_sources(series: Series) -> None:
    (sources, summary) = _query(
        series.results_url,
        "SELECT sources, summary FROM tutormax_ops.health_snapshots WHERE hour = %s",
        FIRST_HOUR + timedelta(hours=1),
    )[0]
    assert sources["api_p95_ms"].startswith("load test scripted_1")
    assert sources["slow_query_rate"].startswith("pg_stat_statements")
    assert "Redis" in sources["cache_hit_rate"] or "service" in sources["cache_hit_rate"]
    assert sources["connections_pct"].startswith("pg_stat_activity")
    assert sources["service_summary"]["ok"] is True
    assert set(summary) == {"timestamp", "health_score", "cache", "queries", "recommendations"}
    assert sources["metrics"]["api_p95_ms"] == 480.0


def test_the_checklist_is_checked_once_a_day(series: Series) -> None:
    found = _query(
        series.results_url,
        "SELECT item, status, evidence FROM tutormax_ops.health_checklist ORDER BY position",
    )
    assert len(found) == 12  # the seed's 12 items; the first run checked, the later runs found it fresh
    statuses = {item: status for item, status, _ in found}
    assert statuses["baseline_loadtest"] == "fail"  # only smoke runs were recorded
    assert statuses["backup"] == "fail"  # the artifacts store has no migrations folder
    assert statuses["alert_recipients"] == "fail"  # the shipped placeholder address
    assert statuses["migrations"] == "pass"  # the service database was migrated to head
    assert statuses["rate_limiting"] == "cannot tell"  # the burst is opt-in
    assert statuses["rollback_procedure"] == "cannot tell"  # no rehearsal; the evidence says what decides it
    if not series.user_api:
        assert statuses["cache_invalidation"] == "pass"  # a booking changed the cached history
    assert all(evidence for _, _, evidence in found)


def test_each_run_has_one_registry_row_naming_what_fires(series: Series) -> None:
    found = _query(
        series.results_url,
        "SELECT run_id, status, headline FROM tutormax_ops.runs WHERE kind = 'health' ORDER BY started_at",
    )
    run_ids = {dag_run.run_id for dag_run in [*series.runs, series.rerun]}
    assert sorted(row[0] for row in found) == sorted(run_ids)  # a rerun of a run id overwrote its row
    by_run = {row[0]: row[1:] for row in found}
    raised = by_run[series.runs[1].run_id]  # hour 2 holds the p95 alert
    assert raised[0] == "alerting" and "api_p95_ms" in raised[1]
