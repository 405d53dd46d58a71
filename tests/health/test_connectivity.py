"""health.connectivity: each check against the real test servers, and a dead one reported, not raised."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from types import SimpleNamespace

import psycopg
import pytest

from tutormax_ops.core.conn_ids import REDIS_CONN_ID
from tutormax_ops.health.connectivity import CHECKS, ConnectivityError, run_check, summarize_checks


def _dag_run(run_id: str) -> SimpleNamespace:
    """The fields of the task context's dag_run that the summary records."""
    return SimpleNamespace(
        dag_id="tutormax_smoke_connectivity", run_id=run_id, run_type="manual", start_date=datetime.now(UTC)
    )


def _registered(url: str, run_id: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT kind, status, headline FROM tutormax_ops.runs WHERE run_id = %s", (run_id,)
        ).fetchall()


def test_every_connection_passes_its_check(airflow_connections) -> None:
    results = {conn_id: run_check(conn_id) for conn_id in CHECKS}
    assert {conn_id: result.ok for conn_id, result in results.items()} == dict.fromkeys(CHECKS, True), results
    run = _dag_run("manual__all_answer")
    assert summarize_checks([asdict(result) for result in results.values()], run) == {
        "checked": len(CHECKS),
        "failed": 0,
    }
    assert _registered(airflow_connections.results_url, run.run_id) == [
        ("connectivity", "success", f"{len(CHECKS)} of {len(CHECKS)} connections answer")
    ]


def test_a_dead_connection_is_a_failed_result_without_its_secret(airflow_connections, monkeypatch) -> None:
    secret = "s3cr3t-p4ss"
    monkeypatch.setenv(
        "AIRFLOW_CONN_TUTORMAX_REDIS",
        json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": 9, "password": secret}),
    )
    result = run_check(REDIS_CONN_ID)
    assert (result.conn_id, result.check, result.ok) == (REDIS_CONN_ID, "PING", False)
    assert secret not in result.detail
    run = _dag_run("manual__redis_dead")
    with pytest.raises(ConnectivityError, match=REDIS_CONN_ID):
        summarize_checks([asdict(result)], run)
    ((kind, status, headline),) = _registered(airflow_connections.results_url, run.run_id)
    assert (kind, status) == ("connectivity", "failed") and REDIS_CONN_ID in headline
    assert secret not in headline


def test_an_unknown_connection_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"conn_id: no check for 'nope'"):
        run_check("nope")
