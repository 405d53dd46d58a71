"""Real ids for load generators, so they never hard-code any."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from tutormax_service.cache import dumps
from tutormax_service.routes.common import run_db

router = APIRouter(prefix="/api/ids", tags=["ids"])


@router.get("/sample")
async def sample(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    # Encoded in the worker thread with the C JSON encoder: returning the dict would have FastAPI walk
    # its ~1,000 values through jsonable_encoder on the event loop, in front of every other request.
    body = await run_db(request, lambda db: dumps(request.app.state.id_sampler.sample(db, limit)))
    return Response(body, media_type="application/json")
