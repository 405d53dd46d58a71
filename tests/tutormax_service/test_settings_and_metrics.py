"""Pure unit tests: settings parsing, URL normalisation, percentiles and the health report."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tutormax_service.db import normalize_url
from tutormax_service.metrics import QueryStats, health_report, percentile
from tutormax_service.settings import Settings, parse_injected_latency


def test_settings_from_env_reads_prefixed_variables() -> None:
    settings = Settings.from_env(
        {
            "TUTORMAX_SERVICE_DATABASE_URL": "postgresql://postgres@db:5432/tutormax",
            "TUTORMAX_SERVICE_REDIS_URL": "redis://cache:6379/2",
            "TUTORMAX_SERVICE_CACHE_TTL_SECONDS": "60",
            "TUTORMAX_SERVICE_INJECTED_LATENCY_MS": "/api/tutors/{tutor_id}/dashboard=150, /health=5.5",
            "TUTORMAX_SERVICE_SLOW_QUERY_MS": "25",
            "UNRELATED": "x",
        }
    )
    assert settings.database_url == "postgresql+psycopg://postgres@db:5432/tutormax"
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.cache_ttl_seconds == 60
    assert settings.injected_latency_ms == {"/api/tutors/{tutor_id}/dashboard": 150.0, "/health": 5.5}
    assert settings.slow_query_ms == 25.0


def test_settings_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.cache_ttl_seconds == 300
    assert settings.slow_query_ms == 100.0
    assert settings.injected_latency_ms == {}
    assert Settings.from_env({"TUTORMAX_SERVICE_INJECTED_LATENCY_MS": ""}).injected_latency_ms == {}


@pytest.mark.parametrize("spec", ["/api/x", "api/x=5", "/api/x=-1", "/api/x=fast"])
def test_bad_injected_latency_is_rejected(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_injected_latency(spec)
    with pytest.raises(ValidationError):
        Settings(injected_latency_ms=spec)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h:1/d", "postgresql+psycopg://u@h:1/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile(values, 50) == 50.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 95) == 0.0


def test_query_stats_window_and_totals() -> None:
    stats = QueryStats(slow_threshold_ms=100, window=10)
    for duration in range(1, 21):  # 20 samples, only the last 10 stay in the window
        stats.record(float(duration), "SELECT 1")
    stats.record(150.0, "SELECT slow")
    snapshot = stats.snapshot()
    assert snapshot["total_queries"] == 21
    assert snapshot["slow_queries"] == 1
    assert snapshot["window_size"] == 10
    assert snapshot["p95_time_ms"] == 150.0
    assert snapshot["slowest"][0] == {"duration_ms": 150.0, "statement": "SELECT slow"}
    stats.reset()
    assert stats.snapshot()["total_queries"] == 0


def test_health_report_healthy_and_degraded() -> None:
    healthy_cache = {"hits": 90, "misses": 10, "hit_rate_percent": 90.0, "connected": True}
    healthy_queries = {"p95_time_ms": 40.0, "slow_query_rate": 1.0}
    score, recommendations = health_report(healthy_cache, healthy_queries)
    assert score == 100.0
    assert recommendations == [
        {
            "type": "general",
            "severity": "info",
            "message": "Performance metrics are healthy",
            "suggestion": "Continue monitoring for degradation",
        }
    ]

    cold_cache = {"hits": 50, "misses": 50, "hit_rate_percent": 50.0, "connected": True}
    slow_queries = {"p95_time_ms": 400.0, "slow_query_rate": 20.0}
    score, recommendations = health_report(cold_cache, slow_queries)
    assert 0 <= score < 50
    assert {(r["type"], r["severity"]) for r in recommendations} == {
        ("cache", "critical"),
        ("database", "warning"),
        ("database", "critical"),
    }

    down = {"hits": 0, "misses": 0, "hit_rate_percent": 0.0, "connected": False}
    score, recommendations = health_report(down, healthy_queries)
    assert recommendations[0]["severity"] == "critical"
    assert score < 70
