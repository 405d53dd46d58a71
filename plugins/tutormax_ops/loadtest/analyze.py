"""Step 4, `analyze`: validity, both verdicts, the history rows and the report of one stored run."""

from __future__ import annotations

import csv
import fnmatch
import json
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutormax_ops.collectors.sampling import min_requests
from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.runs import run_type_of
from tutormax_ops.loadtest.evidence import baseline_evidence, run_evidence, store_evidence
from tutormax_ops.loadtest.explain import BASELINE_RUNS, rank_suspects
from tutormax_ops.loadtest.gap import judge_gap
from tutormax_ops.loadtest.history import endpoint_rows, load_history, run_row, store_run_rows
from tutormax_ops.loadtest.machine import cpu_by_role
from tutormax_ops.loadtest.model import Analysis, RunPlan
from tutormax_ops.loadtest.report import REPORT_FILE, write_reports
from tutormax_ops.loadtest.runner import LOCUST_OUTPUTS, PREFIX
from tutormax_ops.loadtest.series import build_series, current_values, knee_values
from tutormax_ops.loadtest.verdict import check_targets

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


ACCEPTED_VARIABLE = "tutormax_loadtest_accepted_runs"


def analyze_run(
    plan_values: Mapping[str, Any], run_info: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, Any]:
    """Judge the stored run, upsert its history rows, then write report.html and email.html."""
    from airflow.sdk import ObjectStoragePath

    settings = load_settings(with_variable=True)
    plan = RunPlan(**plan_values)
    ti = context["ti"]
    artifacts = ObjectStoragePath(run_info["artifacts_uri"])
    with tempfile.TemporaryDirectory(prefix="tutormax-analysis-") as tmp:
        analysis = judge(plan, ti.run_id, run_info, artifacts, Path(tmp), settings, dag_id=ti.dag_id)
    row = run_row(
        plan,
        ti.dag_id,
        ti.run_id,
        analysis.started_at,
        artifacts,
        valid=analysis.valid,
        invalid_reason="; ".join(analysis.invalid_reasons) or None,
        verdict=analysis.verdict,
        analysis=analysis,
    )
    store_run_rows(
        settings,
        row,
        endpoint_rows(analysis, ti.dag_id),
        headline=analysis.headline(),
        report_uri=str(artifacts / REPORT_FILE),
        run_type=run_type_of(context["dag_run"].run_type),
    )
    if analysis.evidence is not None:
        store_evidence(settings, ti.dag_id, ti.run_id, analysis.evidence)
    write_reports(analysis, artifacts, settings)
    print(f"verdict {analysis.verdict}: {analysis.headline()}")
    return {
        "verdict": analysis.verdict,
        "headline": analysis.headline(),
        "notify": plan.notify,
        "recovered": analysis.recovered_from is not None,
        "profile": plan.profile,
        "artifacts_uri": str(artifacts),
    }


def judge(
    plan: RunPlan,
    run_id: str,
    run_info: Mapping[str, Any],
    artifacts: ObjectStoragePath,
    scratch: Path,
    settings: Settings,
    *,
    dag_id: str,
) -> Analysis:
    from tutormax_ops.collectors.locust import parse_run
    from tutormax_ops.collectors.locust_seconds import SECONDS_GLOB, SERVER_TIMES_GLOB
    from tutormax_ops.loadtest.regression import analyze_history
    from tutormax_ops.loadtest.validity import validate_run

    for name in (*LOCUST_OUTPUTS, *(f"{role}.log" for role in ("locust", "master"))):
        source = artifacts / name
        if source.exists():
            (scratch / name).write_bytes(source.read_bytes())
    for source in artifacts.iterdir():
        if any(fnmatch.fnmatch(source.name, glob) for glob in (SERVER_TIMES_GLOB, SECONDS_GLOB)):
            (scratch / source.name).write_bytes(source.read_bytes())
    outcome = run_info["outcome"]
    cpu, host_cpu = _busiest_cpu(artifacts / "cpu_samples.csv")
    targets = settings.targets_for(plan.profile)
    log_text = "".join(path.read_text(errors="replace") for path in scratch.glob("*.log"))
    params = settings.loadtest.regression
    reasons: list[str] = []
    run = None
    if (scratch / f"{PREFIX}.json").exists():
        run = parse_run(
            csv_prefix=scratch / PREFIX,
            json_path=scratch / f"{PREFIX}.json",
            html_path=scratch / f"{PREFIX}.html",
            log_text=log_text,
            confidence=params.confidence,
            # The steady state, as the server-side window: all users spawned, then the warm-up. A
            # stress run is judged by its own steps.
            steady_after_s=None if plan.stress else plan.measure_after_s(settings.loadtest.warmup_fraction),
        )
        validity = validate_run(
            run,
            planned_duration_s=plan.planned_duration_s,
            cpu_samples=cpu,
            # A stress run saturates a shared machine on purpose: its knee is where the targets break.
            host_cpu_samples=() if plan.stress else host_cpu,
            host_saturation_percent=settings.loadtest.host_saturation_percent,
            cpu_saturation_percent=settings.loadtest.cpu_saturation_percent,
            max_saturated_fraction=settings.loadtest.max_saturated_fraction,
            stall_min_s=settings.loadtest.stall_min_s,
            stall_fraction=settings.loadtest.stall_fraction,
        )
        reasons += validity.reasons
    else:
        reasons.append("locust wrote no JSON results: it did not start or was killed")
    if outcome["stopped_by"]:
        reasons.append(f"the runner stopped locust: {outcome['stopped_by']}")
    failed_exits = {role: code for role, code in outcome["exit_codes"].items() if code not in (0, None)}
    if failed_exits:
        reasons.append(f"locust exited with {failed_exits} (see the locust log)")
    steps, stress_knee, limits = [], None, None
    if plan.stress and run is not None:
        from tutormax_ops.loadtest.stress import measure_stress

        steps, stress_knee, limits = measure_stress(
            plan, scratch, artifacts / "cpu_samples.csv", outcome, settings, targets
        )
    server = run_info["server"]
    server_details = json.loads((artifacts / "server_metrics.json").read_text())
    judged = run.judged_figures if run else None
    checks = check_targets(
        aggregate=judged.aggregate if judged else None,
        endpoints=judged.endpoints if judged else (),
        cache_hit_rate=server["cache_hit_rate"],
        query_p95_ms=server["query_p95_ms"],
        targets=targets,
        min_endpoint_requests=min_requests(confidence=params.confidence),
        stress_knee=stress_knee.step if stress_knee else None,
        stress=plan.stress,
        unmeasured=_unmeasured(server_details),
        judged_on=judged.basis if judged else "",
    )
    started_at = datetime.fromisoformat(outcome["started_at"])
    history = load_history(settings, plan, dag_id, run_id)
    valid = not reasons
    regression = ()
    accepted = _accepted_runs()
    if valid and run is not None:
        current = (
            knee_values(stress_knee, limits)
            if plan.stress
            else current_values(run, server, min_requests(confidence=params.confidence))
        )
        series = build_series(history, current, run_id, started_at, accepted=accepted)
        regression = tuple(analyze_history(series, params))
    evidence, suspects, explain_note = None, [], ""
    if valid and run is not None and not plan.stress:
        gap = judge_gap(run, plan, artifacts / "cpu_samples.csv", outcome, settings.loadtest)
        evidence = run_evidence(
            run, server_details, gap, min_requests=min_requests(confidence=params.confidence)
        )
        baseline, changes = baseline_evidence(settings, dag_id, started_at, history, runs=BASELINE_RUNS)
        suspects, explain_note = rank_suspects(evidence, baseline, changes)
    return Analysis(
        plan=plan,
        run_id=run_id,
        started_at=started_at,
        valid=valid,
        invalid_reasons=tuple(reasons),
        run=run,
        checks=tuple(checks),
        steps=tuple(steps),
        knee=stress_knee,
        regression=regression,
        history=tuple(history),
        server=server_details,
        outcome=outcome,
        min_requests=min_requests(confidence=params.confidence),
        accepted=accepted,
        limits=limits,
        evidence=evidence,
        suspects=tuple(suspects),
        explain_note=explain_note,
    )


def _accepted_runs() -> tuple[str, ...]:
    """Run ids of flagged runs a person accepted as the new normal: the Airflow Variable
    `tutormax_loadtest_accepted_runs`, a JSON list."""
    from airflow.sdk import Variable

    return tuple(Variable.get(ACCEPTED_VARIABLE, default=[], deserialize_json=True))


def _unmeasured(server: Mapping[str, Any]) -> dict[str, str]:
    """Why a server-side figure is missing, in the words of its collector."""
    reasons = {}
    cache, queries = server.get("cache"), server.get("queries")
    if server.get("cache_hit_rate") is None:
        reasons["cache_hit_rate"] = (
            (cache or {}).get("error")
            or (cache or {}).get("window_note")
            or "; ".join(server["errors"])
            or "no lookups"
        )
    if server.get("query_p95_ms") is None:
        reasons["query_p95_ms"] = (
            f"{queries['reason']}: {queries['fix']}"
            if queries and queries.get("reason")
            else "; ".join(server["errors"])
        ) or "no queries"
    return reasons


def _busiest_cpu(samples_csv: ObjectStoragePath) -> tuple[list[float], list[float]]:
    """Per sample: the busiest locust process's CPU, and the whole machine's."""
    if not samples_csv.exists():
        return [], []
    split = cpu_by_role(csv.DictReader(samples_csv.read_text().splitlines()))
    return split.generator, split.host
