"""In-process SQL timing (via SQLAlchemy cursor events) and the performance health report.

Each uvicorn worker keeps its own window: /api/performance/query/stats describes the worker
that answered. Totals count since start/reset; avg and percentiles use the bounded window.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine.interfaces import ExecutionContext

logger = logging.getLogger(__name__)

# Targets and alert levels from the performance quick-start guide.
CACHE_HIT_TARGET_PERCENT = 80.0
CACHE_HIT_ALERT_PERCENT = 70.0
QUERY_P95_TARGET_MS = 100.0
SLOW_QUERY_RATE_WARN_PERCENT = 10.0
SLOW_QUERY_RATE_ALERT_PERCENT = 15.0
_STATEMENT_PREVIEW_CHARS = 300
_START_ATTR = "_tutormax_started_at"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no samples)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


class QueryStats:
    def __init__(self, slow_threshold_ms: float, window: int) -> None:
        self.slow_threshold_ms = slow_threshold_ms
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, str]] = deque(maxlen=window)
        self._total = 0
        self._slow = 0
        self._total_ms = 0.0

    def record(self, duration_ms: float, statement: str) -> None:
        slow = duration_ms >= self.slow_threshold_ms
        with self._lock:
            self._samples.append((duration_ms, statement))
            self._total += 1
            self._total_ms += duration_ms
            self._slow += slow
        if slow:
            logger.warning("slow query (%.1f ms): %s", duration_ms, statement[:_STATEMENT_PREVIEW_CHARS])

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
            self._total = self._slow = 0
            self._total_ms = 0.0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            samples = list(self._samples)
            total, slow, total_ms = self._total, self._slow, self._total_ms
        durations = [duration for duration, _ in samples]
        slowest = sorted(samples, key=lambda sample: sample[0], reverse=True)[:5]
        return {
            "total_queries": total,
            "slow_queries": slow,
            "slow_query_rate": round(100 * slow / total, 2) if total else 0.0,
            "avg_time_ms": round(total_ms / total, 2) if total else 0.0,
            "p50_time_ms": round(percentile(durations, 50), 2),
            "p95_time_ms": round(percentile(durations, 95), 2),
            "p99_time_ms": round(percentile(durations, 99), 2),
            "max_time_ms": round(max(durations, default=0.0), 2),
            "window_size": len(durations),
            "slow_threshold_ms": self.slow_threshold_ms,
            "slowest": [
                {"duration_ms": round(duration, 2), "statement": statement[:_STATEMENT_PREVIEW_CHARS]}
                for duration, statement in slowest
            ],
        }


def instrument_engine(engine: Engine, stats: QueryStats) -> None:
    """Time every statement the engine runs (cursor execute to result, not row fetching)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _start(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        many: bool,
    ) -> None:
        if context is not None:
            setattr(context, _START_ATTR, time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        many: bool,
    ) -> None:
        started = getattr(context, _START_ATTR, None)
        if started is not None:
            stats.record((time.perf_counter() - started) * 1000, statement)


def _recommendation(type_: str, severity: str, message: str, suggestion: str) -> dict[str, str]:
    return {"type": type_, "severity": severity, "message": message, "suggestion": suggestion}


def health_report(cache: dict[str, Any], queries: dict[str, Any]) -> tuple[float, list[dict[str, str]]]:
    """Score 0-100 plus recommendations, judged against the guide's targets.

    Each dimension can cost at most a third of the score, so one bad signal alone never
    reads as a total outage.
    """
    penalty = 0.0
    recommendations: list[dict[str, str]] = []
    lookups = cache["hits"] + cache["misses"]
    if not cache["connected"]:
        penalty += 33.3
        recommendations.append(
            _recommendation(
                "cache",
                "critical",
                "Redis is unreachable; every read goes to the database",
                "Check the Redis service and TUTORMAX_SERVICE_REDIS_URL (see GET /health)",
            )
        )
    elif lookups and cache["hit_rate_percent"] < CACHE_HIT_TARGET_PERCENT:
        rate = cache["hit_rate_percent"]
        penalty += min(33.3, CACHE_HIT_TARGET_PERCENT - rate)
        recommendations.append(
            _recommendation(
                "cache",
                "critical" if rate < CACHE_HIT_ALERT_PERCENT else "warning",
                f"Cache hit rate {rate:.1f}% is below the {CACHE_HIT_TARGET_PERCENT:.0f}% target",
                "Warm popular entries (POST /api/performance/cache/warm) or raise the cache TTL",
            )
        )
    p95 = queries["p95_time_ms"]
    if p95 > QUERY_P95_TARGET_MS:
        penalty += min(33.3, (p95 - QUERY_P95_TARGET_MS) / 10)
        recommendations.append(
            _recommendation(
                "database",
                "warning",
                f"p95 query time {p95:.1f} ms exceeds the {QUERY_P95_TARGET_MS:.0f} ms target",
                "Check /api/performance/database/slow-queries and that `alembic upgrade head` ran",
            )
        )
    slow_rate = queries["slow_query_rate"]
    if slow_rate > SLOW_QUERY_RATE_WARN_PERCENT:
        penalty += min(33.3, 2 * (slow_rate - SLOW_QUERY_RATE_WARN_PERCENT))
        recommendations.append(
            _recommendation(
                "database",
                "critical" if slow_rate > SLOW_QUERY_RATE_ALERT_PERCENT else "warning",
                f"{slow_rate:.1f}% of queries are slow",
                "Review missing indexes and recent schema changes",
            )
        )
    if not recommendations:
        recommendations.append(
            _recommendation(
                "general",
                "info",
                "Performance metrics are healthy",
                "Continue monitoring for degradation",
            )
        )
    return round(max(0.0, 100.0 - penalty), 1), recommendations
