"""End to end: tutormax_cache_clear with dag.test() against the test Redis."""

from __future__ import annotations

import json

import pytest
import redis

from support import read_emails
from tutormax_ops.cache.keys import clear

DAG_ID = "tutormax_cache_clear"


@pytest.fixture
def cache(airflow_connections) -> redis.Redis:
    client = redis.Redis.from_url(airflow_connections.redis_url)
    yield client
    clear(client, "tutormax:cache:test_clear:*", dry_run=False, scan_count=1000, unlink_batch=500)
    clear(client, "tutormax:other_test_clear:*", dry_run=False, scan_count=1000, unlink_batch=500)
    client.close()


def _fill(client: redis.Redis, template: str, count: int) -> None:
    with client.pipeline(transaction=False) as pipe:
        for number in range(count):
            pipe.set(template.format(number), b"x", ex=600)
        pipe.execute()


def xcom(dag_run, task_id: str):
    """The return value a task of a finished run pushed."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id)
        ).first()
        return XComModel.deserialize_value(row)


def _count(client: redis.Redis, pattern: str) -> int:
    return sum(1 for _ in client.scan_iter(match=pattern, count=1000))


def test_a_bare_star_is_refused_by_the_form(run_dag, airflow_db) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        run_dag(DAG_ID, run_conf={"pattern": "*", "dry_run": False})


def test_a_pattern_outside_the_prefix_is_refused_before_a_run_exists(run_dag, airflow_db) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="param pattern"):
        run_dag(DAG_ID, run_conf={"pattern": "tutormax:other_test_clear:*", "dry_run": False})


def test_a_pattern_outside_the_run_time_prefix_fails_at_once_before_touching_redis(
    cache: redis.Redis, run_dag, maildir, monkeypatch
) -> None:
    """The Airflow Variable, read by tasks only, narrows the prefix after the form accepted the
    pattern: the task refuses it naming the field, without a retry, with one email."""
    narrowed = {"cache_clear": {"key_prefix": "tutormax:cache:only_this:"}}
    monkeypatch.setenv("AIRFLOW_VAR_TUTORMAX_OPS_CONFIG", json.dumps(narrowed))
    _fill(cache, "tutormax:cache:test_clear:{}", 50)
    before = len(read_emails(maildir))
    dag_run = run_dag(DAG_ID, run_conf={"pattern": "tutormax:cache:test_clear:*", "dry_run": False})
    (clear_ti,) = dag_run.get_task_instances()
    assert (str(clear_ti.state), clear_ti.try_number) == ("failed", 1)
    assert _count(cache, "tutormax:cache:test_clear:*") == 50
    about_run = [m for m in read_emails(maildir)[before:] if dag_run.run_id in m["subject"]]
    assert len(about_run) == 1
    body = about_run[0].get_body(("html",)).get_content()
    assert "pattern:" in body and "tutormax:cache:only_this:" in body and "(try 1)" in body


def test_dry_run_counts_and_a_real_run_removes_only_the_matching_keys(
    cache: redis.Redis, run_dag, capfd
) -> None:
    _fill(cache, "tutormax:cache:test_clear:a:{}", 300)
    _fill(cache, "tutormax:cache:test_clear:b:{}", 40)
    dry = run_dag(DAG_ID, run_conf={"pattern": "tutormax:cache:test_clear:a:*"})
    assert str(dry.state) == "success"
    assert _count(cache, "tutormax:cache:test_clear:a:*") == 300
    real = run_dag(DAG_ID, run_conf={"pattern": "tutormax:cache:test_clear:a:*", "dry_run": False})
    assert str(real.state) == "success"
    removed = xcom(real, "clear")
    assert removed["removed"] == 300 and removed["dry_run"] is False
    assert _count(cache, "tutormax:cache:test_clear:a:*") == 0
    assert _count(cache, "tutormax:cache:test_clear:b:*") == 40
    logged = capfd.readouterr()
    errors = [line for line in (logged.out + logged.err).splitlines() if "[error" in line]
    assert errors == [], errors[:5]  # two successful runs: no error line in their logs
