"""The performance endpoints of the quick-start guide: summary, cache/query stats, slow queries, cache ops."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tutormax_service import queries
from tutormax_service.cache import (
    ADMIN_ANALYTICS_KEY,
    ADMIN_OVERVIEW_KEY,
    CACHE_PREFIX,
    HITS_KEY,
    MISSES_KEY,
    Cache,
    tutor_dashboard_key,
    tutors_list_key,
)
from tutormax_service.metrics import QueryStats, health_report
from tutormax_service.models import SUBJECTS, Tutor
from tutormax_service.routes.common import CacheDep, Db, utcnow

router = APIRouter(prefix="/api/performance", tags=["performance"])

_SUMMARY_QUERY_FIELDS = ("total_queries", "slow_queries", "slow_query_rate", "avg_time_ms", "p95_time_ms")

_SLOW_QUERIES_SQL = text(
    """
    SELECT queryid::text AS query_id,
           query,
           calls,
           rows,
           round(total_exec_time::numeric, 2) AS total_time_ms,
           round(mean_exec_time::numeric, 2) AS mean_time_ms,
           round(max_exec_time::numeric, 2) AS max_time_ms
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND mean_exec_time >= :min_duration_ms
    ORDER BY mean_exec_time DESC
    LIMIT :limit
    """
)


def get_query_stats(request: Request) -> QueryStats:
    return request.app.state.query_stats


QueryStatsDep = Annotated[QueryStats, Depends(get_query_stats)]


@router.get("/summary")
def summary(cache: CacheDep, query_stats: QueryStatsDep) -> dict[str, Any]:
    cache_stats = cache.stats()
    snapshot = query_stats.snapshot()
    query_summary = {field: snapshot[field] for field in _SUMMARY_QUERY_FIELDS}
    score, recommendations = health_report(cache_stats, query_summary)
    return {
        "timestamp": utcnow().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "health_score": score,
        "cache": cache_stats,
        "queries": query_summary,
        "recommendations": recommendations,
    }


@router.get("/cache/stats")
def cache_stats(cache: CacheDep) -> dict[str, Any]:
    return {
        **cache.stats(),
        "ttl_seconds": cache.ttl_seconds,
        # Counted by the service on every read-through lookup, shared by all workers.
        "source": "service_counters",
        "counter_keys": [HITS_KEY, MISSES_KEY],
    }


@router.get("/query/stats")
def query_stats(query_stats: QueryStatsDep) -> dict[str, Any]:
    return query_stats.snapshot()


@router.post("/stats/reset")
def reset_stats(cache: CacheDep, query_stats: QueryStatsDep) -> dict[str, bool]:
    """Zero the cache counters and this worker's query window, e.g. before a load-test run."""
    cache.reset_stats()
    query_stats.reset()
    return {"reset": True}


@router.get("/database/slow-queries")
def slow_queries(
    db: Db,
    min_duration_ms: Annotated[float, Query(ge=0)] = 100.0,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    if db.scalar(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")) is None:
        return {
            "available": False,
            "reason": "extension pg_stat_statements is not installed in this database "
            "(CREATE EXTENSION pg_stat_statements; it must also be in shared_preload_libraries)",
        }
    try:
        rows = (
            db.execute(_SLOW_QUERIES_SQL, {"min_duration_ms": min_duration_ms, "limit": limit})
            .mappings()
            .all()
        )
    except DBAPIError as exc:
        # Typically installed but not preloaded: the view exists, reading it raises.
        db.rollback()
        return {"available": False, "reason": str(exc.orig).splitlines()[0]}
    return {"available": True, "min_duration_ms": min_duration_ms, "queries": [dict(row) for row in rows]}


def _warm(db: Session, cache: Cache, top_tutors: int) -> dict[str, int]:
    now = utcnow()
    # Most-reviewed tutors stand in for the most-booked: the count is denormalised on the
    # tutors row, whereas counting sessions would scan the busiest table.
    tutor_ids = db.scalars(
        select(Tutor.id)
        .where(Tutor.is_active)
        .order_by(Tutor.rating_count.desc(), Tutor.id)
        .limit(top_tutors)
    ).all()
    for tutor_id in tutor_ids:
        cache.put(tutor_dashboard_key(tutor_id), queries.tutor_dashboard(db, tutor_id, now))
    cache.put(ADMIN_OVERVIEW_KEY, queries.admin_overview(db, now))
    cache.put(ADMIN_ANALYTICS_KEY, queries.admin_analytics(db, now))
    subjects: tuple[str | None, ...] = (None, *SUBJECTS)
    for subject in subjects:
        cache.put(tutors_list_key(subject), queries.tutors_list(db, subject))
    return {"tutor_dashboards": len(tutor_ids), "admin": 2, "tutor_lists": len(subjects)}


@router.post("/cache/warm")
def warm_cache(
    db: Db, cache: CacheDep, top_tutors: Annotated[int, Query(ge=0, le=5000)] = 100
) -> dict[str, Any]:
    started = time.perf_counter()
    warmed = _warm(db, cache, top_tutors)
    return {
        "warmed": warmed,
        "total_keys": sum(warmed.values()),
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }


@router.post("/cache/clear")
def clear_cache(cache: CacheDep, pattern: str = f"{CACHE_PREFIX}*") -> dict[str, Any]:
    try:
        deleted = cache.clear(pattern)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return {"pattern": pattern, "deleted": deleted}
