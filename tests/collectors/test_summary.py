"""build_summary is a pure function: table-driven cases over the thresholds' boundaries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from tutormax_ops.collectors.redis import CacheStats
from tutormax_ops.collectors.summary import build_summary
from tutormax_ops.core.config import Alerts
from tutormax_ops.core.settings_base import Targets

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Queries:
    """The fields of the PostgreSQL collector's QueryStats that the summary reads."""

    total_queries: int | None = 15234
    slow_queries: int | None = 234
    slow_query_rate: float | None = 1.54
    avg_time_ms: float | None = 45.2
    p95_time_ms: float | None = 89.3
    p95_is_estimate: bool = True
    available: bool = True
    reason: str | None = None
    fix: str | None = None


def cache(rate: float | None = 87.4, **fields: object) -> CacheStats:
    return CacheStats(connected=True, hits=8542, misses=1234, hit_rate_percent=rate, **fields)


HEALTHY = [("general", "info")]

# (id, cache, queries, api_p95_ms, error_rate_percent, expected score, expected (type, severity)s)
CASES = [
    ("seed example is healthy", cache(), Queries(), None, None, 100.0, HEALTHY),
    ("cache above target", cache(80.1), Queries(), None, None, 100.0, HEALTHY),
    ("cache exactly at target misses it", cache(80.0), Queries(), None, None, 90.0, [("cache", "warning")]),
    ("cache between alert and target", cache(75.0), Queries(), None, None, 90.0, [("cache", "warning")]),
    (
        "cache exactly at alert is only a target miss",
        cache(70.0),
        Queries(),
        None,
        None,
        90.0,
        [("cache", "warning")],
    ),
    ("cache below alert", cache(69.9), Queries(), None, None, 70.0, [("cache", "critical")]),
    ("cache without lookups costs nothing", cache(None), Queries(), None, None, 100.0, HEALTHY),
    (
        "cache unreachable",
        CacheStats(connected=False, error="ConnectionError: refused"),
        Queries(),
        None,
        None,
        70.0,
        [("cache", "critical")],
    ),
    ("query p95 under target", cache(), Queries(p95_time_ms=99.9), None, None, 100.0, HEALTHY),
    ("query p95 at target", cache(), Queries(p95_time_ms=100.0), None, None, 85.0, [("query", "warning")]),
    ("slow rate at alert", cache(), Queries(slow_query_rate=15.0), None, None, 100.0, HEALTHY),
    (
        "slow rate past alert",
        cache(),
        Queries(slow_query_rate=15.01),
        None,
        None,
        80.0,
        [("query", "critical")],
    ),
    ("api p95 under target", cache(), Queries(), 199.0, None, 100.0, HEALTHY),
    ("api p95 at target (bucket 200)", cache(), Queries(), 200.0, None, 90.0, [("api", "warning")]),
    ("api p95 at alert", cache(), Queries(), 300.0, None, 90.0, [("api", "warning")]),
    ("api p95 past alert", cache(), Queries(), 310.0, None, 70.0, [("api", "critical")]),
    ("error rate at ceiling", cache(), Queries(), None, 1.0, 100.0, HEALTHY),
    ("error rate past alert replaces target", cache(), Queries(), None, 1.5, 70.0, [("errors", "critical")]),
    (
        "two misses add up",
        cache(75.0),
        Queries(p95_time_ms=120.0),
        None,
        None,
        75.0,
        [("cache", "warning"), ("query", "warning")],
    ),
    (
        "everything wrong clamps at 0",
        CacheStats(connected=False, error="TimeoutError"),
        Queries(p95_time_ms=500.0, slow_query_rate=40.0),
        900.0,
        12.0,
        0.0,
        [
            ("api", "critical"),
            ("errors", "critical"),
            ("query", "warning"),
            ("query", "critical"),
            ("cache", "critical"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("cache_stats", "queries", "api_p95_ms", "error_rate", "score", "kinds"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_health_score_and_recommendations(cache_stats, queries, api_p95_ms, error_rate, score, kinds) -> None:
    summary = build_summary(
        cache_stats,
        queries,
        targets=Targets(),
        alerts=Alerts(),
        api_p95_ms=api_p95_ms,
        error_rate_percent=error_rate,
        now=NOW,
    )
    assert summary.health_score == score
    assert [(rec.type, rec.severity) for rec in summary.recommendations] == kinds
    assert all(rec.message and rec.suggestion for rec in summary.recommendations)


def test_seed_shape() -> None:
    summary = build_summary(cache(), Queries(), targets=Targets(), alerts=Alerts(), now=NOW)
    as_json = dataclasses.asdict(summary)
    assert set(as_json) == {"timestamp", "health_score", "cache", "queries", "recommendations"}
    assert as_json["cache"] == {"hits": 8542, "misses": 1234, "hit_rate_percent": 87.4, "connected": True}
    assert as_json["queries"] == {
        "total_queries": 15234,
        "slow_queries": 234,
        "slow_query_rate": 1.54,
        "avg_time_ms": 45.2,
        "p95_time_ms": 89.3,
        "p95_is_estimate": True,
    }
    assert list(as_json["recommendations"]) == [
        {
            "type": "general",
            "severity": "info",
            "message": "Performance metrics are healthy",
            "suggestion": "Continue monitoring for degradation",
        }
    ]
    assert summary.timestamp == NOW


def test_messages_name_the_figure_and_the_threshold() -> None:
    summary = build_summary(cache(65.04), Queries(), targets=Targets(), alerts=Alerts(), now=NOW)
    assert summary.recommendations[0].message == "Cache hit rate 65.0% is below the alert level of 70%"


def test_thresholds_come_from_the_settings() -> None:
    relaxed = Targets(p95_api_ms=250)
    assert (
        build_summary(cache(), Queries(), targets=relaxed, alerts=Alerts(), api_p95_ms=240).health_score
        == 100
    )
    strict = Alerts(cache_hit_rate_percent=90)
    summary = build_summary(cache(87.4), Queries(), targets=Targets(), alerts=strict)
    assert [(rec.type, rec.severity) for rec in summary.recommendations] == [("cache", "critical")]


def test_window_figures_win_over_since_start() -> None:
    stats = cache(50.0, window_hits=9, window_misses=1, window_hit_rate_percent=90.0, window_evicted_keys=0)
    summary = build_summary(stats, Queries(), targets=Targets(), alerts=Alerts(), now=NOW)
    assert (summary.cache.hits, summary.cache.misses, summary.cache.hit_rate_percent) == (9, 1, 90.0)
    assert summary.health_score == 100


def test_evictions_point_at_maxmemory() -> None:
    summary = build_summary(cache(60.0, evicted_keys=42), Queries(), targets=Targets(), alerts=Alerts())
    assert "evicted 42 keys" in summary.recommendations[0].suggestion


def test_unavailable_query_stats_say_how_to_fix_and_cost_nothing() -> None:
    unavailable = Queries(
        None,
        None,
        None,
        None,
        None,
        available=False,
        reason="pg_stat_statements must be loaded via shared_preload_libraries",
        fix="add pg_stat_statements to shared_preload_libraries in postgresql.conf and restart the server",
    )
    summary = build_summary(cache(), unavailable, targets=Targets(), alerts=Alerts(), now=NOW)
    assert summary.queries is not None and summary.queries.p95_time_ms is None
    assert summary.health_score == 100
    [recommendation] = summary.recommendations
    assert (recommendation.type, recommendation.severity) == ("query", "warning")
    assert unavailable.reason in recommendation.message
    assert recommendation.suggestion == unavailable.fix


def test_queries_not_collected() -> None:
    summary = build_summary(cache(), None, targets=Targets(), alerts=Alerts(), now=NOW)
    assert summary.queries is None
    assert [(rec.type, rec.severity) for rec in summary.recommendations] == [("query", "warning")]
