"""
# tutormax_cache_clear

### Purpose
Removes the Redis cache keys that match one pattern, safely: the pattern must start with
`cache_clear.key_prefix` (a bare `*` is refused), keys are found with `SCAN … MATCH` and removed
with `UNLINK` in batches, page by page. Nothing ever lists or wipes the whole keyspace.

### Schedule
Manual only. Unpausing starts nothing: no schedule, no Asset event.

### Params
- `pattern`: a Redis glob starting with the configured prefix, e.g. `tutormax:cache:dashboard:*`.
- `dry_run`: only count the matching keys (default true: clearing is an explicit choice).

### Outputs
The task's XCom and log: keys matched, keys removed, SCAN calls and seconds; one row in the run
registry (`runs` in `tutormax_results`, kind `cache_clear`).

### On failure
A pattern outside the prefix never creates a run: the form and the REST API refuse it (the param's
`pattern`). Should the prefix differ at run time (the Airflow Variable), the task refuses it naming
the `pattern` field before Redis is touched, at once, without a retry. A Redis error
fails it; keys already removed stay removed (the service rebuilds them on the next read).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from tutormax_ops.core.dag_policy import START_DATE, default_args
from tutormax_ops.core.parse_view import parse_view, starts_with_regex

# YAML and environment only: the Airflow Variable is read by the task, never while parsing.
PREFIX = parse_view().cache_clear_prefix


@dag(
    dag_id="tutormax_cache_clear",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["tutormax", "cache"],
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "pattern": Param(
            f"{PREFIX}*",
            type="string",
            minLength=len(PREFIX) + 1,
            maxLength=500,
            pattern=starts_with_regex(PREFIX),
            title="Key pattern",
            description_md=f"A Redis glob that starts with `{PREFIX}`.",
        ),
        "dry_run": Param(
            True, type="boolean", title="Dry run", description_md="Only count the matching keys."
        ),
    },
)
def tutormax_cache_clear() -> None:
    @task
    def clear(params: dict | None = None, dag_run=None) -> dict:
        from tutormax_ops.cache.steps import clear_step

        return clear_step(params or {}, dag_run)

    clear()


tutormax_cache_clear()
