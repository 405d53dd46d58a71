"""Dependencies and helpers shared by the routers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from sqlalchemy.orm import Session

from tutormax_service.cache import Cache

# Bigint ids: out-of-range values become a 422 instead of a driver overflow (500).
EntityId = Annotated[int, Path(gt=0, lt=2**63)]


def get_db(request: Request) -> Iterator[Session]:
    # Sessions check out a pooled connection only on first use, so cache hits never touch the pool.
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


def cached_json(cache: Cache, key: str, loader: Callable[[], Any]) -> Response:
    """Serve ``key`` read-through; cached bytes go out as-is, with no decode/encode round trip."""
    body, hit = cache.get_or_load(key, loader)
    return Response(content=body, media_type="application/json", headers=cache_header(hit))
