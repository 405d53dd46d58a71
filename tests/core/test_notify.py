from __future__ import annotations

import pytest

from support import read_emails
from tutormax_ops.core.notify import redact, send_email, smtp_handshake


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://tutormax:hunter2@db:5432/x failed", "postgresql://***@db:5432/x failed"),
        ("redis://:hunter2@cache:6379/0", "redis://***@cache:6379/0"),
        ("smtp://user@mail:25", "smtp://***@mail:25"),
        ("no url here", "no url here"),
    ],
)
def test_redact_removes_url_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_email_with_attachment_lands_in_the_sink(airflow_connections, maildir, tmp_path) -> None:
    report = tmp_path / "report.html"
    report.write_text("<html><body>{{ not a template }}</body></html>")
    before = len(read_emails(maildir))
    send_email(
        subject="weekly report", html="<p>see attached</p>", to=["dba@example.org"], attachments=[report]
    )
    message = read_emails(maildir)[before]
    assert message["subject"] == "[TutorMax Ops] weekly report"
    assert message["to"] == "dba@example.org"
    attachments = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert attachments == {"report.html": b"<html><body>{{ not a template }}</body></html>"}


def test_handshake_fails_with_the_connection_named(airflow_connections, monkeypatch) -> None:
    assert "success" in smtp_handshake().lower()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        '{"conn_type": "smtp", "host": "127.0.0.1", "port": 9, "extra": {"disable_ssl": true, "disable_tls": true, "retry_limit": 0, "timeout": 2}}',
    )
    with pytest.raises(ConnectionError, match="smtp_default"):
        smtp_handshake()
