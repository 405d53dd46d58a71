"""Dependencies and helpers shared by the routers.

The request-path handlers are ``async def``: a cache hit is answered on the event loop with one
Redis round trip, no thread hop and no database session. Database work (cache misses, writes)
goes through `run_db`, which runs it in a worker thread under a limiter the size of the
connection pool, so no thread ever queues for a connection while holding a thread slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request, Response
from sqlalchemy.orm import Session

from tutormax_service import reads
from tutormax_service.cache import Cache
from tutormax_service.reads import utcnow

__all__ = ["CacheDep", "Db", "EntityId", "cache_header", "cached_json", "run_db", "utcnow"]

# Bigint ids: out-of-range values become a 422 instead of a driver overflow (500).
EntityId = Annotated[int, Path(gt=0, lt=2**63)]

_T = TypeVar("_T")


def get_db(request: Request) -> Iterator[Session]:
    # Sessions check out a pooled connection only on first use.
    with request.app.state.session_factory() as db:
        yield db


def get_cache(request: Request) -> Cache:
    return request.app.state.cache


Db = Annotated[Session, Depends(get_db)]
CacheDep = Annotated[Cache, Depends(get_cache)]


def cache_header(hit: bool) -> dict[str, str]:
    return {"X-Cache": "HIT" if hit else "MISS"}


async def run_db(request: Request, work: Callable[[Session], _T]) -> _T:
    """Run ``work(session)`` in a worker thread, at most as many at once as the pool has connections."""
    return await reads.run_db(request.app.state, work)


async def cached_json(request: Request, what: reads.Read) -> Response:
    """Serve a cached read; cached bytes go out as-is, with no decode/encode round trip."""
    body, hit = await reads.read(request.app.state, what)
    return Response(content=body, media_type="application/json", headers=cache_header(hit))
