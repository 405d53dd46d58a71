"""Step 7: email the stored report, unless the run's `notify` param says not to."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutormax_ops.core.config import load_settings
from tutormax_ops.core.conn_ids import SMTP_CONN_ID
from tutormax_ops.core.links import stored_file_url
from tutormax_ops.core.notify import redact, send_email
from tutormax_ops.core.reports import render
from tutormax_ops.maintenance.common import (
    display_name,
    folder_of,
    load_step,
    quote_ident,
    recording_failure,
    save_step,
)
from tutormax_ops.maintenance.report import MaintenanceReport
from tutormax_ops.maintenance.store import CHARTS, REPORT_FILE


def email_subject(report: MaintenanceReport) -> str:
    return f"{report.dag_id} on {report.database}: {report.headline()}"


EMAIL_TABLES = 15
EMAIL_RECOMMENDATIONS = 10
# What the email carries: the charts it shows inline (cid:). The full report stays in storage (at
# 3,000 tables it is megabytes); the email gives its location.
EMAIL_ATTACHMENTS = tuple(CHARTS.values())


def email_report(report: MaintenanceReport, artifacts_uri: str) -> list[str]:
    """Send the summary and the top findings, with the charts read back from storage, and the stored
    report's location. Returns the attached file names."""
    from airflow.sdk import ObjectStoragePath

    folder = ObjectStoragePath(artifacts_uri)
    with tempfile.TemporaryDirectory(prefix="tutormax_maintenance_") as scratch:
        attachments = []
        for name in EMAIL_ATTACHMENTS:
            local = Path(scratch) / name
            local.write_bytes((folder / name).read_bytes())
            attachments.append(local)
        send_email(
            subject=email_subject(report),
            html=render(
                "maintenance_email.html",
                report=report,
                name=display_name,
                ident=quote_ident,
                artifacts_uri=redact(artifacts_uri),
                report_url=stored_file_url(
                    load_settings(with_variable=True), f"{artifacts_uri}/{REPORT_FILE}"
                ),
                charts={name: f"cid:{file}" for name, file in CHARTS.items()},
                email_tables=EMAIL_TABLES,
                email_recommendations=EMAIL_RECOMMENDATIONS,
            ),
            attachments=attachments,
        )
    return list(EMAIL_ATTACHMENTS)


@dataclass(frozen=True)
class Delivery:
    """What the notify step did: who was emailed through which connection, or why nobody was."""

    sent: bool
    detail: str
    attachments: tuple[str, ...] = ()


def notify(report: Mapping[str, Any], stored: Mapping[str, Any], *, dag_run: Any) -> list[str]:
    """Email the stored report, unless `notify` says not to, or the run is a scheduled one that started
    after its window (the catch-up run of an unpaused DAG: nobody planned it, it vacuumed nothing);
    the task is then skipped, with the reason.

    What happened is saved as `steps/notify.json` (a failure as its record): the outcome fails a run
    whose report was due and not sent."""
    from airflow.sdk.exceptions import AirflowSkipException

    from tutormax_ops.core.windows import run_window

    folder = folder_of(report)
    loaded = load_step(MaintenanceReport, folder, "report")
    window = run_window(
        run_type=dag_run.run_type,
        run_after=dag_run.run_after,
        started_at=dag_run.start_date,
        minutes=loaded.request.window_minutes,
    )
    late = window.late_reason(dag_run.start_date)
    if late:
        skip = f"{late}: no email (the report is stored)"
    elif loaded.request.notify == "never":
        skip = "notify is 'never'"
    elif loaded.request.notify == "on_findings" and not loaded.has_findings:
        skip = "notify is 'on_findings' and this run found nothing to act on"
    else:
        skip = None
    if skip:
        save_step(folder, "notify", Delivery(False, skip))
        raise AirflowSkipException(skip)
    with recording_failure(folder, "notify"):
        attached = email_report(loaded, stored["folder"])
    save_step(folder, "notify", Delivery(True, f"sent through {SMTP_CONN_ID}", tuple(attached)))
    return attached
