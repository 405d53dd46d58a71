"""Verdict 1, the targets: the seed's table on the aggregate, on each endpoint and at a stress run's knee."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk.exceptions import AirflowFailException

from tutormax_ops.core.settings_base import Targets
from tutormax_ops.loadtest.model import TargetCheck

if TYPE_CHECKING:
    from tutormax_ops.collectors.locust import EndpointMetrics
    from tutormax_ops.loadtest.model import LoadStep


class LoadTestVerdict(AirflowFailException):
    """The run did not pass (target breach, regression or invalid); its email, if `notify` asked for
    one, went out before."""


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
    judged_on: str = "",
) -> list[TargetCheck]:
    """The seed's table, on the aggregate and on each endpoint with enough requests to mean something.
    A stress run is judged at its knee: beyond it, missing the targets is the point of the test.
    `judged_on` names what the figures cover ("steady state", "whole run"), for the notes."""
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
                within = f" in the {judged_on}" if judged_on else ""
                few = f"not judged: {endpoint.requests} requests{within}, a p95 needs at least {min_endpoint_requests}"
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
