"""
# tutormax_db_maintenance

### Purpose
Weekly, safe `VACUUM ANALYZE` of the service's database (`tutormax_db`) inside a time window, with a
before/after bloat report. Tables are chosen by dead-tuple ratio or transaction-ID age and vacuumed
oldest `relfrozenxid` first (as flexible_freeze does); a table whose only need is statistics (never analyzed, or rows changed
since its last ANALYZE past `maintenance.min_mods_since_analyze_ratio`) gets `ANALYZE` alone. The plan
says why each table is in it. DROP INDEX advice waits until the scan counters of *this* database
(identity: system identifier, oid, name) cover `maintenance.min_stats_age_days`; the report shows how
that age was derived. Tables are processed over `parallel_jobs` sessions in one task,
each with `VACUUM (ANALYZE, SKIP_LOCKED, TRUNCATE false)` (plus `SKIP_DATABASE_STATS` and one final
`VACUUM (ONLY_DATABASE_STATS)` on PostgreSQL 16+). Never the FULL option: no table is rewritten or locked for long. A locked table is skipped,
never waited on; no table starts after the window ends.

The step holds the advisory lock shared with the migrations DAG and load tests
(`coordination.advisory_lock_key`): it waits up to `coordination.lock_wait_seconds` for it, then
skips the vacuum with the holder named in the report, which is still sent.

Flow: `snapshot_before` → `plan` → `vacuum` → `snapshot_after` → `report` → `store` → `notify` →
`outcome`. Each step saves its result in the run's artifacts folder and hands the next one its path
(XCom carries paths and a few figures, never the catalog). A partitioned table is never vacuumed
itself: each partition is vacuumed once, then `ANALYZE ONLY` (PostgreSQL 18+) refreshes the parent's
statistics, which autovacuum never does.

### Schedule
`maintenance.schedule` from the config (default Sunday 03:00 UTC), and on demand from the UI.
A scheduled run's window opens at its scheduled time (`run_after`, the cron time): a run that
starts after its window closed (unpaused late, scheduler down) vacuums nothing and stores a report
"skipped: started N h after its window", but sends no email. A manual run's window opens when it
starts.

Unpausing runs the latest missed Sunday at once (`catchup=False`): unless that is inside its
window, it vacuums nothing and emails nobody. No Asset event starts it.

### Params
- `tables`: SQL-style names (`orders`, `public.orders`, `"Mixed Case"."we""ird name"`); empty means
  every user table of `schemas`. A named table is maintained whatever its dead-tuple ratio (a named
  partitioned table: all its partitions). An unknown name fails the run in `plan`, before any VACUUM.
- `schemas`: empty means `maintenance.schemas`.
- `mode`: `vacuum_analyze`, `analyze_only` or `vacuum_freeze_analyze`.
- `min_dead_tuple_ratio`, `parallel_jobs`, `window_minutes`: empty means the configured value.
- `dry_run`: plan and report only; nothing is vacuumed.
- `notify`: `always`, `on_findings` or `never`.

### Outputs
- Under `storage.artifacts_base`/tutormax_db_maintenance/<run_id>/: `report.html`, `report.json`,
  `tables.csv`, `recommendations.csv`, `bloat.png`, `dead_tuples.png`, and `steps/` with each step's
  result as gzip-compressed JSON and each failed step's cause (a rerun replaces them all).
- In `tutormax_results`, schema `storage.results_schema`: one `table_metrics` row per table and
  phase, one `runs` row (upserted, so a rerun never duplicates), and when this DAG first observed each
  database identity (`maintenance_identities`). When `tutormax_results` is unreachable, the files are
  stored anyway and the next run stores the history.
- An HTML email to `notify.recipients` with the summary, the key tables and the top recommendations
  inline, the charts attached and the stored report's location, sent only after the report is stored.

### On failure
Each failed task emails `notify.recipients`. A bad param never creates a run (the form's schema
rejects it); an unknown table or schema fails `plan` without retry and names the field. A locked,
timed-out or deferred table is a warning in the report, naming the session that held the lock. When
planned tables fail, or a step after the vacuum fails (both databases down included), the report is
still built from the run's files (marked incomplete), stored and sent; then `outcome` fails the run,
naming the step and its cause, and for missing privileges the exact GRANTs (`GRANT USAGE ON SCHEMA`,
`GRANT pg_maintain` on PostgreSQL 17+). "0 of N done" is `failed`, not `partial`. A run whose report
email could not be sent fails too, naming the connection (`smtp_default`): a run that told nobody is
not green.
"""

from __future__ import annotations

from airflow.sdk import Param, TriggerRule, dag, task

from tutormax_ops.core.dag_policy import START_DATE, default_args
from tutormax_ops.core.parse_view import parse_view

DAG_ID = "tutormax_db_maintenance"


@dag(
    dag_id=DAG_ID,
    # YAML and environment only: the Airflow Variable is read inside tasks, never while parsing.
    schedule=parse_view().maintenance_schedule,
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
            "A named table is maintained whatever its dead-tuple ratio; a partitioned table means its "
            "partitions. Empty: every user table of the schemas.",
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
    # Every task hands the next one a path in the run's artifacts folder and a few figures, never
    # the data itself; multiple_outputs=False keeps a dict from being stored a second time per key.
    @task(multiple_outputs=False)
    def snapshot_before(params: dict | None = None, dag_run=None) -> dict:
        from tutormax_ops.maintenance.snapshot import snapshot_before

        return snapshot_before(params or {}, dag_id=DAG_ID, run_id=dag_run.run_id)

    @task(multiple_outputs=False)
    def plan(before: dict, params: dict | None = None) -> dict:
        from tutormax_ops.maintenance.plan import plan

        return plan(params or {}, before)

    @task(multiple_outputs=False)
    def vacuum(planned: dict, dag_run=None) -> dict:
        from tutormax_ops.core.windows import run_window
        from tutormax_ops.maintenance.vacuum import vacuum

        window = run_window(
            run_type=dag_run.run_type,
            run_after=dag_run.run_after,
            started_at=dag_run.start_date,
            minutes=planned["request"]["window_minutes"],
        )
        return vacuum(planned, window=window, started_at=dag_run.start_date)

    @task(multiple_outputs=False)
    def snapshot_after(planned: dict) -> dict:
        from tutormax_ops.maintenance.snapshot import snapshot_after

        return snapshot_after(planned)

    # Runs whatever happened upstream: once a VACUUM ran, it is reported (marked incomplete if a step
    # failed); with no plan, it skips.
    @task(multiple_outputs=False, trigger_rule=TriggerRule.ALL_DONE)
    def report(dag_run=None) -> dict:
        from tutormax_ops.maintenance.report import report

        return report(dag_id=DAG_ID, run_id=dag_run.run_id)

    @task(multiple_outputs=False)
    def store(summary: dict, dag_run=None) -> dict:
        from tutormax_ops.maintenance.store import store

        return store(summary, started_at=dag_run.start_date)

    @task
    def notify(summary: dict, stored: dict, dag_run=None) -> list[str]:
        from tutormax_ops.maintenance.notify import notify

        return notify(summary, stored, dag_run=dag_run)

    # Last, after the report is stored and sent: fails the run when planned tables failed or the
    # report is incomplete, naming the cause and the fix.
    @task(trigger_rule=TriggerRule.ALL_DONE)  # AirflowFailException: no retry
    def outcome(dag_run=None) -> str:
        from tutormax_ops.maintenance.outcome import outcome

        return outcome(dag_id=DAG_ID, run_id=dag_run.run_id)

    planned = plan(snapshot_before())
    vacuumed = vacuum(planned)
    after = snapshot_after(planned)
    vacuumed >> after
    summary = report()
    [vacuumed, after] >> summary
    sent = notify(summary, store(summary))
    sent >> outcome()


tutormax_db_maintenance()
