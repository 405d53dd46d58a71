"""Step 1b, the window: a scheduled run sends load only inside its wall-clock window.

The window opens at the run's scheduled time (`core/windows.py`, as maintenance) and lasts
`loadtest.window_minutes`. A scheduled run that starts after it closed, or could not end before it
closes, sends nothing: it stores a `skipped` history row with the reason and skips the rest of the
DAG. A manual or Asset-triggered run counts its window from its start, so it always fits.

An Asset-triggered run sends load only when an event that triggered it says `"planned": true`
(`tutormax_cache_warming` marks its event so after a scheduled run in its window, a migration's
run, or a run with `load_test` true): a manual warm run, or an event without that mark, sends none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from tutormax_ops.core.config import load_settings
from tutormax_ops.core.runs import trigger_of
from tutormax_ops.core.windows import run_window
from tutormax_ops.loadtest.history import run_row, store_run_rows
from tutormax_ops.loadtest.model import RunPlan


def unplanned_reason(context: Mapping[str, Any]) -> str | None:
    """Why an Asset-triggered run must send no load (no triggering event was a planned one), or None."""
    if trigger_of(context["dag_run"].run_type) != "asset":
        return None
    events = [event for found in context["triggering_asset_events"].values() for event in found]
    if any((event.extra or {}).get("planned") is True for event in events):
        return None
    sources = ", ".join(f"{event.source_dag_id}/{event.source_run_id}" for event in events) or "none"
    return (
        f"skipped: no triggering Asset event was a planned run (from {sources}): a manual or "
        "catch-up cache warming sends no load unless run with load_test=true"
    )


def skip_outside_window(plan_values: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """Return what was checked (for the log), or store the skip and raise `AirflowSkipException`."""
    from tutormax_ops.core.storage import run_artifacts_dir

    settings = load_settings(with_variable=True)
    plan = RunPlan(**plan_values)
    dag_run, ti = context["dag_run"], context["ti"]
    window = run_window(
        run_type=dag_run.run_type,
        run_after=dag_run.run_after,
        started_at=dag_run.start_date,
        minutes=settings.loadtest.window_minutes,
    )
    # Now, not the run's start: the load would be sent from now on.
    now = datetime.now(UTC)
    reason = (
        unplanned_reason(context)
        or window.late_reason(now)
        or window.overrun_reason(plan.planned_duration_s, now)
    )
    if reason is None:
        checked = (
            f"window: {plan.planned_duration_s:g} s of load end before {window.closes_at:%Y-%m-%d %H:%M} UTC"
        )
        print(checked)
        return checked
    artifacts = run_artifacts_dir(settings.storage.artifacts_uri(), ti.dag_id, ti.run_id)
    summary = {"run_id": ti.run_id, "profile": plan.profile, "verdict": "skipped", "reason": reason}
    (artifacts / "summary.json").write_text(json.dumps(summary, indent=2))
    row = run_row(
        plan, ti.dag_id, ti.run_id, now, artifacts, valid=False, invalid_reason=reason, verdict="skipped"
    )
    store_run_rows(settings, row, [])
    raise AirflowSkipException(f"{reason}; no load was sent, the skip is stored in loadtest_runs")
