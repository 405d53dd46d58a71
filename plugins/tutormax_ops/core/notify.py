"""Email through the smtp provider's SmtpHook (connection `smtp_default`), and the failure
notifier that every task carries."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tutormax_ops.core.config import load_settings
from tutormax_ops.core.conn_ids import SMTP_CONN_ID

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """Remove user:password from any URL in `text`, so no secret reaches a log, report or email."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)


def send_email(
    *,
    subject: str,
    html: str,
    to: Sequence[str] | None = None,
    attachments: Sequence[Path] = (),
    conn_id: str = SMTP_CONN_ID,
) -> None:
    """Send an HTML email. Attachments get Content-ID `<file name>`, so `cid:chart.png` shows inline."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    settings = load_settings()
    recipients = list(to or settings.notify.recipients)
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(
            to=recipients,
            subject=f"{settings.notify.subject_prefix} {subject}",
            html_content=html,
            files=[str(path) for path in attachments],
        )


def smtp_handshake(conn_id: str = SMTP_CONN_ID) -> str:
    """Connect, EHLO (and STARTTLS/login if configured), NOOP; raise with the server's answer if any fails."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            ok, message = hook.test_connection()
    except Exception as error:  # connecting happens in __enter__, before test_connection can catch it
        ok, message = False, f"{type(error).__name__}: {error}"
    if not ok:
        raise ConnectionError(f"SMTP connection {conn_id!r}: {redact(message)}")
    return message


def notify_task_failure(context: Mapping[str, Any]) -> None:
    """`on_failure_callback` for every task: emails the failed task, its run and its log link.

    A plain function rather than an SmtpNotifier instance, so DAG files do not import the smtp
    provider while being parsed.
    """
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    settings = load_settings()
    SmtpNotifier(
        to=list(settings.notify.recipients),
        smtp_conn_id=SMTP_CONN_ID,
        subject=settings.notify.subject_prefix + " {{ ti.dag_id }}.{{ ti.task_id }} failed ({{ run_id }})",
        html_content=(
            "<p>Task <b>{{ ti.task_id }}</b> of DAG <b>{{ ti.dag_id }}</b> failed in run "
            "<code>{{ run_id }}</code> (try {{ ti.try_number }}).</p>"
            "<p>Error: <code>{{ exception | e }}</code></p>"
            "<p>Log: <a href='{{ ti.log_url }}'>{{ ti.log_url }}</a></p>"
        ),
    )(context)
