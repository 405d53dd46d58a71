"""
# tutormax_cache_warming

### Purpose
Fills the service's Redis cache before the traffic does: `snapshot` (hit rate and key counts per
pattern) → `invalidate` (SCAN + UNLINK of `cache_warm.invalidate_patterns`, when a migration
triggered the run) → `warm` (each of `cache_warm.targets`: ids from a SQL file on `tutormax_db`
fed into a URL template, or `POST /api/performance/cache/warm`; bounded concurrency, rate limit,
retries with backoff; the host must be on `loadtest.host_allowlist`) → `record` (key counts and
hit rate after, history stored, alert email) which emits `tutormax_cache_warmed`.

### Schedule
`cache_warm.schedule` (01:30 UTC nightly), and after each `tutormax_schema_migrated` Asset event
(then it invalidates first). Its `tutormax_cache_warmed` event triggers the smoke load test, so
that test runs after warming, never alongside it.

### Params
- `invalidate`: empty means only when a migration triggered the run; true/false forces it.
- `targets`: names from `cache_warm.targets`; empty means all.

### Outputs
In `tutormax_results`: one `cache_warm_runs` row (hit rate and key counts before/after, keys
invalidated, alert) and one `cache_warm_targets` row per target (requested, ok, failed, p95 ms),
upserted so a rerun replaces them. An email when the hit rate is below `alerts.cache_hit_rate_percent`
or a request failed. The `tutormax_cache_warmed` Asset event.

### On failure
A host off the allowlist or an unknown target fails `warm` before any request. A target with no
successful request fails `record` after the results were stored and emailed; no Asset event then,
so no load test runs against a cold cache.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from tutormax_ops.core.assets import CACHE_WARMED, SCHEMA_MIGRATED
from tutormax_ops.core.config import load_settings
from tutormax_ops.core.dag_policy import START_DATE, default_args


@dag(
    dag_id="tutormax_cache_warming",
    # YAML and environment only: the Airflow Variable is read by the tasks, never while parsing.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(load_settings().cache_warm.schedule, timezone="UTC"),
        assets=[SCHEMA_MIGRATED],
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["tutormax", "cache"],
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "invalidate": Param(
            None,
            type=["null", "boolean"],
            title="Invalidate first",
            description_md="Empty: only when a migration triggered the run.",
        ),
        "targets": Param(
            [],
            type="array",
            items={"type": "string", "pattern": "^[a-z0-9_]{1,63}$"},
            title="Targets",
            description_md="Names from `cache_warm.targets`; empty: all.",
        ),
    },
)
def tutormax_cache_warming() -> None:
    @task
    def snapshot() -> dict:
        from tutormax_ops.cache.steps import snapshot

        return snapshot()

    @task
    def invalidate(params: dict | None = None, dag_run=None) -> dict:
        from tutormax_ops.cache.steps import invalidate_step

        return invalidate_step(params or {}, dag_run.run_type)

    @task
    def warm(params: dict | None = None) -> list:
        from tutormax_ops.cache.steps import warm_step

        return warm_step(params or {})

    @task(outlets=[CACHE_WARMED])
    def record(
        before: dict, invalidated: dict, warmed: list, run_id: str | None = None, dag_run=None
    ) -> dict:
        from tutormax_ops.cache.steps import record_step

        return record_step(
            before,
            invalidated,
            warmed,
            run_id=run_id,
            run_type=dag_run.run_type,
            started_at=dag_run.start_date,
        )

    before = snapshot()
    invalidated = invalidate()
    before >> invalidated
    warmed = warm()
    invalidated >> warmed
    record(before, invalidated, warmed)


tutormax_cache_warming()
