"""Tutor browsing, dashboards and reviews. `fastpath` answers the same GETs first; these routes
declare and document them, and serve what it leaves to them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from tutormax_service import queries, reads
from tutormax_service.models import SUBJECTS
from tutormax_service.routes.common import EntityId, cache_header, cached_json

router = APIRouter(prefix="/api/tutors", tags=["tutors"])


@router.get("")
async def list_tutors(
    request: Request,
    subject: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_TUTORS_LIST)] = 20,
) -> Response:
    if subject is not None and subject not in SUBJECTS:
        # Unknown subjects would each mint a cache key; answering directly keeps the keyspace bounded.
        return JSONResponse({"subject": subject, "count": 0, "tutors": []})
    body, hit = await reads.read(request.app.state, reads.tutors_list(subject))
    return Response(
        reads.tutors_page(body, subject, limit), media_type="application/json", headers=cache_header(hit)
    )


@router.get("/{tutor_id}/dashboard")
async def tutor_dashboard(tutor_id: EntityId, request: Request) -> Response:
    return await cached_json(request, reads.tutor_dashboard(tutor_id))


@router.get("/{tutor_id}/feedback")
async def tutor_feedback(tutor_id: EntityId, request: Request) -> Response:
    return await cached_json(request, reads.tutor_feedback(tutor_id))
