"""End to end, the hourly health DAG's failure paths with `dag.test()` against real servers: a live
source that cannot be read (Redis, the service's database, the service) is recorded with the
snapshot and holds its alert; the results database down fails the run after one retry and emails
once; a wrong password fails at once; the checklist is checked again only when it is stale or the
form asks for it.

Each test owns its results database, so none reads another's history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from support import read_emails, task_states
from tutormax_ops.core.storage import ensure_results_schema
from tutormax_ops.devstack import stack as devstack

DAG_ID = "tutormax_perf_health"
SCHEMA = "tutormax_ops"


@dataclass(frozen=True)
class Pointed:
    results_url: str
    endpoints: devstack.Endpoints


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@{devstack.LOOPBACK}:{port}"))


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}:{parts.port}"))


@pytest.fixture
def point(
    served_endpoints: devstack.Endpoints,
    fresh_database: Callable[[str], str],
    airflow_db: dict,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
) -> Callable[..., Pointed]:
    """`point(**overrides)`: the connections at the test servers with a results database of this
    test's own, `overrides` (db_url, redis_url, api_url, results_url) replacing any of them."""

    def apply(**overrides: str) -> Pointed:
        results_url = fresh_database("perf_health_failures")
        with psycopg.connect(results_url, autocommit=True) as conn:
            ensure_results_schema(conn, SCHEMA)
        endpoints = replace(served_endpoints, **{"results_url": results_url, **overrides})
        for name, value in endpoints.airflow_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE", tmp_path.as_uri())
        # The invalidation probe books a session; these tests are about the sources, not the probe.
        monkeypatch.setenv("TUTORMAX_OPS__HEALTH__INVALIDATION_PROBE__ENABLED", "false")
        return Pointed(results_url, endpoints)

    return apply


def _query(url: str, statement: str, *params: object) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def _tries(dag_run: object) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances()}


def _new_emails(maildir, before: int) -> list:
    return [message for message in read_emails(maildir)[before:] if DAG_ID in message["subject"]]


def test_unreadable_live_sources_are_recorded_with_the_snapshot_and_hold_their_alerts(
    point, run_dag, maildir
) -> None:
    closed = devstack.free_port()  # nobody listens there
    pointed = point(
        redis_url=f"redis://:nopass@{devstack.LOOPBACK}:{closed}/0",
        db_url=f"postgresql://tutormax:nopass@{devstack.LOOPBACK}:{closed}/tutormax",
        api_url=f"http://{devstack.LOOPBACK}:{closed}",
    )
    before = len(read_emails(maildir))
    dag_run = run_dag(DAG_ID, run_conf={"notify": True})
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert {task: tries for task, (_, tries) in _tries(dag_run).items()} == dict.fromkeys(
        ("snapshot", "evaluate", "notify", "checklist"), 1
    )
    ((sources,),) = _query(pointed.results_url, "SELECT sources FROM tutormax_ops.health_snapshots")
    assert "unreachable" in sources["cache_hit_rate"].lower(), sources["cache_hit_rate"]
    assert "tutormax_db unreachable" in sources["slow_query_rate"], sources["slow_query_rate"]
    assert sources["service_summary"]["ok"] is False and sources["service_summary"]["error"]
    assert sources["metrics"]["cache_hit_rate"] is None and sources["metrics"]["slow_query_rate"] is None
    # An unmeasured figure neither raises nor resolves its alert, so nobody is emailed about it.
    transitions = dict(
        _query(pointed.results_url, "SELECT alert, transition FROM tutormax_ops.health_alerts")
    )
    assert transitions.get("cache_hit_rate") not in ("raise", "resolve"), transitions
    assert transitions.get("slow_query_rate") not in ("raise", "resolve"), transitions
    assert not [m for m in _new_emails(maildir, before) if "cache_hit_rate" in m["subject"]]
    assert "nopass" not in str(sources)


def test_the_results_database_down_fails_after_one_retry_and_emails_once(point, run_dag, maildir) -> None:
    probe = point()
    down = _with_port(probe.results_url, devstack.free_port())
    point(results_url=down)
    before = len(read_emails(maildir))
    dag_run = run_dag(DAG_ID, run_conf={"notify": True})
    assert str(dag_run.state) == "failed", task_states(dag_run)
    tries = _tries(dag_run)
    assert tries["snapshot"] == ("failed", 2), tries  # a refused connection may heal: retried once
    assert tries["evaluate"][0] == "upstream_failed" and tries["checklist"][0] == "upstream_failed"
    (message,) = _new_emails(maildir, before)
    assert "snapshot" in message["subject"]
    body = message.get_body(("html",)).get_content()
    assert "tutormax_results" in body and "(try 2)" in body, body
    assert urlsplit(probe.results_url).password not in body


def test_a_wrong_results_password_fails_at_once_naming_the_cause(point, run_dag, maildir) -> None:
    probe = point()
    wrong = "not-the-password"
    point(results_url=_with_password(probe.results_url, wrong))
    before = len(read_emails(maildir))
    dag_run = run_dag(DAG_ID, run_conf={"notify": True})
    assert str(dag_run.state) == "failed", task_states(dag_run)
    tries = _tries(dag_run)
    assert tries["snapshot"] == ("failed", 1), tries  # a retry cannot heal a password
    (message,) = _new_emails(maildir, before)
    body = message.get_body(("html",)).get_content()
    assert "password authentication failed" in body and "tutormax_results" in body, body
    assert wrong not in body


def test_the_checklist_is_checked_again_only_when_asked_or_stale(point, run_dag) -> None:
    pointed = point()

    def checked_at() -> set:
        return {
            row[0]
            for row in _query(pointed.results_url, "SELECT checked_at FROM tutormax_ops.health_checklist")
        }

    first = run_dag(DAG_ID, run_conf={"notify": False})
    assert str(first.state) == "success", task_states(first)
    (initial,) = checked_at()
    again = run_dag(DAG_ID, run_conf={"notify": False})
    assert str(again.state) == "success", task_states(again)
    assert checked_at() == {initial}  # fresh (checklist_interval_hours): not checked again
    forced = run_dag(DAG_ID, run_conf={"notify": False, "refresh_checklist": True})
    assert str(forced.state) == "success", task_states(forced)
    (refreshed,) = checked_at()
    assert refreshed > initial
