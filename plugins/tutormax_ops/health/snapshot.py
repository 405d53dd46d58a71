"""Step 1 of `tutormax_perf_health`: the seed's summary from live sources, stored once per hour.

Each figure says where it came from (`sources`):
- cache hit rate: Redis INFO deltas since the previous snapshot; without a window (first snapshot, a
  Redis restart, or no lookups in the window) the service's own `/api/performance/summary`;
- slow-query rate and p95 query time: pg_stat_statements deltas since the previous snapshot (never a
  reset); without a previous snapshot, the counters since they started;
- p95 API time and error rate: the newest valid load test of the last `health.loadtest_max_age_hours`
  (the service measures neither itself);
- DB connections: pg_stat_activity against max_connections minus the reserved slots;
- queue depth: LLEN of `health.queue_depth_key`, when one is configured.

The raw counters (Redis INFO, pg_stat_statements) are kept in the row's `samples`, so the next hour
can subtract them. The row is keyed by the hour: a rerun of the same hour replaces it.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.conn_ids import API_CONN_ID, DB_CONN_ID, REDIS_CONN_ID
from tutormax_ops.core.notify import redact
from tutormax_ops.core.storage import results_db
from tutormax_ops.health.results import hour_of, one

if TYPE_CHECKING:
    from tutormax_ops.collectors.postgres.queries import StatementsSnapshot
    from tutormax_ops.collectors.redis import CacheStats
    from tutormax_ops.core.config import Settings

SERVICE_SUMMARY = "/api/performance/summary"
QUERY_TEXT_CHARS = 300  # statements kept in `samples` are for deltas, not for reading


def take_snapshot(*, dag_id: str, run_id: str, moment: datetime, settings: Settings) -> dict[str, Any]:
    """Collect, store the row of `moment`'s hour (replacing a rerun's), and return its small summary
    for XCom. `moment` is the run's (`core.runs.run_moment`): a REST-triggered run has no logical date."""
    from psycopg.types.json import Jsonb

    from tutormax_ops.collectors.summary import build_summary
    from tutormax_ops.core.storage import upsert_rows

    hour = hour_of(moment)
    schema = settings.storage.results_schema
    with results_db(settings) as results:
        previous = one(results, "previous_snapshot", schema, {"hour": hour})
        since = datetime.now(UTC) - timedelta(hours=settings.health.loadtest_max_age_hours)
        loadtest = one(results, "latest_loadtest", schema, {"since": since})
    samples = (previous or {}).get("samples") or {}
    cache, redis_source = _cache(settings, samples.get("redis"))
    statements, queries, connections = _database(settings, samples.get("statements"))
    service = _service_summary()
    metrics, sources = _metrics(cache, redis_source, queries, connections, loadtest, service)
    if settings.health.queue_depth_key:
        metrics["queue_depth"], sources["queue_depth"] = _queue_depth(settings.health.queue_depth_key)
    summary = build_summary(
        cache,
        queries,
        targets=settings.targets,
        alerts=settings.alerts,
        api_p95_ms=metrics["api_p95_ms"],
        error_rate_percent=metrics["error_rate"],
    )
    row = {
        "hour": hour,
        "dag_id": dag_id,
        "run_id": run_id,
        "taken_at": summary.timestamp,
        "health_score": summary.health_score,
        "cache_hit_rate": metrics["cache_hit_rate"],
        "api_p95_ms": metrics["api_p95_ms"],
        "error_rate": metrics["error_rate"],
        "slow_query_rate": metrics["slow_query_rate"],
        "query_p95_ms": queries.p95_time_ms,
        "connections_pct": metrics["connections_pct"],
        "sources": Jsonb({**sources, "metrics": metrics}),
        "summary": Jsonb(_jsonable(dataclasses.asdict(summary))),
        "samples": Jsonb(
            {"redis": _jsonable(dataclasses.asdict(cache.sample)) if cache.sample else None}
            | {"statements": _statements_sample(statements)}
        ),
    }
    with results_db(settings) as results:
        upsert_rows(results, schema, "health_snapshots", [row], key=("hour",))
    return {"hour": hour.isoformat(), "health_score": summary.health_score, "metrics": metrics}


def _cache(settings: Settings, previous: dict[str, Any] | None) -> tuple[CacheStats, str]:
    from airflow.providers.redis.hooks.redis import RedisHook

    from tutormax_ops.collectors.redis import RedisSample, cache_stats

    earlier = (
        RedisSample(**{**previous, "taken_at": datetime.fromisoformat(previous["taken_at"])})
        if previous
        else None
    )
    client = RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn()
    try:
        stats = cache_stats(
            client,
            previous=earlier,
            patterns=settings.collectors.redis_key_patterns,
            scan_limit=settings.collectors.redis_scan_limit,
        )
    finally:
        client.close()
    if not stats.connected:
        return stats, redact(f"{REDIS_CONN_ID} unreachable: {stats.error}")[:300]
    if stats.window_hit_rate_percent is not None:
        minutes = (stats.window_seconds or 0) / 60
        return stats, f"Redis INFO deltas over the last {minutes:,.0f} min"
    return stats, stats.window_note or "Redis INFO: no lookups since the previous snapshot"


def _database(settings: Settings, previous: dict[str, Any] | None) -> tuple[StatementsSnapshot, Any, Any]:
    """pg_stat_statements and connections; an unreachable database leaves both unmeasured (and says why)."""
    import psycopg

    from tutormax_ops.collectors.postgres.health import connection_usage
    from tutormax_ops.collectors.postgres.queries import StatementsSnapshot, query_stats, statements_snapshot
    from tutormax_ops.core.db import collector_session

    try:
        with collector_session(DB_CONN_ID, settings) as conn:
            now = statements_snapshot(conn)
            connections = connection_usage(conn)
    except psycopg.OperationalError as error:
        reason = redact(f"{DB_CONN_ID} unreachable: {str(error).strip().splitlines()[0]}")
        now = StatementsSnapshot(False, reason, "check the database and the connection", datetime.now(UTC))
        connections = None
    before = _statements_from_sample(previous)
    queries = query_stats(before, now, min_duration_ms=settings.alerts.slow_query_ms)
    return now, queries, connections


def _service_summary() -> dict[str, Any]:
    """The service's own summary, or why it could not be read (that is a finding, not a failure)."""
    from tutormax_ops.core.service import api_get

    try:
        response = api_get(SERVICE_SUMMARY, timeout_s=10, conn_id=API_CONN_ID)
        response.raise_for_status()
        return {"ok": True, "body": response.json()}
    except Exception as error:  # any failure of a live source is reported with the snapshot
        return {"ok": False, "error": redact(f"{type(error).__name__}: {error}")[:300]}


def _metrics(
    cache: CacheStats,
    redis_source: str,
    queries: Any,
    connections: Any,
    loadtest: dict[str, Any] | None,
    service: dict[str, Any],
) -> tuple[dict[str, float | None], dict[str, Any]]:
    metrics: dict[str, float | None] = {}
    sources: dict[str, Any] = {}
    metrics["cache_hit_rate"], sources["cache_hit_rate"] = cache.window_hit_rate_percent, redis_source
    service_cache = ((service.get("body") or {}).get("cache") or {}) if service["ok"] else {}
    if metrics["cache_hit_rate"] is None and service_cache.get("hit_rate_percent") is not None:
        metrics["cache_hit_rate"] = float(service_cache["hit_rate_percent"])
        sources["cache_hit_rate"] = f"the service's own {SERVICE_SUMMARY} (its counters since their reset)"
    window = "since the previous snapshot" if queries.period_s is not None else "since the counters started"
    metrics["slow_query_rate"] = queries.slow_query_rate
    sources["slow_query_rate"] = (
        f"pg_stat_statements deltas {window} ({queries.total_queries} calls, slow = mean ≥ "
        f"{queries.slow_threshold_ms:g} ms, estimated)"
        if queries.available
        else f"pg_stat_statements unavailable: {queries.reason}"
    )
    if loadtest:
        origin = f"load test {loadtest['run_id']} ({loadtest['profile']}, {loadtest['started_at']:%Y-%m-%d %H:%M} UTC)"
        metrics["api_p95_ms"], metrics["error_rate"] = loadtest["p95_ms"], loadtest["error_rate"]
        sources["api_p95_ms"] = sources["error_rate"] = origin
        sources["loadtest"] = {key: str(value) for key, value in loadtest.items()}
    else:
        metrics["api_p95_ms"] = metrics["error_rate"] = None
        sources["api_p95_ms"] = sources["error_rate"] = "no valid load test in the window: not measured"
    metrics["connections_pct"] = connections.usage_percent if connections else None
    sources["connections_pct"] = (
        f"pg_stat_activity: {connections.connections} of {connections.max_connections} "
        f"(minus {connections.reserved_connections} reserved)"
        if connections
        else f"not measured: {queries.reason}"
    )
    sources["service_summary"] = service
    return metrics, sources


def _queue_depth(key: str) -> tuple[float | None, str]:
    from airflow.providers.redis.hooks.redis import RedisHook

    client = RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn()
    try:
        return float(client.llen(key)), f"Redis LLEN {key}"
    except Exception as error:  # reported, not raised: the other figures still count
        return None, redact(f"Redis LLEN {key} failed: {error}")
    finally:
        client.close()


def _statements_sample(snapshot: StatementsSnapshot) -> dict[str, Any] | None:
    if not snapshot.available:
        return None
    statements = [
        {**dataclasses.asdict(stat), "query": stat.query[:QUERY_TEXT_CHARS]} for stat in snapshot.statements
    ]
    return _jsonable({"taken_at": snapshot.taken_at, "statements": statements})


def _statements_from_sample(sample: dict[str, Any] | None) -> StatementsSnapshot | None:
    from tutormax_ops.collectors.postgres.queries import StatementsSnapshot, StatementStat

    if not sample:
        return None
    statements = tuple(
        StatementStat(**{**stat, "stats_since": _parse_time(stat["stats_since"])})
        for stat in sample["statements"]
    )
    return StatementsSnapshot(True, None, None, datetime.fromisoformat(sample["taken_at"]), statements)


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _jsonable(value: Any) -> Any:
    """Dates as ISO strings, through the same JSON round trip that jsonb would make."""
    return json.loads(json.dumps(value, default=lambda item: item.isoformat()))
