"""Verdict 1: target checks (the stress profile's steps and knee: test_stress.py)."""

from __future__ import annotations

from dataclasses import replace

from loadtest.factories import SETTINGS, endpoint
from tutormax_ops.core.settings_base import Targets
from tutormax_ops.loadtest.verdict import check_targets


def test_targets_are_checked_on_the_aggregate_and_on_busy_endpoints() -> None:
    slow = endpoint("/api/tutors/{tutor_id}/dashboard", p95=250)
    quiet = endpoint("/api/admin/overview", requests=5, p95=900)
    checks = check_targets(
        aggregate=endpoint("Aggregated", p95=120),
        endpoints=[slow, quiet, endpoint("/api/tutors", failures=3)],
        cache_hit_rate=85.0,
        query_p95_ms=None,
        targets=Targets(),
        min_endpoint_requests=20,
        unmeasured={"query_p95_ms": "pg_stat_statements is not installed"},
    )
    by_key = {(check.scope, check.metric): check for check in checks}
    assert by_key[("all endpoints", "p95_ms")].status == "pass"
    assert by_key[("all endpoints", "rps")].status == "pass"
    assert by_key[("all endpoints", "cache_hit_rate")].status == "pass"
    assert by_key[("all endpoints", "query_p95_ms")].status == "n/a"
    assert by_key[("all endpoints", "query_p95_ms")].note == "pg_stat_statements is not installed"
    assert by_key[("GET /api/tutors/{tutor_id}/dashboard", "p95_ms")].status == "fail"
    assert by_key[("GET /api/admin/overview", "p95_ms")].status == "n/a"  # 5 requests say nothing
    assert by_key[("GET /api/tutors", "error_rate")].status == "fail"  # 3 % ≥ 1 %


def test_the_boundaries_follow_the_seeds_wording() -> None:
    at_limits = check_targets(
        aggregate=replace(endpoint("Aggregated", p95=200), steady_rps=200.0),
        endpoints=[],
        cache_hit_rate=80.0,
        query_p95_ms=100.0,
        targets=Targets(),
        min_endpoint_requests=20,
    )
    statuses = {check.metric: check.status for check in at_limits}
    # "p95 under 200", "at least 200 req/s", "above 80 %", "under 100 ms"
    assert statuses == {
        "p95_ms": "fail",
        "rps": "pass",
        "error_rate": "pass",
        "cache_hit_rate": "fail",
        "query_p95_ms": "fail",
    }


def test_a_profile_without_a_throughput_target_does_not_judge_throughput() -> None:
    checks = check_targets(
        aggregate=replace(endpoint("Aggregated"), steady_rps=19.0),
        endpoints=[],
        cache_hit_rate=None,
        query_p95_ms=None,
        targets=SETTINGS.targets_for("smoke"),
        min_endpoint_requests=20,
    )
    assert next(check for check in checks if check.metric == "rps").status == "n/a"


def test_the_p95_target_is_judged_by_the_services_own_time_when_it_sends_one() -> None:
    measured = replace(endpoint("Aggregated", p95=230), server_p95_ms=180.0, server_requests=100)
    client_only = endpoint("/api/tutors", p95=230)
    checks = check_targets(
        aggregate=measured,
        endpoints=[client_only],
        cache_hit_rate=None,
        query_p95_ms=None,
        targets=Targets(),
        min_endpoint_requests=72,
    )
    by_key = {(check.scope, check.metric): check for check in checks}
    aggregate = by_key[("all endpoints", "p95_ms")]
    assert (aggregate.value, aggregate.status) == (180.0, "pass")
    assert "X-Response-Time" in aggregate.note and "client-side (Locust) p95 230 ms, +50 ms" in aggregate.note
    client = by_key[("GET /api/tutors", "p95_ms")]
    assert (client.value, client.status) == (230, "fail") and client.note.startswith("client-side (Locust)")
