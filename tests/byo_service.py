"""A second service of the same shape that is not ours, for the "bring your own service" tests.

FastAPI on PostgreSQL and Redis, like TutorMax, but with another layout: its health check is
`GET /api/v1/utils/health-check/` answering `true` (the full-stack FastAPI template's), items under
`/api/v1/items/`, no `/health`, no ids endpoint, no `/api/performance/summary`, no X-Response-Time.
Items are read from PostgreSQL and cached in Redis, so a load test sees real cache hits and queries.
`/api/v1/utils/status` answers 200 with `{"status": "degraded"}`: a health check that reads a JSON
field must refuse it.

Every request is appended to `BYO_REQUEST_LOG` ("GET /path") before it is handled: what the server
saw, for tests that count requests. Served by uvicorn: `uvicorn byo_service:app --app-dir tests`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import psycopg
import redis
from fastapi import FastAPI, HTTPException, Request

DATABASE_URL = os.environ["BYO_DATABASE_URL"]
REQUEST_LOG = os.environ["BYO_REQUEST_LOG"]
CACHE_TTL_S = 300

app = FastAPI()
cache = redis.Redis.from_url(os.environ["BYO_REDIS_URL"])


@app.middleware("http")
async def record_request(request: Request, call_next: Any) -> Any:
    with open(REQUEST_LOG, "a") as log:  # one short append per request: lines never interleave
        log.write(f"{request.method} {request.url.path}\n")
    return await call_next(request)


@app.get("/api/v1/utils/health-check/")
def health_check() -> bool:
    return True


@app.get("/api/v1/utils/status")
def status() -> dict[str, str]:
    return {"status": "degraded"}


def _cached(key: str, load: Any) -> Any:
    hit = cache.get(key)
    if hit is not None:
        return json.loads(hit)
    value = load()
    cache.set(key, json.dumps(value), ex=CACHE_TTL_S)
    return value


def _query(statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(DATABASE_URL) as conn:
        return conn.execute(statement, params).fetchall()


@app.get("/api/v1/items/")
def list_items() -> list[dict[str, Any]]:
    def load() -> list[dict[str, Any]]:
        rows = _query("SELECT id, title FROM items ORDER BY id LIMIT 20")
        return [{"id": row[0], "title": row[1]} for row in rows]

    return _cached("byo:items:first", load)


@app.get("/api/v1/items/{item_id}")
def read_item(item_id: int) -> dict[str, Any]:
    def load() -> dict[str, Any] | None:
        rows = _query("SELECT id, title FROM items WHERE id = %s", (item_id,))
        return {"id": rows[0][0], "title": rows[0][1]} if rows else None

    item = _cached(f"byo:item:{item_id}", load)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item
