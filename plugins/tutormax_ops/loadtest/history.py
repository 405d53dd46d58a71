"""The history rows: one per run and one per endpoint in `tutormax_results`, upserted, and the comparable runs read back."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.config import Settings
from tutormax_ops.core.storage import results_db
from tutormax_ops.loadtest.model import LIMITED_BY_MACHINE, RunPlan
from tutormax_ops.loadtest.verdict import endpoint_name

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from tutormax_ops.loadtest.model import Analysis
    from tutormax_ops.loadtest.regression import Finding


def load_history(settings: Settings, plan: RunPlan, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Earlier valid runs comparable with this one (same DAG, profile, user count and worker
    processes; a stress run's limited by this machine measured the machine, not the service),
    oldest first, each with its endpoints' figures under "endpoints"."""
    from psycopg.rows import dict_row

    from tutormax_ops.core.db import load_sql

    schema = settings.storage.results_schema
    with results_db(settings) as conn, conn.cursor(row_factory=dict_row) as cursor:
        params = {
            "dag_id": dag_id,
            "profile": plan.profile,
            "users": plan.users,
            "processes": plan.processes,
            "run_id": run_id,
            "machine": LIMITED_BY_MACHINE,
        }
        cursor.execute(
            load_sql("tutormax_load_test/history_runs.sql", schema=schema),
            {**params, "limit": settings.loadtest.regression.window_runs},
        )
        runs = list(reversed(cursor.fetchall()))
        cursor.execute(
            load_sql("tutormax_load_test/history_endpoints.sql", schema=schema),
            {"dag_id": dag_id, "run_ids": [run["run_id"] for run in runs]},
        )
        endpoints: dict[str, dict[str, dict[str, Any]]] = {}
        for row in cursor.fetchall():
            endpoints.setdefault(row["run_id"], {})[row["endpoint"]] = row
    return [{**run, "endpoints": endpoints.get(run["run_id"], {})} for run in runs]


def run_row(
    plan: RunPlan,
    dag_id: str,
    run_id: str,
    started_at: datetime,
    artifacts: ObjectStoragePath,
    *,
    valid: bool,
    invalid_reason: str | None,
    verdict: str,
    analysis: Analysis | None = None,
) -> dict[str, Any]:
    from psycopg.types.json import Jsonb

    from tutormax_ops.core.notify import redact

    stress = analysis is not None and plan.stress
    # A stress run's whole-run figures mix every step: it contributes its knee, nothing else. Any
    # other run, the figures its verdicts judged: the steady state's where it was measured.
    judged = analysis.run.judged_figures if analysis and analysis.run and not stress else None
    aggregate = judged.aggregate if judged else None
    server = analysis.server if analysis and not stress else {}
    knee = analysis.knee.step if analysis and analysis.knee else None
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "profile": plan.profile,
        "started_at": started_at,
        "duration_s": analysis.run.duration_s if analysis and analysis.run else None,
        "host": redact(plan.host),
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "planned_duration_s": plan.planned_duration_s,
        "processes": plan.processes,
        "valid": valid,
        "invalid_reason": invalid_reason,
        "requests": aggregate.requests if aggregate else None,
        "failures": aggregate.failures if aggregate else None,
        "error_rate": aggregate.error_rate_percent if aggregate else None,
        "rps": aggregate.steady_rps if aggregate else None,
        "p50_ms": aggregate.p50_ms if aggregate else None,
        "p95_ms": aggregate.p95_ms if aggregate else None,
        "p99_ms": aggregate.p99_ms if aggregate else None,
        "cache_hit_rate": server.get("cache_hit_rate"),
        "query_p95_ms": server.get("query_p95_ms"),
        "slow_query_rate": server.get("slow_query_rate"),
        # Seconds after the first request the figures start from; None: they cover the whole run.
        "judged_from_s": judged.excluded_s if judged else None,
        "knee_rps": knee.rps if knee else None,
        "knee_users": knee.users if knee else None,
        "knee_p95_ms": knee.p95_ms if knee else None,
        "limited_by": analysis.limits.limited_by if analysis and analysis.limits else None,
        "verdict": verdict,
        "targets_verdict": analysis.targets_verdict if analysis else None,
        "regression_verdict": analysis.regression_verdict if analysis else None,
        "findings": Jsonb([finding_values(finding) for finding in analysis.findings] if analysis else []),
        "artifacts_uri": str(artifacts),
    }


def finding_values(finding: Finding) -> dict[str, Any]:
    values = asdict(finding)
    values["since_started_at"] = finding.since_started_at.isoformat()
    values["z"] = None if finding.z is None or math.isinf(finding.z) else finding.z
    return values


def endpoint_rows(analysis: Analysis, dag_id: str) -> list[dict[str, Any]]:
    if analysis.run is None or analysis.plan.stress:  # a stress run's endpoint figures mix its steps
        return []
    return [
        {
            "dag_id": dag_id,
            "run_id": analysis.run_id,
            "endpoint": endpoint_name(endpoint),
            "requests": endpoint.requests,
            "failures": endpoint.failures,
            "error_rate": endpoint.error_rate_percent,
            "rps": endpoint.steady_rps,
            "p50_ms": endpoint.p50_ms,
            "p95_ms": endpoint.p95_ms,
            "p99_ms": endpoint.p99_ms,
        }
        for endpoint in analysis.run.judged_figures.endpoints
    ]


def store_run_rows(
    settings: Settings,
    run: dict[str, Any],
    endpoints: list[dict[str, Any]],
    *,
    headline: str | None = None,
    report_uri: str | None = None,
    run_type: str | None = None,
) -> None:
    """The run's registry row, then one row per run and one per endpoint, upserted in one transaction:
    a rerun of the DAG run replaces them. `headline` defaults to the verdict and its reason."""
    from tutormax_ops.core.registry import RunRecord, record_run
    from tutormax_ops.core.storage import replace_run_rows, upsert_rows

    schema = settings.storage.results_schema
    reason = f": {run['invalid_reason']}" if run["invalid_reason"] else ""
    record = RunRecord(
        dag_id=run["dag_id"],
        run_id=run["run_id"],
        kind="load_test",
        run_type=run_type,
        started_at=run["started_at"],
        status=run["verdict"],
        headline=f"{run['profile']} load test, {run['users']} users: "
        + (headline or f"{run['verdict']}{reason}"),
        details={"profile": run["profile"], "users": run["users"], "valid": run["valid"]},
        artifacts_uri=run["artifacts_uri"],
        report_uri=report_uri,
    )
    with results_db(settings) as conn, conn.transaction():
        record_run(conn, schema, record)
        upsert_rows(conn, schema, "loadtest_runs", [run], key=("dag_id", "run_id"))
        replace_run_rows(
            conn,
            schema,
            "loadtest_endpoints",
            endpoints,
            dag_id=run["dag_id"],
            run_id=run["run_id"],
            key=("dag_id", "run_id", "endpoint"),
        )
