"""Step 8: the run's state follows what happened, after the report was stored and sent.

The run fails, naming the step and its cause, when: no report could be built; planned tables failed
(a role that does not own them, say) or a step failed after work was done; the history could not be
stored; or the report was due by email and nobody was told (a run that told nobody is not green).
Locked and deferred tables stay warnings: the next run takes them. The verdict is saved as
`steps/outcome.json` before the task fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow.sdk.exceptions import AirflowFailException

from tutormax_ops.core.config import load_settings
from tutormax_ops.core.conn_ids import SMTP_CONN_ID
from tutormax_ops.core.notify import redact
from tutormax_ops.maintenance.common import load_step, run_folder, save_step, step_failures
from tutormax_ops.maintenance.notify import Delivery
from tutormax_ops.maintenance.report import MaintenanceReport
from tutormax_ops.maintenance.store import HISTORY_PENDING, PendingHistory


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str
    problems: tuple[str, ...]


def problems_of(
    report: MaintenanceReport | None,
    failures: dict[str, str],
    pending: PendingHistory | None,
    delivery: Delivery | None,
) -> list[str]:
    """What keeps the run from being green, each naming the step and its cause."""
    if report is None:
        named = [f"step {step} failed: {cause}" for step, cause in failures.items()]
        return ["no maintenance report: " + ("; ".join(named) or "a step failed before it (see its log)")]
    problems = []
    if report.failure:
        problems.append(report.failure)
    if report.incomplete:
        problems.append("the report is incomplete: " + "; ".join(report.incomplete))
    if pending is not None:
        problems.append(
            f"step store: the history rows were not stored ({pending.cause}); the next run stores them"
        )
    elif "store" in failures:
        problems.append(f"step store failed: {failures['store']}")
    if delivery is None:  # neither sent nor skipped by the `notify` param: nobody was told
        cause = failures.get("notify", "the notify step did not run")
        problems.append(
            f"step notify: the report email was not sent through connection {SMTP_CONN_ID!r}: {cause}"
        )
    return problems


def outcome(*, dag_id: str, run_id: str) -> str:
    """The run's verdict from its stored files; raises (failing the run) when it must not look green."""
    folder = run_folder(load_settings(with_variable=True), dag_id, run_id)
    report = load_step(MaintenanceReport, folder, "report")
    problems = problems_of(
        report,
        step_failures(folder),
        load_step(PendingHistory, folder, HISTORY_PENDING),
        load_step(Delivery, folder, "notify"),
    )
    if problems:
        status = report.status if report else "failed"
        message = (
            f"maintenance {status}: " + "; ".join(problems) + f" (report: {redact(str(folder))}/report.html)"
        )
    else:
        message = f"{report.status}: {report.status_detail}"
    save_step(folder, "outcome", Verdict(not problems, message, tuple(problems)))
    if problems:
        raise AirflowFailException(message)
    return message
