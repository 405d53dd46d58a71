"""
# tutormax_db_maintenance

### Purpose
Weekly, safe `VACUUM ANALYZE` of the service's database (`tutormax_db`) inside a time window, with a
before/after bloat report. Tables are chosen by dead-tuple ratio or transaction-ID age and vacuumed
oldest `relfrozenxid` first (as flexible_freeze does) over `parallel_jobs` sessions in one task,
each with `VACUUM (ANALYZE, SKIP_LOCKED, TRUNCATE false)` (plus `SKIP_DATABASE_STATS` and one final
`VACUUM (ONLY_DATABASE_STATS)` on PostgreSQL 16+). Never the FULL option: no table is rewritten or locked for long. A locked table is skipped,
never waited on; no table starts after the window ends.

The step holds the advisory lock shared with the migrations DAG and load tests
(`coordination.advisory_lock_key`): it waits up to `coordination.lock_wait_seconds` for it, then
skips the vacuum with the holder named in the report, which is still sent.

Flow: `snapshot_before` → `plan` → `vacuum` → `snapshot_after` → `report` → `store` → `notify`.

### Schedule
`maintenance.schedule` from the config (default Sunday 03:00 UTC), and on demand from the UI.
The window starts when the run starts.

### Params
- `tables`: SQL-style names (`orders`, `public.orders`, `"Mixed Case"."we""ird name"`); empty means
  every user table of `schemas`. An unknown name fails the run in `plan`, before any VACUUM.
- `schemas`: empty means `maintenance.schemas`.
- `mode`: `vacuum_analyze`, `analyze_only` or `vacuum_freeze_analyze`.
- `min_dead_tuple_ratio`, `parallel_jobs`, `window_minutes`: empty means the configured value.
- `dry_run`: plan and report only; nothing is vacuumed.
- `notify`: `always`, `on_findings` or `never`.

### Outputs
- Under `storage.artifacts_base`/tutormax_db_maintenance/<run_id>/: `report.html`, `report.json`,
  `tables.csv`, `recommendations.csv`, `bloat.png`, `dead_tuples.png` (a rerun replaces them).
- In `tutormax_results`, schema `storage.results_schema`: one `table_metrics` row per table and
  phase, and one `runs` row (upserted, so a rerun never duplicates).
- An HTML email to `notify.recipients` with the key tables inline and the report attached, sent only
  after the report is stored.

### On failure
Each failed task emails `notify.recipients`. A bad param never creates a run (the form's schema
rejects it); an unknown table or schema fails `plan` without retry and names the field. A table that
is locked, times out or fails is recorded with its outcome and does not fail the run.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from tutormax_ops.config import load_settings
from tutormax_ops.dag_policy import START_DATE, default_args

DAG_ID = "tutormax_db_maintenance"


@dag(
    dag_id=DAG_ID,
    # YAML and environment only: the Airflow Variable is read inside tasks, never while parsing.
    schedule=load_settings().maintenance.schedule,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["tutormax", "maintenance"],
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "tables": Param(
            [],
            type="array",
            items={"type": "string", "minLength": 1, "maxLength": 300},
            title="Tables",
            description_md='SQL-style names, e.g. `orders` or `"Mixed Case"."we""ird name"`. '
            "Empty: every user table of the schemas.",
            section="Scope",
        ),
        "schemas": Param(
            [],
            type="array",
            items={"type": "string", "minLength": 1, "maxLength": 63},
            title="Schemas",
            description_md="Empty: `maintenance.schemas` from the config.",
            section="Scope",
        ),
        "mode": Param(
            "vacuum_analyze",
            type="string",
            enum=["vacuum_analyze", "analyze_only", "vacuum_freeze_analyze"],
            title="Mode",
            description_md="`VACUUM (ANALYZE)`, `ANALYZE` alone, or `VACUUM (FREEZE, ANALYZE)`. Never FULL.",
            section="Maintenance",
        ),
        "min_dead_tuple_ratio": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            title="Minimum dead-tuple ratio",
            description_md="Plan a table when dead / (live + dead) reaches this (for `analyze_only`: the "
            "share of rows changed since the last analyze). `0` plans every table. Empty: the config's.",
            section="Maintenance",
        ),
        "parallel_jobs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=32,
            title="Parallel sessions",
            description_md="Tables vacuumed at once, like `vacuumdb --jobs`. Empty: the config's.",
            section="Maintenance",
        ),
        "window_minutes": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            maximum=1440,
            title="Window (minutes)",
            description_md="No table starts after the window; `0` defers every table. Empty: the config's.",
            section="Maintenance",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description_md="Plan and report only; nothing is vacuumed.",
            section="Maintenance",
        ),
        "notify": Param(
            "always",
            type="string",
            enum=["always", "on_findings", "never"],
            title="Email",
            description_md="`on_findings`: only when a table was not done or something is recommended.",
            section="Report",
        ),
    },
)
def tutormax_db_maintenance() -> None:
    @task(show_return_value_in_logs=False)  # large JSON; the step logs its own summary
    def snapshot_before(params: dict | None = None) -> dict:
        from tutormax_ops.maintenance.snapshot import snapshot_before

        return snapshot_before(params or {})

    @task(show_return_value_in_logs=False)
    def plan(before: dict, params: dict | None = None) -> dict:
        from tutormax_ops.maintenance.plan import plan

        return plan(params or {}, before)

    @task(show_return_value_in_logs=False)
    def vacuum(plan: dict, dag_run=None) -> dict:
        from tutormax_ops.maintenance.vacuum import vacuum

        return vacuum(plan, window_started_at=dag_run.start_date)

    @task(show_return_value_in_logs=False)
    def snapshot_after(plan: dict) -> dict | None:
        from tutormax_ops.maintenance.snapshot import snapshot_after

        return snapshot_after(plan)

    @task(show_return_value_in_logs=False)
    def report(
        plan: dict, before: dict, vacuumed: dict, after: dict | None, run_id: str | None = None
    ) -> dict:
        from tutormax_ops.maintenance.report import report

        return report(plan, before, vacuumed, after, dag_id=DAG_ID, run_id=run_id)

    @task
    def store(report: dict, before: dict, after: dict | None, dag_run=None) -> str:
        from tutormax_ops.maintenance.store import store

        return store(report, before, after, started_at=dag_run.start_date)

    @task
    def notify(report: dict, artifacts_uri: str) -> list[str]:
        from tutormax_ops.maintenance.notify import notify

        return notify(report, artifacts_uri)

    before = snapshot_before()
    planned = plan(before)
    vacuumed = vacuum(planned)
    after = snapshot_after(planned)
    vacuumed >> after
    summary = report(planned, before, vacuumed, after)
    notify(summary, store(summary, before, after))


tutormax_db_maintenance()
