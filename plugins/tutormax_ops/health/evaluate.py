"""Steps 2 and 3 of `tutormax_perf_health`: step every alert over the hour's snapshot, store the
states, then email what changed.

- Each alert starts from its state as of the newest hour before this one, so a rerun of an hour gives
  the same transitions and replaces that hour's rows.
- Firing alerts (raised or held) carry their runbook, filled with live evidence.
- Results are stored before anyone is notified. Only `raise` and `resolve` are emailed, once each:
  the row's `emailed_at` is set after the email went out, so a rerun does not send it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.registry import RunRecord, record_run
from tutormax_ops.core.storage import results_db
from tutormax_ops.health.alerts import AlertState, rules, step
from tutormax_ops.health.results import one, rows

if TYPE_CHECKING:
    from tutormax_ops.core.config import Settings


class MissingSnapshotError(RuntimeError):
    """The hour has no snapshot: the snapshot step did not run for it."""


def evaluate_alerts(hour: datetime, settings: Settings) -> dict[str, Any]:
    """Step each alert for `hour`, store the rows, and return {alert: transition} plus what is firing."""
    from psycopg.types.json import Jsonb

    from tutormax_ops.core.storage import upsert_rows
    from tutormax_ops.health.runbooks import runbook

    schema = settings.storage.results_schema
    with results_db(settings) as conn:
        snapshot = one(conn, "snapshot_of_hour", schema, {"hour": hour})
        if snapshot is None:
            raise MissingSnapshotError(f"hour: no health snapshot for {hour.isoformat()}")
        previous = {row["alert"]: row for row in rows(conn, "previous_alert_states", schema, {"hour": hour})}
    metrics = snapshot["sources"]["metrics"]
    health = settings.health
    stored, transitions = [], {}
    for rule in rules(settings):
        earlier = previous.get(rule.name)
        state = (
            AlertState(earlier["state"], earlier["breaches"], earlier["clears"]) if earlier else AlertState()
        )
        value = metrics.get(rule.name)
        new, transition = step(
            state,
            rule,
            value,
            raise_after=health.raise_after,
            resolve_after=health.resolve_after,
            margin=health.resolve_margin,
        )
        transitions[rule.name] = transition
        needs_runbook = new.state == "firing" or transition == "resolve"
        stored.append(
            {
                "hour": hour,
                "alert": rule.name,
                "state": new.state,
                "transition": transition,
                "breaches": new.breaches,
                "clears": new.clears,
                "value": value,
                "threshold": rule.threshold,
                "source": str(snapshot["sources"].get(rule.name)),
                "message": rule.describe(value),
                "runbook": Jsonb(runbook(rule.name, settings, snapshot) if needs_runbook else []),
            }
        )
    firing = sorted(row["alert"] for row in stored if row["state"] == "firing")
    with results_db(settings) as conn, conn.transaction():
        record_run(conn, schema, _registry_record(snapshot, firing))
        # Keep emailed_at of a rerun: the email for this hour's transition has gone out already.
        upsert_rows(conn, schema, "health_alerts", stored, key=("hour", "alert"))
    return {"hour": hour.isoformat(), "transitions": transitions, "firing": firing}


def _registry_record(snapshot: dict[str, Any], firing: list[str]) -> RunRecord:
    score = snapshot["health_score"]
    scored = "" if score is None else f"; health score {score:.0f}/100"
    return RunRecord(
        dag_id=snapshot["dag_id"],
        run_id=snapshot["run_id"],
        kind="health",
        started_at=snapshot["taken_at"],
        status="alerting" if firing else "ok",
        headline=(f"{len(firing)} alert(s) firing: {', '.join(firing)}" if firing else "no alert firing")
        + f" at {snapshot['hour']:%Y-%m-%d %H:00} UTC{scored}",
        details={"firing": firing, "hour": snapshot["hour"].isoformat()},
    )


def email_changes(hour: datetime, settings: Settings, *, notify: bool) -> list[str]:
    """Email each raise and resolve of `hour` not emailed yet; return the alerts emailed."""
    from tutormax_ops.core.notify import send_email
    from tutormax_ops.core.reports import render

    schema = settings.storage.results_schema
    with results_db(settings) as conn:
        pending = rows(conn, "alerts_to_email", schema, {"hour": hour})
    if not notify or not pending:
        return []
    raised = [row["alert"] for row in pending if row["transition"] == "raise"]
    resolved = [row["alert"] for row in pending if row["transition"] == "resolve"]
    words = [
        f"raised: {', '.join(raised)}" if raised else "",
        f"resolved: {', '.join(resolved)}" if resolved else "",
    ]
    send_email(
        subject=f"health {hour:%Y-%m-%d %H:00} UTC: " + "; ".join(word for word in words if word),
        html=render("health_alert_email.html", hour=hour, alerts=pending),
    )
    emailed = [row["alert"] for row in pending]
    with results_db(settings) as conn:
        conn.execute(*_mark_emailed(schema, hour, emailed))
    return emailed


def _mark_emailed(schema: str, hour: datetime, alerts: list[str]) -> tuple[Any, dict[str, Any]]:
    from tutormax_ops.core.db import load_sql

    return load_sql("tutormax_perf_health/mark_emailed.sql", schema=schema), {"hour": hour, "alerts": alerts}
