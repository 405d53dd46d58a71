"""Admin aggregates: the expensive reads the cache exists for."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from tutormax_service import reads
from tutormax_service.routes.common import cached_json

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/overview")
async def overview(request: Request) -> Response:
    return await cached_json(request, reads.admin_overview())


@router.get("/analytics")
async def analytics(request: Request) -> Response:
    return await cached_json(request, reads.admin_analytics())
