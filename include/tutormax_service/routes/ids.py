"""Real ids for load generators, so they never hard-code any."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from tutormax_service import queries
from tutormax_service.routes.common import Db

router = APIRouter(prefix="/api/ids", tags=["ids"])


@router.get("/sample")
def sample(db: Db, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return queries.sample_ids(db, limit)
