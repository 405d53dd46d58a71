"""Step 3b, the server-side figures around the run: Redis INFO and pg_stat_statements over the steady state."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.config import Settings
from tutormax_ops.core.conn_ids import REDIS_CONN_ID
from tutormax_ops.loadtest.guard import service_db

if TYPE_CHECKING:
    from tutormax_ops.collectors.postgres.queries import StatementsSnapshot
    from tutormax_ops.collectors.redis import RedisSample


SERVICE_SUMMARY_PATH = "/api/performance/summary"


@dataclass(frozen=True)
class ServerSnapshot:
    taken_at: datetime
    redis: RedisSample | None
    statements: StatementsSnapshot | None
    errors: tuple[str, ...]


def take_server_snapshot(settings: Settings) -> ServerSnapshot:
    """Redis INFO counters and pg_stat_statements now. A server that does not answer is noted, not
    fatal: the load test's own figures still stand."""
    from tutormax_ops.collectors.postgres.queries import statements_snapshot
    from tutormax_ops.collectors.redis import take_sample

    errors = []
    redis_sample = statements = None
    try:
        client = _redis_client()
        try:
            redis_sample = take_sample(client)
        finally:
            client.close()
    except Exception as error:  # reported with the run
        errors.append(describe_error("Redis", error))
    try:
        with service_db(settings, read_only=True) as conn:
            statements = statements_snapshot(conn)
    except Exception as error:  # reported with the run
        errors.append(describe_error("PostgreSQL", error))
    return ServerSnapshot(datetime.now(UTC), redis_sample, statements, tuple(errors))


def server_metrics(
    start: ServerSnapshot,
    settings: Settings,
    host: str,
    *,
    window: str,
    waits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Cache and query figures from `start` to now, the service's own summary, and the evidence a
    finding's cause is read from (`loadtest.evidence`; `waits` from its `WaitSampler`)."""
    from tutormax_ops.collectors.postgres.queries import query_stats, statements_snapshot
    from tutormax_ops.collectors.redis import cache_stats
    from tutormax_ops.loadtest.evidence import service_state, top_statements

    errors = list(start.errors)
    cache = queries = None
    evidence: dict[str, Any] = {"waits": waits}
    if start.redis is not None:
        try:
            client = _redis_client()
            try:
                cache = cache_stats(
                    client,
                    previous=start.redis,
                    patterns=settings.collectors.redis_key_patterns,
                    scan_limit=settings.collectors.redis_scan_limit,
                )
            finally:
                client.close()
        except Exception as error:  # reported with the run
            errors.append(describe_error("Redis", error))
    if start.statements is not None:
        try:
            with service_db(settings, read_only=True) as conn:
                end = statements_snapshot(conn)
                queries = query_stats(start.statements, end, min_duration_ms=settings.alerts.slow_query_ms)
                evidence["statements"] = top_statements(start.statements, end)
                evidence["state"] = service_state(conn, settings)
        except Exception as error:  # reported with the run
            errors.append(describe_error("PostgreSQL", error))
    return {
        "window": window,
        "window_started_at": start.taken_at,
        "cache": asdict(cache) if cache else None,
        "cache_hit_rate": cache.window_hit_rate_percent if cache else None,
        "queries": asdict(queries) if queries else None,
        "query_p95_ms": queries.p95_time_ms if queries else None,
        "slow_query_rate": queries.slow_query_rate if queries else None,
        **_service_summary(host),
        "evidence": evidence,
        "errors": errors,
    }


def _redis_client() -> Any:
    from airflow.providers.redis.hooks.redis import RedisHook

    return RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn()


def _service_summary(host: str) -> dict[str, Any]:
    """The service's own `/api/performance/summary` (the seed's), where it has one. It is optional:
    most services have none, so its absence is a note beside the figures, never an error."""
    import requests

    from tutormax_ops.core.service import credentials_for

    try:
        headers, _ = credentials_for(host)
        response = requests.get(f"{host}{SERVICE_SUMMARY_PATH}", timeout=10, headers=headers)
        response.raise_for_status()
        return {"service_summary": response.json(), "service_summary_note": None}
    except (requests.RequestException, ValueError) as error:
        note = f"optional, not available: {describe_error(SERVICE_SUMMARY_PATH, error)}"
        return {"service_summary": None, "service_summary_note": note}


def describe_error(what: str, error: BaseException) -> str:
    from tutormax_ops.core.notify import redact

    return redact(f"{what}: {type(error).__name__}: {error}")[:500]
