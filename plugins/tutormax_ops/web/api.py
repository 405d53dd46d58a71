"""The seed's `/api/performance/*` endpoints, computed live, served by the Airflow API server.

`TutorMaxOpsPlugin` mounts this app under `/tutormax-ops`. Airflow mounts plugin apps without any
authentication, so the router requires the API server's own `get_user` dependency: a request
without a valid Airflow JWT (Bearer header or the UI's cookie) gets 401.

- Each request opens its own read-only PostgreSQL session on `tutormax_db`, with the configured
  statement and lock timeouts, and its own Redis client on `tutormax_redis`.
- Query figures run from the moment pg_stat_statements' counters started: a single request has no
  earlier snapshot to subtract (the DAGs keep snapshots and report periods).
- A table name in the path never reaches SQL as text. `schema.table` (split at the first dot) or
  `table` (schema public) is looked up in `pg_stat_user_tables` with bound parameters; no match is
  a 404, and what follows uses the catalogue's own names.
- The collectors (psycopg, pandas, redis) are imported inside the handlers: importing this module
  costs only FastAPI and Airflow's auth code, which the API server has loaded already.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, status

from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.conn_ids import DB_CONN_ID, REDIS_CONN_ID
from tutormax_ops.core.notify import redact
from tutormax_ops.web.page import router as performance_page

if TYPE_CHECKING:
    import psycopg

    from tutormax_ops.collectors.postgres.queries import QueryStats
    from tutormax_ops.collectors.postgres.tables import TableStats
    from tutormax_ops.collectors.redis import CacheStats

DEFAULT_SCHEMA = "public"
UNKNOWN_TABLE = "no such user table: give `table` (schema public) or `schema.table`"


def _settings() -> Settings:
    """Read per request, so a config change needs no API server restart."""
    return load_settings()


SettingsDep = Annotated[Settings, Depends(_settings)]
router = APIRouter(prefix="/api/performance", dependencies=[Depends(get_user)])


@contextmanager
def _database(settings: Settings) -> Iterator[psycopg.Connection]:
    """A read-only session with the collectors' timeouts; an unreachable or timed-out server is a 503."""
    import psycopg

    from tutormax_ops.core.db import collector_session

    try:
        with collector_session(DB_CONN_ID, settings) as conn:
            yield conn
    except psycopg.OperationalError as error:
        detail = redact(f"PostgreSQL ({DB_CONN_ID}): {str(error).strip().splitlines()[0]}")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail) from None


def _cache_stats(settings: Settings) -> CacheStats:
    from airflow.providers.redis.hooks.redis import RedisHook

    from tutormax_ops.collectors.redis import cache_stats

    client = RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn()
    try:
        return cache_stats(
            client,
            patterns=settings.collectors.redis_key_patterns,
            scan_limit=settings.collectors.redis_scan_limit,
        )
    finally:
        client.close()


def _resolve_table(conn: psycopg.Connection, table_name: str) -> TableStats:
    """The user table `table_name` names, found by value in the catalogue, else 404."""
    from tutormax_ops.collectors.postgres.tables import table_stats

    schema, dot, table = table_name.partition(".")
    if not dot:
        schema, table = DEFAULT_SCHEMA, table_name
    matches = table_stats(conn, schemas=[schema], table=table)
    if len(matches) != 1:
        raise HTTPException(status.HTTP_404_NOT_FOUND, UNKNOWN_TABLE)
    return matches[0]


def _plain(value: Any) -> Any:
    """Dataclasses (and lists of them) as JSON-ready mappings; FastAPI encodes dates and decimals."""
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _query_stats(settings: Settings) -> QueryStats:
    """The seed's query figures since pg_stat_statements' counters started, slow meaning
    `alerts.slow_query_ms` or more."""
    from tutormax_ops.collectors.postgres.queries import query_stats, statements_snapshot

    with _database(settings) as conn:
        snapshot = statements_snapshot(conn)
    return query_stats(None, snapshot, min_duration_ms=settings.alerts.slow_query_ms)


@router.get("/summary")
def performance_summary(settings: SettingsDep) -> dict[str, Any]:
    from tutormax_ops.collectors.summary import build_summary

    queries = _query_stats(settings)
    summary = build_summary(_cache_stats(settings), queries, targets=settings.targets, alerts=settings.alerts)
    return _plain(summary)


@router.get("/cache/stats")
def cache_statistics(settings: SettingsDep) -> dict[str, Any]:
    return _plain(_cache_stats(settings))


@router.get("/query/stats")
def query_statistics(settings: SettingsDep) -> dict[str, Any]:
    return _plain(_query_stats(settings))


@router.get("/database/slow-queries")
def slow_query_report(
    settings: SettingsDep,
    min_duration_ms: Annotated[float | None, Query(ge=0, description="default: alerts.slow_query_ms")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    from tutormax_ops.collectors.postgres.queries import slow_queries, statements_snapshot

    threshold = settings.alerts.slow_query_ms if min_duration_ms is None else min_duration_ms
    with _database(settings) as conn:
        snapshot = statements_snapshot(conn)
    return {
        "available": snapshot.available,
        "reason": snapshot.reason,
        "fix": snapshot.fix,
        "min_duration_ms": threshold,
        "queries": _plain(slow_queries(None, snapshot, min_duration_ms=threshold, limit=limit)),
    }


@router.get("/database/table/{table_name}/stats")
def table_statistics(table_name: str, settings: SettingsDep) -> dict[str, Any]:
    with _database(settings) as conn:
        return _plain(_resolve_table(conn, table_name))


@router.get("/database/table/{table_name}/indexes")
def table_indexes(table_name: str, settings: SettingsDep) -> dict[str, Any]:
    from tutormax_ops.collectors.postgres import indexes

    with _database(settings) as conn:
        table = _resolve_table(conn, table_name)
        schemas = [table.schema]

        def of_table(rows: list[Any]) -> list[Any]:
            return _plain([row for row in rows if row.table == table.table])

        return {
            "schema": table.schema,
            "table": table.table,
            "indexes": _plain(indexes.index_usage(conn, schemas=schemas, table=table.table)),
            "unused": of_table(indexes.unused_indexes(conn, schemas=schemas)),
            "duplicates": of_table(indexes.duplicate_indexes(conn, schemas=schemas)),
            "invalid": of_table(indexes.invalid_indexes(conn, schemas=schemas)),
        }


@router.get("/database/table/{table_name}/index-suggestions")
def table_index_suggestions(table_name: str, settings: SettingsDep) -> dict[str, Any]:
    """The collector's suggestions (for seq-scan-heavy tables, from the top statements) for this table."""
    from tutormax_ops.collectors.postgres.suggestions import index_suggestions

    with _database(settings) as conn:
        table = _resolve_table(conn, table_name)
        result = index_suggestions(conn)
    return {
        "schema": table.schema,
        "table": table.table,
        "available": result.available,
        "reason": result.reason,
        "fix": result.fix,
        "suggestions": _plain(
            [item for item in result.suggestions if (item.schema, item.table) == (table.schema, table.table)]
        ),
    }


# No /docs or /openapi.json: FastAPI would serve them outside the router, so without authentication.
app = FastAPI(title="TutorMax Ops performance API", docs_url=None, redoc_url=None, openapi_url=None)
app.include_router(router)
app.include_router(performance_page)
