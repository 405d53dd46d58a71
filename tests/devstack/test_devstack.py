"""The self-started services and the connections built for them."""

from __future__ import annotations

import json
import os
import shutil
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
import redis
from psycopg import sql

from tutormax_ops.core.paths import STATE_DIR
from tutormax_ops.devstack import postgres as devstack_postgres
from tutormax_ops.devstack import stack as devstack
from tutormax_ops.devstack.airflow_server import pool_settings


@pytest.mark.server_variant
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


def user_tables(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT schemaname, relname, n_live_tup FROM pg_stat_user_tables ORDER BY 1, 2"
        ).fetchall()


def test_external_servers_replace_the_self_started_ones(
    monkeypatch, tmp_path, stack: devstack.Stack, fresh_database
) -> None:
    """With every TUTORMAX_*_URL set, start_stack starts nothing, and on the user's PostgreSQL server
    it works in a scratch database it creates: the user's own database is only connected to."""
    users_db = fresh_database("users_own")
    with psycopg.connect(users_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE precious (id int)")
        conn.execute("INSERT INTO precious VALUES (1), (2)")
    before = user_tables(users_db)
    monkeypatch.setenv("TUTORMAX_DB_URL", users_db)
    monkeypatch.setenv("TUTORMAX_REDIS_URL", stack.endpoints.redis_url)
    monkeypatch.setenv("TUTORMAX_SMTP_URL", stack.endpoints.smtp_url)
    monkeypatch.setenv("TUTORMAX_API_URL", "http://127.0.0.1:9")
    external = devstack.start_stack(tmp_path / "external", database="scratch_ext", drop_database_on_stop=True)
    try:
        assert external.processes == []
        assert external.endpoints.db_url == external.endpoints.results_url
        assert external.endpoints.db_url == devstack.with_database(users_db, "scratch_ext")
        devstack.migrate_service_schema(external.endpoints.db_url)
        assert external.start_service() == "http://127.0.0.1:9"
    finally:
        external.stop()
    assert user_tables(users_db) == before
    with psycopg.connect(stack.admin_url) as conn:
        assert (
            conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'scratch_ext'").fetchone()[0] == 0
        )


def test_a_role_without_createdb_is_refused_clearly(monkeypatch, tmp_path, stack: devstack.Stack) -> None:
    role, password = f"nocreatedb_{os.getpid()}", "pw-" + os.urandom(4).hex()
    with psycopg.connect(stack.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    try:
        parts = urlsplit(stack.admin_url)
        url = parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}").geturl()
        monkeypatch.setenv("TUTORMAX_DB_URL", url)
        with pytest.raises(devstack.ServiceStartError, match="CREATEDB") as raised:
            devstack.start_stack(tmp_path / "refused", database="never_made")
        assert password not in str(raised.value)
    finally:
        with psycopg.connect(stack.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_no_permission_change_outside_the_checkout(tmp_path) -> None:
    # Under the real checkout: /tmp's pytest folder is itself closed to others.
    closed = STATE_DIR / "test" / str(os.getpid()) / f"perm-{tmp_path.name}" / "home"
    (closed / "checkout").mkdir(parents=True)
    closed.chmod(0o700)
    try:
        check_grants(closed)
    finally:
        shutil.rmtree(closed.parent)


def check_grants(closed) -> None:
    with pytest.raises(devstack.ServiceStartError, match="outside the checkout"):
        devstack_postgres._grant_traverse(closed / "checkout", within=closed / "checkout")
    assert closed.stat().st_mode & 0o777 == 0o700
    inside = closed / "checkout" / "data"
    inside.mkdir(mode=0o700)
    closed.chmod(0o701)  # the user opened it themselves: now the folders inside may be opened
    devstack_postgres._grant_traverse(inside, within=closed / "checkout")
    assert inside.stat().st_mode & 0o001 and closed.stat().st_mode & 0o777 == 0o701


def test_standalone_airflow_is_sized_to_the_machine() -> None:
    assert pool_settings(2) == {
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    }
    assert pool_settings(16)["AIRFLOW__CORE__PARALLELISM"] == "32"


def test_stopping_a_service_ends_its_process(tmp_path) -> None:
    port = devstack.free_port()
    sink = devstack.start_smtp_sink(tmp_path / "mail", port, log_dir=tmp_path / "logs")
    assert devstack.port_accepts(port)
    sink.stop()
    assert sink.managed.process.poll() is not None
    assert not devstack.port_accepts(port)


@pytest.mark.parametrize("stopped_by", ["timeout", "interrupt"])
def test_a_server_that_does_not_come_up_is_stopped_before_the_error(tmp_path, stopped_by: str) -> None:
    """Every self-started server is awaited through `wait_ready`: a server that never answers (a
    service whose database is down), or a wait cut short by Ctrl-C or SIGTERM, leaves no process."""
    import sys

    from tutormax_ops.core.processes import spawn
    from tutormax_ops.devstack.waiting import wait_ready

    never = spawn(
        "never-ready", [sys.executable, "-c", "import time; time.sleep(600)"], log_path=tmp_path / "n.log"
    )

    def check() -> bool:
        if stopped_by == "interrupt":
            raise KeyboardInterrupt("stopped by SIGTERM")
        return False

    expected = KeyboardInterrupt if stopped_by == "interrupt" else devstack.ServiceStartError
    with pytest.raises(expected, match="stopped by SIGTERM" if stopped_by == "interrupt" else "within 1 s"):
        wait_ready(never, check, timeout_s=1, what="never-ready")
    assert never.process.poll() is not None


@pytest.mark.server_variant
def test_every_self_started_server_wants_its_password(stack: devstack.Stack) -> None:
    """PostgreSQL, Redis and the SMTP sink refuse a client without the password; each password has
    URL-unsafe characters (encoded in the URLs), is unique to its server, and is on no command line."""
    import smtplib
    import stat

    import psutil

    from tutormax_ops.devstack.passwords import forms

    if stack.pg_admin_url is None or stack.endpoints.maildir is None:
        pytest.skip("TUTORMAX_DB_URL names an external server")
    urls = {"postgres": stack.admin_url, "redis": stack.endpoints.redis_url, "smtp": stack.endpoints.smtp_url}
    passwords = {name: unquote(urlsplit(url).password or "") for name, url in urls.items()}
    assert len(set(passwords.values())) == 3
    for password in passwords.values():
        assert set("/@%+:") <= set(password)
    db = urlsplit(stack.admin_url)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=db.hostname, port=db.port, user="postgres", dbname="postgres", connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(stack.admin_url.replace(db.password, db.password + "x"), connect_timeout=5)
    cache = urlsplit(stack.endpoints.redis_url)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=cache.hostname, port=cache.port).ping()
    assert redis.Redis.from_url(stack.endpoints.redis_url).ping() is True
    mail = urlsplit(stack.endpoints.smtp_url)
    with smtplib.SMTP(mail.hostname, mail.port, timeout=10) as client:
        client.ehlo()
        refused, _ = client.mail("ops@localhost")
        assert refused == 530  # authentication required
    with (
        smtplib.SMTP(mail.hostname, mail.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPAuthenticationError),
    ):
        client.login(devstack.SMTP_SINK_LOGIN, passwords["smtp"] + "x")
    with smtplib.SMTP(mail.hostname, mail.port, timeout=10) as client:
        client.login(devstack.SMTP_SINK_LOGIN, passwords["smtp"])
    for managed in stack.processes:
        for process in [psutil.Process(managed.pid), *psutil.Process(managed.pid).children(recursive=True)]:
            command_line = " ".join(process.cmdline())
            assert not any(form in command_line for secret in passwords.values() for form in forms(secret))
    for secret_file in [*stack.root.rglob("*.password"), *stack.root.rglob("redis.conf")]:
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file
