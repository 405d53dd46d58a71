"""
# tutormax_migrations

### Purpose
Runs the Alembic migrations of any team's project against `tutormax_db`, safely:
`preflight` (connectivity, current revision, exactly one head, pending revisions, no transaction
older than `migrations.max_transaction_age_s` that would block DDL) → `backup` (`pg_dump -Fc` to
object storage with a pg_dump at least as new as the server) → `apply` (Alembic as a subprocess,
output streamed to this log with the password redacted, under the advisory lock shared with
maintenance and load tests, `lock_timeout`/`statement_timeout` passed through `PGOPTIONS`) →
`verify` (revision equals the target, every index valid, pg_stat_statements present).
`preview_sql` stores Alembic's offline SQL instead and applies nothing.

Where the project lives, how it runs and how it receives the database URL are set in
`migrations.project` (config only; the credentials come from the `tutormax_db` connection).

### Schedule
Manual only (`max_active_runs=1`). Unpausing starts nothing: no schedule, no Asset. A verified migration
that applied revisions emits the `tutormax_schema_migrated` Asset (`announce`, with the revisions
in its metadata), which triggers `tutormax_cache_warming` (invalidate, warm), whose
`tutormax_cache_warmed` Asset triggers the smoke load test. A run that applied nothing (already at
the target) or only previewed SQL emits no event: nothing downstream runs for no change.

### Params
- `action`: `upgrade`, `downgrade` or `preview_sql`.
- `target_revision`: `head` (default), `base` or a revision id.
- `backup_first`: take the pg_dump backup before applying (default true).
- `confirm`: must equal `target_revision` for a downgrade to run; empty (the default) otherwise.

### Outputs
Under `storage.artifacts_base`/tutormax_migrations/<run_id>/: the `.dump` backup and/or
`preview.sql`. One `runs` row (kind `migration`) in `tutormax_results` with the revisions, the
backup's path and size and any warning. The `tutormax_schema_migrated` Asset event, only when
revisions were applied (its metadata: `from`, `to`, `applied`).

### On failure
A bad param fails `preflight` naming the field before any server is touched; several heads or an
unknown revision fail it with the details. A pg_dump older than the server fails `backup` before
anything is applied. A failed `apply` (e.g. a lock held past `lock_timeout`) is recorded and
emailed with the backup's path and the `pg_restore` command (that one email, no second failure
email); an invalid index fails `verify` naming it with the `REINDEX` that fixes it. No Asset event
then. These, and a config or permission error (a wrong password, a missing `alembic.ini`), fail at
once, without the retry; only a transient fault (a refused connection, a timeout, a transaction
that would block the DDL) is retried once.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from tutormax_ops.core.assets import SCHEMA_MIGRATED
from tutormax_ops.core.dag_policy import START_DATE, default_args

DAG_ID = "tutormax_migrations"


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["tutormax", "migrations"],
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "action": Param(
            "upgrade", type="string", enum=["upgrade", "downgrade", "preview_sql"], title="Action"
        ),
        "target_revision": Param(
            "head",
            type="string",
            minLength=1,
            maxLength=64,
            pattern=r"^[A-Za-z0-9_]+$",
            title="Target revision",
            description_md="`head`, `base` or a revision id.",
        ),
        "backup_first": Param(
            True, type="boolean", title="Back up first", description_md="`pg_dump -Fc` to storage."
        ),
        "confirm": Param(
            None,
            type=["null", "string"],
            maxLength=64,
            title="Confirm",
            description_md="For a downgrade: type the target revision again.",
        ),
    },
)
def tutormax_migrations() -> None:
    @task
    def preflight(params: dict | None = None, run_id: str | None = None) -> dict:
        from tutormax_ops.migrations.steps import preflight_step

        return preflight_step(params or {}, run_id)

    @task
    def preview_sql(plan: dict, run_id: str | None = None) -> str:
        from tutormax_ops.migrations.steps import preview_step

        return preview_step(plan, run_id)

    @task
    def backup(plan: dict, run_id: str | None = None) -> dict:
        from tutormax_ops.migrations.steps import backup_step

        return backup_step(plan, run_id)

    @task(trigger_rule="none_failed")  # runs when the backup was skipped on purpose
    def apply(plan: dict, backup: dict | None, run_id: str | None = None, dag_run=None) -> dict:
        from tutormax_ops.migrations.steps import apply_step

        return apply_step(plan, backup, run_id, dag_run.start_date)

    @task(trigger_rule="none_failed")  # a skipped backup is not a failure
    def verify(
        plan: dict, backup: dict | None, applied: dict, run_id: str | None = None, dag_run=None
    ) -> dict:
        from tutormax_ops.migrations.steps import verify_step

        return verify_step(plan, backup, applied, run_id, dag_run.start_date)

    @task(outlets=[SCHEMA_MIGRATED])
    def announce(applied: dict, outlet_events=None) -> dict:
        from tutormax_ops.migrations.steps import announce_step

        return announce_step(applied, outlet_events[SCHEMA_MIGRATED])

    plan = preflight()
    preview_sql(plan)
    dumped = backup(plan)
    applied = apply(plan, dumped)
    verify(plan, dumped, applied) >> announce(applied)


tutormax_migrations()
