"""The self-started services and the connections built for them."""

from __future__ import annotations

import json

import psycopg
import pytest
import redis

from tutormax_ops.devstack import stack as devstack


def test_stack_serves_pg18_with_pg_stat_statements_and_redis(stack: devstack.Stack) -> None:
    if stack.pg_admin_url is None:
        pytest.skip("TUTORMAX_DB_URL names an external server")
    with psycopg.connect(stack.admin_url) as conn:
        version, preload = conn.execute(
            "SELECT current_setting('server_version_num')::int, current_setting('shared_preload_libraries')"
        ).fetchone()
    assert version >= 180000
    assert "pg_stat_statements" in preload
    assert redis.Redis.from_url(stack.endpoints.redis_url).ping() is True


def test_connections_carry_every_field_of_a_url() -> None:
    endpoints = devstack.Endpoints(
        db_url="postgresql://app%40prod:p%3Ass@db.internal:6543/tutormax",
        results_url="postgresql://hist:pw@results:5432/history",
        redis_url="rediss://:rpw@cache:6380/3",
        smtp_url="smtp://mailer:mpw@mail:587?tls=true&from=ops@tutormax.example",
        api_url="https://api.tutormax.example:8443",
    )
    env = {name: json.loads(value) for name, value in endpoints.airflow_env().items()}
    assert env["AIRFLOW_CONN_TUTORMAX_DB"] == {
        "conn_type": "postgres",
        "host": "db.internal",
        "port": 6543,
        "login": "app@prod",
        "password": "p:ss",
        "schema": "tutormax",
    }
    assert env["AIRFLOW_CONN_TUTORMAX_RESULTS"]["schema"] == "history"
    assert env["AIRFLOW_CONN_TUTORMAX_REDIS"]["extra"] == {"db": 3, "ssl": True}
    assert env["AIRFLOW_CONN_TUTORMAX_API"] == {
        "conn_type": "http",
        "host": "api.tutormax.example",
        "port": 8443,
        "schema": "https",
    }
    smtp = env["AIRFLOW_CONN_SMTP_DEFAULT"]
    assert (smtp["port"], smtp["login"], smtp["extra"]["disable_tls"], smtp["extra"]["from_email"]) == (
        587,
        "mailer",
        False,
        "ops@tutormax.example",
    )


def test_external_servers_replace_the_self_started_ones(monkeypatch, tmp_path, stack: devstack.Stack) -> None:
    """With every TUTORMAX_*_URL set, start_stack starts nothing and uses those servers."""
    monkeypatch.setenv("TUTORMAX_DB_URL", stack.endpoints.db_url)
    monkeypatch.setenv("TUTORMAX_REDIS_URL", stack.endpoints.redis_url)
    monkeypatch.setenv("TUTORMAX_SMTP_URL", stack.endpoints.smtp_url)
    monkeypatch.setenv("TUTORMAX_API_URL", "http://127.0.0.1:9")
    external = devstack.start_stack(tmp_path / "external")
    try:
        assert external.processes == []
        assert external.endpoints.db_url == external.endpoints.results_url == stack.endpoints.db_url
        assert external.start_service() == "http://127.0.0.1:9"
    finally:
        external.stop()


def test_stopping_a_service_ends_its_process(tmp_path) -> None:
    port = devstack.free_port()
    sink = devstack.start_smtp_sink(tmp_path / "mail", port, log_dir=tmp_path / "logs")
    assert devstack.port_accepts(port)
    sink.stop()
    assert sink.process.poll() is not None
    assert not devstack.port_accepts(port)
