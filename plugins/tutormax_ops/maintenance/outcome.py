"""Step 8: the run's state follows what happened, after the report was stored and sent.

Planned tables that failed (a role that does not own them, say) or a step that failed after work was
done fail the run here, naming the cause and the fix. Locked and deferred tables stay warnings: the
next run takes them.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from tutormax_ops.core.config import load_settings
from tutormax_ops.core.notify import redact
from tutormax_ops.maintenance.common import load_step, run_folder
from tutormax_ops.maintenance.report import MaintenanceReport


def outcome(*, dag_id: str, run_id: str) -> str:
    """The run's verdict from its stored report; raises (failing the run) when it must not look green."""
    folder = run_folder(load_settings(with_variable=True), dag_id, run_id)
    report = load_step(MaintenanceReport, folder, "report")
    if report is None:
        raise AirflowFailException("no maintenance report: a step failed before it (see the failed task)")
    problems = []
    if report.failure:
        problems.append(report.failure)
    if report.incomplete:
        problems.append("the report is incomplete: " + "; ".join(report.incomplete))
    if problems:
        raise AirflowFailException(
            f"maintenance {report.status}: "
            + "; ".join(problems)
            + f" (report: {redact(str(folder))}/report.html)"
        )
    return f"{report.status}: {report.status_detail}"
