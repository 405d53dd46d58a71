"""The seed's `GET /api/performance/summary`: timestamp, health_score, cache, queries and
recommendations, computed from the collectors' results against the configured thresholds.

Thresholds come from `Settings.targets` and `Settings.alerts` (the seed's values are the defaults).
Comparisons follow the seed's wording exactly:
- a target is met when the value is strictly better than it, as the seed's table writes them:
  cache hit rate > 80 %, p95 API < 200 ms, p95 query < 100 ms; the error-rate target, which the seed
  does not have, is a ceiling: met at or below it;
- an alert fires when the value is strictly past it, as the seed's alert code writes them:
  cache hit rate < 70 %, p95 API > 300 ms, slow query rate > 15 %, error rate > 1 %.

health_score
------------
`RULES` holds this table as data. Start at 100 and subtract the penalty of every metric that misses: for a metric with both levels,
only its worst level counts (an alert replaces the target's penalty). Clamp to 0–100, round to 0.1.

| metric | level | condition (defaults) | penalty |
|---|---|---|---|
| cache | unreachable | Redis did not answer | 30 (`CACHE_UNREACHABLE_PENALTY`) |
| cache hit rate | alert | < 70 % | 30 |
| cache hit rate | target | ≤ 80 % | 10 |
| p95 API time | alert | > 300 ms | 30 |
| p95 API time | target | ≥ 200 ms | 10 |
| error rate | alert | > 1 % | 30 |
| error rate | target | > target (1 %) | 10 |
| p95 query time | target | ≥ 100 ms | 15 |
| slow query rate | alert | > 15 % | 20 |

A metric that was not measured costs nothing: API figures not supplied, query statistics unavailable
(their own recommendation says how to fix that), or a cache without a single lookup yet.

The cache figures are those of the window since the previous sample when `cache_stats` was given one,
else those since the server started.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from tutormax_ops.collectors.redis import CacheStats
from tutormax_ops.core.config import Alerts
from tutormax_ops.core.settings_base import Targets

CACHE_UNREACHABLE_PENALTY = 30.0
CACHE_SUGGESTION = "Review cache TTLs (they may be too short) and warm the cache for popular data"
QUERY_SUGGESTION = (
    "Check /api/performance/database/slow-queries and the tables' index-suggestions; "
    "verify the migrations' indexes are applied"
)
API_SUGGESTION = "Check the slow queries and the database CPU; review recent schema and code changes"
ERROR_SUGGESTION = "Read the API logs for the failing requests and the load test's failures file"
HEALTHY = ("general", "info", "Performance metrics are healthy", "Continue monitoring for degradation")


class QueryStatsLike(Protocol):
    """What the summary reads of the PostgreSQL collector's `QueryStats`: the seed's five figures
    (None when pg_stat_statements is unavailable), whether they are available, and if not, why and
    how to fix it."""

    @property
    def available(self) -> bool: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def fix(self) -> str | None: ...
    @property
    def total_queries(self) -> int | None: ...
    @property
    def slow_queries(self) -> int | None: ...
    @property
    def slow_query_rate(self) -> float | None: ...  # percent of total_queries
    @property
    def avg_time_ms(self) -> float | None: ...
    @property
    def p95_time_ms(self) -> float | None: ...
    @property
    def p95_is_estimate(self) -> bool: ...


@dataclass(frozen=True)
class CacheSummary:
    hits: int | None
    misses: int | None
    hit_rate_percent: float | None
    connected: bool


@dataclass(frozen=True)
class QuerySummary:
    total_queries: int | None
    slow_queries: int | None
    slow_query_rate: float | None
    avg_time_ms: float | None
    p95_time_ms: float | None
    p95_is_estimate: bool  # pg_stat_statements stores no percentiles: p95 comes from mean and stddev


@dataclass(frozen=True)
class Recommendation:
    type: str  # cache | query | api | errors | general
    severity: str  # critical (alert level) | warning (target missed, or a figure missing) | info
    message: str
    suggestion: str


@dataclass(frozen=True)
class PerformanceSummary:
    timestamp: datetime
    health_score: float
    cache: CacheSummary
    queries: QuerySummary | None  # None when no query statistics were collected
    recommendations: tuple[Recommendation, ...]


@dataclass(frozen=True)
class Level:
    """One threshold of a metric: `missed(value, threshold)` says the metric misses it."""

    missed: Callable[[float, float], bool]
    field: str  # the `Targets` or `Alerts` field that holds the threshold
    penalty: float
    words: str  # how the message states the miss


@dataclass(frozen=True)
class Rule:
    kind: str
    label: str
    unit: str
    suggestion: str
    alert: Level | None = None
    target: Level | None = None


# The health_score table of the module docstring, as data.
RULES: dict[str, Rule] = {
    "cache_hit_rate": Rule(
        "cache",
        "Cache hit rate",
        "%",
        CACHE_SUGGESTION,
        alert=Level(operator.lt, "cache_hit_rate_percent", 30.0, "below the alert level of"),
        target=Level(operator.le, "cache_hit_rate_percent", 10.0, "not above the target of"),
    ),
    "api_p95_ms": Rule(
        "api",
        "p95 API time",
        " ms",
        API_SUGGESTION,
        alert=Level(operator.gt, "p95_api_ms", 30.0, "above the alert level of"),
        target=Level(operator.ge, "p95_api_ms", 10.0, "not under the target of"),
    ),
    "error_rate_percent": Rule(
        "errors",
        "Error rate",
        "%",
        ERROR_SUGGESTION,
        alert=Level(operator.gt, "error_rate_percent", 30.0, "above the alert level of"),
        target=Level(operator.gt, "error_rate_percent", 10.0, "above the target of"),
    ),
    "query_p95_ms": Rule(
        "query",
        "Estimated p95 query time",
        " ms",
        QUERY_SUGGESTION,
        target=Level(operator.ge, "p95_query_ms", 15.0, "not under the target of"),
    ),
    "slow_query_rate": Rule(
        "query",
        "Slow query rate",
        "%",
        QUERY_SUGGESTION,
        alert=Level(operator.gt, "slow_query_rate_percent", 20.0, "above the alert level of"),
    ),
}


@dataclass(frozen=True)
class _Finding:
    penalty: float
    recommendation: Recommendation


def build_summary(
    cache: CacheStats,
    queries: QueryStatsLike | None,
    *,
    targets: Targets,
    alerts: Alerts,
    api_p95_ms: float | None = None,
    error_rate_percent: float | None = None,
    now: datetime | None = None,
) -> PerformanceSummary:
    """The summary. `queries` is the PostgreSQL collector's `QueryStats` (None: not collected).
    `api_p95_ms` and `error_rate_percent` come from a load test or the service's own metrics; the
    live endpoint has neither and leaves them out."""
    cache_summary = summarize_cache(cache)
    values = {
        "cache_hit_rate": cache_summary.hit_rate_percent,
        "api_p95_ms": api_p95_ms,
        "error_rate_percent": error_rate_percent,
        "query_p95_ms": queries.p95_time_ms if queries else None,
        "slow_query_rate": queries.slow_query_rate if queries else None,
    }
    findings = [
        finding
        for key, rule in RULES.items()
        if (finding := _evaluate(rule, values[key], targets, alerts, _suggestion(rule, cache)))
    ]
    if not cache.connected:
        findings.append(
            _Finding(
                CACHE_UNREACHABLE_PENALTY,
                Recommendation(
                    "cache",
                    "critical",
                    f"Redis is unreachable: {cache.error}",
                    "Check the Redis server and the tutormax_redis connection: every read now hits PostgreSQL",
                ),
            )
        )
    if queries is None or not queries.available:
        reason = (queries.reason if queries else None) or "no query statistics were collected"
        fix = (queries.fix if queries else None) or "collect pg_stat_statements figures with the summary"
        message = f"Query statistics are unavailable: {reason}"
        findings.append(_Finding(0.0, Recommendation("query", "warning", message, fix)))
    score = max(0.0, min(100.0, 100.0 - sum(finding.penalty for finding in findings)))
    return PerformanceSummary(
        timestamp=now or datetime.now(UTC),
        health_score=round(score, 1),
        cache=cache_summary,
        queries=_query_summary(queries),
        recommendations=tuple(finding.recommendation for finding in findings) or (Recommendation(*HEALTHY),),
    )


def summarize_cache(cache: CacheStats) -> CacheSummary:
    """The window's figures when there is a window, else those since the server started."""
    if cache.window_hits is not None:
        return CacheSummary(
            cache.window_hits, cache.window_misses, cache.window_hit_rate_percent, cache.connected
        )
    return CacheSummary(cache.hits, cache.misses, cache.hit_rate_percent, cache.connected)


def _evaluate(
    rule: Rule, value: float | None, targets: Targets, alerts: Alerts, suggestion: str
) -> _Finding | None:
    """At most one finding per metric: its alert level if missed, else its target level if missed."""
    if value is None:
        return None
    for severity, level, thresholds in (("critical", rule.alert, alerts), ("warning", rule.target, targets)):
        if level is None:
            continue
        threshold = getattr(thresholds, level.field)
        if level.missed(value, threshold):
            message = f"{rule.label} {value:.1f}{rule.unit} is {level.words} {threshold:g}{rule.unit}"
            return _Finding(level.penalty, Recommendation(rule.kind, severity, message, suggestion))
    return None


def _suggestion(rule: Rule, cache: CacheStats) -> str:
    """Evictions explain a low hit rate better than TTLs do: say so when Redis evicted keys."""
    evicted = cache.window_evicted_keys if cache.window_hits is not None else cache.evicted_keys
    if rule.kind == "cache" and evicted:
        return f"{rule.suggestion}; Redis evicted {evicted} keys, so raise maxmemory"
    return rule.suggestion


def _query_summary(queries: QueryStatsLike | None) -> QuerySummary | None:
    if queries is None:
        return None
    return QuerySummary(
        total_queries=queries.total_queries,
        slow_queries=queries.slow_queries,
        slow_query_rate=queries.slow_query_rate,
        avg_time_ms=queries.avg_time_ms,
        p95_time_ms=queries.p95_time_ms,
        p95_is_estimate=queries.p95_is_estimate,
    )
