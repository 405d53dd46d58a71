"""
# tutormax_perf_health

### Purpose
Every hour, snapshots the seed's performance summary (health score, cache, queries, recommendations)
into the results database and evaluates the seed's Monitoring Alerts (cache hit rate below 70%, p95
API time above 300 ms, slow-query rate above 15%, error rate above 1%) plus DB connections against
the maximum and, when configured, queue depth. Each figure names its source: Redis INFO deltas,
pg_stat_statements deltas since the last snapshot, the service's own `/api/performance/summary`, or
the newest valid load test. Alerts have hysteresis (`health.raise_after`, `health.resolve_after`,
`health.resolve_margin`): raise, hold, resolve. Once a day it also checks the seed's Production
Checklist (pass, fail or cannot tell, with evidence). The Performance page in the UI shows it all.

### Schedule
Hourly (`health.schedule`), and on demand from the UI or the REST API (a run without a logical
date is the hour of its `run_after`). Unpausing runs the latest missed hour at once: it only reads
(Redis INFO, pg_stat_statements, the service's summary) and stores that hour's snapshot; no load.
No Asset event starts it.

### Params
- `notify`: email raises and resolves (default true). Holds are never emailed.
- `refresh_checklist`: check the Production Checklist now, even if it ran in the last day.

### Outputs
Rows in `tutormax_results`: `health_snapshots` (one per hour), `health_alerts` (one per alert per
hour, with its runbook filled with live evidence), `health_checklist` (one per item per day). A rerun
of the same hour replaces its rows and does not email a transition twice.

### On failure
The failed task emails `notify.recipients`, once: a config or permission error fails at once, a
transient fault (a refused connection, a timeout) is retried once first. A live source that cannot be read is not a failure: the
snapshot records it as the figure's source, and an unmeasured figure holds its alert's state.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from tutormax_ops.core.dag_policy import START_DATE, default_args
from tutormax_ops.core.parse_view import parse_view


@dag(
    dag_id="tutormax_perf_health",
    schedule=parse_view().health_schedule,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["tutormax", "health"],
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "notify": Param(
            True,
            type="boolean",
            title="Email changes",
            description_md="Email alerts that were raised or resolved.",
        ),
        "refresh_checklist": Param(
            False,
            type="boolean",
            title="Refresh the checklist",
            description_md="Check the Production Checklist now, even if it ran in the last day.",
        ),
    },
)
def tutormax_perf_health() -> None:
    @task
    def snapshot(dag_run=None) -> dict:
        from tutormax_ops.health.steps import snapshot_step

        return snapshot_step(dag_run)

    @task
    def evaluate(taken: dict) -> dict:
        from tutormax_ops.health.steps import evaluate_step

        return evaluate_step(taken)

    @task
    def notify(evaluated: dict, params=None) -> list[str]:
        from tutormax_ops.health.steps import notify_step

        return notify_step(evaluated, notify=params["notify"])

    @task
    def checklist(params=None) -> dict:
        from tutormax_ops.health.steps import checklist_step

        return checklist_step(force=params["refresh_checklist"])

    taken = snapshot()
    notify(evaluate(taken))
    taken >> checklist()


tutormax_perf_health()
