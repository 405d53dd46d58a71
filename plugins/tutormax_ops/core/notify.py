"""Email through the smtp provider's SmtpHook (connection `smtp_default`), the failure notifier
that every task carries, and `redact`, which every third-party message passes through before it
reaches a log, report or email.

The message is built with the standard library's `email` package: the provider's own builder sends
every file as application/octet-stream, which some clients will not show inline. Images the HTML
references as `cid:<file name>` go inline (image/png, Content-ID, `inline`); every other file is an
attachment with its real type (text/html, text/csv, application/json, ...).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tutormax_ops.core.config import load_settings
from tutormax_ops.core.conn_ids import SMTP_CONN_ID

EMAIL_MAX_BYTES = 300 * 1024  # an email an operator opens on a phone; a report is linked, not sent
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
# libpq key=value strings and similar: password=..., "password": "..."
_KEY_VALUE_SECRET = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|requirepass|secret|token)\b['\"]?\s*[=:]\s*['\"]?)[^\s'\",;&]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Remove user:password from any URL in `text`, the value of any `password=`-style key, and every
    secret Airflow's masker knows in this process (the passwords of the connections a task has
    fetched, wherever they appear), so no secret reaches a log, report or email. The masker is the
    one that cleans the task log: a third party's message gets the same treatment in an email."""
    from airflow.sdk.log import redact as mask_known_secrets

    patterned = _KEY_VALUE_SECRET.sub(r"\g<key>***", _URL_CREDENTIALS.sub(r"\g<scheme>***@", text))
    return str(mask_known_secrets(patterned))


def unreachable(service: str, conn_id: str, error: BaseException, *, check: str) -> ConnectionError:
    """The error for a server that could not be reached: the connection, its host:port, the cause
    (redacted) and the check to run; never the password."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
        where = f"{conn.host}:{conn.port}" if conn.port else f"{conn.host} (default port)"
    except Exception as lookup_error:  # the connection itself is missing or malformed
        where = f"connection not found: {type(lookup_error).__name__}"
    cause = redact(f"{type(error).__name__}: {error}".strip())
    return ConnectionError(f"{service} connection {conn_id!r} at {where}: {cause}. Check: {check}")


def build_message(*, subject: str, html: str, to: Sequence[str], attachments: Sequence[Path]) -> EmailMessage:
    """An HTML email; files the HTML names as `cid:<file name>` inline, the others attached, each
    with its MIME type from the file name. An email over `EMAIL_MAX_BYTES` leaves its attachments
    out (the inline charts stay) and says which: they are stored with the run, and the emails link
    the reports."""
    message = _message(subject=subject, html=html, to=to, attachments=attachments)
    inline = [path for path in attachments if f"cid:{path.name}" in html]
    if len(message.as_bytes()) <= EMAIL_MAX_BYTES or len(inline) == len(attachments):
        return message
    left_out = ", ".join(
        f"{path.name} ({path.stat().st_size:,} B)" for path in attachments if path not in inline
    )
    note = f'<p class="muted">Left out to keep this email under {EMAIL_MAX_BYTES // 1024} KB: {left_out}.</p>'
    return _message(subject=subject, html=html + note, to=to, attachments=inline)


def _message(*, subject: str, html: str, to: Sequence[str], attachments: Sequence[Path]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["To"] = ", ".join(to)
    message.set_content(html, subtype="html")
    inline = [path for path in attachments if f"cid:{path.name}" in html]
    for path in inline:
        maintype, subtype = _mime_type(path)
        message.add_related(
            path.read_bytes(),
            maintype=maintype,
            subtype=subtype,
            cid=f"<{path.name}>",
            disposition="inline",
            filename=path.name,
        )
    for path in attachments:
        if path not in inline:
            maintype, subtype = _mime_type(path)
            message.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return message


def _mime_type(path: Path) -> tuple[str, str]:
    guessed, _ = mimetypes.guess_type(path.name)
    maintype, _, subtype = (guessed or "application/octet-stream").partition("/")
    return maintype, subtype


def send_email(
    *,
    subject: str,
    html: str,
    to: Sequence[str] | None = None,
    attachments: Sequence[Path] = (),
    conn_id: str = SMTP_CONN_ID,
) -> None:
    """Send an HTML email through `conn_id`; `cid:chart.png` in the HTML shows attachment chart.png inline."""
    from airflow.exceptions import AirflowException
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    settings = load_settings()
    recipients = list(to or settings.notify.recipients)
    message = build_message(
        subject=f"{settings.notify.subject_prefix} {subject}",
        html=html,
        to=recipients,
        attachments=[Path(path) for path in attachments],
    )
    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            message["From"] = hook.from_email or "tutormax-ops@localhost"
            # The hook logged in (STARTTLS, credentials, retries); its client sends our message.
            hook._smtp_client.send_message(message, to_addrs=recipients)
    except (OSError, AirflowException) as error:  # refused, timed out, TLS or an SMTP error
        raise unreachable("SMTP", conn_id, error, check=_SMTP_CHECK.format(conn_id=conn_id)) from None


_SMTP_CHECK = (
    "is the server up and listening there (`nc -vz host port`)? Are login, password and TLS settings of "
    "`airflow connections get {conn_id}` right? The tutormax_smoke_connectivity DAG tests every connection"
)


def smtp_handshake(conn_id: str = SMTP_CONN_ID) -> str:
    """Connect, EHLO (and STARTTLS/login if configured), NOOP; raise with the server's answer if any fails."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            ok, message = hook.test_connection()
    except Exception as error:  # connecting happens in __enter__, before test_connection can catch it
        raise unreachable("SMTP", conn_id, error, check=_SMTP_CHECK.format(conn_id=conn_id)) from None
    if not ok:
        raise unreachable(
            "SMTP", conn_id, ConnectionError(message), check=_SMTP_CHECK.format(conn_id=conn_id)
        )
    return message


def notify_task_failure(context: Mapping[str, Any]) -> None:
    """`on_failure_callback` for every task: emails the failed task, its run and its log link.

    A plain function rather than an SmtpNotifier instance, so DAG files do not import the smtp
    provider while being parsed. The exception text (often a third party's) is redacted first.
    """
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    settings = load_settings()
    error = context.get("exception")
    redacted = {**context, "exception": redact(f"{type(error).__name__}: {error}") if error else ""}
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
    )(redacted)
