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
that test runs after warming, never alongside it. The event's metadata says whether that test
sends load (`planned`): yes after a scheduled run or a migration's run, after a manual run only
with `load_test` true.

A scheduled run warms only if it starts within `cache_warm.window_minutes` (60) of its scheduled
time; a later one (the scheduler was down) skips every task: no request, no event, no load test.

Unpausing runs the latest missed 01:30 run at once (`catchup=False`); in the afternoon it is
outside its window, so it warms nothing and no load test follows.

### Params
- `invalidate`: empty means only when a migration triggered the run; true/false forces it.
- `targets`: names from `cache_warm.targets` (the form offers only those); empty means all.
- `load_test`: whether the smoke load test follows this run (see Schedule); empty: as planned.

### Outputs
In `tutormax_results`: one `cache_warm_runs` row (hit rate and key counts before/after, keys
invalidated, alert) and one `cache_warm_targets` row per target (requested, ok, failed, p95 ms),
upserted so a rerun replaces them. An email when the hit rate is below `alerts.cache_hit_rate_percent`
or a request failed. The `tutormax_cache_warmed` Asset event.

### On failure
An unknown target never creates a run (the form and the REST API refuse it). A host off the
allowlist, or a target unknown to the Airflow Variable's config, fails `warm` before any request,
at once (no retry). A target with no successful request fails `record` after the results were
stored and emailed (that one email); no Asset event then, so no load test runs against a cold
cache. A refused connection or a timeout is retried once.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from tutormax_ops.core.assets import CACHE_WARMED, SCHEMA_MIGRATED
from tutormax_ops.core.dag_policy import START_DATE, default_args
from tutormax_ops.core.parse_view import parse_view

VIEW = parse_view()  # YAML and environment only: the Airflow Variable is read by the tasks


@dag(
    dag_id="tutormax_cache_warming",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(VIEW.cache_warm_schedule, timezone="UTC"),
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
            uniqueItems=True,
            **(
                {"items": {"type": "string", "enum": list(VIEW.warm_targets)}}
                if VIEW.warm_targets
                else {"maxItems": 0}
            ),
            title="Targets",
            description_md=f"Names from `cache_warm.targets` ({', '.join(VIEW.warm_targets) or 'none'}); empty: all.",
        ),
        "load_test": Param(
            None,
            type=["null", "boolean"],
            title="Then the smoke load test",
            description_md="Empty: only after a scheduled run in its window or a migration. "
            "True: after this run too (its `tutormax_cache_warmed` event is marked planned). False: never.",
        ),
    },
)
def tutormax_cache_warming() -> None:
    @task
    def snapshot(dag_run=None) -> dict:
        from tutormax_ops.cache.steps import snapshot_step

        return snapshot_step(dag_run)

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
        before: dict,
        invalidated: dict,
        warmed: list,
        run_id: str | None = None,
        dag_run=None,
        params: dict | None = None,
        outlet_events=None,
    ) -> dict:
        from tutormax_ops.cache.steps import record_step

        return record_step(
            before,
            invalidated,
            warmed,
            run_id=run_id,
            run_type=dag_run.run_type,
            started_at=dag_run.start_date,
            params=params or {},
            outlet_event=outlet_events[CACHE_WARMED],
        )

    before = snapshot()
    invalidated = invalidate()
    before >> invalidated
    warmed = warm()
    invalidated >> warmed
    record(before, invalidated, warmed)


tutormax_cache_warming()
