"""Admin aggregates: the expensive reads the cache exists for."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tutormax_service import queries
from tutormax_service.cache import ADMIN_ANALYTICS_KEY, ADMIN_OVERVIEW_KEY
from tutormax_service.routes.common import CacheDep, Db, cached_json, utcnow

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/overview")
def overview(db: Db, cache: CacheDep) -> Response:
    return cached_json(cache, ADMIN_OVERVIEW_KEY, lambda: queries.admin_overview(db, utcnow()))


@router.get("/analytics")
def analytics(db: Db, cache: CacheDep) -> Response:
    return cached_json(cache, ADMIN_ANALYTICS_KEY, lambda: queries.admin_analytics(db, utcnow()))
