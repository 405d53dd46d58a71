"""Dependencies and helpers shared by the routers.

The request-path handlers are ``async def``: a cache hit is answered on the event loop with one
Redis round trip, no thread hop and no database session. Database work (cache misses, writes)
goes through `run_db`, which runs it in a worker thread under a limiter the size of the
connection pool, so no thread ever queues for a connection while holding a thread slot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Depends, Path, Request, Response
from sqlalchemy.orm import Session

from tutormax_service.cache import Cache, dumps

# Bigint ids: out-of-range values become a 422 instead of a driver overflow (500).
EntityId = Annotated[int, Path(gt=0, lt=2**63)]

_T = TypeVar("_T")


def get_db(request: Request) -> Iterator[Session]:
    # Sessions check out a pooled connection only on first use.
    with request.app.state.session_factory() as db:
        yield db


def get_cache(request: Request) -> Cache:
    return request.app.state.cache


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


Db = Annotated[Session, Depends(get_db)]
CacheDep = Annotated[Cache, Depends(get_cache)]


def cache_header(hit: bool) -> dict[str, str]:
    return {"X-Cache": "HIT" if hit else "MISS"}


async def run_db(request: Request, work: Callable[[Session], _T]) -> _T:
    """Run ``work(session)`` in a worker thread, at most as many at once as the pool has connections."""
    state = request.app.state

    def call() -> _T:
        with state.session_factory() as db:
            return work(db)

    return await anyio.to_thread.run_sync(call, limiter=state.db_limiter)


async def cached_body(request: Request, key: str, loader: Callable[[Session], Any]) -> tuple[bytes, bool]:
    """``(json_body, was_hit)`` for ``key``, read-through; a miss loads and encodes in a worker thread."""

    async def load() -> bytes:
        return await run_db(request, lambda db: dumps(loader(db)))

    return await request.app.state.cache.read_through(key, load)


async def cached_json(request: Request, key: str, loader: Callable[[Session], Any]) -> Response:
    """Serve ``key`` read-through; cached bytes go out as-is, with no decode/encode round trip."""
    body, hit = await cached_body(request, key, loader)
    return Response(content=body, media_type="application/json", headers=cache_header(hit))
