"""Admin aggregates: the expensive reads the cache exists for."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from tutormax_service import queries
from tutormax_service.cache import ADMIN_ANALYTICS_KEY, ADMIN_OVERVIEW_KEY
from tutormax_service.routes.common import cached_json, utcnow

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/overview")
async def overview(request: Request) -> Response:
    return await cached_json(request, ADMIN_OVERVIEW_KEY, lambda db: queries.admin_overview(db, utcnow()))


@router.get("/analytics")
async def analytics(request: Request) -> Response:
    return await cached_json(request, ADMIN_ANALYTICS_KEY, lambda db: queries.admin_analytics(db, utcnow()))
