"""Real ids for load generators, so they never hard-code any."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tutormax_service.routes.common import run_db

router = APIRouter(prefix="/api/ids", tags=["ids"])


@router.get("/sample")
async def sample(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return await run_db(request, lambda db: request.app.state.id_sampler.sample(db, limit))
