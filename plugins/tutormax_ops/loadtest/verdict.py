"""Verdict 1, the targets: the seed's table on the aggregate, on each endpoint and at a stress run's knee."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk.exceptions import AirflowFailException

from tutormax_ops.core.config import Targets

if TYPE_CHECKING:
    from tutormax_ops.collectors.locust import EndpointMetrics


# Locust's "current" percentiles cover its last 10 s: a stress step's last row describes that step
# alone once the step has run this long.
LOCUST_CURRENT_WINDOW_S = 10


class LoadTestVerdict(AirflowFailException):
    """The run did not pass (target breach, regression or invalid); its email, if `notify` asked for
    one, went out before."""


@dataclass(frozen=True)
class TargetCheck:
    scope: str  # an endpoint, or "all endpoints"
    metric: str
    value: float | None
    target: float
    comparison: Literal["<", ">", "≥"]
    unit: str
    status: Literal["pass", "fail", "n/a"]
    note: str = ""


@dataclass(frozen=True)
class LoadStep:
    """One step of a stress run, measured after Locust's 10 s window has filled with it."""

    users: int
    seconds: float
    rps: float
    error_rate: float | None
    p95_ms: float | None
    meets_targets: bool


def load_steps(history_csv: Path, targets: Targets) -> list[LoadStep]:
    """The stress profile's steps from the full history: throughput from the cumulative counts over
    the settled part of each step, p95 from Locust's current window at the step's end."""
    with history_csv.open(newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if row["Name"] == "Aggregated" and int(row["User Count"]) > 0
        ]
    steps = []
    for users, group in _runs_of(rows, key=lambda row: int(row["User Count"])):
        first = int(group[0]["Timestamp"])
        settled = [
            row
            for row in group
            if int(row["Timestamp"]) - first >= min(LOCUST_CURRENT_WINDOW_S, len(group) // 3)
        ]
        if len(settled) < 2:
            continue
        start, end = settled[0], settled[-1]
        seconds = int(end["Timestamp"]) - int(start["Timestamp"])
        requests = int(end["Total Request Count"]) - int(start["Total Request Count"])
        failures = int(end["Total Failure Count"]) - int(start["Total Failure Count"])
        error_rate = 100.0 * failures / requests if requests else None
        p95 = float(end["95%"]) if end["95%"] not in ("", "N/A") else None
        meets = (
            p95 is not None and p95 < targets.p95_api_ms and (error_rate or 0.0) < targets.error_rate_percent
        )
        steps.append(LoadStep(users, float(seconds), requests / seconds, error_rate, p95, meets))
    return steps


def knee(steps: Sequence[LoadStep]) -> LoadStep | None:
    """The highest steady throughput at which p95 and the error rate still meet the targets."""
    return max((step for step in steps if step.meets_targets), key=lambda step: step.rps, default=None)


def _runs_of(
    rows: Sequence[dict[str, str]], *, key: Callable[[dict[str, str]], int]
) -> list[tuple[int, list[dict[str, str]]]]:
    groups: list[tuple[int, list[dict[str, str]]]] = []
    for row in rows:
        if groups and groups[-1][0] == key(row):
            groups[-1][1].append(row)
        else:
            groups.append((key(row), [row]))
    return groups


def check_targets(
    *,
    aggregate: EndpointMetrics | None,
    endpoints: Sequence[EndpointMetrics],
    cache_hit_rate: float | None,
    query_p95_ms: float | None,
    targets: Targets,
    min_endpoint_requests: int,
    stress_knee: LoadStep | None = None,
    stress: bool = False,
    unmeasured: Mapping[str, str] | None = None,
) -> list[TargetCheck]:
    """The seed's table, on the aggregate and on each endpoint with enough requests to mean something.
    A stress run is judged at its knee: beyond it, missing the targets is the point of the test."""
    from tutormax_ops.loadtest.regression import AGGREGATE

    why = unmeasured or {}
    checks: list[TargetCheck] = []
    if stress:
        knee_rps = stress_knee.rps if stress_knee else None
        at = f"at {stress_knee.users} users" if stress_knee else ""
        missed = "no step met the p95 and error-rate targets"
        checks.append(
            _check(
                AGGREGATE, "knee_rps", knee_rps, targets.throughput_rps, "≥", "req/s", note=at, missing=missed
            )
        )
    elif aggregate is not None:
        checks += [
            _p95_check(AGGREGATE, aggregate, targets),
            _check(
                AGGREGATE,
                "rps",
                aggregate.steady_rps,
                targets.throughput_rps,
                "≥",
                "req/s",
                note="steady state",
            ),
            _check(
                AGGREGATE, "error_rate", aggregate.error_rate_percent, targets.error_rate_percent, "<", "%"
            ),
        ]
    checks += [
        _check(
            AGGREGATE,
            "cache_hit_rate",
            cache_hit_rate,
            targets.cache_hit_rate_percent,
            ">",
            "%",
            missing=why.get("cache_hit_rate", "not measured"),
        ),
        _check(
            AGGREGATE,
            "query_p95_ms",
            query_p95_ms,
            targets.p95_query_ms,
            "<",
            "ms",
            note="estimate",
            missing=why.get("query_p95_ms", "not measured"),
        ),
    ]
    if not stress:
        for endpoint in endpoints:
            name = endpoint_name(endpoint)
            if endpoint.requests < min_endpoint_requests:
                few = (
                    f"not judged: {endpoint.requests} requests, a p95 needs at least {min_endpoint_requests}"
                )
                checks.append(_check(name, "p95_ms", None, targets.p95_api_ms, "<", "ms", missing=few))
                continue
            checks += [
                _p95_check(name, endpoint, targets),
                _check(name, "error_rate", endpoint.error_rate_percent, targets.error_rate_percent, "<", "%"),
            ]
    return checks


def _p95_check(scope: str, metrics: EndpointMetrics, targets: Targets) -> TargetCheck:
    """The seed's "p95 API time" is the service's own (its X-Response-Time header): judged by that
    where the service sends it, with Locust's client-side p95 and the gap beside it, labelled."""
    if metrics.server_p95_ms is None:
        note = "client-side (Locust): the service sent no X-Response-Time"
        return _check(scope, "p95_ms", metrics.p95_ms, targets.p95_api_ms, "<", "ms", note=note)
    client = "—" if metrics.p95_ms is None else f"{metrics.p95_ms:g} ms"
    gap = (
        ""
        if metrics.p95_ms is None
        else f", {metrics.p95_ms - metrics.server_p95_ms:+.0f} ms outside the handler"
    )
    note = f"service's X-Response-Time (the seed's definition); client-side (Locust) p95 {client}{gap}"
    return _check(scope, "p95_ms", metrics.server_p95_ms, targets.p95_api_ms, "<", "ms", note=note)


def _check(
    scope: str,
    metric: str,
    value: float | None,
    target: float,
    comparison: Literal["<", ">", "≥"],
    unit: str,
    *,
    note: str = "",
    missing: str = "not measured",
) -> TargetCheck:
    if value is None:
        return TargetCheck(scope, metric, value, target, comparison, unit, "n/a", missing)
    if metric in ("rps", "knee_rps") and target <= 0:
        return TargetCheck(scope, metric, value, target, comparison, unit, "n/a", "no throughput target")
    met = {"<": value < target, ">": value > target, "≥": value >= target}[comparison]
    return TargetCheck(scope, metric, value, target, comparison, unit, "pass" if met else "fail", note)


def endpoint_name(endpoint: EndpointMetrics) -> str:
    return f"{endpoint.method} {endpoint.name}".strip()


def enforce_verdict(result: Mapping[str, Any]) -> str:
    """Fail the DAG run on anything but a pass, so the run's state tells what the email told."""
    if result["verdict"] != "pass":
        raise LoadTestVerdict(f"load test {result['profile']}: {result['headline']}")
    return result["verdict"]
