from __future__ import annotations

import json
from types import SimpleNamespace

import psycopg
import pytest

from support import read_emails
from tutormax_ops.core.db import connect
from tutormax_ops.core.notify import notify_task_failure, redact, send_email, smtp_handshake
from tutormax_ops.core.processes import free_port
from tutormax_ops.devstack import stack as devstack


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://tutormax:hunter2@db:5432/x failed", "postgresql://***@db:5432/x failed"),
        ("redis://:hunter2@cache:6379/0", "redis://***@cache:6379/0"),
        ("smtp://user@mail:25", "smtp://***@mail:25"),
        ("no url here", "no url here"),
        ("host=db password=hunter2 user=ops", "host=db password=*** user=ops"),
        ('{"password": "hunter2"}', '{"password": "***"}'),
    ],
)
def test_redact_removes_url_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_masks_a_known_secret_that_no_pattern_shows() -> None:
    """A third party's message may quote a password bare (no URL, no key): once Airflow's masker
    knows it, as it does every password of a connection a task fetched, redact removes it too."""
    from airflow.sdk.log import mask_secret

    from tutormax_ops.devstack.passwords import new_password

    secret = new_password()
    text = f"535 authentication failed for {secret} (bad credentials)"
    assert secret in redact(text)  # no pattern matches it: only the masker can know
    mask_secret(secret)
    assert redact(text) == "535 authentication failed for *** (bad credentials)"


def test_email_parts_have_their_real_types(airflow_connections, maildir, tmp_path) -> None:
    """The stored .eml, parsed with the `email` package: the chart inline as image/png with its
    Content-ID, the files attached with their own types."""
    files = {
        "report.html": b"<html><body>{{ not a template }}</body></html>",
        "findings.csv": b"table,dead_tuples\nsessions,12\n",
        "summary.json": b'{"ok": true}',
        "chart.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    before = len(read_emails(maildir))
    send_email(
        subject="weekly report",
        html='<p>see attached</p><img src="cid:chart.png">',
        to=["dba@example.org"],
        attachments=[tmp_path / name for name in files],
    )
    message = read_emails(maildir)[before]
    assert message["subject"] == "[TutorMax Ops] weekly report"
    assert message["to"] == "dba@example.org"
    assert message.get_content_type() == "multipart/mixed"
    parts = {part.get_filename(): part for part in message.walk() if part.get_filename()}
    types = {name: (part.get_content_type(), part.get_content_disposition()) for name, part in parts.items()}
    assert types == {
        "report.html": ("text/html", "attachment"),
        "findings.csv": ("text/csv", "attachment"),
        "summary.json": ("application/json", "attachment"),
        "chart.png": ("image/png", "inline"),
    }
    assert parts["chart.png"]["Content-ID"] == "<chart.png>"
    assert parts["chart.png"].get_payload(decode=True) == files["chart.png"]
    assert parts["findings.csv"].get_payload(decode=True) == files["findings.csv"]
    related = next(part for part in message.walk() if part.get_content_type() == "multipart/related")
    assert [part.get_content_type() for part in related.iter_parts()] == ["text/html", "image/png"]


def test_an_email_over_the_limit_leaves_its_attachments_out_and_keeps_its_charts(
    airflow_connections, maildir, tmp_path
) -> None:
    """A 1 MB attachment (Locust's report is about that) would make the email too heavy: it is left
    out and named; the inline chart stays. Random bytes, so no transfer encoding can shrink them."""
    import os

    from tutormax_ops.core.notify import EMAIL_MAX_BYTES

    (tmp_path / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(20_000))
    (tmp_path / "locust.html").write_bytes(os.urandom(EMAIL_MAX_BYTES * 3))
    (tmp_path / "small.csv").write_bytes(b"a,b\n1,2\n")
    before = len(read_emails(maildir))
    send_email(
        subject="heavy",
        html='<p>run</p><img src="cid:chart.png">',
        to=["dba@example.org"],
        attachments=[tmp_path / "chart.png", tmp_path / "locust.html", tmp_path / "small.csv"],
    )
    message = read_emails(maildir)[before]
    assert len(message.as_bytes()) <= EMAIL_MAX_BYTES
    assert [part.get_filename() for part in message.walk() if part.get_filename()] == ["chart.png"]
    html = next(part.get_content() for part in message.walk() if part.get_content_type() == "text/html")
    assert f"locust.html ({EMAIL_MAX_BYTES * 3:,} B)" in html and "small.csv" in html


CLOSED_SMTP = (
    '{"conn_type": "smtp", "host": "127.0.0.1", "port": %d, "login": "mailer", "password": "hunter2-smtp",'
    ' "extra": {"disable_ssl": true, "disable_tls": true, "retry_limit": 0, "timeout": 2}}'
)


def test_handshake_fails_with_the_connection_named(airflow_connections, monkeypatch) -> None:
    assert "success" in smtp_handshake().lower()
    port = free_port()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", CLOSED_SMTP % port)
    with pytest.raises(ConnectionError) as raised:
        smtp_handshake()
    message = str(raised.value)
    assert f"'smtp_default' at 127.0.0.1:{port}" in message and "Check:" in message
    assert "hunter2" not in message


def test_sending_to_a_dead_server_names_the_connection(airflow_connections, monkeypatch) -> None:
    port = free_port()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", CLOSED_SMTP % port)
    with pytest.raises(ConnectionError) as raised:
        send_email(subject="x", html="<p>x</p>", to=["dba@example.org"])
    message = str(raised.value)
    assert f"SMTP connection 'smtp_default' at 127.0.0.1:{port}: ConnectionRefusedError" in message
    assert "Check:" in message and "hunter2" not in message


def test_an_unreachable_database_names_the_connection(monkeypatch) -> None:
    port = free_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_TUTORMAX_DB",
        json.dumps(devstack.postgres_connection(f"postgresql://ops:hunter2-pg@127.0.0.1:{port}/x")),
    )
    with pytest.raises(psycopg.OperationalError) as raised:
        connect("tutormax_db", statement_timeout_ms=1000, lock_timeout_ms=1000)
    message = str(raised.value)
    assert f"PostgreSQL connection 'tutormax_db' at 127.0.0.1:{port}" in message and "pg_isready" in message
    assert "hunter2" not in message


def test_the_failure_email_redacts_the_exception(airflow_connections, maildir) -> None:
    """A third party's exception text with credentials in it reaches the email redacted."""
    ti = SimpleNamespace(dag_id="some_dag", task_id="some_task", try_number=1, log_url="http://localhost/log")
    error = RuntimeError("connect to postgresql://ops:hunter2-raw@db:5432/x failed (password=hunter2-kv)")
    before = len(read_emails(maildir))
    notify_task_failure({"ti": ti, "run_id": "manual__1", "exception": error})
    message = read_emails(maildir)[before]
    body = message.get_body(("html",)).get_content()
    assert "some_dag" in message["subject"] and "RuntimeError" in body
    assert "postgresql://***@db:5432/x" in body and "password=***" in body
    assert "hunter2" not in message.as_string()
