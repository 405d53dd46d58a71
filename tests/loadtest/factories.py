"""Plans and endpoint figures for the load-test unit tests."""

from __future__ import annotations

from tutormax_ops.collectors.locust import EndpointMetrics, LocustRun
from tutormax_ops.core.config import load_settings
from tutormax_ops.loadtest.model import RunPlan

SETTINGS = load_settings()
HOST = "http://127.0.0.1:8000"


def plan(**overrides) -> RunPlan:
    values = {
        "profile": "smoke",
        "host": HOST,
        "users": 20,
        "spawn_rate": 10.0,
        "run_time_s": 60,
        "processes": 0,
        "notify": "on_problem",
        "trigger": "manual",
    }
    return RunPlan(**{**values, **overrides})


def endpoint(name: str, *, requests: int = 100, failures: int = 0, p95: int | None = 40) -> EndpointMetrics:
    return EndpointMetrics(
        method="GET",
        name=name,
        requests=requests,
        failures=failures,
        error_rate_percent=100 * failures / requests,
        avg_ms=10.0,
        min_ms=1.0,
        p50_ms=10,
        p90_ms=30,
        p95_ms=p95,
        p99_ms=60,
        max_ms=90.0,
        steady_rps=250.0,
    )


def locust_run(aggregate: EndpointMetrics, *, cpu_warning: bool = False) -> LocustRun:
    """A 6 s run of one user with only its aggregate: what validity and the gap read."""
    return LocustRun(
        endpoints=(),
        aggregate=aggregate,
        window=None,
        started_at=None,
        ended_at=None,
        duration_s=6.0,
        peak_users=1,
        html_report_present=True,
        cpu_warning=cpu_warning,
    )
