"""Step 5, `notify`: the trend and CPU charts, report.html, email.html, summary.json, and the email."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.config import Settings
from tutormax_ops.core.links import stored_file_url
from tutormax_ops.loadtest.history import finding_values
from tutormax_ops.loadtest.runner import PREFIX
from tutormax_ops.loadtest.verdict import endpoint_name

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from tutormax_ops.collectors.locust import EndpointMetrics
    from tutormax_ops.loadtest.model import Analysis


REPORT_FILE = "report.html"  # the run's report: the registry, the email and the page link it
LOCUST_REPORT = f"{PREFIX}.html"  # Locust's own HTML report, about 1 MB: linked, never attached
REPORT_FILES = (REPORT_FILE, "email.html", "summary.json", "endpoints.csv", "trend.png")
STRESS_CHART = "stress.png"  # a stress run's req/s and p95 against users, in the report and the email
EMAIL_CHARTS = ("trend.png", STRESS_CHART)  # what the email carries: its inline charts (cid:)


@dataclass(frozen=True)
class EndpointComparison:
    endpoint: str
    requests: int
    p50_ms: float | None
    p95_ms: float | None
    p95_low_ms: float | None  # this run's own confidence interval of its p95
    server_p95_ms: float | None  # the service's own p95 (X-Response-Time), where it sends one
    p95_high_ms: float | None
    baseline_p95_ms: float | None
    p95_change: float | None  # relative
    min_step: float | None  # the smallest relative p95 step this history and sample could flag
    error_rate: float | None
    baseline_error_rate: float | None
    rps: float | None
    status: str


def endpoint_comparisons(analysis: Analysis, baseline_runs: int) -> list[EndpointComparison]:
    """Each endpoint against its baseline: the robust rule's reference where it was judged (flagged
    runs left out), else the median of its last `baseline_runs` history values."""
    import statistics

    if analysis.run is None:
        return []
    judged = {(verdict.scope, verdict.metric): verdict for verdict in analysis.regression}

    def baseline(name: str, metric: str) -> float | None:
        if (verdict := judged.get((name, metric))) is not None:
            return verdict.baseline
        values = [run["endpoints"][name][metric] for run in analysis.history if name in run["endpoints"]]
        values = [value for value in values if value is not None][-baseline_runs:]
        return statistics.median(values) if values else None

    rows = []
    for endpoint in analysis.run.judged_figures.endpoints:
        name = endpoint_name(endpoint)
        base_p95 = baseline(name, "p95_ms")
        p95_verdict = judged.get((name, "p95_ms"))
        rows.append(
            EndpointComparison(
                endpoint=name,
                requests=endpoint.requests,
                p50_ms=endpoint.p50_ms,
                p95_ms=endpoint.p95_ms,
                p95_low_ms=endpoint.p95_low_ms,
                server_p95_ms=endpoint.server_p95_ms,
                p95_high_ms=endpoint.p95_high_ms,
                baseline_p95_ms=base_p95,
                p95_change=(endpoint.p95_ms - base_p95) / base_p95
                if base_p95 and endpoint.p95_ms is not None
                else None,
                min_step=p95_verdict.min_step if p95_verdict else None,
                error_rate=endpoint.error_rate_percent,
                baseline_error_rate=baseline(name, "error_rate"),
                rps=endpoint.steady_rps,
                status=_status(analysis, name, endpoint.requests),
            )
        )
    return rows


@dataclass(frozen=True)
class JudgedBesideWhole:
    """One scope's judged figures (the steady state) beside the whole run's, where they differ."""

    scope: str
    judged: EndpointMetrics
    whole: EndpointMetrics


def judged_beside_whole(analysis: Analysis) -> list[JudgedBesideWhole]:
    """The aggregate, then each endpoint, whose judged figures differ from its whole run's."""
    from tutormax_ops.collectors.locust_seconds import STEADY_STATE
    from tutormax_ops.loadtest.regression import AGGREGATE

    if analysis.run is None or analysis.run.judged_figures.basis != STEADY_STATE:
        return []
    judged = analysis.run.judged_figures
    whole = {endpoint_name(e): e for e in analysis.run.endpoints}
    pairs = [(AGGREGATE, judged.aggregate, analysis.run.aggregate)]
    pairs += [
        (endpoint_name(e), e, whole[endpoint_name(e)]) for e in judged.endpoints if endpoint_name(e) in whole
    ]

    def figures(metrics: EndpointMetrics) -> tuple:
        return (metrics.requests, metrics.failures, metrics.p50_ms, metrics.p95_ms, metrics.p99_ms,
                metrics.server_p95_ms)  # fmt: skip

    return [JudgedBesideWhole(scope, a, b) for scope, a, b in pairs if figures(a) != figures(b)]


def judged_sentence(analysis: Analysis) -> str:
    """What the verdicts judged, what was left out and why, in one sentence."""
    from tutormax_ops.collectors.locust_seconds import STEADY_STATE

    if analysis.run is None or analysis.plan.stress:
        return ""
    judged = analysis.run.judged_figures
    if judged.basis != STEADY_STATE:
        return (
            f"Judged on the whole run, ramp-up and warm-up included: {judged.note}."
            if judged.note
            else "Judged on the whole run, ramp-up and warm-up included."
        )
    plan = analysis.plan
    ramp = plan.users / plan.spawn_rate
    return (
        f"Judged on the steady state only ({judged.seconds or 0:.0f} s, {judged.aggregate.requests} requests): "
        f"the first {judged.excluded_s or 0:.0f} s were left out, the ramp-up to {plan.users} users "
        f"({ramp:.0f} s at {plan.spawn_rate:g}/s) and the warm-up after it, because requests made while "
        "users are still arriving and pools and caches are still filling describe neither the service at "
        "its planned load nor a change in it; the whole run's figures are shown beside where they differ."
    )


def _judged_summary(analysis: Analysis) -> dict[str, Any] | None:
    if analysis.run is None:
        return None
    judged = analysis.run.judged_figures
    return {
        "basis": judged.basis,
        "start": judged.start.isoformat() if judged.start else None,
        "end": judged.end.isoformat() if judged.end else None,
        "excluded_s": judged.excluded_s,
        "note": judged.note,
        "sentence": judged_sentence(analysis),
    }


def _status(analysis: Analysis, name: str, requests: int) -> str:
    """The worst that applies: a regression, a missed target, then what the history said; an
    endpoint with too few requests is not judged, and says why."""
    if any(finding.scope == name for finding in analysis.findings):
        return "regression"
    if any(check.scope == name and check.status == "fail" for check in analysis.checks):
        return "target missed"
    statuses = {verdict.status for verdict in analysis.regression if verdict.scope == name}
    for status in ("ok", "insufficient history"):
        if status in statuses:
            return status
    if requests < analysis.min_requests:
        basis = analysis.run.judged_figures.basis if analysis.run else ""
        within = f" in the {basis}" if basis else ""
        return f"not judged: {requests} requests{within}, a p95 needs at least {analysis.min_requests}"
    return "not judged"


def min_detectable_step(comparisons: list[EndpointComparison]) -> float | None:
    """The median over judged endpoints of the smallest p95 step their history and sample can flag."""
    import statistics

    steps = [row.min_step for row in comparisons if row.min_step is not None]
    return statistics.median(steps) if steps else None


def trend_chart(analysis: Analysis) -> bytes:
    """p95 per run: the aggregate, and every endpoint that regressed (else the three busiest)."""
    from tutormax_ops.core import reports
    from tutormax_ops.loadtest.regression import AGGREGATE

    runs = [
        *analysis.history,
        {"run_id": analysis.run_id, "started_at": analysis.started_at, **_current_row(analysis)},
    ]
    if analysis.plan.stress:  # its history holds the knee, not whole-run figures
        return reports.line_chart_png(
            {
                metric: [(run["started_at"], run.get(metric)) for run in runs]
                for metric in ("knee_rps", "knee_p95_ms")
            },
            title=f"knee per run: profile {analysis.plan.profile}, up to {analysis.plan.users} users",
            ylabel="req/s, ms",
        )
    scopes = list(dict.fromkeys(finding.scope for finding in analysis.findings if finding.scope != AGGREGATE))
    if not scopes and analysis.run:
        busiest = sorted(analysis.run.judged_figures.endpoints, key=lambda e: -e.requests)[:3]
        scopes = [endpoint_name(e) for e in busiest]
    series = {
        f"{scope} p95": [(run["started_at"], run["endpoints"].get(scope, {}).get("p95_ms")) for run in runs]
        for scope in scopes
    }
    series = {AGGREGATE + " p95": [(run["started_at"], run.get("p95_ms")) for run in runs], **series}
    return reports.line_chart_png(
        series,
        title=f"p95 per run: profile {analysis.plan.profile}, {analysis.plan.users} users",
        ylabel="ms",
    )


def _current_row(analysis: Analysis) -> dict[str, Any]:
    if analysis.knee is not None:
        return {"knee_rps": analysis.knee.step.rps, "knee_p95_ms": analysis.knee.step.p95_ms, "endpoints": {}}
    if analysis.run is None:
        return {"p95_ms": None, "endpoints": {}}
    judged = analysis.run.judged_figures  # what the history stores
    return {
        "p95_ms": judged.aggregate.p95_ms,
        "endpoints": {endpoint_name(e): {"p95_ms": e.p95_ms} for e in judged.endpoints},
    }


def cpu_chart(analysis: Analysis, samples_csv: ObjectStoragePath) -> bytes | None:
    from tutormax_ops.core import reports

    if not samples_csv.exists():
        return None
    series: dict[str, list[tuple[float, float]]] = {}
    for row in csv.DictReader(samples_csv.read_text().splitlines()):
        series.setdefault(row["role"], []).append((float(row["elapsed_s"]), float(row["cpu_percent"])))
    return (
        reports.line_chart_png(
            series,
            title="CPU: locust and the service in % of one core; host and steal in % of all cores",
            ylabel="%",
        )
        if series
        else None
    )


def write_reports(analysis: Analysis, artifacts: ObjectStoragePath, settings: Settings) -> None:
    from tutormax_ops.collectors.locust import PERCENTILE_ROUNDING
    from tutormax_ops.collectors.locust_seconds import route_grouping_note
    from tutormax_ops.core import reports
    from tutormax_ops.loadtest.explain import likely_cause
    from tutormax_ops.loadtest.gap import judge_gap
    from tutormax_ops.loadtest.regression import METRICS
    from tutormax_ops.loadtest.stress import METHOD, SETTLE_S, stress_chart
    from tutormax_ops.web.plugin import URL_PREFIX

    trend = trend_chart(analysis)
    cpu = cpu_chart(analysis, artifacts / "cpu_samples.csv")
    targets = settings.targets_for(analysis.plan.profile)
    stress = (
        stress_chart(
            analysis.steps,
            analysis.knee,
            targets,
            title=f"Stress: {analysis.plan.step_users} users every {analysis.plan.step_seconds} s",
        )
        if analysis.steps
        else None
    )
    if stress is not None:
        (artifacts / STRESS_CHART).write_bytes(stress)
    comparisons = endpoint_comparisons(analysis, settings.loadtest.regression.reference_runs)
    samples = artifacts / "cpu_samples.csv"
    gap = judge_gap(
        analysis.run,
        analysis.plan,
        samples,
        analysis.outcome,
        settings.loadtest,
        min_requests=analysis.min_requests,
    )
    context = {
        "likely_cause": likely_cause(analysis),
        "statements_url": f"{URL_PREFIX}/api/performance/database/slow-queries",
        "judged_sentence": judged_sentence(analysis),
        "judged_rows": judged_beside_whole(analysis),
        "analysis": analysis,
        "plan": analysis.plan,
        "targets": targets,
        "stress_method": METHOD.format(settle=SETTLE_S),
        "comparisons": comparisons,
        "min_step": min_detectable_step(comparisons),
        "false_alarm_rate": settings.loadtest.regression.false_alarm_rate,
        "rounding_note": PERCENTILE_ROUNDING,
        "route_note": route_grouping_note(artifacts),
        "labels": {name: spec.label for name, spec in METRICS.items()},
        "cpu_saturation": settings.loadtest.cpu_saturation_percent,
        "gap": gap,
        "artifacts_uri": str(artifacts),
        # Absolute links through the plugin (None without Airflow's base_url): the email links the
        # reports instead of attaching Locust's (about 1 MB).
        "report_url": stored_file_url(settings, str(artifacts / REPORT_FILE)),
        "locust_url": stored_file_url(settings, str(artifacts / LOCUST_REPORT))
        if (artifacts / LOCUST_REPORT).exists()
        else None,
        "files": sorted({path.name for path in artifacts.iterdir()} | set(REPORT_FILES)),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (artifacts / "trend.png").write_bytes(trend)
    (artifacts / REPORT_FILE).write_text(
        reports.render(
            "loadtest_report.html",
            **context,
            trend_src=reports.data_uri_png(trend),
            cpu_src=reports.data_uri_png(cpu) if cpu else None,
            stress_src=reports.data_uri_png(stress) if stress else None,
        )
    )
    (artifacts / "email.html").write_text(
        reports.render(
            "loadtest_email.html",
            **context,
            trend_src="cid:trend.png",
            stress_src=f"cid:{STRESS_CHART}" if stress else None,
        )
    )
    summary = {
        "verdict": analysis.verdict,
        "headline": analysis.headline(),
        "plan": asdict(analysis.plan),
        "valid": analysis.valid,
        "invalid_reasons": list(analysis.invalid_reasons),
        "targets_verdict": analysis.targets_verdict,
        "regression_verdict": analysis.regression_verdict,
        "checks": [asdict(check) for check in analysis.checks],
        "findings": [finding_values(finding) for finding in analysis.findings],
        "recovered_from": analysis.recovered_from["run_id"] if analysis.recovered_from else None,
        "min_detectable_step": min_detectable_step(comparisons),
        "min_requests": analysis.min_requests,
        # What the verdicts judged, and the whole run's figures beside it.
        "aggregate": asdict(analysis.run.judged_figures.aggregate) if analysis.run else None,
        "judged": _judged_summary(analysis),
        "whole_run_aggregate": asdict(analysis.run.aggregate) if analysis.run else None,
        "endpoints": [asdict(row) for row in comparisons],
        "steps": [asdict(step) for step in analysis.steps],
        "knee": {
            **asdict(analysis.knee),
            "described": analysis.knee.describe(),
        }
        if analysis.knee
        else None,
        "limits": asdict(analysis.limits) if analysis.limits else None,
        "gap": {**asdict(gap), "line": gap.line()} if gap else None,
        "likely_cause": context["likely_cause"],
        "suspects": [asdict(suspect) for suspect in analysis.suspects],
        "server": {
            key: analysis.server.get(key)
            for key in ("window", "cache_hit_rate", "query_p95_ms", "slow_query_rate")
        },
        "percentile_rounding": PERCENTILE_ROUNDING,
    }
    (artifacts / "summary.json").write_text(reports.to_json(summary))
    (artifacts / "endpoints.csv").write_text(reports.to_csv([asdict(row) for row in comparisons]))


def should_notify(notify: str, verdict: str, *, recovered: bool = False) -> bool:
    """`on_problem` covers the all-clear too: the first good run after a regression says so."""
    return notify == "always" or (notify == "on_problem" and (verdict != "pass" or recovered))


def notify_run(result: Mapping[str, Any]) -> bool:
    """Email the stored email.html with its charts inline, if the `notify` param asks for it; the
    reports are linked from it, not attached. The history rows were stored by the task before this one."""
    from airflow.sdk import ObjectStoragePath

    from tutormax_ops.core.notify import send_email

    if not should_notify(result["notify"], result["verdict"], recovered=result.get("recovered", False)):
        print(f"no email: notify={result['notify']}, verdict {result['verdict']}")
        return False
    artifacts = ObjectStoragePath(result["artifacts_uri"])
    with tempfile.TemporaryDirectory(prefix="tutormax-email-") as tmp:
        attachments = []
        for name in EMAIL_CHARTS:
            if (artifacts / name).exists():
                (Path(tmp) / name).write_bytes((artifacts / name).read_bytes())
                attachments.append(Path(tmp) / name)
        send_email(
            subject=f"load test {result['profile']}: {result['headline']}"[:250],
            html=(artifacts / "email.html").read_text(),
            attachments=attachments,
        )
    print(f"emailed: {result['headline']}")
    return True
