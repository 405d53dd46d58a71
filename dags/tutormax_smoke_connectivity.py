"""
# tutormax_smoke_connectivity

### Purpose
Checks that every connection TutorMax Ops depends on answers: `SELECT 1` on `tutormax_db` and
`tutormax_results`, `PING` on `tutormax_redis`, the service's health check on `tutormax_api`
(`service.health_check`: `GET /health` answering `{"status": "ok"}` by default; the load-test guard
reads the same setting), and an SMTP handshake on `smtp_default`. Run it first after deploying the package or changing a connection.

### Schedule
Daily at 06:00 UTC, and on demand from the UI. No Asset event starts it. Unpausing runs the latest
missed 06:00 check at once: it only connects (`SELECT 1`, `PING`, a health `GET`, an SMTP
handshake), sends no load and writes only its run-registry row.

### Params
None.

### Outputs
One XCom per check (`conn_id`, `check`, `ok`, `detail`, `elapsed_ms`) and a summary in the log of
the `summarize` task; one row in the run registry (`runs`, kind `connectivity`) when
`tutormax_results` answers. Nothing else is written to any server.

### On failure
`summarize` fails and lists every connection that did not answer, with the error (credentials
redacted). Each failed task also emails `notify.recipients` through `smtp_default` (which cannot
help when SMTP itself is the broken connection: read the task log then).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from tutormax_ops.core.dag_policy import START_DATE, default_args


@dag(
    dag_id="tutormax_smoke_connectivity",
    schedule="0 6 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["tutormax", "smoke"],
    default_args=default_args(),
    doc_md=__doc__,
)
def tutormax_smoke_connectivity() -> None:
    @task(map_index_template="{{ task.op_kwargs['target'] }}")
    def check(target: str) -> dict:
        from dataclasses import asdict

        from tutormax_ops.health.connectivity import run_check

        return asdict(run_check(target))

    @task
    def summarize(results: list[dict], dag_run=None) -> dict:
        from tutormax_ops.health.connectivity import summarize_checks

        return summarize_checks(results, dag_run)

    summarize(
        check.expand(
            target=["tutormax_db", "tutormax_results", "tutormax_redis", "tutormax_api", "smtp_default"]
        )
    )


tutormax_smoke_connectivity()
